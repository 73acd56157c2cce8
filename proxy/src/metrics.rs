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

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
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
        Self {
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
        out
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
