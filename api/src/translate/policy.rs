//! DestinationPolicy specs → domain [`Policy`], with defaults filled in and
//! every duration, decimal and percentage checked.

use super::rule::percent;
use crate::duration;
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
    let dur = |field: &str, v: &Option<String>, default: Duration| {
        v.as_deref()
            .map(duration::parse)
            .transpose()
            .map(|d| d.unwrap_or(default))
            .map_err(|e| format!("{field}: {e}"))
    };
    let circuit_breaker = match &spec.circuit_breaker {
        None => None,
        Some(cb) => {
            let base = dur(
                "circuitBreaker.baseEjectionTime",
                &cb.base_ejection_time,
                Duration::from_secs(5),
            )?;
            let max = dur(
                "circuitBreaker.maxEjectionTime",
                &cb.max_ejection_time,
                Duration::from_secs(60),
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
                    )?,
                    min_requests: sr.min_requests.unwrap_or(20),
                }),
            };
            let consecutive_failures = cb.consecutive_failures.unwrap_or(5);
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
    let limits = spec
        .limits
        .as_ref()
        .map(|l| Limits {
            max_connections: l.max_connections,
            max_pending_requests: l.max_pending_requests,
            max_requests: l.max_requests,
        })
        .unwrap_or_default();
    let retry_budget = match &spec.retry_budget {
        None => RetryBudget::default(),
        Some(b) => RetryBudget {
            ratio: match &b.ratio {
                Some(r) => decimal("retryBudget.ratio", r, 0.0, 1000.0)?,
                None => defaults.retry_budget.ratio,
            },
            min_per_second: b
                .min_per_second
                .unwrap_or(defaults.retry_budget.min_per_second),
            window: dur(
                "retryBudget.window",
                &b.window,
                defaults.retry_budget.window,
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
        )?,
        idle_timeout: opt_dur("timeouts.idle", &timeouts.and_then(|t| t.idle.clone()))?,
        circuit_breaker,
        limits,
        retry_budget,
        tls_mode,
    })
}

fn opt_dur(field: &str, v: &Option<String>) -> Result<Option<Duration>, String> {
    v.as_deref()
        .map(duration::parse)
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
