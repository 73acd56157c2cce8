//! The config stream server (`ConfigDiscovery`, default port 8086).
//!
//! A proxy's stream: it says Hello, gets the full published set, then every
//! delta as it is published. Deltas are broadcast once to all streams; a
//! stream that falls behind (its queue overflowed) is sent the full set
//! again instead of a gap. Each ACK/NACK is recorded per proxy, which is what
//! `strait proxy-status` shows. Changes from the source are coalesced for a
//! few milliseconds so a burst becomes one version.

use super::store::{Delta, Key, Store};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use strait_api::wire::config_discovery_server::ConfigDiscovery;
use strait_api::wire::{
    ConfigUpdate, ProxyInfo, ProxyMessage, ProxyStatusRequest, ProxyStatusResponse, Resource,
    ResourceKey, proxy_message,
};
use tokio::sync::{Notify, broadcast, mpsc};
use tonic::{Request, Response, Status, Streaming};

/// How long changes are gathered before publishing.
pub const COALESCE: Duration = Duration::from_millis(5);
/// A proxy must say Hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the publisher and every stream.
pub struct Shared {
    /// The store; the source writes into it and calls [`Shared::changed`].
    pub store: Mutex<Store>,
    updates: broadcast::Sender<Arc<ConfigUpdate>>,
    proxies: Mutex<BTreeMap<u64, ProxyInfo>>,
    next_id: AtomicU64,
    changed: Notify,
    replica: String,
    rejections_logged: Mutex<BTreeMap<Key, super::store::Rejection>>,
}

/// Converts a delta to the wire message.
pub fn to_wire(d: &Delta, full: bool) -> ConfigUpdate {
    let key = |k: &Key| ResourceKey {
        kind: k.0.clone(),
        namespace: k.1.clone(),
        name: k.2.clone(),
    };
    ConfigUpdate {
        version: d.version,
        full,
        upserts: d
            .upserts
            .iter()
            .map(|(k, json)| Resource {
                key: Some(key(k)),
                json: json.clone(),
            })
            .collect(),
        removals: d.removals.iter().map(key).collect(),
    }
}

impl Shared {
    /// Empty state for replica `replica`.
    pub fn new(replica: &str) -> Arc<Self> {
        Arc::new(Self {
            store: Mutex::new(Store::default()),
            updates: broadcast::channel(64).0,
            proxies: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            changed: Notify::new(),
            replica: replica.to_string(),
            rejections_logged: Mutex::new(BTreeMap::new()),
        })
    }

    /// Tells the publisher the store changed.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Publishes changes until the process ends.
    pub async fn publish_loop(self: Arc<Self>) {
        loop {
            self.changed.notified().await;
            tokio::time::sleep(COALESCE).await;
            self.publish_now();
        }
    }

    /// Publishes what changed, now; returns the new version if any.
    pub fn publish_now(&self) -> Option<u64> {
        let mut store = self.store.lock().ok()?;
        let delta = store.publish();
        if let Ok(mut seen) = self.rejections_logged.lock()
            && *seen != *store.rejections()
        {
            for ((kind, ns, name), r) in store.rejections() {
                if seen.get(&(kind.clone(), ns.clone(), name.clone())) != Some(r) {
                    let kept = if r.previous_in_force {
                        "; its previous version stays in force"
                    } else {
                        ""
                    };
                    tracing::warn!("{kind} {ns}/{name} refused: {}{kept}", r.message);
                }
            }
            *seen = store.rejections().clone();
        }
        drop(store);
        let delta = delta?;
        let version = delta.version;
        tracing::info!(
            version,
            upserts = delta.upserts.len(),
            removals = delta.removals.len(),
            "config published"
        );
        // No receivers is fine: nobody is connected yet.
        let _ = self.updates.send(Arc::new(to_wire(&delta, false)));
        Some(version)
    }

    fn full(&self) -> ConfigUpdate {
        self.store
            .lock()
            .map(|s| to_wire(&s.full(), true))
            .unwrap_or_default()
    }

    fn with_proxy(&self, id: u64, f: impl FnOnce(&mut ProxyInfo)) {
        if let Ok(mut p) = self.proxies.lock()
            && let Some(info) = p.get_mut(&id)
        {
            f(info);
        }
    }

    /// Every connected proxy.
    pub fn status(&self) -> ProxyStatusResponse {
        ProxyStatusResponse {
            proxies: self
                .proxies
                .lock()
                .map(|p| p.values().cloned().collect())
                .unwrap_or_default(),
            latest_version: self.store.lock().map(|s| s.version()).unwrap_or(0),
            replica: self.replica.clone(),
        }
    }
}

/// The tonic service.
pub struct Server(pub Arc<Shared>);

type UpdateStream = Pin<Box<dyn futures_util::Stream<Item = Result<ConfigUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl ConfigDiscovery for Server {
    type StreamStream = UpdateStream;

    async fn stream(
        &self,
        req: Request<Streaming<ProxyMessage>>,
    ) -> Result<Response<UpdateStream>, Status> {
        let peer = req
            .remote_addr()
            .map(|a: SocketAddr| a.to_string())
            .unwrap_or_default();
        let mut inbound = req.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(ProxyMessage {
                kind: Some(proxy_message::Kind::Hello(h)),
            }))) => h,
            Ok(Ok(_)) => return Err(Status::invalid_argument("the first message must be Hello")),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Status::deadline_exceeded("no Hello within 10s")),
        };
        let shared = self.0.clone();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Ok(mut p) = shared.proxies.lock() {
            p.insert(
                id,
                ProxyInfo {
                    namespace: hello.namespace.clone(),
                    pod: hello.pod.clone(),
                    service_account: hello.service_account.clone(),
                    acked_version: hello.running_version,
                    connected_since: since,
                    peer: peer.clone(),
                    ..ProxyInfo::default()
                },
            );
        }
        tracing::info!(pod = %hello.pod, namespace = %hello.namespace, %peer, "proxy connected");
        // Subscribe before taking the full set, so nothing falls in between.
        let mut updates = shared.updates.subscribe();
        let (tx, rx) = mpsc::channel::<Result<ConfigUpdate, Status>>(16);
        let sender = {
            let shared = shared.clone();
            async move {
                let mut sent = shared.full();
                let mut version = sent.version;
                loop {
                    shared.with_proxy(id, |p| p.sent_version = version);
                    if tx.send(Ok(sent)).await.is_err() {
                        return;
                    }
                    sent = loop {
                        match updates.recv().await {
                            Ok(u) if u.version > version => break (*u).clone(),
                            Ok(_) => continue,
                            Err(broadcast::error::RecvError::Lagged(_)) => break shared.full(),
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    };
                    version = sent.version;
                }
            }
        };
        let receiver = {
            let shared = shared.clone();
            let pod = hello.pod.clone();
            async move {
                while let Ok(Some(msg)) = inbound.message().await {
                    match msg.kind {
                        Some(proxy_message::Kind::Ack(a)) => {
                            shared.with_proxy(id, |p| p.acked_version = a.version)
                        }
                        Some(proxy_message::Kind::Nack(n)) => {
                            tracing::warn!(%pod, version = n.version, reason = %n.reason, "proxy refused a config");
                            shared.with_proxy(id, |p| {
                                p.nacked_version = n.version;
                                p.last_nack = n.reason;
                            });
                        }
                        _ => {}
                    }
                }
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = sender => {}
                _ = receiver => {}
            }
            if let Ok(mut p) = shared.proxies.lock() {
                p.remove(&id);
            }
            tracing::info!(pod = %hello.pod, "proxy disconnected");
        });
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn proxy_status(
        &self,
        _req: Request<ProxyStatusRequest>,
    ) -> Result<Response<ProxyStatusResponse>, Status> {
        Ok(Response::new(self.0.status()))
    }
}
