//! Trace context and request ids.
//!
//! Trace headers are [`crate::spans`]' business: with no collector the
//! proxy is not a hop, and W3C `traceparent`/`tracestate` and B3 headers
//! pass through exactly as the app sent them, so the app's spans keep
//! pointing at parents that exist. (Rewriting the span id for a span nobody
//! reports broke application traces.) A missing `x-request-id` is set to a
//! random UUID so logs of every hop can be joined.

use http::{HeaderMap, HeaderValue};
use rand::Rng;

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Applies the rules above to request headers: trace headers untouched,
/// `x-request-id` added when missing.
pub fn propagate(headers: &mut HeaderMap) {
    if !headers.contains_key(REQUEST_ID) {
        let id = uuid_v4(rand::rng().random());
        if let Ok(v) = HeaderValue::from_bytes(&id) {
            headers.insert(REQUEST_ID, v);
        }
    }
}

/// Formats 128 random bits as a version-4 UUID (on the stack: this runs for
/// most requests).
fn uuid_v4(bits: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let mut out = [b'-'; 36];
    let mut nibble = 32;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        nibble -= 1;
        *slot = HEX[((b >> (nibble * 4)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids() {
        for (bits, want) in [
            (0u128, "00000000-0000-4000-8000-000000000000"),
            (u128::MAX, "ffffffff-ffff-4fff-bfff-ffffffffffff"),
            (
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
                "01234567-89ab-4def-8123-456789abcdef",
            ),
        ] {
            assert_eq!(std::str::from_utf8(&uuid_v4(bits)).ok(), Some(want));
        }
    }

    fn run(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        propagate(&mut h);
        h
    }

    fn get<'a>(h: &'a HeaderMap, k: &str) -> &'a str {
        h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[test]
    fn trace_context_passes_through_untouched() {
        // Without span export the proxy is not a hop: the app's own ids go
        // on exactly as sent, in both W3C and B3 forms, valid or not.
        let cases: &[&[(&str, &str)]] = &[
            &[
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
            &[("traceparent", "garbage")],
            &[
                ("x-b3-traceid", "463ac35c9f6413ad"),
                ("x-b3-spanid", "a2fb4a1d1a96d312"),
                ("x-b3-sampled", "1"),
            ],
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
            &[("b3", "0")],
        ];
        for pairs in cases {
            let h = run(pairs);
            for (k, v) in *pairs {
                assert_eq!(get(&h, k), *v, "{k} changed");
            }
            assert_eq!(
                h.len(),
                pairs.len() + 1,
                "only x-request-id is added: {h:?}"
            );
        }
    }

    #[test]
    fn request_id_is_set_only_when_missing() {
        let h = run(&[]);
        let id = get(&h, REQUEST_ID);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(get(&run(&[(REQUEST_ID, "mine")]), REQUEST_ID), "mine");
        assert!(
            run(&[]).get("traceparent").is_none(),
            "no trace is invented"
        );
    }
}
