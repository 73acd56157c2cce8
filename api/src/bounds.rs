//! The upper bound of every count, ratio and duration a TrafficRoute or
//! DestinationPolicy may set, and of the size of what is read.
//!
//! A value past its bound is refused, by the CRD schema (the API server
//! answers the `kubectl apply` with the field and the bound) and again in
//! translation, which is what the local modes and the config stream rely
//! on. Bounds keep configuration from disarming the proxy: a 584-billion-
//! year ejection time overflowed the breaker's arithmetic, and a billion
//! attempts with a budget ratio of 1,000 turned one request into 1,968.
//! Each bound is far above any sensible setting.
//!
//! The schema attributes in `manifest/strait.rs` repeat these numbers as
//! literals (attributes cannot name constants); a test in
//! `control-plane/src/crd/tests.rs` checks the two agree.

use std::time::Duration;

/// `retry.attempts`, the first try included.
pub const ATTEMPTS: u32 = 10;
/// A backend's `weight` (Gateway API's bound).
pub const WEIGHT: u32 = 1_000_000;
/// `retryBudget.ratio`: retries may add at most as many requests again.
pub const RETRY_RATIO: f64 = 1.0;
/// `retryBudget.minPerSecond`.
pub const RETRIES_PER_SECOND: u32 = 10_000;
/// `circuitBreaker.consecutiveFailures`.
pub const CONSECUTIVE_FAILURES: u32 = 10_000;
/// `circuitBreaker.successRate.minRequests`.
pub const MIN_REQUESTS: u32 = 1_000_000;
/// `limits.maxConnections`, `maxRequests`, `maxPendingRequests`.
pub const LIMIT: u32 = 1_000_000;

/// Route `timeout`, `retry.perTryTimeout`, `fault.delay.duration`,
/// `timeouts.connect`.
pub const TIMEOUT: Duration = Duration::from_secs(3600);
/// `retry.backoff`.
pub const BACKOFF: Duration = Duration::from_secs(60);
/// `circuitBreaker.baseEjectionTime` and `maxEjectionTime`.
pub const EJECTION_TIME: Duration = Duration::from_secs(24 * 3600);
/// `circuitBreaker.successRate.window`, `retryBudget.window`.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// `timeouts.idle`.
pub const IDLE: Duration = Duration::from_secs(24 * 3600);

/// One manifest document, or one object on the config stream: etcd's
/// default request limit, the most a Kubernetes object can be. (A 50 MB
/// annotation in a local file used to be read as it was.)
pub const DOCUMENT_BYTES: usize = 3 << 19; // 1.5 MiB
/// One file in a `--local` directory.
pub const FILE_BYTES: u64 = 64 << 20;
/// Services in one config (one proxy's view). 460,000 took a proxy 33 s
/// and 1.2 GB; scope what each proxy sees with `strait.dev/export-to`.
pub const SERVICES: usize = 100_000;

/// `value`, or why it is past `max`.
pub fn count(value: u32, max: u32) -> Result<u32, String> {
    if value <= max {
        Ok(value)
    } else {
        Err(format!("{value} is above the maximum, {max}"))
    }
}

/// `value`, or why it is past `max`.
pub fn duration(value: Duration, max: Duration) -> Result<Duration, String> {
    if value <= max {
        Ok(value)
    } else {
        Err(format!("{value:?} is above the maximum, {max:?}"))
    }
}

/// A duration as a manifest writes it (GEP-2257), at most `max`.
pub fn parse_duration(s: &str, max: Duration) -> Result<Duration, String> {
    crate::duration::parse(s)
        .map_err(|e| e.to_string())
        .and_then(|d| duration(d, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_bound_is_fine_past_it_is_not() {
        assert_eq!(count(10, ATTEMPTS), Ok(10));
        assert_eq!(
            count(11, ATTEMPTS),
            Err("11 is above the maximum, 10".into())
        );
        assert!(duration(TIMEOUT, TIMEOUT).is_ok());
        let e = duration(TIMEOUT + Duration::from_millis(1), TIMEOUT).unwrap_err();
        assert!(e.contains("above the maximum, 3600s"), "{e}");
    }
}
