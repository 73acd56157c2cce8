//! Writing `Accepted` / `ResolvedRefs` conditions to TrafficRoutes and
//! DestinationPolicies, when they change, by the leader only.
//!
//! After each publish the writer compares every Strait object's desired
//! conditions ([`super::conditions`]) with what it last wrote for that
//! object's generation, and patches the status subresource where they
//! differ. `observedGeneration` and `lastTransitionTime` are set the Gateway
//! API way (the time changes only when the status does).

use super::conditions::{Desired, desired};
use crate::config::shared::Shared;
use crate::crd::{Condition, DestinationPolicy, TrafficRoute};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use strait_api::manifest::Object;
use strait_api::manifest::ObjectKey;

type Written = HashMap<ObjectKey, (i64, [Desired; 2])>;

/// Writes status until the process ends.
pub async fn run(client: Client, shared: Arc<Shared>, is_leader: Arc<AtomicBool>) {
    let mut written: Written = HashMap::new();
    let mut was_leader = false;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let leading = is_leader.load(Ordering::Acquire);
        if !leading {
            was_leader = false;
            continue;
        }
        if !was_leader {
            // A new leader cannot trust what another replica wrote.
            written.clear();
            was_leader = true;
        }
        let todo: Vec<_> = {
            let Ok(store) = shared.store.lock() else {
                return;
            };
            let version = store.version();
            store
                .latest()
                .filter(|(k, _)| k.kind == "TrafficRoute" || k.kind == "DestinationPolicy")
                .map(|(k, o)| {
                    let generation = match o {
                        Object::TrafficRoute(r) => r.metadata.generation,
                        Object::DestinationPolicy(p) => p.metadata.generation,
                        _ => None,
                    }
                    .unwrap_or(0);
                    (
                        k.clone(),
                        generation,
                        desired(
                            store.rejections().get(k),
                            version,
                            super::conditions::caveat(o, &|ns, name| {
                                let key = strait_api::manifest::ObjectKey::new("Service", ns, name);
                                match store.latest().find(|(k, _)| **k == key) {
                                    Some((_, Object::Service(s))) => s
                                        .metadata
                                        .annotations
                                        .get(crate::config::scope::EXPORT_TO_ANNOTATION)
                                        .cloned(),
                                    _ => None,
                                }
                            })
                            .as_deref(),
                        ),
                    )
                })
                .filter(|(k, g, d)| {
                    written
                        .get(k)
                        .is_none_or(|(wg, wd)| wg != g || !same(wd, d))
                })
                .collect()
        };
        for (key, generation, conditions) in todo {
            match patch(&client, &key, generation, &conditions).await {
                Ok(()) => {
                    shared.metrics.status_written(true);
                    written.insert(key, (generation, conditions));
                }
                Err(e) => {
                    shared.metrics.status_written(false);
                    tracing::warn!(object = %key, error = %e, "status update failed")
                }
            }
        }
    }
}

/// Equal apart from the version number in the Accepted message (which would
/// otherwise rewrite every status on every publish).
fn same(a: &[Desired; 2], b: &[Desired; 2]) -> bool {
    a.iter().zip(b).all(|(x, y)| {
        x.type_ == y.type_
            && x.status == y.status
            && x.reason == y.reason
            && (x.status == "True" || x.message == y.message)
    })
}

async fn patch(
    client: &Client,
    key: &ObjectKey,
    generation: i64,
    conditions: &[Desired; 2],
) -> Result<(), kube::Error> {
    let now = Time(Timestamp::now());
    let conditions: Vec<Condition> = conditions
        .iter()
        .map(|d| Condition {
            type_: d.type_.to_string(),
            status: d.status.to_string(),
            reason: d.reason.to_string(),
            message: d.message.clone(),
            observed_generation: Some(generation),
            last_transition_time: now.clone(),
        })
        .collect();
    let body = serde_json::json!({ "status": { "conditions": conditions } });
    let pp = PatchParams::default();
    let ObjectKey {
        kind,
        namespace: ns,
        name,
    } = key;
    match kind.as_str() {
        "TrafficRoute" => Api::<TrafficRoute>::namespaced(client.clone(), ns)
            .patch_status(name, &pp, &Patch::Merge(&body))
            .await
            .map(drop),
        _ => Api::<DestinationPolicy>::namespaced(client.clone(), ns)
            .patch_status(name, &pp, &Patch::Merge(&body))
            .await
            .map(drop),
    }
}
