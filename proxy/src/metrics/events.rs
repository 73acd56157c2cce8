//! One method per thing the proxy counts. Call sites say what happened
//! (`metrics.retried(…, RetryOutcome::Budget)`); the label sets and which
//! families move stay here.

use super::Metrics;
use super::labels::{
    BackendLabels, BytesLabels, DirectionLabels, EndpointStateLabels, FaultLabels, MirrorLabels,
    ReloadLabels, RetryLabels, ShedLabels, SpanDropLabels,
};
use super::labels::{FaultKind, MirrorOutcome, RetryOutcome, SpanDrop};
use super::labels::{InboundRefusedLabels, MeshLabels};
use crate::balance::Shed;
use crate::conn::Direction;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use strait_api::identity::SpiffeId;

/// An open client connection, counted in `strait_tcp_connections_open`
/// while this guard lives: however the connection ends (closed, failed,
/// its task cancelled), dropping the guard takes it off the gauge.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The two byte counters of a connection (`strait_tcp_bytes_total`).
pub struct ByteCounters {
    /// Bytes received from the connecting client.
    pub from_client: Counter,
    /// Bytes sent back to it.
    pub to_client: Counter,
}

impl Metrics {
    /// A client connection was accepted; it counts as open until the
    /// returned guard drops.
    pub fn open_connection(&self, direction: Direction) -> OpenConnection {
        let gauge = (*self
            .connections_open
            .get_or_create(&DirectionLabels { direction }))
        .clone();
        gauge.inc();
        OpenConnection(gauge)
    }

    /// The byte counters of a connection on `direction`'s listener.
    pub fn byte_counters(&self, direction: Direction) -> ByteCounters {
        let get = |peer| {
            (*self
                .tcp_bytes
                .get_or_create(&BytesLabels { direction, peer }))
            .clone()
        };
        ByteCounters {
            from_client: get("src"),
            to_client: get("dst"),
        }
    }

    /// A config update was applied (`ok`) or refused.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// The identity service issued a certificate that expires at
    /// `not_after` (Unix seconds).
    pub fn certified(&self, not_after: i64) {
        self.identity_expiry.set(not_after);
        self.identity_renewals
            .get_or_create(&ReloadLabels { result: "success" })
            .inc();
    }

    /// A certificate request failed (the current certificate stays).
    pub fn certification_failed(&self) {
        self.identity_renewals
            .get_or_create(&ReloadLabels { result: "failure" })
            .inc();
    }

    /// A config was applied that knows `endpoints` endpoints.
    pub fn config_applied(&self, endpoints: usize) {
        self.config_endpoints.set(endpoints as i64);
    }

    /// A backend has `total` endpoints of which `ejected` are ejected.
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

    /// The circuit breaker ejected one of `backend`'s endpoints.
    pub fn ejected(&self, backend: &str, total: usize, ejected: usize) {
        self.ejections
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .inc();
        self.endpoint_states(backend, total, ejected);
    }

    /// A request whose first attempt failed ended as `outcome`.
    pub fn retried(&self, service: &str, route: &str, backend: &str, outcome: RetryOutcome) {
        self.retries
            .get_or_create(&RetryLabels {
                service: service.to_string(),
                route: route.to_string(),
                backend: backend.to_string(),
                outcome,
            })
            .inc();
    }

    /// A retry was sent to `backend`.
    pub fn retry_sent(&self, backend: &str) {
        self.retry_attempts
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .inc();
    }

    /// `backend`'s retry budget now allows `remaining` retries.
    pub fn retry_budget(&self, backend: &str, remaining: f64) {
        self.retry_budget_remaining
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .set(remaining);
    }

    /// A request to `backend` was answered 503 by a limit.
    pub fn shed(&self, backend: &str, reason: Shed) {
        self.shed
            .get_or_create(&ShedLabels {
                backend: backend.to_string(),
                reason,
            })
            .inc();
    }

    /// A route injected a fault.
    pub fn fault(&self, route: &str, kind: FaultKind) {
        self.faults
            .get_or_create(&FaultLabels {
                route: route.to_string(),
                kind,
            })
            .inc();
    }

    /// A copy of a request to a mirror backend was sent, dropped or failed.
    pub fn mirrored(&self, route: &str, kind: MirrorOutcome) {
        self.mirror_counter(route, kind).inc();
    }

    /// The counter behind [`Metrics::mirrored`], for a spawned copy that
    /// reports its failure after the request has moved on.
    pub fn mirror_counter(&self, route: &str, kind: MirrorOutcome) -> Counter {
        (*self.mirrors.get_or_create(&MirrorLabels {
            route: route.to_string(),
            kind,
        }))
        .clone()
    }

    /// The counter of requests on `direction` with mesh TLS to or from
    /// `peer` (its verified identity), or in plaintext (`None`). Fetched
    /// once per connection or endpoint, incremented per request.
    pub fn mesh_requests(&self, direction: Direction, peer: Option<&SpiffeId>) -> Counter {
        (*self
            .mesh_requests
            .get_or_create(&self.mesh_labels(direction, peer)))
        .clone()
    }

    fn mesh_labels(&self, direction: Direction, peer: Option<&SpiffeId>) -> MeshLabels {
        MeshLabels {
            direction,
            tls: if peer.is_some() { "true" } else { "false" },
            peer_identity: peer
                .map(|p| {
                    self.peer_identities
                        .admit(p.to_string(), &self.label_overflow)
                })
                .unwrap_or_default(),
        }
    }

    /// An inbound connection was accepted: with mesh TLS from `peer`, or
    /// in plaintext.
    pub fn inbound_connection(&self, peer: Option<&SpiffeId>, tls: bool) {
        let mut labels = self.mesh_labels(Direction::Inbound, peer);
        labels.tls = if tls { "true" } else { "false" };
        self.mesh_connections.get_or_create(&labels).inc();
    }

    /// An inbound connection was refused: plaintext to a `Strict` port, or
    /// a failed mesh TLS handshake.
    pub fn inbound_refused(&self, reason: &'static str) {
        self.inbound_refused
            .get_or_create(&InboundRefusedLabels { reason })
            .inc();
    }

    /// The `backend` label of an inbound request to the app at `app`: the
    /// address itself while the label's budget lasts, then `overflow`.
    pub fn inbound_backend_label(&self, app: std::net::SocketAddr) -> String {
        self.inbound_backends
            .admit(app.to_string(), &self.label_overflow)
    }

    /// `n` spans reached the trace collector.
    pub fn spans_exported(&self, n: u64) {
        self.spans_exported.inc_by(n);
    }

    /// `n` spans were dropped instead of exported.
    pub fn spans_dropped(&self, why: SpanDrop, n: u64) {
        self.spans_dropped
            .get_or_create(&SpanDropLabels {
                reason: why.label(),
            })
            .inc_by(n);
    }
}
