//! DestinationPolicy specs → domain [`Policy`], with defaults filled in and
//! every duration, decimal and percentage checked.

use super::rule::percent;
use crate::bounds;
use crate::manifest::{Decimal, DestinationPolicySpec};
use crate::model::{
    CircuitBreaker, Limits, LoadBalancer, Policy, RetryBudget, SuccessRate, TlsMode,
};
use std::time::Duration;

/// Converts a DestinationPolicy spec.
pub(crate) fn convert(spec: &DestinationPolicySpec) -> Result<Policy, String> {
    let defaults = Policy::default();
    let load_balancer = match spec.load_balancer.as_deref() {
        None | Some("PeakEwma") => LoadBalancer::PeakEwma,
        Some("RoundRobin") => LoadBalancer::RoundRobin,
        Some("LeastRequest") => LoadBalancer::LeastRequest,
        Some(other) => {
            return Err(format!(
                "loadBalancer: {other:?} is not one of PeakEwma, RoundRobin, LeastRequest"
            ));
        }
    };
    let dur = |field: &str, v: &Option<String>, default: Duration, max: Duration| {
        opt_dur(field, v, max).map(|d| d.unwrap_or(default))
    };
    let count =
        |field: &str, v: u32, max: u32| bounds::count(v, max).map_err(|e| format!("{field}: {e}"));
    let circuit_breaker = match &spec.circuit_breaker {
        None => None,
        Some(cb) => {
            let base = dur(
                "circuitBreaker.baseEjectionTime",
                &cb.base_ejection_time,
                Duration::from_secs(5),
                bounds::EJECTION_TIME,
            )?;
            let max = dur(
                "circuitBreaker.maxEjectionTime",
                &cb.max_ejection_time,
                Duration::from_secs(60),
                bounds::EJECTION_TIME,
            )?;
            if max < base {
                return Err(
                    "circuitBreaker.maxEjectionTime: must not be shorter than baseEjectionTime"
                        .into(),
                );
            }
            let success_rate = match &cb.success_rate {
                None => None,
                Some(sr) => Some(SuccessRate {
                    threshold: decimal(
                        "circuitBreaker.successRate.threshold",
                        &sr.threshold,
                        0.0,
                        1.0,
                    )?,
                    window: dur(
                        "circuitBreaker.successRate.window",
                        &sr.window,
                        Duration::from_secs(10),
                        bounds::WINDOW,
                    )?,
                    min_requests: count(
                        "circuitBreaker.successRate.minRequests",
                        sr.min_requests.unwrap_or(20),
                        bounds::MIN_REQUESTS,
                    )?,
                }),
            };
            let consecutive_failures = count(
                "circuitBreaker.consecutiveFailures",
                cb.consecutive_failures.unwrap_or(5),
                bounds::CONSECUTIVE_FAILURES,
            )?;
            if consecutive_failures == 0 {
                return Err("circuitBreaker.consecutiveFailures: must be at least 1".into());
            }
            Some(CircuitBreaker {
                consecutive_failures,
                base_ejection_time: base,
                max_ejection_time: max,
                max_ejected_percent: percent(cb.max_ejected_percent.unwrap_or(50))
                    .map_err(|e| format!("circuitBreaker.maxEjectedPercent: {e}"))?,
                success_rate,
            })
        }
    };
    let limit = |field: &str, v: Option<u32>| {
        v.map(|v| count(&format!("limits.{field}"), v, bounds::LIMIT))
            .transpose()
    };
    let limits = match &spec.limits {
        None => Limits::default(),
        Some(l) => Limits {
            max_connections: limit("maxConnections", l.max_connections)?,
            max_pending_requests: limit("maxPendingRequests", l.max_pending_requests)?,
            max_requests: limit("maxRequests", l.max_requests)?,
        },
    };
    let retry_budget = match &spec.retry_budget {
        None => RetryBudget::default(),
        Some(b) => RetryBudget {
            ratio: match &b.ratio {
                Some(r) => decimal("retryBudget.ratio", r, 0.0, bounds::RETRY_RATIO)?,
                None => defaults.retry_budget.ratio,
            },
            min_per_second: count(
                "retryBudget.minPerSecond",
                b.min_per_second
                    .unwrap_or(defaults.retry_budget.min_per_second),
                bounds::RETRIES_PER_SECOND,
            )?,
            window: dur(
                "retryBudget.window",
                &b.window,
                defaults.retry_budget.window,
                bounds::WINDOW,
            )?,
        },
    };
    let timeouts = spec.timeouts.as_ref();
    let tls_mode = match spec.tls.as_ref().map(|t| t.mode.as_str()) {
        None => defaults.tls_mode,
        Some("Strict") => TlsMode::Strict,
        Some("Permissive") => TlsMode::Permissive,
        Some("Disabled") => TlsMode::Disabled,
        Some(other) => {
            return Err(format!(
                "tls.mode: {other:?} is not one of Strict, Permissive, Disabled"
            ));
        }
    };
    Ok(Policy {
        load_balancer,
        connect_timeout: opt_dur(
            "timeouts.connect",
            &timeouts.and_then(|t| t.connect.clone()),
            bounds::TIMEOUT,
        )?,
        idle_timeout: opt_dur(
            "timeouts.idle",
            &timeouts.and_then(|t| t.idle.clone()),
            bounds::IDLE,
        )?,
        circuit_breaker,
        limits,
        retry_budget,
        tls_mode,
    })
}

fn opt_dur(field: &str, v: &Option<String>, max: Duration) -> Result<Option<Duration>, String> {
    v.as_deref()
        .map(|v| bounds::parse_duration(v, max))
        .transpose()
        .map_err(|e| format!("{field}: {e}"))
}

fn decimal(field: &str, d: &Decimal, min: f64, max: f64) -> Result<f64, String> {
    match d.0.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{field}: {:?} is not a decimal between {min} and {max}",
            d.0
        )),
    }
}
