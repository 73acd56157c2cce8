//! The config stream server (`ConfigDiscovery`, default port 8086).
//!
//! A proxy's stream: it says Hello (checked against the Pod it names, see
//! [`super::identity`]), gets the published set its namespace sees (see
//! [`super::scope`]), then that namespace's delta of every version. Versions
//! are broadcast once to all streams and narrowed once per namespace (see
//! [`super::views`]); a stream that falls behind (its queue overflowed) is
//! sent the full set again instead of a gap. Each ACK/NACK is recorded per
//! proxy, which is what `strait proxy-status` shows. Changes from the source
//! are coalesced for a few milliseconds so a burst becomes one version. Each
//! version is sent in parts of at most [`PART_BYTES`] of objects, encoded
//! from one shared copy, so a stream never holds a large message (see
//! [`to_parts`]).

use super::identity::{Pods, verify};
use super::store::{Delta, Key, Store};
use super::views::{FullSets, Version};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use strait_api::wire::config_discovery_server::ConfigDiscovery;
use strait_api::wire::{
    ConfigUpdate, ProxyInfo, ProxyMessage, ProxyStatusRequest, ProxyStatusResponse, Resource,
    ResourceKey, proxy_message,
};
use tokio::sync::{Notify, Semaphore, broadcast, mpsc};
use tonic::{Request, Response, Status, Streaming};

/// How long changes are gathered before publishing.
pub const COALESCE: Duration = Duration::from_millis(5);
/// Full sets sent at the same time. When 1,000 proxies connect at once
/// (a controller restart), each full set (~2 MiB with 10,000 endpoints)
/// would otherwise sit in its stream's HTTP/2 send buffer at the same time:
/// a transient gigabyte-scale peak that the allocator keeps long after. The
/// rest wait their turn; sending is CPU-bound anyway, so the last proxy is
/// served about as soon (docs/benchmarks.md). Deltas are never held back.
const FULL_SYNCS: usize = 32;
/// Parts queued per stream ahead of its HTTP/2 send buffer.
const STREAM_QUEUE: usize = 4;
/// A proxy must say Hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the publisher and every stream.
pub struct Shared {
    /// The store; the source writes into it and calls [`Shared::changed`].
    pub store: Mutex<Store>,
    /// The Pods the source has seen (never sent to proxies; identity only).
    pub pods: RwLock<Pods>,
    updates: broadcast::Sender<Arc<Version>>,
    /// The full sets of the published version, one per namespace.
    full_sets: Mutex<FullSets>,
    /// Sources still loading their initial lists: nothing is published
    /// before they are done, so no proxy gets a half-loaded first version.
    pending_sources: std::sync::atomic::AtomicUsize,
    proxies: Mutex<BTreeMap<u64, ProxyInfo>>,
    next_id: AtomicU64,
    /// Bounds the full sets being sent at once (see [`FULL_SYNCS`]).
    syncs: Semaphore,
    changed: Notify,
    replica: String,
    rejections_logged: Mutex<BTreeMap<Key, super::store::Rejection>>,
}

/// Largest JSON payload in one part of a version (an object larger than
/// this goes alone). tonic keeps a stream's encode buffer at the size of the
/// largest message it encoded, for the stream's life, so bounding the parts
/// (and yielding each message at once, `strait_api::codec`) bounds the
/// controller's memory per proxy: one 1.8 MiB full state per stream cost
/// ~2 GB at 1,000 proxies before parts existed, 32 KiB parts gathered into
/// 32 KiB writes ~170 KB per proxy (docs/benchmarks.md).
pub const PART_BYTES: usize = 16 * 1024;

/// One version as the parts that go on the wire (pure). Every part carries
/// the version and `full`; all but the last have `more`.
pub fn to_parts(d: &Delta, full: bool) -> Vec<ConfigUpdate> {
    let key = |k: &Key| ResourceKey {
        kind: k.0.clone(),
        namespace: k.1.clone(),
        name: k.2.clone(),
    };
    let empty = || ConfigUpdate {
        version: d.version,
        full,
        ..ConfigUpdate::default()
    };
    let mut parts = vec![empty()];
    let mut size = 0;
    for (k, json) in &d.upserts {
        if size > 0 && size + json.len() > PART_BYTES {
            parts.push(empty());
            size = 0;
        }
        size += json.len();
        if let Some(p) = parts.last_mut() {
            p.upserts.push(Resource {
                key: Some(key(k)),
                json: json.clone(),
            });
        }
    }
    if let Some(p) = parts.last_mut() {
        p.removals = d.removals.iter().map(key).collect();
    }
    let n = parts.len();
    for (i, p) in parts.iter_mut().enumerate() {
        p.more = i + 1 < n;
    }
    parts
}

/// The parts of one version, shared by every stream that sends them.
pub type Parts = Arc<Vec<ConfigUpdate>>;

impl Shared {
    /// Empty state for replica `replica`.
    pub fn new(replica: &str) -> Arc<Self> {
        Arc::new(Self {
            store: Mutex::new(Store::default()),
            pods: RwLock::new(Pods::default()),
            updates: broadcast::channel(64).0,
            full_sets: Mutex::new(FullSets::default()),
            pending_sources: std::sync::atomic::AtomicUsize::new(0),
            proxies: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            syncs: Semaphore::new(FULL_SYNCS),
            changed: Notify::new(),
            replica: replica.to_string(),
            rejections_logged: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether every source has its initial list in (the controller is
    /// ready to serve full sets).
    pub fn synced(&self) -> bool {
        self.pending_sources.load(Ordering::Acquire) == 0
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
        if self.pending_sources.load(Ordering::Acquire) > 0 {
            return None;
        }
        let mut store = self.store.lock().ok()?;
        let version = super::views::publish(&mut store);
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
        let version = version?;
        let delta = version.delta();
        tracing::info!(
            version = delta.version,
            upserts = delta.upserts.len(),
            removals = delta.removals.len(),
            "config published"
        );
        let number = version.number();
        // No receivers is fine: nobody is connected yet.
        let _ = self.updates.send(version);
        Some(number)
    }

    /// The published set a proxy in `namespace` sees, as parts, built once
    /// per version and namespace.
    fn full(&self, namespace: &str) -> Parts {
        let Ok(store) = self.store.lock() else {
            return Arc::new(Vec::new());
        };
        match self.full_sets.lock() {
            Ok(mut sets) => sets.get(&store, namespace),
            Err(_) => Arc::new(to_parts(&store.full_for(namespace), true)),
        }
    }

    /// Declares `n` more sources that must finish their initial load before
    /// anything is published.
    pub fn expect_sources(&self, n: usize) {
        self.pending_sources.fetch_add(n, Ordering::AcqRel);
    }

    /// A source finished its initial load.
    pub fn source_synced(&self) {
        if self.pending_sources.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.changed();
        }
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
        let verified = {
            let pods = shared
                .pods
                .read()
                .map_err(|_| Status::internal("pod index unavailable"))?;
            verify(&pods, &hello.namespace, &hello.pod, &hello.service_account)
        };
        let verified = verified.map_err(|e| {
            tracing::warn!(pod = %hello.pod, namespace = %hello.namespace, %peer, "proxy refused: {e}");
            Status::permission_denied(e.to_string())
        })?;
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
                    verified,
                    ..ProxyInfo::default()
                },
            );
        }
        tracing::info!(pod = %hello.pod, namespace = %hello.namespace, %peer, verified, "proxy connected");
        // Subscribe before taking the full set, so nothing falls in between.
        let mut updates = shared.updates.subscribe();
        let (tx, rx) = mpsc::channel::<Result<ConfigUpdate, Status>>(STREAM_QUEUE);
        let sender = {
            let shared = shared.clone();
            let namespace = hello.namespace.clone();
            async move {
                let mut parts = shared.full(&namespace);
                loop {
                    let version = parts.first().map(|p| p.version).unwrap_or(0);
                    let turn = match parts.first().is_some_and(|p| p.full) {
                        true => shared.syncs.acquire().await.ok(),
                        false => None,
                    };
                    for part in parts.iter() {
                        if tx.send(Ok(part.clone())).await.is_err() {
                            return;
                        }
                    }
                    // The next stream's turn (held across the wait below, it
                    // would block everyone else).
                    drop(turn);
                    shared.with_proxy(id, |p| p.sent_version = version);
                    // A namespace's delta applies only on top of the version
                    // before it; anything else (a gap, a lag) restarts from
                    // the full set.
                    parts = loop {
                        // A reader that has gone (its response stream
                        // dropped) ends the stream now, not at the next
                        // version.
                        let next = tokio::select! {
                            next = updates.recv() => next,
                            _ = tx.closed() => return,
                        };
                        match next {
                            Ok(v) if v.number() <= version => continue,
                            Ok(v) if v.number() == version + 1 => break v.parts_for(&namespace),
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                                break shared.full(&namespace);
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    };
                }
            }
        };
        let receiver = {
            let shared = shared.clone();
            let pod = hello.pod.clone();
            // Returns true when the proxy closed its side cleanly (a
            // one-shot reader such as `strait explain` sends Hello and
            // half-closes): the stream goes on until the reader has the
            // whole set and drops it. An error (a reset) ends it at once.
            async move {
                loop {
                    let msg = match inbound.message().await {
                        Ok(Some(msg)) => msg,
                        Ok(None) => return true,
                        Err(_) => return false,
                    };
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
            tokio::pin!(sender);
            tokio::select! {
                _ = &mut sender => {}
                half_closed = receiver => {
                    if half_closed {
                        sender.await;
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(sizes: &[usize], removals: usize) -> Delta {
        Delta {
            version: 7,
            upserts: sizes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        ("Service".into(), "ns".into(), format!("s{i}")),
                        "x".repeat(*n).into(),
                    )
                })
                .collect(),
            removals: (0..removals)
                .map(|i| ("Service".into(), "ns".into(), format!("gone{i}")))
                .collect(),
        }
    }

    #[test]
    fn parts_are_bounded_ordered_and_flagged() {
        // Empty version: one part, no `more`.
        let p = to_parts(&delta(&[], 0), true);
        assert_eq!(p.len(), 1);
        assert!(p[0].full && !p[0].more && p[0].version == 7);
        // 100 objects of 1 KiB: parts of at most PART_BYTES, each full.
        let p = to_parts(&delta(&[1024; 100], 3), true);
        let per_part = PART_BYTES / 1024;
        assert_eq!(p.len(), 100_usize.div_ceil(per_part));
        assert!(
            p.iter()
                .all(|x| x.upserts.iter().map(|u| u.json.len()).sum::<usize>() <= PART_BYTES)
        );
        assert_eq!(p.iter().map(|x| x.upserts.len()).sum::<usize>(), 100);
        assert!(p.iter().rev().skip(1).all(|x| x.upserts.len() == per_part));
        assert_eq!(p.iter().filter(|x| x.more).count(), p.len() - 1);
        let last = &p[p.len() - 1];
        assert!(
            !last.more && last.removals.len() == 3,
            "removals travel with the last part"
        );
        assert!(p.iter().all(|x| x.full && x.version == 7));
        // One object larger than a part still goes, alone.
        let p = to_parts(&delta(&[10, PART_BYTES * 2, 10], 0), false);
        assert_eq!(
            p.iter().map(|x| x.upserts.len()).collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }
}
