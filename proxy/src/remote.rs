//! Config from the control plane (`--control-plane ADDR`).
//!
//! One long-lived gRPC stream: Hello with the pod's identity, then a full
//! set of objects and deltas, each versioned. The proxy keeps its own copy of
//! the objects, applies each update to a candidate copy, translates it with
//! the shared pure `translate`, and either swaps the result in and ACKs, or
//! NACKs with the reason and keeps its last good config. When the stream
//! breaks the proxy keeps serving what it has and reconnects with
//! exponential backoff and jitter (100 ms doubling to 10 s).

use crate::state::State;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strait_api::Snapshot;
use strait_api::manifest::{Located, Object, parse_json};
use strait_api::parts::assemble;
use strait_api::translate::translate_view;
use strait_api::wire::config_discovery_client::ConfigDiscoveryClient;
use strait_api::wire::{Ack, ConfigUpdate, Hello, Nack, ProxyMessage, proxy_message};
use tokio::sync::mpsc;

/// Who this proxy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Service account.
    pub service_account: String,
}

type Key = strait_api::manifest::ObjectKey;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Could not connect.
    #[error("connecting to the control plane at {addr}: {source}")]
    Connect {
        addr: String,
        source: crate::control::ChannelError,
    },
    /// The stream failed.
    #[error("config stream: {0}")]
    Status(#[from] tonic::Status),
}

/// The objects this proxy holds, and building a snapshot from them. Pure.
#[derive(Debug, Default, Clone)]
pub struct Objects(BTreeMap<Key, Object>);

impl Objects {
    /// The set after `update`, or why it cannot be applied.
    pub fn apply(&self, update: &ConfigUpdate) -> Result<(Objects, Snapshot), String> {
        let mut next = if update.full {
            BTreeMap::new()
        } else {
            self.0.clone()
        };
        for r in &update.upserts {
            let k = r.key.as_ref().ok_or("an upsert without a key")?;
            let object = parse_json(&k.kind, &r.json)?;
            next.insert(Key::new(&k.kind, &k.namespace, &k.name), object);
        }
        for k in &update.removals {
            next.remove(&Key::new(&k.kind, &k.namespace, &k.name));
        }
        let located: Vec<Located<Object>> = next
            .iter()
            .map(|(key, o)| Located {
                file: key.to_string(),
                line: 0,
                object: o.clone(),
            })
            .collect();
        let t = translate_view(&located);
        if !t.errors.is_empty() {
            return Err(t
                .errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; "));
        }
        Ok((Objects(next), t.snapshot))
    }
}

/// How the stream reaches the control plane: TLS checked against `tls`
/// (plaintext without), with this proxy's certificate from `current`.
pub struct Link {
    /// How to check the controller.
    pub tls: Option<crate::control::ControlPlaneTls>,
    /// This proxy's certificate (none: the stream is not mTLS).
    pub current: Arc<crate::identity::Current>,
    /// Whether a certificate is coming (an identity service is set): the
    /// first session waits a moment for it, so it can be mTLS.
    pub certificate_expected: bool,
    /// Told the mesh-wide span settings that full updates carry.
    pub spans: Arc<crate::spans::Spans>,
}

/// Follows the control plane until the process exits.
pub async fn run(addr: String, id: Identity, state: Arc<State>, link: Link) {
    if link.tls.is_some() && link.certificate_expected {
        let deadline = Instant::now() + Duration::from_secs(5);
        while link.current.load().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut objects = Objects::default();
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let result = session(&addr, &id, &state, &link, &mut objects).await;
        // Say what is served meanwhile: the last config, or nothing yet.
        let serving = match state.load().version {
            0 => "no config yet: not ready until one arrives".to_owned(),
            v => format!("serving the last config (version {v})"),
        };
        match result {
            Ok(()) => tracing::warn!(%addr, "control plane closed the config stream; {serving}"),
            Err(e) => tracing::warn!(error = %e, "config stream down; {serving}"),
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        let pause = backoff.mul_f64(rand::rng().random_range(0.5..1.5));
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn session(
    addr: &str,
    id: &Identity,
    state: &State,
    link: &Link,
    objects: &mut Objects,
) -> Result<(), StreamError> {
    let channel = crate::control::channel(addr, link.tls.as_ref(), link.current.load_full(), |e| {
        e.connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
    })
    .await
    .map_err(|source| StreamError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    // Versions arrive in parts of ~16 KiB, but one object (a large
    // EndpointSlice) may exceed tonic's 4 MiB default on its own.
    let mut client =
        ConfigDiscoveryClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let (tx, rx) = mpsc::channel::<ProxyMessage>(8);
    let send = |kind| ProxyMessage { kind: Some(kind) };
    let hello = Hello {
        namespace: id.namespace.clone(),
        pod: id.pod.clone(),
        service_account: id.service_account.clone(),
        running_version: state.load().version,
    };
    // The channel has room: this cannot block.
    let _ = tx.try_send(send(proxy_message::Kind::Hello(hello)));
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut updates = client.stream(outbound).await?.into_inner();
    tracing::info!(%addr, "config stream open");
    let source = format!("control-plane:{addr}");
    let mut pending = None;
    // A session opened over TLS before this proxy had its certificate is
    // not mTLS: once the certificate comes, end it and reconnect with it.
    let without_certificate = link.tls.is_some() && link.current.load().is_none();
    let certified = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if link.current.load().is_some() {
                return;
            }
        }
    };
    tokio::pin!(certified);
    loop {
        let part = tokio::select! {
            part = updates.message() => part?,
            () = &mut certified, if without_certificate => {
                tracing::info!(%addr, "certificate issued: reconnecting the config stream over mTLS");
                return Ok(());
            }
        };
        let Some(part) = part else { break };
        let Some(update) = assemble(&mut pending, part) else {
            continue;
        };
        let version = update.version;
        if update.full {
            link.spans.set_from_mesh(mesh_tracing(&update));
        }
        match objects.apply(&update) {
            Ok((next, snapshot)) => {
                *objects = next;
                state.apply_at(snapshot, &source, version);
                state.metrics.reload(true);
                tracing::info!(version, full = update.full, "config applied");
                let _ = tx
                    .send(send(proxy_message::Kind::Ack(Ack { version })))
                    .await;
            }
            Err(reason) => {
                state.metrics.reload(false);
                tracing::error!(version, %reason, "config refused; keeping version {}", state.load().version);
                let _ = tx
                    .send(send(proxy_message::Kind::Nack(Nack { version, reason })))
                    .await;
            }
        }
    }
    Ok(())
}

/// The span settings a full update carries (none: no collector).
fn mesh_tracing(update: &ConfigUpdate) -> Option<crate::spans::Settings> {
    let t = update.mesh.as_ref()?.tracing.as_ref()?;
    (!t.collector.is_empty()).then(|| crate::spans::Settings {
        collector: t.collector.clone(),
        sampling: t.sampling.clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_api::wire::{Resource, ResourceKey};

    fn res(kind: &str, name: &str, json: &str) -> Resource {
        Resource {
            key: Some(ResourceKey {
                kind: kind.into(),
                namespace: "ns".into(),
                name: name.into(),
            }),
            json: json.to_string().into(),
        }
    }

    const SVC: &str =
        r#"{"metadata":{"name":"web","namespace":"ns"},"spec":{"ports":[{"port":80}]}}"#;

    #[test]
    fn parts_are_assembled_before_applying() {
        let part = |version, more, name: &str| ConfigUpdate {
            version,
            full: true,
            more,
            mesh: None,
            upserts: vec![res(
                "Service",
                name,
                &SVC.replace("\"web\"", &format!("\"{name}\"")),
            )],
            removals: vec![],
        };
        let mut pending = None;
        assert!(assemble(&mut pending, part(1, true, "a")).is_none());
        assert!(assemble(&mut pending, part(1, true, "b")).is_none());
        let whole = assemble(&mut pending, part(1, false, "c")).unwrap();
        assert_eq!(whole.upserts.len(), 3);
        assert!(!whole.more && pending.is_none());
        let (_, snap) = Objects::default().apply(&whole).unwrap();
        assert_eq!(snap.services.len(), 3);
        // An unfinished version is dropped when a newer one starts.
        assert!(assemble(&mut pending, part(2, true, "a")).is_none());
        let next = assemble(&mut pending, part(3, false, "z")).unwrap();
        assert_eq!((next.version, next.upserts.len()), (3, 1));
    }

    #[test]
    fn full_then_delta_then_refusal() {
        let o = Objects::default();
        let full = ConfigUpdate {
            version: 1,
            more: false,
            mesh: None,
            full: true,
            upserts: vec![res("Service", "web", SVC)],
            removals: vec![],
        };
        let (o, snap) = o.apply(&full).unwrap();
        assert_eq!(snap.services.len(), 1);
        let route = r#"{"metadata":{"name":"r","namespace":"ns"},"spec":{"parentRef":{"name":"web"},"rules":[{"backends":[{"name":"web"}]}]}}"#;
        let delta = ConfigUpdate {
            version: 2,
            more: false,
            mesh: None,
            full: false,
            upserts: vec![res("TrafficRoute", "r", route)],
            removals: vec![],
        };
        let (o, snap) = o.apply(&delta).unwrap();
        assert!(snap.services.values().next().unwrap().routes.is_some());
        // A route the proxy cannot use (unknown field from a newer control plane).
        let newer = r#"{"metadata":{"name":"r","namespace":"ns"},"spec":{"parentRef":{"name":"web"},"rules":[],"futureField":1}}"#;
        let bad = ConfigUpdate {
            version: 3,
            more: false,
            mesh: None,
            full: false,
            upserts: vec![res("TrafficRoute", "r", newer)],
            removals: vec![],
        };
        assert!(o.apply(&bad).unwrap_err().contains("futureField"));
        // Removing the Service the route needs is refused too.
        let gone = ConfigUpdate {
            version: 3,
            more: false,
            mesh: None,
            full: false,
            upserts: vec![],
            removals: vec![ResourceKey {
                kind: "Service".into(),
                namespace: "ns".into(),
                name: "web".into(),
            }],
        };
        assert!(o.apply(&gone).unwrap_err().contains("not found"));
        // A full update replaces everything.
        let (o, snap) = o
            .apply(&ConfigUpdate {
                version: 4,
                more: false,
                mesh: None,
                full: true,
                upserts: vec![],
                removals: vec![],
            })
            .unwrap();
        assert!(snap.services.is_empty() && o.0.is_empty());
    }
}
