//! `route::path::normalize`, which every request path goes through before
//! routing (it faces the network).
//!
//! Must not panic. A normalised path starts with `/` (for input that did),
//! has no `.` or `..` segment, no escaped unreserved character and no
//! lower-case escape, and normalising it again changes nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strait_api::route::path::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let Ok(out) = normalize(input) else { return };
    if !input.starts_with('/') {
        assert_eq!(out, input);
        return;
    }
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    assert!(!out.split('/').any(|s| s == "." || s == ".."), "{input:?} -> {out:?}");
    let b = out.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'%' {
            let esc = &out[i + 1..i + 3];
            assert_eq!(esc, esc.to_ascii_uppercase(), "{input:?} -> {out:?}");
            let v = u8::from_str_radix(esc, 16).expect("a valid escape");
            assert!(!(v.is_ascii_alphanumeric() || b"-._~".contains(&v)), "{input:?} -> {out:?}");
        }
    }
    assert_eq!(normalize(&out).expect("normalised input normalises"), out);
});
