//! Watching Pods for proxy identity: every Pod in the cluster, each
//! converted at once to the small [`Pod`] the control plane keeps (the full
//! object, with its spec and status, is dropped here), into the pod index,
//! not the config store: Pods are never sent to proxies, and a Pod change
//! does not make a new config version.

use crate::config::identity::Pod;
use crate::config::shared::Shared;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use std::sync::Arc;

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

/// Watches every Pod until the process ends. The caller has counted this
/// watcher in [`Shared::expect_sources`]; it reports its first full list.
pub async fn run(client: Client, shared: Arc<Shared>) {
    let mut initial: Vec<Pod> = Vec::new();
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
        let Ok(mut pods) = shared.pods.write() else {
            return;
        };
        match event {
            Event::Init => initial.clear(),
            Event::InitApply(p) => initial.extend(convert(&p)),
            Event::InitDone => {
                let n = initial.len();
                pods.replace_all(std::mem::take(&mut initial));
                drop(pods);
                tracing::info!(kind = "Pod", objects = n, "initial list loaded");
                if !synced {
                    synced = true;
                    shared.source_synced();
                }
            }
            Event::Apply(p) => {
                if let Some(p) = convert(&p) {
                    pods.upsert(p);
                }
            }
            Event::Delete(p) => {
                if let Some(p) = convert(&p) {
                    pods.remove(&p.namespace, &p.name);
                }
            }
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
}
