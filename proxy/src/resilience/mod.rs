//! Resilience: the decisions that keep a failing pod from becoming a failing
//! service, without letting retries turn a brownout into an outage.
//!
//! Each part is a small state machine or pure function that takes the time
//! as a parameter, so it is table-tested without sleeping:
//!
//! * [`retry`]: is this outcome retryable under the rule, and how long to
//!   back off (exponential, full jitter);
//! * [`budget`]: the per-backend retry budget over a sliding window
//!   (retries ≤ max(minPerSecond × window, ratio × requests));
//! * [`breaker`]: per-endpoint circuit breaking (consecutive failures or
//!   success rate → ejection that doubles up to a maximum → one probe);
//! * [`fault`]: fault injection draws.
//!
//! The request path ([`crate::http::pipeline`]) and the balancer
//! ([`crate::balance`]) call them. Mirroring, which sends requests, is in
//! [`crate::http::mirror`].

pub mod breaker;
pub mod budget;
pub mod fault;
pub mod retry;

use std::sync::OnceLock;
use tokio::time::Instant;

/// Milliseconds on a process-wide monotonic clock, the time unit of the
/// state machines here. tokio's clock, which is the system's monotonic
/// clock except in tests that pause it: there ejections, budgets and
/// backoffs run on virtual time (`proxy/tests/request_path.rs`).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
