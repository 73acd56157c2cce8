//! Durations as written in manifests (`"500ms"`, `"2s"`, `"1m30s"`, `"1h"`).
//!
//! The grammar is the Gateway API one: one or more `<integer><unit>` pairs with
//! units `h`, `m`, `s`, `ms`. Negative, fractional and unit-less values are
//! rejected with a message that says what was expected.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. \"500ms\", \"2s\", \"1m30s\")")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// The grammar [`parse`] reads, as a regular expression that RE2, Go and
/// ECMA engines agree on. The CRD schemas use it, so the API server refuses
/// what the proxy would refuse. (`parse` also trims surrounding whitespace;
/// the pattern does not allow it.)
pub const PATTERN: &str = "^([0-9]+(h|m|s|ms))+$";

/// Parses a Gateway-API style duration.
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
    let mut total = Duration::ZERO;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err("a number must come before each unit"));
        }
        let n: u64 = s[start..i].parse().map_err(|_| err("number too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let part = match &s[unit_start..i] {
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "s" => Some(Duration::from_secs(n)),
            "ms" => Some(Duration::from_millis(n)),
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit (use h, m, s or ms)")),
        }
        .ok_or_else(|| err("too long"))?;
        total = total.checked_add(part).ok_or_else(|| err("too long"))?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse`] reads it (used in `/config` output).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
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
        ];
        for input in inputs {
            assert_eq!(re.is_match(input), parse(input).is_ok(), "{input:?}");
        }
    }

    #[test]
    fn error_says_what_is_expected() {
        let e = parse("10").unwrap_err().to_string();
        assert!(e.contains("missing unit") && e.contains("\"2s\""), "{e}");
    }

    #[test]
    fn format_round_trips() {
        // Found by fuzzing: format used to print values parse refused.
        for ms in [
            0,
            25,
            1000,
            1500,
            90_000,
            4_294_968_001,
            4_294_967_295 * 3_600_000,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
