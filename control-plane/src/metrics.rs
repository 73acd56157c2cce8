//! The controller's own metrics, served on the health port (`:9990/metrics`,
//! [`crate::health`]) beside the gauges read from the live state.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `strait_controller_versions_published_total` | counter | — |
//! | `strait_controller_acks_total` | counter | — |
//! | `strait_controller_nacks_total` | counter | `reason` |
//! | `strait_controller_convergence_seconds` | histogram | — |
//! | `strait_controller_watch_restarts_total` | counter | `kind` |
//! | `strait_controller_status_writes_total` | counter | `result` |
//! | `strait_controller_certificates_total` | counter | `result`, `reason` |
//!
//! Every label value comes from a fixed list, except a NACK's `reason`,
//! which a proxy writes: the first [`NACK_REASONS`] distinct reasons (cut
//! to [`NACK_REASON_CHARS`] characters) become values, any later one
//! counts as `other`, so a proxy cannot add series without end.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// Distinct NACK reasons kept as label values.
pub const NACK_REASONS: usize = 32;
/// Longest NACK reason label value.
pub const NACK_REASON_CHARS: usize = 120;

/// `strait_controller_nacks_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// `strait_controller_watch_restarts_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// The watched kind (`Service`, `EndpointSlice`, …).
    pub kind: String,
}

/// `strait_controller_status_writes_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// `strait_controller_certificates_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CertificateLabels {
    /// `issued`, `refused` or `error`.
    pub result: &'static str,
    /// Why not (empty when issued): see [`crate::identity::service`].
    pub reason: &'static str,
}

/// The controller's counters and histogram.
pub struct Metrics {
    registry: Registry,
    versions_published: Counter,
    acks: Counter,
    nacks: Family<ReasonLabels, Counter>,
    nack_reasons: Mutex<BTreeSet<String>>,
    convergence: Histogram,
    /// Published versions not yet acknowledged by every connected proxy.
    converging: Mutex<VecDeque<(u64, Instant)>>,
    watch_restarts: Family<KindLabels, Counter>,
    status_writes: Family<ResultLabels, Counter>,
    certificates: Family<CertificateLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strait_controller");
        let versions_published = Counter::default();
        registry.register(
            "versions_published",
            "Config versions this replica published.",
            versions_published.clone(),
        );
        let acks = Counter::default();
        registry.register(
            "acks",
            "Config versions proxies acknowledged.",
            acks.clone(),
        );
        let nacks = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "nacks",
            "Config versions proxies refused, by the reason they gave.",
            nacks.clone(),
        );
        // 1 ms … ~33 s: a change reaches a few proxies in milliseconds,
        // thousands in seconds.
        let convergence = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16),
        );
        registry.register(
            "convergence_seconds",
            "From a version's publication until every connected proxy acknowledged it (or a newer one).",
            convergence.clone(),
        );
        let watch_restarts = Family::<KindLabels, Counter>::default();
        registry.register(
            "watch_restarts",
            "Watches of the API server that failed and started again, by kind.",
            watch_restarts.clone(),
        );
        let status_writes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "status_writes",
            "Status subresource writes (conditions of TrafficRoutes and DestinationPolicies).",
            status_writes.clone(),
        );
        let certificates = Family::<CertificateLabels, Counter>::default();
        registry.register(
            "certificates",
            "Workload certificate requests, by result and reason.",
            certificates.clone(),
        );
        Metrics {
            registry,
            versions_published,
            acks,
            nacks,
            nack_reasons: Mutex::default(),
            convergence,
            converging: Mutex::default(),
            watch_restarts,
            status_writes,
            certificates,
        }
    }
}

impl Metrics {
    /// Version `v` was published; `proxies` are connected.
    pub fn published(&self, v: u64, proxies: usize) {
        self.versions_published.inc();
        if let Ok(mut c) = self.converging.lock() {
            if proxies == 0 {
                // Nobody to converge: nothing to time.
                c.clear();
            } else {
                c.push_back((v, Instant::now()));
                // A version newer proxies skip past is timed with it; an
                // unbounded queue would need a proxy that never ACKs.
                while c.len() > 1024 {
                    c.pop_front();
                }
            }
        }
    }

    /// A proxy acknowledged a version; `oldest` is the oldest version any
    /// connected proxy runs now (`None`: none connected).
    pub fn acked(&self, oldest: Option<u64>) {
        self.acks.inc();
        self.converged(oldest);
    }

    /// Times the versions every connected proxy has reached.
    pub fn converged(&self, oldest: Option<u64>) {
        let Ok(mut c) = self.converging.lock() else {
            return;
        };
        match oldest {
            None => c.clear(),
            Some(oldest) => {
                while let Some(&(v, at)) = c.front() {
                    if v > oldest {
                        break;
                    }
                    self.convergence.observe(at.elapsed().as_secs_f64());
                    c.pop_front();
                }
            }
        }
    }

    /// A proxy refused a version, saying `reason`.
    pub fn nacked(&self, reason: &str) {
        let reason: String = reason.chars().take(NACK_REASON_CHARS).collect();
        let label = match self.nack_reasons.lock() {
            Ok(seen) if seen.contains(&reason) => reason,
            Ok(mut seen) if seen.len() < NACK_REASONS => {
                seen.insert(reason.clone());
                reason
            }
            _ => "other".to_string(),
        };
        self.nacks
            .get_or_create(&ReasonLabels { reason: label })
            .inc();
    }

    /// A watch of `kind` failed (it starts again by itself).
    pub fn watch_restarted(&self, kind: &str) {
        self.watch_restarts
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// A status write succeeded or not.
    pub fn status_written(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.status_writes
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// A certificate request's end: `Ok(())` issued, `Err((result, reason))`.
    pub fn certificate(&self, outcome: Result<(), (&'static str, &'static str)>) {
        let (result, reason) = outcome.map(|()| ("issued", "")).unwrap_or_else(|e| e);
        self.certificates
            .get_or_create(&CertificateLabels { result, reason })
            .inc();
    }

    /// OpenMetrics text of these families, without the closing `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return String::new();
        }
        out.strip_suffix("# EOF\n")
            .map(str::to_string)
            .unwrap_or(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_reasons_are_bounded() {
        let m = Metrics::default();
        for i in 0..NACK_REASONS + 10 {
            m.nacked(&format!("reason {i}"));
        }
        m.nacked(&"x".repeat(1000));
        m.nacked("reason 0");
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("strait_controller_nacks_total{"))
            .count();
        assert_eq!(series, NACK_REASONS + 1, "{text}");
        assert!(text.contains("strait_controller_nacks_total{reason=\"reason 0\"} 2"));
        assert!(text.contains("strait_controller_nacks_total{reason=\"other\"} 11"));
    }

    #[test]
    fn convergence_is_timed_when_the_slowest_proxy_catches_up() {
        let m = Metrics::default();
        m.published(1, 2);
        m.published(2, 2);
        m.acked(Some(0)); // one proxy on 1, the other still on 0
        assert!(
            m.encode()
                .contains("strait_controller_convergence_seconds_count 0")
        );
        m.acked(Some(1));
        assert!(
            m.encode()
                .contains("strait_controller_convergence_seconds_count 1")
        );
        m.acked(Some(2));
        assert!(
            m.encode()
                .contains("strait_controller_convergence_seconds_count 2")
        );
        // Published with nobody connected: nothing to time.
        m.published(3, 0);
        m.acked(Some(3));
        assert!(
            m.encode()
                .contains("strait_controller_convergence_seconds_count 2")
        );
        assert!(m.encode().contains("strait_controller_acks_total 4"));
        assert!(
            m.encode()
                .contains("strait_controller_versions_published_total 3")
        );
    }
}
