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
//! version is sent in parts of at most [`super::parts::PART_BYTES`] of
//! objects, encoded from one shared copy, so a stream never holds a large
//! message (see [`super::parts`]). The state the streams share, and the
//! publisher, are in [`super::shared`].

use super::identity::{prove, verify};
use super::shared::Shared;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use strait_api::wire::config_discovery_server::ConfigDiscovery;
use strait_api::wire::{
    ConfigUpdate, ProxyInfo, ProxyMessage, ProxyStatusRequest, ProxyStatusResponse, proxy_message,
};
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status, Streaming};

/// Parts queued per stream ahead of its HTTP/2 send buffer.
const STREAM_QUEUE: usize = 4;
/// A proxy must say Hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

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
        let conn = req
            .extensions()
            .get::<super::accept::PeerInfo>()
            .cloned()
            .unwrap_or_default();
        let peer = conn.addr();
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
        let proven = match &conn.identity {
            Some(certified) => {
                prove(
                    certified,
                    &shared.trust_domain,
                    &hello.namespace,
                    &hello.service_account,
                )
                .map_err(|e| {
                    tracing::warn!(pod = %hello.pod, namespace = %hello.namespace, %peer, "proxy refused: {e}");
                    Status::permission_denied(e.to_string())
                })?;
                true
            }
            None => false,
        };
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
                    proven,
                    ..ProxyInfo::default()
                },
            );
        }
        tracing::info!(pod = %hello.pod, namespace = %hello.namespace, %peer, verified, proven, "proxy connected");
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
                    for (i, part) in parts.iter().enumerate() {
                        let mut part = part.clone();
                        if i == 0 && part.full {
                            part.mesh = Some(shared.mesh.clone());
                        }
                        if tx.send(Ok(part)).await.is_err() {
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
                            shared.with_proxy(id, |p| p.acked_version = a.version);
                            shared.metrics.acked(shared.oldest_acked());
                        }
                        Some(proxy_message::Kind::Nack(n)) => {
                            tracing::warn!(%pod, version = n.version, reason = %n.reason, "proxy refused a config");
                            shared.metrics.nacked(&n.reason);
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
            // The proxy that held a version back may be the one that left.
            shared.metrics.converged(shared.oldest_acked());
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
