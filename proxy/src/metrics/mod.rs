//! The proxy's Prometheus metrics (served on the admin port's `/metrics`).
//!
//! prometheus-client was chosen over the older `prometheus` crate because it
//! is the Prometheus project's own OpenMetrics implementation (used by
//! linkerd2-proxy and ztunnel) and measured faster here both for labelled
//! increments and for exporting many series. Every metric and label is
//! documented in `docs/metrics.md`; keep the two in step.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, RwLock};

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// The Service port asked for, `namespace/name:port` (empty inbound).
    pub service: String,
    /// The rule that matched (`trafficroute/rule`, or `default`).
    pub route: String,
    /// The backend chosen by the split (empty when none was chosen).
    pub backend: String,
    /// HTTP status sent to the client.
    pub code: u16,
}

/// Labels of a request latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// As in [`RequestLabels`].
    pub service: String,
    /// As in [`RequestLabels`].
    pub route: String,
    /// As in [`RequestLabels`].
    pub backend: String,
}

/// Per-direction labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
}

/// Byte counter labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `src`: bytes received from the connecting client; `dst`: bytes sent
    /// back to it (what the destination answered).
    pub peer: &'static str,
}

/// Config reload labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Per-backend labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// The backend, `namespace/name:port`.
    pub backend: String,
}

/// Retry outcome labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// As in [`RequestLabels`].
    pub service: String,
    /// As in [`RequestLabels`].
    pub route: String,
    /// As in [`RequestLabels`].
    pub backend: String,
    /// `success`, `exhausted`, `budget`, `not-retryable`, `body-too-large`.
    pub outcome: &'static str,
}

/// Endpoint state labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointStateLabels {
    /// The backend.
    pub backend: String,
    /// `ready` or `ejected`.
    pub state: &'static str,
}

/// Shed request labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    /// The backend.
    pub backend: String,
    /// `max-pending-requests` or `max-connections`.
    pub reason: &'static str,
}

/// Per-route labels with a kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteKindLabels {
    /// The route.
    pub route: String,
    /// Faults: `delay`, `abort`; mirrors: `sent`, `dropped`, `failed`.
    pub kind: &'static str,
}

/// Labels of a label that ran out of distinct values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverflowLabels {
    /// Which label: `inbound_backend`.
    pub label: &'static str,
}

/// The value a label takes once its budget of distinct values is spent.
pub const OVERFLOW_LABEL: &str = "overflow";

/// The `service` label of requests for a Service the config does not know:
/// what a client names is not a label value, or every made-up `Host` would
/// add series forever.
pub const UNKNOWN_SERVICE_LABEL: &str = "unknown";

/// Distinct inbound `backend` label values (the app's `address:port`; a
/// peer picks the port). Past this, requests share [`OVERFLOW_LABEL`].
pub const INBOUND_BACKENDS_MAX: usize = 64;

/// Distinct values admitted for a label whose values clients choose, up to
/// a cap: every series costs memory for the life of the process, so a
/// client must not be able to add them without bound. Values past the cap
/// share [`OVERFLOW_LABEL`] and are counted in
/// `strait_metric_label_overflow_total`.
pub struct LabelBudget {
    label: &'static str,
    cap: usize,
    admitted: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl LabelBudget {
    /// A budget of `cap` distinct values for `label`.
    pub fn new(label: &'static str, cap: usize) -> Self {
        Self {
            label,
            cap,
            admitted: Default::default(),
        }
    }

    /// `value` if it is admitted (already, or now, within the cap), else
    /// [`OVERFLOW_LABEL`], counted in `overflow`.
    pub fn admit(&self, value: String, overflow: &Family<OverflowLabels, Counter>) -> String {
        let Ok(mut admitted) = self.admitted.lock() else {
            return OVERFLOW_LABEL.to_string();
        };
        if admitted.contains(&value) {
            return value;
        }
        if admitted.len() < self.cap {
            admitted.insert(value.clone());
            return value;
        }
        overflow
            .get_or_create(&OverflowLabels { label: self.label })
            .inc();
        OVERFLOW_LABEL.to_string()
    }
}

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    /// `strait_metric_label_overflow_total`.
    pub label_overflow: Family<OverflowLabels, Counter>,
    /// The inbound `backend` label's budget.
    pub inbound_backends: LabelBudget,
    /// `strait_requests_total`.
    pub requests: Family<RequestLabels, Counter>,
    /// `strait_request_duration_seconds`.
    pub request_duration: Family<RouteLabels, Histogram>,
    /// `strait_tcp_connections_open`.
    pub connections_open: Family<DirectionLabels, Gauge>,
    /// `strait_tcp_bytes_total`.
    pub tcp_bytes: Family<BytesLabels, Counter>,
    /// `strait_config_reloads_total`.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// `strait_config_endpoints`.
    pub config_endpoints: Gauge,
    /// `strait_retries_total`: requests whose first attempt failed, by what
    /// happened next.
    pub retries: Family<RetryLabels, Counter>,
    /// `strait_retry_attempts_total`: retries sent.
    pub retry_attempts: Family<BackendLabels, Counter>,
    /// `strait_retry_budget_remaining`.
    pub retry_budget_remaining: Family<BackendLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `strait_endpoints`.
    pub endpoints: Family<EndpointStateLabels, Gauge>,
    /// `strait_ejections_total`.
    pub ejections: Family<BackendLabels, Counter>,
    /// `strait_shed_requests_total`.
    pub shed: Family<ShedLabels, Counter>,
    /// `strait_faults_injected_total`.
    pub faults: Family<RouteKindLabels, Counter>,
    /// `strait_mirrored_requests_total`.
    pub mirrors: Family<RouteKindLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
    ])
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strait");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered, by outcome",
            requests.clone(),
        );
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from request received to response headers sent",
            request_duration.clone(),
        );
        let connections_open = Family::<DirectionLabels, Gauge>::default();
        registry.register(
            "tcp_connections_open",
            "Client connections currently open",
            connections_open.clone(),
        );
        let tcp_bytes = Family::<BytesLabels, Counter>::default();
        registry.register(
            "tcp_bytes",
            "Bytes carried on client connections",
            tcp_bytes.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config updates, applied or refused",
            config_reloads.clone(),
        );
        let config_endpoints = Gauge::default();
        registry.register(
            "config_endpoints",
            "Endpoints known in the applied config",
            config_endpoints.clone(),
        );
        let retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "retries",
            "Requests whose first attempt failed, by what happened next",
            retries.clone(),
        );
        let retry_attempts = Family::<BackendLabels, Counter>::default();
        registry.register("retry_attempts", "Retries sent", retry_attempts.clone());
        let retry_budget_remaining =
            Family::<BackendLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "retry_budget_remaining",
            "Retries the backend's budget allows now",
            retry_budget_remaining.clone(),
        );
        let endpoints = Family::<EndpointStateLabels, Gauge>::default();
        registry.register(
            "endpoints",
            "Endpoints of a backend by circuit-breaker state",
            endpoints.clone(),
        );
        let ejections = Family::<BackendLabels, Counter>::default();
        registry.register(
            "ejections",
            "Endpoints ejected by the circuit breaker",
            ejections.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "shed_requests",
            "Requests answered 503 by a limit",
            shed.clone(),
        );
        let faults = Family::<RouteKindLabels, Counter>::default();
        registry.register(
            "faults_injected",
            "Faults injected by a route",
            faults.clone(),
        );
        let mirrors = Family::<RouteKindLabels, Counter>::default();
        registry.register(
            "mirrored_requests",
            "Requests copied to a mirror backend",
            mirrors.clone(),
        );
        let label_overflow = Family::<OverflowLabels, Counter>::default();
        registry.register(
            "metric_label_overflow",
            "Requests recorded under the label value `overflow` because a label that clients choose ran out of distinct values",
            label_overflow.clone(),
        );
        Self {
            label_overflow,
            inbound_backends: LabelBudget::new("inbound_backend", INBOUND_BACKENDS_MAX),
            retries,
            retry_attempts,
            retry_budget_remaining,
            endpoints,
            ejections,
            shed,
            faults,
            mirrors,
            registry,
            requests,
            request_duration,
            connections_open,
            tcp_bytes,
            config_reloads,
            config_endpoints,
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        strait_api::process::append(&mut out);
        out
    }

    /// Sets a backend's endpoint state gauges.
    pub fn endpoint_states(&self, backend: &str, total: usize, ejected: usize) {
        for (state, n) in [("ready", total - ejected.min(total)), ("ejected", ejected)] {
            self.endpoints
                .get_or_create(&EndpointStateLabels {
                    backend: backend.to_string(),
                    state,
                })
                .set(n as i64);
        }
    }

    /// Counts a config update.
    pub fn reload(&self, ok: bool) {
        self.config_reloads
            .get_or_create(&ReloadLabels {
                result: if ok { "success" } else { "failure" },
            })
            .inc();
    }
}

/// One request series, `(direction, service, route, backend)`, resolved once
/// and then updated without building or hashing labels: the latency
/// histogram and a counter per status code seen. The families still own the
/// series (handles share their storage), so `/metrics` is unchanged; this
/// only takes label work off the per-request path.
pub struct RequestSeries {
    /// Its labels (also what the retry metrics and access log name).
    pub labels: RouteLabels,
    duration: Histogram,
    codes: RwLock<Vec<(u16, Counter)>>,
}

/// Status codes remembered per series; a rarer code still counts, through
/// the family.
const CODES_CACHED: usize = 16;

impl RequestSeries {
    /// Looks the series up in `metrics` (creating it).
    pub fn new(metrics: &Metrics, labels: RouteLabels) -> Self {
        let duration = (*metrics.request_duration.get_or_create(&labels)).clone();
        Self {
            labels,
            duration,
            codes: RwLock::new(Vec::new()),
        }
    }

    /// Records one answered request.
    pub fn record(&self, metrics: &Metrics, code: u16, seconds: f64) {
        self.duration.observe(seconds);
        if let Ok(codes) = self.codes.read()
            && let Some((_, c)) = codes.iter().find(|(k, _)| *k == code)
        {
            c.inc();
            return;
        }
        let counter = (*metrics.requests.get_or_create(&RequestLabels {
            direction: self.labels.direction,
            service: self.labels.service.clone(),
            route: self.labels.route.clone(),
            backend: self.labels.backend.clone(),
            code,
        }))
        .clone();
        counter.inc();
        if let Ok(mut codes) = self.codes.write()
            && codes.len() < CODES_CACHED
            && !codes.iter().any(|(k, _)| *k == code)
        {
            codes.push((code, counter));
        }
    }
}

/// A few [`RequestSeries`] found by a key without hashing: a backend is
/// reached through one or a handful of (service, route) pairs, so a short
/// scan beats building label strings. Bounded; past the bound a series is
/// still recorded, just not remembered.
pub struct SeriesCache<K> {
    entries: RwLock<Vec<(K, Arc<RequestSeries>)>>,
}

impl<K> Default for SeriesCache<K> {
    fn default() -> Self {
        Self {
            entries: RwLock::new(Vec::new()),
        }
    }
}

/// Entries a [`SeriesCache`] keeps.
const SERIES_CACHED: usize = 64;

impl<K> SeriesCache<K> {
    /// The series whose key `matches`, or the one `make` builds (then kept).
    pub fn get_or_insert(
        &self,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, RequestSeries),
    ) -> Arc<RequestSeries> {
        if let Ok(entries) = self.entries.read()
            && let Some((_, s)) = entries.iter().find(|(k, _)| matches(k))
        {
            return s.clone();
        }
        let (key, series) = make();
        let series = Arc::new(series);
        if let Ok(mut entries) = self.entries.write()
            && entries.len() < SERIES_CACHED
        {
            entries.push((key, series.clone()));
        }
        series
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_budget_admits_up_to_its_cap_then_overflows_and_counts() {
        let overflow = Family::<OverflowLabels, Counter>::default();
        let budget = LabelBudget::new("inbound_backend", 2);
        let got: Vec<String> = ["a", "b", "a", "c", "b", "d"]
            .iter()
            .map(|v| budget.admit(v.to_string(), &overflow))
            .collect();
        assert_eq!(got, ["a", "b", "a", OVERFLOW_LABEL, "b", OVERFLOW_LABEL]);
        let counted = overflow
            .get_or_create(&OverflowLabels {
                label: "inbound_backend",
            })
            .get();
        assert_eq!(counted, 2);
    }

    fn labels(route: &str) -> RouteLabels {
        RouteLabels {
            direction: "outbound",
            service: "ns/web:80".into(),
            route: route.into(),
            backend: "ns/web-v1:80".into(),
        }
    }

    #[test]
    fn cached_series_count_into_the_families() {
        let m = Metrics::new();
        let cache = SeriesCache::<String>::default();
        for (route, code) in [("a", 200), ("a", 200), ("a", 503), ("b", 200)] {
            let s = cache.get_or_insert(
                |k| k == route,
                || (route.to_string(), RequestSeries::new(&m, labels(route))),
            );
            s.record(&m, code, 0.001);
        }
        let text = m.encode();
        let line = |route: &str, code: u16| {
            format!(
                "strait_requests_total{{direction=\"outbound\",service=\"ns/web:80\",route=\"{route}\",backend=\"ns/web-v1:80\",code=\"{code}\"}}"
            )
        };
        assert!(text.contains(&format!("{} 2", line("a", 200))), "{text}");
        assert!(text.contains(&format!("{} 1", line("a", 503))), "{text}");
        assert!(text.contains(&format!("{} 1", line("b", 200))), "{text}");
        assert!(text.contains("strait_request_duration_seconds_count{direction=\"outbound\",service=\"ns/web:80\",route=\"a\",backend=\"ns/web-v1:80\"} 3"), "{text}");
    }

    #[test]
    fn past_its_bounds_a_series_still_counts() {
        let m = Metrics::new();
        let cache = SeriesCache::<usize>::default();
        let s = cache.get_or_insert(|_| false, || (0, RequestSeries::new(&m, labels("r"))));
        for code in 100..(100 + CODES_CACHED as u16 + 4) {
            s.record(&m, code, 0.0);
            s.record(&m, code, 0.0);
        }
        let text = m.encode();
        let rare = 100 + CODES_CACHED as u16 + 3;
        assert!(text.contains(&format!("code=\"{rare}\"}} 2")), "{text}");
        for i in 0..SERIES_CACHED + 3 {
            cache.get_or_insert(
                |k| *k == i + 1,
                || (i + 1, RequestSeries::new(&m, labels("r"))),
            );
        }
        assert_eq!(
            cache.entries.read().map(|e| e.len()).unwrap_or(0),
            SERIES_CACHED
        );
    }
}
