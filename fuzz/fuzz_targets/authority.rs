//! `authority::parse`, as the proxy's explicit mode runs it on `Host` /
//! `:authority`.
//!
//! Must not panic. What it returns must name a Service the way Kubernetes
//! names them (RFC 1123 labels, a port that is not 0), must not depend on
//! the case of the input, and must be what the canonical spellings of the
//! same Service parse to (`name.ns:port`, `name.ns.svc.cluster.local:port`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use strait_api::authority::parse;

fn label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    // The default namespace comes from the proxy's settings; take it from
    // the input too when it is a valid label, so both arms are covered.
    let (authority, default_ns) = match input.split_once('\n') {
        Some((a, ns)) if label(ns) => (a, ns),
        _ => (&*input, "default"),
    };
    let got = parse(authority, default_ns);
    assert_eq!(
        parse(&authority.to_ascii_uppercase(), default_ns),
        got,
        "case changed the answer for {authority:?}"
    );
    let Some(key) = got else { return };
    assert!(label(&key.name), "{key}");
    assert!(label(&key.namespace), "{key}");
    assert_ne!(key.port, 0, "{key}");
    for canonical in [
        format!("{}.{}:{}", key.name, key.namespace, key.port),
        format!("{}.{}.svc:{}", key.name, key.namespace, key.port),
        format!(
            "{}.{}.svc.cluster.local.:{}",
            key.name, key.namespace, key.port
        ),
    ] {
        assert_eq!(
            parse(&canonical, "elsewhere").as_ref(),
            Some(&key),
            "{canonical}"
        );
    }
});
