//! `duration::parse`, which reads every duration a user writes in a
//! manifest (timeouts, backoffs, ejection times, windows).
//!
//! Must not panic (overflow included). An accepted duration is a whole
//! number of milliseconds, parsing is insensitive to surrounding whitespace,
//! `duration::format` (what `/config` prints) reads back to the same value,
//! and the CRD schema's `duration::PATTERN` agrees with `parse` except where
//! its doc says it cannot (surrounding whitespace, overflow).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use strait_api::duration::{PATTERN, format, parse};

fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("STRAIT_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

fn pattern() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(PATTERN).expect("PATTERN compiles"))
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let got = parse(&input);
    // What the API server would admit vs what the proxy reads.
    let trimmed = input.trim();
    match (&got, pattern().is_match(trimmed)) {
        (Ok(_), true) | (Err(_), false) => {}
        (Ok(d), false) => panic!("{input:?} parses to {d:?} but the schema pattern refuses it"),
        (Err(e), true) => {
            let e = e.to_string();
            assert!(
                e.contains("too large") || e.contains("too long"),
                "the schema pattern admits {input:?} but parse refuses it: {e}"
            );
        }
    }
    let padded = format!(" \t{input}\n");
    assert_eq!(parse(&padded).ok(), got.as_ref().ok().copied(), "{input:?}");
    let Ok(d) = got else { return };
    assert_eq!(d.subsec_nanos() % 1_000_000, 0, "{input:?} -> {d:?}");
    assert!(d <= Duration::MAX);
    let shown = format(d);
    // Finding 3 in docs/fuzzing.md: `format` prints durations whose number
    // does not fit a u32 (from 4294967296ms, about 49.7 days, when not whole
    // seconds), which `parse` refuses. STRAIT_FUZZ_SKIP_KNOWN=1 skips those
    // so a run can look past it; drop this once the bug is fixed.
    if skip_known()
        && shown
            .trim_end_matches(char::is_alphabetic)
            .parse::<u128>()
            .is_ok_and(|n| n > u128::from(u32::MAX))
    {
        return;
    }
    assert_eq!(
        parse(&shown),
        Ok(d),
        "{input:?} -> {d:?} shown as {shown:?}"
    );
});
