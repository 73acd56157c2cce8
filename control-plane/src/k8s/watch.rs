//! Watching Kubernetes: each kind's objects go into the config store as the
//! same light types the proxy reads (converted through JSON once, here at
//! the boundary), and every change wakes the publisher. Pods are watched
//! alongside (see [`super::pods`]) into their own index. Gateway API
//! HTTPRoutes and GRPCRoutes are read as untyped objects (their CRDs may
//! be absent, and the light types in `strait-api` are what counts).

use crate::config::shared::Shared;
use crate::crd::{DestinationPolicy, TrafficRoute};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use strait_api::manifest::{Object, parse_json};

/// Watches every kind until the process ends.
pub async fn run(client: Client, shared: Arc<Shared>) {
    // Publish nothing until every kind's initial list is in: a first version
    // with Services but no EndpointSlices would send proxies a broken mesh,
    // and Pods are needed to verify the proxies that connect to it.
    shared.expect_sources(7);
    tokio::join!(
        super::pods::run(client.clone(), shared.clone()),
        watch_kind::<Service>(Api::all(client.clone()), "Service", shared.clone(), false),
        watch_kind::<EndpointSlice>(
            Api::all(client.clone()),
            "EndpointSlice",
            shared.clone(),
            false
        ),
        watch_kind::<TrafficRoute>(
            Api::all(client.clone()),
            "TrafficRoute",
            shared.clone(),
            false
        ),
        watch_kind::<DestinationPolicy>(
            Api::all(client.clone()),
            "DestinationPolicy",
            shared.clone(),
            false
        ),
        gateway_kind(client.clone(), "HTTPRoute", "httproutes", shared.clone()),
        gateway_kind(client, "GRPCRoute", "grpcroutes", shared),
    );
}

/// The Gateway API's group/version for a route kind.
pub fn gateway_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: strait_api::manifest::GATEWAY_API_VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Watches a Gateway API route kind. Its CRD is optional: while it is not
/// installed (or the controller may not read it), the kind counts as loaded
/// and empty, so the mesh is published without it, and the controller
/// looks again every few seconds; once it can list the kind, it watches.
async fn gateway_kind(
    client: Client,
    kind: &'static str,
    plural: &'static str,
    shared: Arc<Shared>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &gateway_resource(kind, plural));
    let mut synced = false;
    loop {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => break,
            // Absent (404) or not ours to read (403): publish without it.
            // Anything else (a timeout, 429, 500) may pass: wait, so that a
            // hiccup never publishes a mesh without the routes.
            Err(kube::Error::Api(ref status)) if status.code == 404 || status.code == 403 => {
                let e = kube::Error::Api(status.clone());
                if !synced {
                    tracing::info!(
                        kind,
                        error = %e,
                        "Gateway API kind not readable (CRD not installed?); routes of this kind are read once it is"
                    );
                    shared.source_synced();
                    synced = true;
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            Err(e) => {
                tracing::warn!(kind, error = %e, "cannot list (retrying)");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
    watch_kind(api, kind, shared, synced).await
}

/// Converts a Kubernetes object to the store's form, or says why not.
///
/// Only what routing needs is kept: status, resourceVersion, managedFields,
/// uid and kubectl's last-applied annotation change without the spec
/// changing (our own status writes among them), and must not cause a new
/// config version for every proxy. `creationTimestamp` stays: it never
/// changes, and of two conflicting routes the older one wins.
pub fn convert<K: Serialize>(kind: &str, obj: &K) -> Result<(Object, String), String> {
    let mut v = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(meta) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            for k in ["resourceVersion", "managedFields", "uid", "selfLink"] {
                meta.remove(k);
            }
            if let Some(a) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
                a.remove("endpoints.kubernetes.io/last-change-trigger-time");
            }
        }
    }
    if kind == "EndpointSlice" {
        trim_endpoints(&mut v);
    }
    let json = v.to_string();
    let object = parse_json(kind, &json)?;
    Ok((object, json))
}

/// What the proxy reads of an endpoint: its addresses, whether it is
/// ready, and which Pod it is. Kubernetes also writes `serving`,
/// `terminating`, `nodeName`, `zone`, hints and the Pod's uid and
/// resourceVersion; they are ~40 % of a slice, change without the routing
/// changing, and every byte is sent to every proxy, so they go here.
fn trim_endpoints(slice: &mut serde_json::Value) {
    let Some(endpoints) = slice.get_mut("endpoints").and_then(|e| e.as_array_mut()) else {
        return;
    };
    for e in endpoints.iter_mut().filter_map(|e| e.as_object_mut()) {
        e.retain(|k, _| matches!(k.as_str(), "addresses" | "conditions" | "targetRef"));
        if let Some(c) = e.get_mut("conditions").and_then(|c| c.as_object_mut()) {
            c.retain(|k, _| k == "ready");
        }
        if let Some(t) = e.get_mut("targetRef").and_then(|t| t.as_object_mut()) {
            t.retain(|k, _| matches!(k.as_str(), "kind" | "name" | "namespace"));
        }
    }
}

async fn watch_kind<K>(api: Api<K>, kind: &'static str, shared: Arc<Shared>, mut synced: bool)
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let mut initial: Vec<(Object, String)> = Vec::new();
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // The watcher retries by itself; a forbidden or missing kind
                // shows up here, so say which.
                tracing::warn!(kind, error = %e, "watch error (retrying)");
                shared.metrics.watch_restarted(kind);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut store = match shared.store.lock() {
            Ok(s) => s,
            Err(_) => return,
        };
        match event {
            Event::Init => initial.clear(),
            Event::InitApply(o) => match convert(kind, &o) {
                Ok(x) => initial.push(x),
                Err(e) => tracing::warn!(kind, error = %e, "cannot read object"),
            },
            Event::InitDone => {
                let n = initial.len();
                store.replace_kind(kind, std::mem::take(&mut initial));
                tracing::info!(kind, objects = n, "initial list loaded");
                if !synced {
                    synced = true;
                    drop(store);
                    shared.source_synced();
                    continue;
                }
            }
            Event::Apply(o) => match convert(kind, &o) {
                Ok((object, json)) => {
                    store.upsert(object, json);
                }
                Err(e) => tracing::warn!(kind, error = %e, "cannot read object"),
            },
            Event::Delete(o) => {
                let ns = o
                    .meta()
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let name = o.meta().name.clone().unwrap_or_default();
                store.remove(&strait_api::manifest::ObjectKey::new(kind, ns, name));
            }
        }
        drop(store);
        shared.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_slices_keep_only_what_routing_reads() {
        let slice = |rv: &str, serving: bool| {
            serde_json::json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{
                    "addresses": ["10.0.0.1"],
                    "conditions": {"ready": false, "serving": serving, "terminating": true},
                    "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "ns", "uid": "u", "resourceVersion": rv},
                    "nodeName": "node-a", "zone": "z1", "hints": {"forZones": [{"name": "z1"}]}
                }]
            })
        };
        let (object, a) = convert("EndpointSlice", &slice("1", true)).unwrap();
        let (_, b) = convert("EndpointSlice", &slice("2", false)).unwrap();
        assert_eq!(a, b, "what the proxy does not read does not make a version");
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(
            v["endpoints"][0],
            serde_json::json!({"addresses": ["10.0.0.1"], "conditions": {"ready": false},
                               "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "ns"}})
        );
        assert_eq!(v["ports"][0]["port"], 8080);
        let Object::EndpointSlice(s) = object else {
            panic!("not a slice")
        };
        assert_eq!(
            s.endpoints[0].conditions.as_ref().and_then(|c| c.ready),
            Some(false)
        );
    }

    #[test]
    fn status_and_bookkeeping_do_not_change_the_published_form() {
        let obj = |rv: &str, status: &str| {
            serde_json::json!({
                "apiVersion": "strait.dev/v1alpha1", "kind": "TrafficRoute",
                "metadata": {"name": "r", "namespace": "ns", "generation": 2, "resourceVersion": rv, "uid": "u",
                             "managedFields": [{"manager": "kubectl"}],
                             "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "a"}},
                "spec": {"parentRef": {"name": "web"}, "rules": [{"backends": [{"name": "web"}]}]},
                "status": {"conditions": [{"type": "Accepted", "status": status}]}
            })
        };
        let (_, a) = convert("TrafficRoute", &obj("1", "Unknown")).unwrap();
        let (_, b) = convert("TrafficRoute", &obj("2", "True")).unwrap();
        assert_eq!(a, b);
        assert!(
            a.contains("\"team\":\"a\"") && a.contains("\"generation\":2"),
            "{a}"
        );
    }
}
