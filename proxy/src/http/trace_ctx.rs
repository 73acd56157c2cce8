//! Trace context propagation.
//!
//! Each proxy is a hop: when a request carries W3C `traceparent` or B3
//! headers, the proxy gives the hop a new span id and records the incoming
//! span as its parent, so a trace shows every proxy. `tracestate` is passed
//! on unchanged. A missing `x-request-id` is set to a random UUID so logs of
//! every hop can be joined. Malformed trace headers are passed on untouched
//! rather than "repaired": the proxy must never break an app's tracing.

use http::{HeaderMap, HeaderValue};
use rand::Rng;

const TRACEPARENT: &str = "traceparent";
const B3: &str = "b3";
const B3_TRACE_ID: &str = "x-b3-traceid";
const B3_SPAN_ID: &str = "x-b3-spanid";
const B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Applies every rule above to outgoing request headers.
pub fn propagate(headers: &mut HeaderMap) {
    let mut rng = rand::rng();
    // Most requests carry no trace context: only then is a span id made.
    if headers.contains_key(TRACEPARENT)
        || headers.contains_key(B3_TRACE_ID)
        || headers.contains_key(B3)
    {
        let span = format!("{:016x}", rng.random::<u64>() | 1);
        child_traceparent(headers, &span);
        child_b3(headers, &span);
    }
    if !headers.contains_key(REQUEST_ID) {
        let id = uuid_v4(rng.random());
        if let Ok(v) = HeaderValue::from_bytes(&id) {
            headers.insert(REQUEST_ID, v);
        }
    }
}

/// `00-<trace>-<parent>-<flags>` → same trace and flags, `span` as parent.
fn child_traceparent(headers: &mut HeaderMap, span: &str) {
    let Some(tp) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let parts: Vec<&str> = tp.trim().split('-').collect();
    let valid = parts.len() >= 4
        && parts[0].len() == 2
        && parts[0] != "ff"
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3].len() == 2
        && parts[..4].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0');
    if !valid {
        return;
    }
    let next = format!("{}-{}-{span}-{}", parts[0], parts[1], parts[3]);
    if let Ok(v) = HeaderValue::from_str(&next) {
        headers.insert(TRACEPARENT, v);
    }
}

fn child_b3(headers: &mut HeaderMap, span: &str) {
    // Multi-header form.
    if headers.contains_key(B3_TRACE_ID)
        && let Some(parent) = headers.get(B3_SPAN_ID).cloned()
    {
        headers.insert(B3_PARENT_SPAN_ID, parent);
        if let Ok(v) = HeaderValue::from_str(span) {
            headers.insert(B3_SPAN_ID, v);
        }
    }
    // Single-header form: `trace-span[-sampled[-parent]]`.
    let Some(b3) = headers.get(B3).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let parts: Vec<&str> = b3.split('-').collect();
    if parts.len() < 2
        || !parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return;
    }
    let next = match parts.get(2) {
        Some(sampled) => format!("{}-{span}-{sampled}-{}", parts[0], parts[1]),
        None => format!("{}-{span}", parts[0]),
    };
    if let Ok(v) = HeaderValue::from_str(&next) {
        headers.insert(B3, v);
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
    fn traceparent_gets_a_child_span() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let h = run(&[(TRACEPARENT, tp), ("tracestate", "congo=t61rcWkgMzE")]);
        let out = get(&h, TRACEPARENT);
        let parts: Vec<&str> = out.split('-').collect();
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(parts[2], "00f067aa0ba902b7");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert_eq!(get(&h, "tracestate"), "congo=t61rcWkgMzE");
    }

    #[test]
    fn malformed_traceparent_is_left_alone() {
        for bad in [
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(get(&run(&[(TRACEPARENT, bad)]), TRACEPARENT), bad);
        }
    }

    #[test]
    fn b3_multi_and_single() {
        let h = run(&[
            (B3_TRACE_ID, "463ac35c9f6413ad"),
            (B3_SPAN_ID, "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(get(&h, B3_TRACE_ID), "463ac35c9f6413ad");
        assert_eq!(get(&h, B3_PARENT_SPAN_ID), "a2fb4a1d1a96d312");
        assert_ne!(get(&h, B3_SPAN_ID), "a2fb4a1d1a96d312");
        let h = run(&[(B3, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
        let parts: Vec<&str> = get(&h, B3).split('-').collect();
        assert_eq!(
            (parts[0], parts[2], parts[3]),
            ("80f198ee56343ba864fe8b2a57d3eff7", "1", "e457b5a2e4d86bd1")
        );
        assert_ne!(parts[1], "e457b5a2e4d86bd1");
        assert_eq!(
            get(&run(&[(B3, "0")]), B3),
            "0",
            "a sampling-only b3 header is kept"
        );
    }

    #[test]
    fn request_id_is_set_only_when_missing() {
        let h = run(&[]);
        let id = get(&h, REQUEST_ID);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(get(&run(&[(REQUEST_ID, "mine")]), REQUEST_ID), "mine");
        assert!(run(&[]).get(TRACEPARENT).is_none(), "no trace is invented");
    }
}
