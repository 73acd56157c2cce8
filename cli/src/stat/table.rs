//! The pure part of `strait stat`: from two scrapes of each proxy to one
//! table over all of them.
//!
//! Each proxy's counters are turned into increases first ([`increase`]),
//! with Prometheus' `increase()` rules for resets: a counter that went down,
//! or a proxy whose `process_start_time_seconds` changed, restarted and
//! counted from zero, so its current value is the increase. Only then are
//! proxies summed: adding raw counters of several proxies would hide one
//! proxy's reset behind the others' growth. Rows are per direction,
//! service, route and backend; latency quantiles come from the summed
//! histogram bucket increases, as PromQL's `histogram_quantile` does.

use crate::prom::{self, Sample};
use std::collections::BTreeMap;

/// Which side of the proxies to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// Requests the app sent out through its proxy.
    Outbound,
    /// Requests the proxy received for its app.
    Inbound,
    All,
}

impl Direction {
    fn includes(self, label: &str) -> bool {
        match self {
            Direction::All => true,
            Direction::Outbound => label == "outbound",
            Direction::Inbound => label == "inbound",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `outbound` or `inbound`.
    pub direction: String,
    /// `namespace/name:port` (empty for inbound).
    pub service: String,
    /// Route label (empty for inbound).
    pub route: String,
    /// Backend label: a Service for outbound, the app's address for inbound.
    pub backend: String,
    /// Requests per second.
    pub rps: f64,
    /// Share of non-5xx responses (None without requests).
    pub success: Option<f64>,
    /// Latency quantiles in seconds.
    pub p50: Option<f64>,
    /// p95.
    pub p95: Option<f64>,
    /// p99.
    pub p99: Option<f64>,
    /// Retries sent per second to the backend.
    pub retries: f64,
    /// Endpoints ejected now, summed over the proxies' own views.
    pub ejected: f64,
}

/// A counter's increase between two scrapes of one proxy. A counter that
/// went down was reset, and counted from zero since.
pub fn increase(prev: f64, cur: f64) -> f64 {
    if cur >= prev { cur - prev } else { cur }
}

/// Series that only go up between restarts.
fn is_counter(name: &str) -> bool {
    name.ends_with("_total")
        || name.ends_with("_bucket")
        || name.ends_with("_count")
        || name.ends_with("_sum")
}

fn start_time(samples: &[Sample]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == "process_start_time_seconds")
        .map(|s| s.value)
}

/// One proxy's change between two scrapes: counters become their increase,
/// gauges keep their current value. A series new in `cur` counts from zero.
pub fn deltas(prev: &[Sample], cur: &[Sample]) -> Vec<Sample> {
    let restarted = match (start_time(prev), start_time(cur)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    let before: BTreeMap<(&str, &BTreeMap<String, String>), f64> = prev
        .iter()
        .map(|s| ((s.name.as_str(), &s.labels), s.value))
        .collect();
    cur.iter()
        .map(|s| {
            let mut d = s.clone();
            if is_counter(&s.name) && !restarted {
                let p = before
                    .get(&(s.name.as_str(), &s.labels))
                    .copied()
                    .unwrap_or(0.0);
                d.value = increase(p, s.value);
            }
            d
        })
        .collect()
}

type Key = (String, String, String, String);

fn key(s: &Sample) -> Key {
    (
        s.label("direction").to_string(),
        s.label("service").to_string(),
        s.label("route").to_string(),
        s.label("backend").to_string(),
    )
}

fn sum(samples: &[Sample], name: &str, backend: &str, extra: Option<(&str, &str)>) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && s.label("backend") == backend
                && extra.is_none_or(|(k, v)| s.label(k) == v)
        })
        .map(|s| s.value)
        // An empty float sum is -0.0, which would print as "-0.0".
        .fold(0.0, |a, b| a + b)
}

/// Rows from the [`deltas`] of every proxy, concatenated, over `secs`.
pub fn rows(deltas: &[Sample], secs: f64, direction: Direction) -> Vec<Row> {
    let mut totals: BTreeMap<Key, (f64, f64)> = BTreeMap::new();
    for s in deltas
        .iter()
        .filter(|s| s.name == "strait_requests_total" && direction.includes(s.label("direction")))
    {
        let e = totals.entry(key(s)).or_default();
        e.0 += s.value;
        if !s.label("code").starts_with('5') {
            e.1 += s.value;
        }
    }
    totals
        .into_iter()
        .map(|((direction, service, route, backend), (n, ok))| {
            let filter = [
                ("direction", direction.as_str()),
                ("service", service.as_str()),
                ("route", route.as_str()),
                ("backend", backend.as_str()),
            ];
            let latency = prom::buckets(deltas, "strait_request_duration_seconds", &filter);
            // Retries and ejections are per outbound backend.
            let outbound = direction == "outbound";
            Row {
                rps: n / secs,
                success: (n > 0.0).then(|| ok / n),
                p50: prom::quantile(0.5, &latency),
                p95: prom::quantile(0.95, &latency),
                p99: prom::quantile(0.99, &latency),
                retries: if outbound {
                    sum(deltas, "strait_retry_attempts_total", &backend, None) / secs
                } else {
                    0.0
                },
                ejected: if outbound {
                    sum(
                        deltas,
                        "strait_endpoints",
                        &backend,
                        Some(("state", "ejected")),
                    )
                } else {
                    0.0
                },
                direction,
                service,
                route,
                backend,
            }
        })
        .collect()
}

/// Formats rows as a table.
pub fn render(rows: &[Row]) -> String {
    let ms = |v: Option<f64>| {
        v.map(|s| format!("{:.1}ms", s * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let mut out = format!(
        "{:<8} {:<24} {:<22} {:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}\n",
        "DIR",
        "SERVICE",
        "ROUTE",
        "BACKEND",
        "RPS",
        "SUCCESS",
        "P50",
        "P95",
        "P99",
        "RETRY/s",
        "EJECTED"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<8} {:<24} {:<22} {:<24} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>7}\n",
            r.direction,
            dash(&r.service),
            dash(&r.route),
            r.backend,
            r.rps,
            r.success
                .map(|s| format!("{:.2}%", s * 100.0))
                .unwrap_or_else(|| "-".into()),
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            r.retries,
            r.ejected
        ));
    }
    if rows.is_empty() {
        out.push_str("(no requests yet)\n");
    }
    out
}

#[cfg(test)]
mod tests;
