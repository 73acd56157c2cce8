//! W3C trace context and the sampling decision, as pure functions.
//!
//! A proxy span joins the trace named by the request's `traceparent`
//! (W3C Trace Context level 1). The header is parsed here rather than
//! through OpenTelemetry's propagator because this runs on every request
//! while tracing is on, and a parse into plain integers allocates nothing.
//! B3 headers are passed through untouched and do not start or join spans.

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 128-bit trace id (never zero).
    pub trace_id: u128,
    /// The caller's span id (never zero).
    pub span_id: u64,
    /// The caller's sampled flag.
    pub sampled: bool,
}

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// Length of a version-00 `traceparent`.
const LEN: usize = 55;

/// Parses a `traceparent` value; `None` when it is not valid (an invalid
/// header is treated as absent, as the spec asks). A version above 00 is
/// read as 00 when its first 55 bytes have 00's layout (forward
/// compatibility); version `ff` is invalid.
pub fn parse(v: &[u8]) -> Option<TraceParent> {
    if v.len() < LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex(&v[0..2])? as u8;
    match version {
        0 if v.len() != LEN => return None,
        0xff => return None,
        0 => {}
        _ if v.len() > LEN && v[LEN] != b'-' => return None,
        _ => {}
    }
    let trace_id = hex(&v[3..35])?;
    let span_id = hex(&v[36..52])? as u64;
    let flags = hex(&v[53..55])? as u8;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(TraceParent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// Lower-case hex digits only (the spec forbids upper case).
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, d| {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u128::from(n))
    })
}

/// Formats a version-00 `traceparent` (on the stack: this runs for every
/// request a proxy starts a trace for).
pub fn format(tp: &TraceParent) -> [u8; LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; LEN];
    let mut put = |at: usize, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            out[at + 2 * i] = HEX[usize::from(b >> 4)];
            out[at + 2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
    };
    put(0, &[0]);
    put(3, &tp.trace_id.to_be_bytes());
    put(36, &tp.span_id.to_be_bytes());
    put(53, &[u8::from(tp.sampled)]);
    out
}

/// What the proxy does with a request's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The caller's trace is sampled: record a span as its child.
    Join(TraceParent),
    /// The caller's trace is not sampled: record nothing and leave the
    /// header as it came, so every later hop agrees.
    Follow,
    /// No valid caller trace: start one, sampled or not by the rate, and
    /// send its `traceparent` on so the next hops agree with this one.
    Start {
        /// Whether the new trace is recorded.
        sampled: bool,
    },
}

/// Decides (pure): the caller's sampled flag wins; a trace the proxy
/// starts is sampled when `draw` (uniform in [0, 1)) is below `rate`.
pub fn decide(incoming: Option<TraceParent>, rate: f64, draw: f64) -> Decision {
    match incoming {
        Some(tp) if tp.sampled => Decision::Join(tp),
        Some(_) => Decision::Follow,
        None => Decision::Start {
            sampled: draw < rate,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_what_the_spec_allows() {
        let ok = Some(TraceParent {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x00f067aa0ba902b7,
            sampled: true,
        });
        let unsampled = ok.map(|t| TraceParent {
            sampled: false,
            ..t
        });
        let cases: &[(&str, Option<TraceParent>)] = &[
            (VALID, ok),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                unsampled,
            ),
            // Other flag bits are ignored; only bit 0 is "sampled".
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                ok,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
                unsampled,
            ),
            // A later version: read the 00 layout, ignore what follows a dash.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever",
                ok,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ok,
            ),
            // Invalid: treated as absent.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                None,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                None,
            ),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None),
            ("garbage", None),
            ("", None),
            (
                "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header.as_bytes()), *want, "{header}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for tp in [
            parse(VALID.as_bytes()).expect("valid"),
            TraceParent {
                trace_id: 1,
                span_id: 1,
                sampled: false,
            },
            TraceParent {
                trace_id: u128::MAX,
                span_id: u64::MAX,
                sampled: true,
            },
        ] {
            let text = format(&tp);
            assert_eq!(parse(&text), Some(tp), "{}", String::from_utf8_lossy(&text));
        }
        assert_eq!(
            &format(&parse(VALID.as_bytes()).expect("valid")),
            VALID.as_bytes()
        );
    }

    #[test]
    fn the_callers_flag_wins_and_the_rate_starts_traces() {
        let tp = |sampled| TraceParent {
            trace_id: 7,
            span_id: 9,
            sampled,
        };
        let cases = [
            (Some(tp(true)), 0.0, 0.5, Decision::Join(tp(true))),
            (Some(tp(true)), 1.0, 0.5, Decision::Join(tp(true))),
            (Some(tp(false)), 1.0, 0.0, Decision::Follow),
            (None, 0.01, 0.005, Decision::Start { sampled: true }),
            (None, 0.01, 0.01, Decision::Start { sampled: false }),
            (None, 0.0, 0.0, Decision::Start { sampled: false }),
            (None, 1.0, 0.999, Decision::Start { sampled: true }),
        ];
        for (incoming, rate, draw, want) in cases {
            assert_eq!(
                decide(incoming, rate, draw),
                want,
                "{incoming:?} {rate} {draw}"
            );
        }
    }
}
