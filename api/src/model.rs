//! The domain model: everything one proxy needs, validated, as plain data.
//!
//! A [`Snapshot`] is built by [`crate::translate`] and swapped whole into a
//! running proxy. Vocabulary (the same in the docs and the code): a *Service* is what the app
//! asked for, a *Route* picks a *Backend* (another Service port) by weight,
//! and the backend's *Endpoints* are pods. Every field here has already been
//! checked, so the request path never re-validates.

use http::{HeaderName, HeaderValue, Method};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A Service port: `namespace/name:port`. Names Services and Backends alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePortKey {
    /// The Service's namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Service port.
    pub port: u16,
}

impl ServicePortKey {
    /// Builds a key.
    pub fn new(namespace: &str, name: &str, port: u16) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port,
        }
    }
}

impl fmt::Display for ServicePortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

impl Serialize for ServicePortKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Everything a proxy needs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Service ports the proxy can route to, with their route tables.
    pub services: BTreeMap<ServicePortKey, ServicePort>,
    /// Backends (Service ports) with endpoints and policy.
    pub backends: BTreeMap<ServicePortKey, Backend>,
    /// `clusterIP:port` → Service port, for intercepted traffic.
    #[serde(skip)]
    pub by_addr: HashMap<SocketAddr, ServicePortKey>,
}

impl Snapshot {
    /// The Service port an intercepted connection was headed for.
    pub fn service_by_addr(&self, addr: SocketAddr) -> Option<&ServicePort> {
        self.by_addr.get(&addr).and_then(|k| self.services.get(k))
    }

    /// The Service port named by `namespace/name:port`.
    pub fn service(&self, key: &ServicePortKey) -> Option<&ServicePort> {
        self.services.get(key)
    }

    /// A backend by key.
    pub fn backend(&self, key: &ServicePortKey) -> Option<&Backend> {
        self.backends.get(key)
    }

    /// Number of endpoints across all backends (for `/config` and metrics).
    pub fn endpoint_count(&self) -> usize {
        self.backends.values().map(|b| b.endpoints.len()).sum()
    }
}

/// One Service port as a routing target.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePort {
    /// Its key.
    pub key: ServicePortKey,
    /// Skip protocol detection and carry as TCP (appProtocol, annotation).
    pub opaque: bool,
    /// Route rules in order; `None` when no TrafficRoute attaches, so
    /// requests go straight to the Service's own endpoints.
    pub routes: Option<Vec<Route>>,
}

/// One rule of a TrafficRoute, HTTPRoute or GRPCRoute.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// `trafficroute/rule`, the `route` metric label.
    pub name: String,
    /// Any match selects the rule; empty means all requests.
    pub matches: Vec<RouteMatch>,
    /// Weighted backends; at least one with weight > 0.
    pub backends: Vec<WeightedBackend>,
    /// Sticky split key.
    pub affinity: Option<Affinity>,
    /// Whole-request timeout.
    #[serde(serialize_with = "ser_opt_duration")]
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Fault injection.
    pub fault: Option<Fault>,
    /// Request header changes.
    pub request_headers: HeaderModifier,
    /// Response header changes.
    pub response_headers: HeaderModifier,
    /// A copy of a share of the rule's requests to another backend.
    pub mirror: Option<Mirror>,
    /// Answer with a redirect instead of forwarding (HTTPRoute).
    pub redirect: Option<crate::rewrite::Redirect>,
    /// Change the path or host before forwarding (HTTPRoute).
    pub rewrite: Option<crate::rewrite::Rewrite>,
    /// The object the rule came from, `kind namespace/name`, so that
    /// `strait explain` and `/config` can say which one.
    pub source: String,
}

/// The route used for a Service with no TrafficRoute (and its metric label).
pub const DEFAULT_ROUTE: &str = "default";

/// All of these must hold.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteMatch {
    /// Path condition.
    pub path: Option<PathMatch>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// Method condition.
    #[serde(serialize_with = "ser_opt_display")]
    pub method: Option<Method>,
    /// Query parameter conditions.
    pub query: Vec<QueryMatch>,
}

/// Path conditions.
#[derive(Debug, Clone, Serialize)]
pub enum PathMatch {
    /// The whole path.
    Exact(String),
    /// Path-element prefix (`/api` matches `/api` and `/api/x`, not `/apix`).
    Prefix(String),
    /// A regular expression over the whole path.
    Regex(Pattern),
}

/// A header condition.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderMatch {
    /// Header name (case-insensitive by construction).
    #[serde(serialize_with = "ser_display_header")]
    pub name: HeaderName,
    /// What its value must be.
    pub value: ValueMatch,
}

/// A query parameter condition.
#[derive(Debug, Clone, Serialize)]
pub struct QueryMatch {
    /// Parameter name (case-sensitive).
    pub name: String,
    /// What its value must be.
    pub value: ValueMatch,
}

/// A value condition.
#[derive(Debug, Clone, Serialize)]
pub enum ValueMatch {
    /// The whole value equals this one.
    Exact(String),
    /// Whole-value regular expression.
    Regex(Pattern),
    /// Present with any value.
    Present,
}

/// A compiled, anchored regular expression that shows as its source.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written by the user.
    pub source: String,
    /// Anchored `^(?:source)$`.
    pub regex: regex::Regex,
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A backend and its weight.
#[derive(Debug, Clone, Serialize)]
pub struct WeightedBackend {
    /// The backend Service port.
    pub backend: ServicePortKey,
    /// Relative weight.
    pub weight: u32,
}

/// Sticky split key.
#[derive(Debug, Clone, Serialize)]
pub enum Affinity {
    /// A request header's value.
    Header(#[serde(serialize_with = "ser_display_header")] HeaderName),
    /// A cookie's value.
    Cookie(String),
}

/// Retries of one rule (honoured by the resilience layer).
#[derive(Debug, Clone, Serialize)]
pub struct RetryPolicy {
    /// Total tries including the first.
    pub attempts: u32,
    /// Per-try timeout.
    #[serde(serialize_with = "ser_opt_duration")]
    pub per_try_timeout: Option<Duration>,
    /// Retry-on classes as given (validated names).
    pub on: Vec<String>,
    /// Status codes for `retriable-codes`.
    pub retriable_codes: Vec<u16>,
    /// Base backoff.
    #[serde(serialize_with = "ser_duration")]
    pub backoff: Duration,
    /// Retry non-idempotent methods too.
    pub non_idempotent: bool,
}

/// Fault injection of one rule.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Hold some requests for a while before forwarding.
    pub delay: Option<FaultDelay>,
    /// Answer some requests with a status instead of forwarding.
    pub abort: Option<FaultAbort>,
}

/// Added delay for a share of requests.
#[derive(Debug, Clone, Serialize)]
pub struct FaultDelay {
    /// Share of requests, 0–100.
    pub percent: u32,
    /// How long.
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
}

/// A synthetic error status for a share of requests.
#[derive(Debug, Clone, Serialize)]
pub struct FaultAbort {
    /// Share of requests, 0–100.
    pub percent: u32,
    /// Status returned.
    pub status: u16,
}

/// Mirroring of one rule.
#[derive(Debug, Clone, Serialize)]
pub struct Mirror {
    /// Mirror backend.
    pub backend: ServicePortKey,
    /// Share of requests, 0–100.
    pub percent: u32,
}

/// Header changes, applied remove → set → add.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeaderModifier {
    /// Headers set, replacing any value.
    #[serde(serialize_with = "ser_header_pairs")]
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers added, keeping any value already there.
    #[serde(serialize_with = "ser_header_pairs")]
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Header names removed.
    #[serde(serialize_with = "ser_header_names")]
    pub remove: Vec<HeaderName>,
}

impl HeaderModifier {
    /// Applies the changes to a header map.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A backend: a Service port with its endpoints and policy.
#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    /// Its key.
    pub key: ServicePortKey,
    /// Ready endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Addresses of endpoints listed but not ready (starting, failing
    /// their probes, terminating): never balanced to, but still covered by
    /// the policy's `tls.mode` on their own proxies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<SocketAddr>,
    /// Policy from the DestinationPolicy (or defaults).
    pub policy: Policy,
}

/// One pod endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    /// Address and target port.
    pub addr: SocketAddr,
    /// `namespace/pod`, when the slice names it.
    pub pod: Option<String>,
    /// The ServiceAccount of a meshed Pod behind it (one whose proxy
    /// serves mesh TLS); `None` for an endpoint without a proxy.
    pub identity: Option<ServiceAccount>,
}

/// A meshed endpoint's workload identity, less the trust domain (which is
/// the mesh's, not the manifest's): `namespace/name` of its ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceAccount {
    /// The Pod's namespace.
    pub namespace: String,
    /// `spec.serviceAccountName`.
    pub name: String,
}

impl ServiceAccount {
    /// The identity in `trust_domain`.
    pub fn spiffe(&self, trust_domain: &str) -> crate::identity::SpiffeId {
        crate::identity::SpiffeId::new(trust_domain, &self.namespace, &self.name)
    }
}

/// How a backend's endpoints are chosen and protected.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// How an endpoint is picked.
    pub load_balancer: LoadBalancer,
    /// Connect timeout (`None`: the proxy's default).
    #[serde(serialize_with = "ser_opt_duration")]
    pub connect_timeout: Option<Duration>,
    /// Idle timeout of pooled connections (`None`: the proxy's default).
    #[serde(serialize_with = "ser_opt_duration")]
    pub idle_timeout: Option<Duration>,
    /// Circuit breaker.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Bounds on connections and requests in flight.
    pub limits: Limits,
    /// Retry budget.
    pub retry_budget: RetryBudget,
    /// mTLS mode.
    pub tls_mode: TlsMode,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            load_balancer: LoadBalancer::PeakEwma,
            connect_timeout: None,
            idle_timeout: None,
            circuit_breaker: None,
            limits: Limits::default(),
            retry_budget: RetryBudget::default(),
            tls_mode: TlsMode::Permissive,
        }
    }
}

/// Balancer choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LoadBalancer {
    /// Power of two choices over peak-EWMA latency.
    PeakEwma,
    /// Round robin.
    RoundRobin,
    /// Power of two choices over requests in flight.
    LeastRequest,
}

/// Circuit breaker settings.
#[derive(Debug, Clone, Serialize)]
pub struct CircuitBreaker {
    /// Consecutive failures that eject.
    pub consecutive_failures: u32,
    /// First ejection.
    #[serde(serialize_with = "ser_duration")]
    pub base_ejection_time: Duration,
    /// Longest ejection.
    #[serde(serialize_with = "ser_duration")]
    pub max_ejection_time: Duration,
    /// Most endpoints ejected, percent.
    pub max_ejected_percent: u32,
    /// Success-rate ejection.
    pub success_rate: Option<SuccessRate>,
}

/// Success-rate ejection.
#[derive(Debug, Clone, Serialize)]
pub struct SuccessRate {
    /// Minimum success rate (0–1).
    pub threshold: f64,
    /// How far back requests and retries are counted.
    #[serde(serialize_with = "ser_duration")]
    pub window: Duration,
    /// Requests needed before judging.
    pub min_requests: u32,
}

/// Load-shedding limits (`None` = unlimited).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    /// Connections per endpoint.
    pub max_connections: Option<u32>,
    /// Requests waiting per backend.
    pub max_pending_requests: Option<u32>,
    /// Requests in flight per backend.
    pub max_requests: Option<u32>,
}

/// Retry budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryBudget {
    /// Retries as a share of requests.
    pub ratio: f64,
    /// Retries always allowed per second.
    pub min_per_second: u32,
    /// Sliding window.
    #[serde(serialize_with = "ser_duration")]
    pub window: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// mTLS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsMode {
    /// mTLS only.
    Strict,
    /// mTLS when the peer is meshed.
    Permissive,
    /// The circuit breaker is off.
    Disabled,
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::duration::format(*d))
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

fn ser_opt_display<S: Serializer, T: fmt::Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn ser_display_header<S: Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(h.as_str())
}

fn ser_header_pairs<S: Serializer>(
    v: &[(HeaderName, HeaderValue)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        v.iter()
            .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes()))),
    )
}

fn ser_header_names<S: Serializer>(v: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(HeaderName::as_str))
}
