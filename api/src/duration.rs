//! Durations as written in manifests and flags (`"500ms"`, `"2s"`,
//! `"1m30s"`, `"1h"`): Gateway API's GEP-2257 grammar, the one parser every
//! Strait component uses (the proxy, the controller, the CLI).
//!
//! One to four `<number><unit>` pairs; each number has one to five digits;
//! units are `h`, `m`, `s`, `ms`. So `123456s`, `1s1s1s1s1s`, `1.5s`, `-1s`
//! and `10` are refused, each with a message that says why.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (expected 1-4 <number><unit> pairs such as \"500ms\", \"2s\", \"1m30s\"; units h, m, s, ms)"
)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// The grammar [`parse`] reads, GEP-2257's regular expression (RE2, Go and
/// ECMA engines agree on it). The CRD schemas use it, so the API server
/// refuses what the proxy would refuse. (`parse` also trims surrounding
/// whitespace; the pattern does not allow it.)
pub const PATTERN: &str = "^([0-9]{1,5}(h|m|s|ms)){1,4}$";

/// Most pairs in one duration.
const MAX_PAIRS: usize = 4;
/// Most digits in one number.
const MAX_DIGITS: usize = 5;
/// The longest duration: `99999h59m59s999ms`, so that [`format`] can
/// always write it back in GEP-2257's grammar (each field sets its own,
/// usually much lower, bound on top).
pub const MAX: Duration = Duration::from_millis(99_999 * 3_600_000 + 3_599_999);

/// Parses a GEP-2257 duration.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut pairs = 0;
    let mut total = Duration::ZERO;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err(match bytes[i] {
                b'-' => "negative durations are not allowed",
                b'+' => "a sign is not allowed",
                _ => "a number must come before each unit",
            }));
        }
        if bytes.get(i) == Some(&b'.') {
            return Err(err("fractions are not allowed (write 1500ms, not 1.5s)"));
        }
        if i - start > MAX_DIGITS {
            return Err(err("a number has at most 5 digits (use a larger unit)"));
        }
        pairs += 1;
        if pairs > MAX_PAIRS {
            return Err(err("at most 4 <number><unit> pairs"));
        }
        // At most 5 digits: always fits.
        let n: u64 = s[start..i].parse().map_err(|_| err("not a number"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let part = match &s[unit_start..i] {
            "h" => Duration::from_secs(n * 3600),
            "m" => Duration::from_secs(n * 60),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            "" => return Err(err("missing unit (h, m, s or ms)")),
            _ => return Err(err("unknown unit (use h, m, s or ms)")),
        };
        total += part;
    }
    if total > MAX {
        return Err(err("too long (at most 99999h59m59s999ms)"));
    }
    Ok(total)
}

/// Formats a duration the way [`parse`] reads it (used in `/config`
/// output): hours, minutes, seconds and milliseconds, zero parts left out,
/// so at most four pairs of at most five digits. Durations longer than
/// [`MAX`] (which `parse` refuses) are printed as `MAX`.
pub fn format(d: Duration) -> String {
    let ms = d.min(MAX).as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let parts = [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            ("500ms", 500),
            ("2s", 2000),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("0s", 0),
            (" 25ms ", 25),
            ("1s500ms", 1500),
            ("99999h", 99_999 * 3_600_000),
            ("1h1m1s1ms", 3_661_001),
            ("59999ms", 59_999),
        ];
        for (input, ms) in ok {
            assert_eq!(parse(input), Ok(Duration::from_millis(ms)), "{input}");
        }
        let bad = [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10us",
            "1d",
            "ms5",
            "99999999999999999h",
            "99999999999999999999s",
            "123456s",
            "1s1s1s1s1s",
            "1h1m1s1ms1ms",
            "+1s",
            "99999h99999h",
        ];
        for input in bad {
            assert!(parse(input).is_err(), "{input:?} should be rejected");
        }
    }

    /// The schema pattern and the parser agree, except for what the pattern
    /// cannot know: surrounding whitespace (trimmed by `parse`) and overflow.
    #[test]
    fn pattern_agrees_with_parse() {
        let re = regex::Regex::new(PATTERN).unwrap();
        let inputs = [
            "500ms",
            "2s",
            "1m30s",
            "1h",
            "0s",
            "1s500ms",
            "1h1m1s1ms",
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10us",
            "1d",
            "ms5",
            "2 s",
            "1M",
            "1msx",
            "1mss",
            "123456s",
            "12345s",
            "1s1s1s1s",
            "1s1s1s1s1s",
            "99999h59m59s999ms",
        ];
        for input in inputs {
            assert_eq!(re.is_match(input), parse(input).is_ok(), "{input:?}");
        }
    }

    #[test]
    fn each_error_says_why() {
        for (input, why) in [
            ("10", "missing unit"),
            ("1.5s", "fractions are not allowed"),
            ("-1s", "negative"),
            ("123456s", "at most 5 digits"),
            ("1s1s1s1s1s", "at most 4"),
            ("1d", "unknown unit"),
            ("", "empty"),
        ] {
            let e = parse(input).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("\"2s\""), "{input:?}: {e}");
        }
    }

    #[test]
    fn format_round_trips() {
        let re = regex::Regex::new(PATTERN).unwrap();
        // Found by fuzzing: format used to print values parse refused.
        for ms in [
            0,
            25,
            1000,
            1500,
            90_000,
            3_661_001,
            4_294_968_001,
            99_999 * 3_600_000 + 3_599_999,
        ] {
            let d = Duration::from_millis(ms);
            let text = format(d);
            assert_eq!(parse(&text), Ok(d), "{text}");
            assert!(re.is_match(&text), "{text}");
        }
        assert_eq!(format(Duration::from_millis(90_500)), "1m30s500ms");
    }
}
