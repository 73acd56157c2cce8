//! Fault injection draws: which requests get an added delay or a synthetic
//! error, for chaos drills. Pure given the draws.

use std::time::Duration;
use strait_api::model::Fault;

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Injection {
    /// Sleep this long before forwarding.
    pub delay: Option<Duration>,
    /// Answer with this status instead of forwarding.
    pub abort: Option<u16>,
}

/// Decides with two independent draws in `[0, 1)`.
pub fn decide(fault: &Fault, delay_draw: f64, abort_draw: f64) -> Injection {
    Injection {
        delay: fault
            .delay
            .as_ref()
            .filter(|d| delay_draw * 100.0 < f64::from(d.percent))
            .map(|d| d.duration),
        abort: fault
            .abort
            .as_ref()
            .filter(|a| abort_draw * 100.0 < f64::from(a.percent))
            .map(|a| a.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_api::model::{FaultAbort, FaultDelay};

    #[test]
    fn table() {
        let f = Fault {
            delay: Some(FaultDelay {
                percent: 5,
                duration: Duration::from_millis(200),
            }),
            abort: Some(FaultAbort {
                percent: 1,
                status: 503,
            }),
        };
        let d = Some(Duration::from_millis(200));
        for (dd, ad, want) in [
            (
                0.0,
                0.0,
                Injection {
                    delay: d,
                    abort: Some(503),
                },
            ),
            (
                0.049,
                0.0099,
                Injection {
                    delay: d,
                    abort: Some(503),
                },
            ),
            (0.05, 0.01, Injection::default()),
            (0.99, 0.5, Injection::default()),
        ] {
            assert_eq!(decide(&f, dd, ad), want, "{dd} {ad}");
        }
        let zero = Fault {
            delay: Some(FaultDelay {
                percent: 0,
                duration: Duration::from_secs(1),
            }),
            abort: None,
        };
        assert_eq!(decide(&zero, 0.0, 0.0), Injection::default());
        let all = Fault {
            delay: None,
            abort: Some(FaultAbort {
                percent: 100,
                status: 500,
            }),
        };
        assert_eq!(
            decide(&all, 0.0, 0.9999),
            Injection {
                delay: None,
                abort: Some(500)
            }
        );
    }
}
