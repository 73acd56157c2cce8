//! Writing `Accepted` / `ResolvedRefs` conditions to TrafficRoutes,
//! DestinationPolicies, HTTPRoutes and GRPCRoutes (the last two through
//! [`super::gateway_status`]), when they change, by the leader only.
//!
//! After each publish the writer compares every Strait object's desired
//! conditions ([`super::conditions`]) with what it last wrote for that
//! object's generation, and patches the status subresource where they
//! differ. `observedGeneration` and `lastTransitionTime` are set the Gateway
//! API way (the time changes only when the status does).

use super::conditions::{Desired, desired};
use super::gateway_status;
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
use strait_api::manifest::{Object, ObjectKey, ServiceRefs};

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
                .filter_map(|(k, o)| {
                    let rejection = store.rejections().get(k);
                    let (generation, parents, conditions) = match o {
                        Object::TrafficRoute(r) => (
                            r.metadata.generation,
                            None,
                            desired(rejection, version, None),
                        ),
                        Object::DestinationPolicy(p) => (
                            p.metadata.generation,
                            None,
                            desired(
                                rejection,
                                version,
                                super::conditions::caveat(o, &|ns, name| {
                                    export_to(&store, ns, name)
                                })
                                .as_deref(),
                            ),
                        ),
                        Object::HttpRoute(r) if !r.service_parents().is_empty() => (
                            r.metadata.generation,
                            Some(r.spec.parent_refs.clone()),
                            gateway_status::desired(rejection, version),
                        ),
                        Object::GrpcRoute(r) if !r.service_parents().is_empty() => (
                            r.metadata.generation,
                            Some(r.spec.parent_refs.clone()),
                            gateway_status::desired(rejection, version),
                        ),
                        _ => return None,
                    };
                    Some((k.clone(), generation.unwrap_or(0), parents, conditions))
                })
                .filter(|(k, g, _, d)| {
                    written
                        .get(k)
                        .is_none_or(|(wg, wd)| wg != g || !same(wd, d))
                })
                .collect()
        };
        for (key, generation, parents, conditions) in todo {
            let result = match &parents {
                Some(parents) => {
                    gateway_status::patch(&client, &key, generation, parents, &conditions).await
                }
                None => patch(&client, &key, generation, &conditions).await,
            };
            match result {
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

/// A Service's `strait.dev/export-to` annotation, if any.
fn export_to(store: &crate::config::store::Store, ns: &str, name: &str) -> Option<String> {
    let key = ObjectKey::new("Service", ns, name);
    match store.latest().find(|(k, _)| **k == key) {
        Some((_, Object::Service(s))) => s
            .metadata
            .annotations
            .get(crate::config::scope::EXPORT_TO_ANNOTATION)
            .cloned(),
        _ => None,
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
