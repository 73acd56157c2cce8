//! Circuit breaking for one endpoint, as a state machine over plain data.
//!
//! `Ready` → (consecutive failures ≥ N, or success rate under the threshold
//! with enough requests in the window) → `Ejected` for
//! `base × 2^(ejections-1)` (capped at the maximum, with ±10 % jitter) →
//! `Probing` once the time is up: the next request is a real probe; success
//! restores the endpoint, failure ejects it again for longer. The ejection
//! count is forgotten after a maximum ejection time without ejections. The
//! share of a backend's endpoints that may be ejected is checked by the
//! balancer, which owns the whole backend.

use std::time::Duration;
use strait_api::model::CircuitBreaker as Config;

const SR_SLOTS: u64 = 10;

/// What a result means for the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changes.
    Keep,
    /// The endpoint should be ejected (if the backend allows it).
    Eject,
    /// The probe succeeded: back in service.
    Restore,
}

/// An endpoint's breaker state.
#[derive(Debug, Default, Clone)]
pub struct Breaker {
    consecutive: u32,
    ejections: u32,
    ejected_until: Option<u64>,
    last_ejection_end: u64,
    sr: [(u64, u32, u32); SR_SLOTS as usize],
}

impl Breaker {
    /// Whether the endpoint is ejected (including while its probe is due).
    pub fn is_ejected(&self) -> bool {
        self.ejected_until.is_some()
    }

    /// Records the result of a request sent at any time; `now` in ms.
    pub fn on_result(&mut self, cfg: &Config, failed: bool, now: u64) -> Verdict {
        match self.ejected_until {
            // A probe (or a late reply) once the ejection is over decides.
            Some(until) if now >= until => {
                if failed {
                    Verdict::Eject
                } else {
                    Verdict::Restore
                }
            }
            // Replies to requests sent before the ejection change nothing.
            Some(_) => Verdict::Keep,
            None => {
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                let tripped_sr = cfg.success_rate.as_ref().is_some_and(|sr| {
                    let (ok, total) = self.record_sr(sr.window, failed, now);
                    total >= sr.min_requests
                        && f64::from(ok) / f64::from(total.max(1)) < sr.threshold
                });
                if self.consecutive >= cfg.consecutive_failures || tripped_sr {
                    Verdict::Eject
                } else {
                    Verdict::Keep
                }
            }
        }
    }

    fn record_sr(&mut self, window: Duration, failed: bool, now: u64) -> (u32, u32) {
        let slot_ms = (window.as_millis() as u64 / SR_SLOTS).max(1);
        let epoch = now / slot_ms;
        let s = &mut self.sr[(epoch % SR_SLOTS) as usize];
        if s.0 != epoch {
            *s = (epoch, 0, 0);
        }
        s.2 += 1;
        if !failed {
            s.1 += 1;
        }
        self.sr
            .iter()
            .filter(|s| s.0 + SR_SLOTS > epoch && s.0 <= epoch)
            .fold((0, 0), |(ok, t), s| (ok + s.1, t + s.2))
    }

    /// Ejects the endpoint; returns how long. `jitter` in `[0, 1)`.
    pub fn eject(&mut self, cfg: &Config, now: u64, jitter: f64) -> Duration {
        if self.ejected_until.is_none()
            && now.saturating_sub(self.last_ejection_end)
                > u64::try_from(cfg.max_ejection_time.as_millis()).unwrap_or(u64::MAX)
        {
            self.ejections = 0;
        }
        self.ejections = (self.ejections + 1).min(20);
        let grown = cfg
            .base_ejection_time
            .saturating_mul(1 << (self.ejections - 1));
        // Bounded before the jitter multiplies it: a huge base (a
        // DestinationPolicy can say 99999h) must not overflow Duration's
        // float conversion, which panics.
        let max = cfg.max_ejection_time;
        let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        let d = Duration::try_from_secs_f64(grown.min(max).as_secs_f64() * factor)
            .unwrap_or(max)
            .min(max);
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.ejected_until = Some(now.saturating_add(ms));
        self.consecutive = 0;
        self.sr = Default::default();
        d
    }

    /// Puts the endpoint back in service.
    pub fn restore(&mut self, now: u64) {
        self.ejected_until = None;
        self.last_ejection_end = now;
        self.consecutive = 0;
    }

    /// Forgets failures that could not eject (the backend was at its cap).
    pub fn forgive(&mut self) {
        self.consecutive = 0;
        self.sr = Default::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_api::model::SuccessRate;

    fn cfg() -> Config {
        Config {
            consecutive_failures: 3,
            base_ejection_time: Duration::from_secs(5),
            max_ejection_time: Duration::from_secs(30),
            max_ejected_percent: 50,
            success_rate: None,
        }
    }

    /// The security review's case: `baseEjectionTime:
    /// 18446744073709551615s` made the jitter's float conversion panic,
    /// which also poisoned the breaker's lock. Any base, however large, now
    /// gives an ejection no longer than the maximum.
    #[test]
    fn a_huge_base_ejection_time_does_not_panic() {
        for (base, max) in [
            (Duration::MAX, Duration::MAX),
            (Duration::MAX, Duration::from_secs(60)),
            (
                Duration::from_secs(99_999 * 3600),
                Duration::from_secs(99_999 * 3600),
            ),
        ] {
            let c = Config {
                base_ejection_time: base,
                max_ejection_time: max,
                ..cfg()
            };
            let mut b = Breaker::default();
            for n in 0..25 {
                for jitter in [0.0, 0.5, 0.999] {
                    let d = b.eject(&c, n * 1000, jitter);
                    assert!(d <= max, "{d:?} > {max:?}");
                    b.restore(n * 1000);
                }
            }
        }
    }

    #[test]
    fn consecutive_failures_eject_and_success_resets() {
        let c = cfg();
        let mut b = Breaker::default();
        assert_eq!(b.on_result(&c, true, 0), Verdict::Keep);
        assert_eq!(b.on_result(&c, true, 0), Verdict::Keep);
        assert_eq!(
            b.on_result(&c, false, 0),
            Verdict::Keep,
            "a success resets the count"
        );
        assert_eq!(b.on_result(&c, true, 0), Verdict::Keep);
        assert_eq!(b.on_result(&c, true, 0), Verdict::Keep);
        assert_eq!(b.on_result(&c, true, 0), Verdict::Eject);
    }

    #[test]
    fn ejection_doubles_up_to_max_then_probe_decides() {
        let c = cfg();
        let mut b = Breaker::default();
        // (jitter 0.5 → exactly the nominal time)
        assert_eq!(b.eject(&c, 0, 0.5), Duration::from_secs(5));
        assert!(b.is_ejected());
        assert_eq!(
            b.on_result(&c, false, 1_000),
            Verdict::Keep,
            "late replies change nothing"
        );
        assert_eq!(b.on_result(&c, true, 5_000), Verdict::Eject, "failed probe");
        assert_eq!(b.eject(&c, 5_000, 0.5), Duration::from_secs(10));
        assert_eq!(b.eject(&c, 15_000, 0.5), Duration::from_secs(20));
        assert_eq!(b.eject(&c, 35_000, 0.5), Duration::from_secs(30), "capped");
        assert_eq!(
            b.on_result(&c, false, 65_000),
            Verdict::Restore,
            "successful probe"
        );
        b.restore(65_000);
        assert!(!b.is_ejected());
        // Soon after, a new ejection keeps growing…
        assert_eq!(b.eject(&c, 70_000, 0.5), Duration::from_secs(30));
        b.restore(100_000);
        // …but after a quiet maximum ejection time the count starts over.
        assert_eq!(b.eject(&c, 200_000, 0.5), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let c = cfg();
        assert_eq!(
            Breaker::default().eject(&c, 0, 0.0),
            Duration::from_millis(4500)
        );
        assert_eq!(
            Breaker::default().eject(&c, 0, 1.0),
            Duration::from_millis(5500)
        );
    }

    #[test]
    fn success_rate_mode() {
        let c = Config {
            consecutive_failures: 1000,
            success_rate: Some(SuccessRate {
                threshold: 0.8,
                window: Duration::from_secs(10),
                min_requests: 20,
            }),
            ..cfg()
        };
        let mut b = Breaker::default();
        // 50 % failures, alternating: no streak, but the rate trips at 20 requests.
        let mut verdicts = Vec::new();
        for i in 0..20 {
            verdicts.push(b.on_result(&c, i % 2 == 0, 100));
        }
        assert!(verdicts[..19].iter().all(|v| *v == Verdict::Keep));
        assert_eq!(verdicts[19], Verdict::Eject);
        // 90 % success never trips.
        let mut b = Breaker::default();
        assert!((0..200).all(|i| b.on_result(&c, i % 10 == 0, 100) == Verdict::Keep));
        // Old results leave the window.
        let mut b = Breaker::default();
        for _ in 0..19 {
            b.on_result(&c, true, 0);
        }
        assert_eq!(
            b.on_result(&c, false, 20_000),
            Verdict::Keep,
            "failures from 20 s ago are gone"
        );
    }
}
