//! Which failures are retried, and how long to wait before the next try.

use http::{Method, StatusCode};
use std::time::Duration;
use strait_api::model::RetryPolicy;

/// What one attempt produced, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head with this status.
    Status(StatusCode),
    /// The TCP connection could not be made.
    ConnectFailure,
    /// The connection broke before a response head arrived.
    Reset,
    /// The per-try timeout passed.
    Timeout,
}

impl Outcome {
    /// Whether this is a failure for circuit breaking (5xx, connect
    /// failure, reset, timeout).
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Status(s) => s.is_server_error(),
            _ => true,
        }
    }
}

/// Methods RFC 9110 calls idempotent.
pub fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether `outcome` is in one of the rule's retry-on classes. Pure.
pub fn retryable_class(policy: &RetryPolicy, outcome: Outcome) -> bool {
    policy
        .on
        .iter()
        .any(|class| match (class.as_str(), outcome) {
            ("5xx", Outcome::Status(s)) => s.is_server_error(),
            ("5xx", Outcome::Timeout | Outcome::Reset | Outcome::ConnectFailure) => true,
            ("gateway-error", Outcome::Status(s)) => matches!(s.as_u16(), 502..=504),
            ("gateway-error", Outcome::Timeout) => true,
            ("connect-failure", Outcome::ConnectFailure) => true,
            ("reset", Outcome::Reset) => true,
            ("retriable-codes", Outcome::Status(s)) => policy.retriable_codes.contains(&s.as_u16()),
            _ => false,
        })
}

/// Backoff before retry number `retry` (1-based): full jitter over an
/// exponentially growing cap, `base × 2^(retry-1)`, itself capped at
/// 10 × base and at 1 s; `jitter` is a draw in `[0, 1)`. Pure.
pub fn backoff(base: Duration, retry: u32, jitter: f64) -> Duration {
    let cap = base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(base.saturating_mul(10))
        .min(Duration::from_secs(1));
    cap.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &[&str]) -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            per_try_timeout: None,
            on: on.iter().map(|s| s.to_string()).collect(),
            retriable_codes: vec![409],
            backoff: Duration::from_millis(25),
            non_idempotent: false,
        }
    }

    #[test]
    fn class_table() {
        use Outcome::*;
        let s = |c| Status(StatusCode::from_u16(c).unwrap());
        // (classes, outcome, retryable)
        let table: &[(&[&str], Outcome, bool)] = &[
            (&["5xx"], s(500), true),
            (&["5xx"], s(503), true),
            (&["5xx"], s(404), false),
            (&["5xx"], Reset, true),
            (&["gateway-error"], s(502), true),
            (&["gateway-error"], s(504), true),
            (&["gateway-error"], s(500), false),
            (&["gateway-error"], Timeout, true),
            (&["gateway-error"], ConnectFailure, false),
            (&["connect-failure"], ConnectFailure, true),
            (&["connect-failure"], Reset, false),
            (&["reset"], Reset, true),
            (&["reset"], s(503), false),
            (&["retriable-codes"], s(409), true),
            (&["retriable-codes"], s(503), false),
            (&[], s(503), false),
            (
                &["gateway-error", "connect-failure", "reset"],
                ConnectFailure,
                true,
            ),
            (&["5xx"], s(200), false),
        ];
        for (on, outcome, want) in table {
            assert_eq!(
                retryable_class(&policy(on), *outcome),
                *want,
                "{on:?} {outcome:?}"
            );
        }
    }

    #[test]
    fn idempotency() {
        for (m, want) in [
            (Method::GET, true),
            (Method::PUT, true),
            (Method::DELETE, true),
            (Method::POST, false),
            (Method::PATCH, false),
        ] {
            assert_eq!(is_idempotent(&m), want, "{m}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_millis(25);
        assert_eq!(backoff(b, 1, 1.0), Duration::from_millis(25));
        assert_eq!(backoff(b, 2, 1.0), Duration::from_millis(50));
        assert_eq!(backoff(b, 3, 1.0), Duration::from_millis(100));
        assert_eq!(
            backoff(b, 10, 1.0),
            Duration::from_millis(250),
            "at most 10 × base"
        );
        assert_eq!(
            backoff(Duration::from_secs(1), 5, 1.0),
            Duration::from_secs(1),
            "never above 1 s"
        );
        assert_eq!(backoff(b, 3, 0.5), Duration::from_millis(50));
        assert_eq!(backoff(b, 3, 0.0), Duration::ZERO);
        assert_eq!(backoff(b, 99, 1.0), Duration::from_millis(250));
    }

    #[test]
    fn failures_for_breaking() {
        assert!(Outcome::Status(StatusCode::BAD_GATEWAY).is_failure());
        assert!(!Outcome::Status(StatusCode::NOT_FOUND).is_failure());
        assert!(Outcome::Reset.is_failure());
    }
}
