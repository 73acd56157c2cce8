//! The state every part of the config server shares: the store that the
//! sources (Kubernetes watchers, a directory) write into, the Pods seen,
//! the connected proxies, and the publisher that turns the store's changes
//! into broadcast versions.
//!
//! Sources call [`Shared::changed`]; [`Shared::publish_loop`] coalesces
//! changes for [`COALESCE`] and publishes one version (see [`super::views`]);
//! the streams in [`super::server`] read versions and full sets from here.

use super::delta::Key;
use super::identity::Pods;
use super::parts::{Parts, to_parts};
use super::store::{Rejection, Store};
use super::views::{self, FullSets, Version};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use strait_api::wire::{ProxyInfo, ProxyStatusResponse};
use tokio::sync::{Notify, Semaphore, broadcast};

/// How long changes are gathered before publishing.
pub const COALESCE: Duration = Duration::from_millis(5);
/// Full sets sent at the same time. When 1,000 proxies connect at once
/// (a controller restart), each full set (~2 MiB with 10,000 endpoints)
/// would otherwise sit in its stream's HTTP/2 send buffer at the same time:
/// a transient gigabyte-scale peak that the allocator keeps long after. The
/// rest wait their turn; sending is CPU-bound anyway, so the last proxy is
/// served about as soon (docs/benchmarks.md). Deltas are never held back.
const FULL_SYNCS: usize = 32;

/// State shared by the publisher and every stream.
pub struct Shared {
    /// The store; the source writes into it and calls [`Shared::changed`].
    pub store: Mutex<Store>,
    /// The Pods the source has seen (never sent to proxies; identity only).
    pub pods: RwLock<Pods>,
    pub(super) updates: broadcast::Sender<Arc<Version>>,
    /// The full sets of the published version, one per namespace.
    full_sets: Mutex<FullSets>,
    /// Sources still loading their initial lists: nothing is published
    /// before they are done, so no proxy gets a half-loaded first version.
    pending_sources: std::sync::atomic::AtomicUsize,
    pub(super) proxies: Mutex<BTreeMap<u64, ProxyInfo>>,
    pub(super) next_id: AtomicU64,
    /// Bounds the full sets being sent at once (see [`FULL_SYNCS`]).
    pub(super) syncs: Semaphore,
    changed: Notify,
    replica: String,
    /// The mesh's trust domain: a proxy's certificate proves its Hello
    /// only in it.
    pub trust_domain: String,
    rejections_logged: Mutex<BTreeMap<Key, Rejection>>,
    /// The controller's counters (`:9990/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Mesh-wide settings (the controller's flags), sent with every full set.
    pub mesh: strait_api::wire::MeshSettings,
}

impl Shared {
    /// Empty state for replica `replica`, telling proxies `mesh`.
    pub fn new(
        replica: &str,
        trust_domain: &str,
        mesh: strait_api::wire::MeshSettings,
    ) -> Arc<Self> {
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
            trust_domain: trust_domain.to_string(),
            rejections_logged: Mutex::new(BTreeMap::new()),
            metrics: Default::default(),
            mesh,
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
        let version = views::publish(&mut store);
        if let Ok(mut seen) = self.rejections_logged.lock()
            && *seen != *store.rejections()
        {
            for (key, r) in store.rejections() {
                if seen.get(key) != Some(r) {
                    let kept = if r.previous_in_force {
                        "; its previous version stays in force"
                    } else {
                        ""
                    };
                    tracing::warn!("{key} refused: {}{kept}", r.message);
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
        let connected = self.proxies.lock().map(|p| p.len()).unwrap_or(0);
        self.metrics.published(number, connected);
        // No receivers is fine: nobody is connected yet.
        let _ = self.updates.send(version);
        Some(number)
    }

    /// The published set a proxy in `namespace` sees, as parts, built once
    /// per version and namespace.
    pub(super) fn full(&self, namespace: &str) -> Parts {
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

    /// The oldest version a connected proxy has acknowledged (`None`: no
    /// proxy connected).
    pub(super) fn oldest_acked(&self) -> Option<u64> {
        let proxies = self.proxies.lock().ok()?;
        proxies.values().map(|p| p.acked_version).min()
    }

    pub(super) fn with_proxy(&self, id: u64, f: impl FnOnce(&mut ProxyInfo)) {
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
