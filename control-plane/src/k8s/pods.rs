//! Watching Pods, for two things: every Pod in the cluster, converted at
//! once to the small [`Pod`] the control plane keeps (the full object, with
//! its spec and status, is dropped here), goes into the pod index that
//! checks who a connecting proxy is; and each *meshed* Pod (one the
//! injector put a proxy in) goes into the config store cut down to its
//! name and ServiceAccount, [`mesh_identity`], which is what tells other
//! proxies to speak mesh TLS to its endpoints and which identity to expect.
//! A Pod's status changes leave that form unchanged, so they make no new
//! config version.

use crate::config::identity::Pod;
use crate::config::shared::Shared;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use std::sync::Arc;
use strait_api::inject::VERSION_ANNOTATION;
use strait_api::manifest::{Object, ObjectKey, parse_json};

/// Why a Pod from the API server cannot be kept.
#[derive(Debug, thiserror::Error)]
#[error("a Pod without a name")]
pub struct Nameless;

impl TryFrom<&KubePod> for Pod {
    type Error = Nameless;

    fn try_from(p: &KubePod) -> Result<Self, Nameless> {
        let meta = &p.metadata;
        let name = meta.name.clone().ok_or(Nameless)?;
        let spec = p.spec.as_ref();
        let status = p.status.as_ref();
        Ok(Pod {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name,
            // Kubernetes runs a Pod without one as `default`.
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".into()),
            labels: meta.labels.clone().unwrap_or_default(),
            ip: status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        })
    }
}

/// A meshed Pod's identity as the config store keeps and proxies read it
/// (`v1/Pod` with its name, namespace, the injector's annotation and its
/// ServiceAccount); `None` for a Pod without a proxy.
pub fn mesh_identity(p: &KubePod) -> Option<(Object, String)> {
    let meta = &p.metadata;
    let version = meta.annotations.as_ref()?.get(VERSION_ANNOTATION)?;
    let json = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": meta.name.as_ref()?,
            "namespace": meta.namespace.as_deref().unwrap_or("default"),
            "annotations": {VERSION_ANNOTATION: version},
        },
        "spec": {"serviceAccountName": p.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).unwrap_or("default")},
    })
    .to_string();
    let object = parse_json("Pod", &json).ok()?;
    Some((object, json))
}

/// Watches every Pod until the process ends. The caller has counted this
/// watcher in [`Shared::expect_sources`]; it reports its first full list.
pub async fn run(client: Client, shared: Arc<Shared>) {
    let mut initial: Vec<Pod> = Vec::new();
    let mut initial_meshed: Vec<(Object, String)> = Vec::new();
    let mut synced = false;
    let api: Api<KubePod> = Api::all(client);
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // The watcher retries by itself; missing RBAC shows up here.
                tracing::warn!(kind = "Pod", error = %e, "watch error (retrying)");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let convert = |p: &KubePod| match Pod::try_from(p) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(kind = "Pod", error = %e, "cannot read object");
                None
            }
        };
        let init_done = matches!(event, Event::InitDone);
        let mut changed = false;
        {
            let Ok(mut pods) = shared.pods.write() else {
                return;
            };
            let Ok(mut store) = shared.store.lock() else {
                return;
            };
            match event {
                Event::Init => {
                    initial.clear();
                    initial_meshed.clear();
                }
                Event::InitApply(p) => {
                    initial.extend(convert(&p));
                    initial_meshed.extend(mesh_identity(&p));
                }
                Event::InitDone => {
                    let n = initial.len();
                    pods.replace_all(std::mem::take(&mut initial));
                    store.replace_kind("Pod", std::mem::take(&mut initial_meshed));
                    changed = true;
                    tracing::info!(kind = "Pod", objects = n, "initial list loaded");
                }
                Event::Apply(p) => {
                    if let Some(pod) = convert(&p) {
                        let key = ObjectKey::new("Pod", &pod.namespace, &pod.name);
                        pods.upsert(pod);
                        changed = match mesh_identity(&p) {
                            Some((object, json)) => store.upsert(object, json),
                            None => store.remove(&key),
                        };
                    }
                }
                Event::Delete(p) => {
                    if let Some(pod) = convert(&p) {
                        pods.remove(&pod.namespace, &pod.name);
                        changed = store.remove(&ObjectKey::new("Pod", &pod.namespace, &pod.name));
                    }
                }
            }
        }
        if init_done && !synced {
            synced = true;
            shared.source_synced();
        } else if changed {
            shared.changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_identity_needs_is_kept() {
        let p: KubePod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                         "annotations": {"big": "x"}},
            "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "i"}]},
            "status": {"podIP": "10.0.0.7", "phase": "Running"}
        }))
        .unwrap();
        let pod = Pod::try_from(&p).unwrap();
        assert_eq!(
            (
                pod.namespace.as_str(),
                pod.name.as_str(),
                pod.service_account.as_str()
            ),
            ("shop", "web-1", "web")
        );
        assert_eq!(pod.labels["app"], "web");
        assert_eq!(pod.ip, "10.0.0.7".parse().ok());
        assert_eq!(pod.phase, "Running");

        // No service account, no status yet: `default`, no IP.
        let p: KubePod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "new", "namespace": "shop"},
            "spec": {"containers": []}
        }))
        .unwrap();
        let pod = Pod::try_from(&p).unwrap();
        assert_eq!((pod.service_account.as_str(), pod.ip), ("default", None));

        let nameless: KubePod =
            serde_json::from_value(serde_json::json!({"metadata": {}})).unwrap();
        assert!(Pod::try_from(&nameless).is_err());
    }

    /// Only a Pod the injector meshed is published, cut down to what a
    /// proxy needs; its status and other fields do not change that form.
    #[test]
    fn meshed_pods_are_published_as_their_identity() {
        let pod = |annotations: serde_json::Value, ip: &str| -> KubePod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-1", "namespace": "shop", "annotations": annotations},
                "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "i"}]},
                "status": {"podIP": ip, "phase": "Running"}
            }))
            .unwrap()
        };
        let meshed = serde_json::json!({"strait.dev/proxy-version": "0.1.0", "big": "x"});
        let (object, json) = mesh_identity(&pod(meshed.clone(), "10.0.0.7")).unwrap();
        let Object::Pod(p) = object else {
            panic!("{object:?}")
        };
        assert!(p.is_meshed());
        assert_eq!(p.service_account(), "web");
        assert!(
            !json.contains("big") && !json.contains("10.0.0.7"),
            "{json}"
        );
        let (_, again) = mesh_identity(&pod(meshed, "10.0.0.8")).unwrap();
        assert_eq!(json, again, "status changes leave it unchanged");
        assert!(mesh_identity(&pod(serde_json::json!({"big": "x"}), "10.0.0.7")).is_none());
    }
}
