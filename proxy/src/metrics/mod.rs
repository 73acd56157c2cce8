//! The proxy's Prometheus metrics (served on the admin port's `/metrics`).
//!
//! prometheus-client was chosen over the older `prometheus` crate because it
//! is the Prometheus project's own OpenMetrics implementation (used by
//! linkerd2-proxy and ztunnel) and measured faster here both for labelled
//! increments and for exporting many series. Every metric and label is
//! documented in `docs/metrics.md`; keep the two in step.
//!
//! The families are private: code that counts something calls the one
//! method named after the event ([`Metrics::retried`], [`Metrics::shed`],
//! [`Metrics::open_connection`], …), with label values typed in
//! [`labels`]. Per-request series are resolved once ([`series`]).

mod events;
pub mod labels;
pub mod series;
#[cfg(test)]
mod tests;

pub use events::OpenConnection;
pub use labels::{FaultKind, MirrorOutcome, RetryOutcome, RouteLabels, SpanDrop};
use labels::{InboundRefusedLabels, MeshLabels};
pub use series::{
    INBOUND_BACKENDS_MAX, LabelBudget, OVERFLOW_LABEL, RequestSeries, SeriesCache,
    UNKNOWN_SERVICE_LABEL,
};

use labels::{
    BackendLabels, BytesLabels, DirectionLabels, EndpointStateLabels, FaultLabels, MirrorLabels,
    OverflowLabels, ReloadLabels, RequestLabels, RetryLabels, ShedLabels, SpanDropLabels,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Distinct `peer_identity` values (ServiceAccounts talking to or from
/// this proxy) before the rest are recorded as `overflow`.
pub const PEER_IDENTITIES_MAX: usize = 256;

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    /// `strait_metric_label_overflow_total`.
    label_overflow: Family<OverflowLabels, Counter>,
    /// The inbound `backend` label's budget.
    inbound_backends: LabelBudget,
    /// `strait_requests_total`.
    requests: Family<RequestLabels, Counter>,
    /// `strait_request_duration_seconds`.
    request_duration: Family<RouteLabels, Histogram>,
    /// `strait_tcp_connections_open`.
    connections_open: Family<DirectionLabels, Gauge>,
    /// `strait_tcp_bytes_total`.
    tcp_bytes: Family<BytesLabels, Counter>,
    /// `strait_config_reloads_total`.
    config_reloads: Family<ReloadLabels, Counter>,
    /// `strait_config_endpoints`.
    config_endpoints: Gauge,
    /// `strait_retries_total`: requests whose first attempt failed, by what
    /// happened next.
    retries: Family<RetryLabels, Counter>,
    /// `strait_retry_attempts_total`: retries sent.
    retry_attempts: Family<BackendLabels, Counter>,
    /// `strait_retry_budget_remaining`.
    retry_budget_remaining: Family<BackendLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `strait_endpoints`.
    endpoints: Family<EndpointStateLabels, Gauge>,
    /// `strait_ejections_total`.
    ejections: Family<BackendLabels, Counter>,
    /// `strait_shed_requests_total`.
    shed: Family<ShedLabels, Counter>,
    /// `strait_faults_injected_total`.
    faults: Family<FaultLabels, Counter>,
    /// `strait_mesh_requests_total`.
    mesh_requests: Family<MeshLabels, Counter>,
    /// `strait_mesh_connections_total` (inbound, accepted).
    mesh_connections: Family<MeshLabels, Counter>,
    /// `strait_inbound_refused_total`.
    inbound_refused: Family<InboundRefusedLabels, Counter>,
    /// The `peer_identity` label's budget.
    peer_identities: LabelBudget,
    /// `strait_identity_certificate_expiry_seconds`.
    identity_expiry: Gauge,
    /// `strait_identity_renewals_total`.
    identity_renewals: Family<ReloadLabels, Counter>,
    /// `strait_mirrored_requests_total`.
    mirrors: Family<MirrorLabels, Counter>,
    /// `strait_spans_exported_total`.
    spans_exported: Counter,
    /// `strait_spans_dropped_total`.
    spans_dropped: Family<SpanDropLabels, Counter>,
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
        let faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "faults_injected",
            "Faults injected by a route",
            faults.clone(),
        );
        let mirrors = Family::<MirrorLabels, Counter>::default();
        registry.register(
            "mirrored_requests",
            "Requests copied to a mirror backend",
            mirrors.clone(),
        );
        let mesh_requests = Family::<MeshLabels, Counter>::default();
        registry.register(
            "mesh_requests",
            "Requests by whether they crossed mesh TLS, and the other proxy's verified identity",
            mesh_requests.clone(),
        );
        let mesh_connections = Family::<MeshLabels, Counter>::default();
        registry.register(
            "mesh_connections",
            "Inbound connections by whether they were mesh TLS, and the client proxy's verified identity",
            mesh_connections.clone(),
        );
        let inbound_refused = Family::<InboundRefusedLabels, Counter>::default();
        registry.register(
            "inbound_refused",
            "Inbound connections refused (plaintext to a Strict port, a failed mesh TLS handshake, no certificate yet), and plaintext requests answered 403 on a Strict port",
            inbound_refused.clone(),
        );
        let identity_expiry = Gauge::default();
        registry.register(
            "identity_certificate_expiry_seconds",
            "Expiry of the proxy's certificate, Unix seconds (0 before the first)",
            identity_expiry.clone(),
        );
        let identity_renewals = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "identity_renewals",
            "Certificate requests to the identity service, by result",
            identity_renewals.clone(),
        );
        let label_overflow = Family::<OverflowLabels, Counter>::default();
        registry.register(
            "metric_label_overflow",
            "Requests recorded under the label value `overflow` because a label that clients choose ran out of distinct values",
            label_overflow.clone(),
        );
        let spans_exported = Counter::default();
        registry.register(
            "spans_exported",
            "Spans the trace collector accepted",
            spans_exported.clone(),
        );
        let spans_dropped = Family::<SpanDropLabels, Counter>::default();
        registry.register(
            "spans_dropped",
            "Spans dropped instead of exported: the queue was full, or the collector refused them or did not answer",
            spans_dropped.clone(),
        );
        // Both reasons show from the start, at zero, so a dashboard or an
        // alert on a rate has a series before the first drop.
        for why in [SpanDrop::QueueFull, SpanDrop::ExportFailed] {
            drop(spans_dropped.get_or_create(&SpanDropLabels {
                reason: why.label(),
            }));
        }
        Self {
            spans_exported,
            spans_dropped,
            mesh_requests,
            mesh_connections,
            inbound_refused,
            peer_identities: LabelBudget::new("peer_identity", PEER_IDENTITIES_MAX),
            identity_expiry,
            identity_renewals,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
