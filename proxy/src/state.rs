//! The applied config: an immutable value swapped whole.
//!
//! Each update builds a new [`Applied`] (snapshot + a balancer per backend)
//! and swaps it in with `ArcSwap`. A request loads the current value once and
//! keeps that `Arc` to its end, so in-flight requests finish on the config
//! they started with while new ones see the new one; nothing is locked on
//! the request path. Endpoint statistics carry over between versions.

use crate::balance::{Balancer, EndpointStats};
use crate::conn::Direction;
use crate::http::forward::{Forwarder, Forwarders};
use crate::metrics::{Metrics, SeriesCache};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::HashMap;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use strait_api::Snapshot;
use strait_api::identity::SpiffeId;
use strait_api::model::{Endpoint, ServicePort, ServicePortKey, TlsMode};

/// One applied config version.
pub struct Applied {
    /// Increments with every applied update (0 = nothing applied yet).
    pub version: u64,
    /// Where it came from, e.g. `local:/etc/strait`.
    pub source: String,
    /// When it was applied.
    pub applied_at: SystemTime,
    /// The snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Runtime state per backend.
    pub backends: HashMap<ServicePortKey, Arc<Backend>>,
    /// Endpoint addresses a `Strict` DestinationPolicy covers: the inbound
    /// side refuses plaintext to them.
    pub strict: HashSet<SocketAddr>,
    /// Meshed endpoints by address, with the identity to demand: a
    /// connection straight to a pod's address (a headless Service, a
    /// StatefulSet member) is mesh TLS too.
    pub meshed: HashMap<SocketAddr, Arc<SpiffeId>>,
    /// Explicit-mode authorities already resolved to a Service of this
    /// config (`web`, `web.shop:8080`, …), so a request's Host is looked up
    /// rather than parsed into owned names every time.
    /// Keyed by the authority; the value keeps the namespace it was
    /// resolved against (a proxy has one, but the answer depends on it).
    hosts: RwLock<HashMap<String, (String, ServicePortKey)>>,
}

/// Why an explicit-mode authority names no Service.
#[derive(Debug)]
pub enum HostError {
    /// Not a Service name at all.
    Invalid,
    /// A well-formed Service name this config does not have.
    Unknown(ServicePortKey),
}

/// Distinct authorities remembered per config version (a client sending
/// random Host headers cannot grow it: only ones naming a Service count).
const HOSTS_CACHED: usize = 4096;

/// A backend at run time: its balancer (endpoints, breaker, limits, retry
/// budget) and the pooled client its policy's timeouts call for.
pub struct Backend {
    /// Its key, as a metric label.
    pub label: String,
    pub balancer: Balancer,
    /// Pooled client.
    pub forwarder: Forwarder,
    /// Request metrics by (service, route) that reach this backend.
    pub series: SeriesCache<(ServicePortKey, String)>,
}

/// What `/config` shows.
#[derive(Serialize)]
struct ConfigView<'a> {
    version: u64,
    source: &'a str,
    applied_at_unix: u64,
    endpoints: usize,
    /// Where spans go (absent: no span export).
    #[serde(skip_serializing_if = "Option::is_none")]
    tracing: Option<&'a crate::spans::Settings>,
    config: &'a Snapshot,
}

impl Applied {
    /// An empty config (nothing applied yet, or for tests).
    pub fn new(version: u64, source: &str, snapshot: Snapshot) -> Self {
        Self {
            version,
            source: source.to_string(),
            applied_at: SystemTime::now(),
            snapshot: Arc::new(snapshot),
            backends: HashMap::new(),
            strict: HashSet::new(),
            meshed: HashMap::new(),
            hosts: RwLock::new(HashMap::new()),
        }
    }

    /// The Service an explicit-mode request's authority names (`svc`,
    /// `svc.ns`, `svc.ns.svc.cluster.local`, optional `:port`), relative to
    /// `namespace`.
    pub fn service_by_host(
        &self,
        authority: &str,
        namespace: &str,
    ) -> Result<&ServicePort, HostError> {
        if let Ok(hosts) = self.hosts.read()
            && let Some(service) = hosts
                .get(authority)
                .filter(|(ns, _)| ns == namespace)
                .and_then(|(_, k)| self.snapshot.service(k))
        {
            return Ok(service);
        }
        let key = strait_api::authority::parse(authority, namespace).ok_or(HostError::Invalid)?;
        let Some(service) = self.snapshot.service(&key) else {
            return Err(HostError::Unknown(key));
        };
        if let Ok(mut hosts) = self.hosts.write()
            && hosts.len() < HOSTS_CACHED
        {
            hosts.insert(authority.to_string(), (namespace.to_string(), key));
        }
        Ok(service)
    }

    /// The `/config` JSON, with the span settings in effect.
    pub fn to_json(&self, tracing: Option<&crate::spans::Settings>) -> String {
        let view = ConfigView {
            version: self.version,
            source: &self.source,
            applied_at_unix: self
                .applied_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            endpoints: self.snapshot.endpoint_count(),
            tracing,
            config: &self.snapshot,
        };
        serde_json::to_string_pretty(&view).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// Process-wide proxy state.
pub struct State {
    current: ArcSwap<Applied>,
    ready: AtomicBool,
    draining: AtomicBool,
    pub metrics: Arc<Metrics>,
    /// Pooled clients, shared across config versions.
    pub forwarders: Forwarders,
    /// Inbound request metrics by app address.
    pub inbound_series: SeriesCache<SocketAddr>,
    /// The mesh's trust domain (endpoint identities are named in it).
    pub trust_domain: String,
    /// This proxy's own pod, `namespace/name`, when it runs beside one.
    pub own_pod: Option<String>,
}

impl State {
    /// Empty state: nothing applied, not ready.
    pub fn new(
        metrics: Arc<Metrics>,
        forwarders: Forwarders,
        trust_domain: &str,
        own_pod: Option<String>,
    ) -> Self {
        Self {
            current: ArcSwap::from_pointee(Applied::new(0, "none", Snapshot::default())),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            metrics,
            forwarders,
            inbound_series: SeriesCache::default(),
            trust_domain: trust_domain.to_string(),
            own_pod,
        }
    }

    /// The current config.
    pub fn load(&self) -> Arc<Applied> {
        self.current.load_full()
    }

    /// Applies a new snapshot as the next local version; returns it.
    pub fn apply(&self, snapshot: Snapshot, source: &str) -> u64 {
        let version = self.current.load().version + 1;
        self.apply_at(snapshot, source, version)
    }

    /// Applies a new snapshot with the version its source gave it.
    pub fn apply_at(&self, snapshot: Snapshot, source: &str, version: u64) -> u64 {
        let prev = self.current.load();
        // An endpoint keeps its statistics while its address and identity
        // stay; a new Pod on a reused address starts afresh.
        type Peer = (SocketAddr, Option<Arc<SpiffeId>>);
        let known: HashMap<Peer, Arc<EndpointStats>> = prev
            .backends
            .values()
            .flat_map(|b| b.balancer.endpoints().iter())
            .map(|e| ((e.addr, e.identity.clone()), e.clone()))
            .collect();
        let backends: HashMap<ServicePortKey, Arc<Backend>> = snapshot
            .backends
            .iter()
            .map(|(key, backend)| {
                let policy = &backend.policy;
                // Keep the retry budget's window when its settings did not change.
                let budget = prev
                    .snapshot
                    .backends
                    .get(key)
                    .filter(|old| old.policy.retry_budget == policy.retry_budget)
                    .and_then(|_| prev.backends.get(key))
                    .map(|b| b.balancer.budget.clone());
                let mesh_tls = policy.tls_mode != TlsMode::Disabled;
                let stats = |e: &Endpoint| {
                    // This pod's own endpoint (a Service it calls that it
                    // also serves) is its app, reached directly: the
                    // traffic never leaves the pod, and the outbound
                    // redirect does not send the proxy's own connections
                    // back through its inbound side.
                    let own = e.pod.is_some() && e.pod == self.own_pod;
                    let identity = e
                        .identity
                        .as_ref()
                        .filter(|_| mesh_tls && !own)
                        .map(|sa| Arc::new(sa.spiffe(&self.trust_domain)));
                    let peer = (e.addr, identity);
                    known.get(&peer).cloned().unwrap_or_else(|| {
                        let m = &self.metrics;
                        let plaintext = m.mesh_requests(Direction::Outbound, None);
                        let tls = m.mesh_requests(Direction::Outbound, peer.1.as_deref());
                        Arc::new(EndpointStats::new(peer.0, peer.1).counting(plaintext, tls))
                    })
                };
                let balancer = Balancer::new(policy, &backend.endpoints, &stats, budget);
                let label = key.to_string();
                self.metrics.endpoint_states(
                    &label,
                    balancer.endpoints().len(),
                    balancer.ejected(),
                );
                self.metrics
                    .retry_budget(&label, balancer.budget.remaining());
                let forwarder = self
                    .forwarders
                    .get(policy.connect_timeout, policy.idle_timeout);
                (
                    key.clone(),
                    Arc::new(Backend {
                        label,
                        balancer,
                        forwarder,
                        series: SeriesCache::default(),
                    }),
                )
            })
            .collect();
        self.metrics.config_applied(snapshot.endpoint_count());
        let strict = strict_endpoints(&snapshot);
        let meshed = meshed_addresses(
            backends
                .values()
                .flat_map(|b| b.balancer.endpoints().iter())
                .filter_map(|e| Some((e.addr, e.identity.clone()?))),
        );
        self.current.store(Arc::new(Applied {
            backends,
            strict,
            meshed,
            ..Applied::new(version, source, snapshot)
        }));
        self.ready.store(true, Ordering::Release);
        version
    }

    /// Ready: a config is applied and the proxy is not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// Marks the proxy as draining (no longer ready).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

/// Meshed endpoint addresses and their identities. An address that two
/// Services' slices give different identities is left out (reached in
/// plaintext by address): which to demand would be a guess. Pure.
pub fn meshed_addresses(
    endpoints: impl Iterator<Item = (SocketAddr, Arc<SpiffeId>)>,
) -> HashMap<SocketAddr, Arc<SpiffeId>> {
    let mut out: HashMap<SocketAddr, Option<Arc<SpiffeId>>> = HashMap::new();
    for (addr, id) in endpoints {
        out.entry(addr)
            .and_modify(|seen| {
                if seen.as_ref().is_some_and(|s| *s != id) {
                    *seen = None;
                }
            })
            .or_insert(Some(id));
    }
    out.into_iter()
        .filter_map(|(addr, id)| Some((addr, id?)))
        .collect()
}

/// The endpoint addresses a `Strict` policy covers, ready or not (a pod
/// failing its readiness probe must not start accepting plaintext). Pure.
pub fn strict_endpoints(snapshot: &Snapshot) -> HashSet<SocketAddr> {
    snapshot
        .backends
        .values()
        .filter(|b| b.policy.tls_mode == TlsMode::Strict)
        .flat_map(|b| {
            b.endpoints
                .iter()
                .map(|e| e.addr)
                .chain(b.not_ready.iter().copied())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied() -> Applied {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}, {port: 8080}]}\n";
        let (objects, errors) = strait_api::manifest::parse_file("t.yaml", yaml);
        assert!(errors.is_empty(), "{errors:?}");
        let t = strait_api::translate::translate(&objects);
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        Applied::new(1, "test", t.snapshot)
    }

    #[test]
    fn explicit_hosts_resolve_the_same_cached_or_not() {
        let a = applied();
        let key = |s: Result<&ServicePort, HostError>| {
            s.map(|s| s.key.to_string()).map_err(|e| format!("{e:?}"))
        };
        for _ in 0..2 {
            // The second round answers from the cache.
            for (host, want) in [
                ("web", Ok("shop/web:80")),
                ("web.shop", Ok("shop/web:80")),
                ("web.shop.svc.cluster.local:8080", Ok("shop/web:8080")),
                ("WEB:80", Ok("shop/web:80")),
            ] {
                assert_eq!(
                    key(a.service_by_host(host, "shop")),
                    want.map(str::to_string),
                    "{host}"
                );
            }
            assert!(matches!(
                a.service_by_host("web", "other"),
                Err(HostError::Unknown(_))
            ));
            assert!(matches!(
                a.service_by_host("web:81", "shop"),
                Err(HostError::Unknown(_))
            ));
            assert!(matches!(
                a.service_by_host("10.0.0.1", "shop"),
                Err(HostError::Invalid)
            ));
            assert!(matches!(
                a.service_by_host("", "shop"),
                Err(HostError::Invalid)
            ));
        }
        // Only authorities that named a Service were remembered.
        assert_eq!(a.hosts.read().map(|h| h.len()).unwrap_or(0), 4);
    }

    /// Strict covers a Service's endpoints whether they are ready or not,
    /// and nothing of a Permissive one.
    #[test]
    fn strict_covers_ready_and_unready_endpoints() {
        let yaml = |mode: &str| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nports: [{{port: 8080}}]\nendpoints: [{{addresses: [10.0.0.1]}}, {{addresses: [10.0.0.2], conditions: {{ready: false}}}}]\n---\napiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {{name: web, namespace: shop}}\nspec: {{targetRef: {{name: web}}, tls: {{mode: {mode}}}}}\n"
            )
        };
        let strict = |mode: &str| {
            let (objects, errors) = strait_api::manifest::parse_file("t.yaml", &yaml(mode));
            assert!(errors.is_empty(), "{errors:?}");
            let mut got: Vec<String> =
                strict_endpoints(&strait_api::translate::translate(&objects).snapshot)
                    .iter()
                    .map(|a| a.to_string())
                    .collect();
            got.sort();
            got
        };
        assert_eq!(strict("Strict"), ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert!(strict("Permissive").is_empty());
    }

    #[test]
    fn an_address_with_two_identities_is_not_guessed() {
        let id = |sa: &str| Arc::new(SpiffeId::new("cluster.local", "shop", sa));
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let m = meshed_addresses(
            [
                (a, id("web")),
                (a, id("web")),
                (b, id("web")),
                (b, id("db")),
            ]
            .into_iter(),
        );
        assert_eq!(m.get(&a), Some(&id("web")));
        assert_eq!(m.get(&b), None);
    }

    /// A Service whose endpoint is this very pod: reached directly, not
    /// over mesh TLS (the proxy's own connection would otherwise meet the
    /// app, which speaks no TLS); every other meshed endpoint keeps its
    /// identity.
    #[test]
    fn this_pods_own_endpoint_is_reached_directly() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{port: 8080}]\nendpoints: [{addresses: [10.0.0.1], targetRef: {kind: Pod, name: web-0}}, {addresses: [10.0.0.2], targetRef: {kind: Pod, name: web-1}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: shop, annotations: {strait.dev/proxy-version: \"0.1.0\"}}\nspec: {containers: [{name: app}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, annotations: {strait.dev/proxy-version: \"0.1.0\"}}\nspec: {containers: [{name: app}]}\n";
        let (objects, errors) = strait_api::manifest::parse_file("t.yaml", yaml);
        assert!(errors.is_empty(), "{errors:?}");
        let snapshot = strait_api::translate::translate(&objects).snapshot;
        let identities = |own: Option<&str>| {
            let state = State::new(
                Arc::new(Metrics::new()),
                Forwarders::new(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(1),
                    Arc::default(),
                ),
                "cluster.local",
                own.map(str::to_string),
            );
            state.apply(snapshot.clone(), "test");
            let applied = state.load();
            let backend = applied
                .backends
                .get(&ServicePortKey::new("shop", "web", 80))
                .expect("backend");
            let mut got: Vec<(String, bool)> = backend
                .balancer
                .endpoints()
                .iter()
                .map(|e| (e.addr.to_string(), e.identity.is_some()))
                .collect();
            got.sort();
            got
        };
        assert_eq!(
            identities(None),
            [
                ("10.0.0.1:8080".into(), true),
                ("10.0.0.2:8080".into(), true)
            ]
        );
        assert_eq!(
            identities(Some("shop/web-0")),
            [
                ("10.0.0.1:8080".into(), false),
                ("10.0.0.2:8080".into(), true)
            ]
        );
    }
}
