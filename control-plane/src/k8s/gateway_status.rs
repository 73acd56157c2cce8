//! Status of HTTPRoutes and GRPCRoutes the GAMMA way: one entry per Service
//! parent in `status.parents[]`, with `controllerName` `strait.dev/mesh`
//! and the `Accepted` and `ResolvedRefs` conditions.
//!
//! Other controllers (a Gateway's, another mesh's) write their own entries
//! in the same list; the list is not merged by key, so the writer reads it,
//! replaces only Strait's entries ([`merge_parents`], pure) and writes it
//! back guarded by the `resourceVersion` it read.

use super::conditions::Desired;
use crate::config::store::Rejection;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use strait_api::manifest::{GatewayParentRef, ObjectKey};

/// The `controllerName` Strait writes its entries under.
pub const CONTROLLER_NAME: &str = "strait.dev/mesh";

/// The conditions for a Gateway route, from the store's verdict. Reasons
/// are Gateway API's where one fits (`NoMatchingParent`,
/// `UnsupportedValue`, `IncompatibleFilters`, `BackendNotFound`,
/// `RefNotPermitted`, `InvalidKind`) and say Strait's own otherwise
/// (`Conflicted`: another kind of route holds the Service port).
pub fn desired(rejection: Option<&Rejection>, version: u64) -> [Desired; 2] {
    let d = |type_, status, reason, message: String| Desired {
        type_,
        status,
        reason,
        message,
    };
    let resolved = || {
        d(
            "ResolvedRefs",
            "True",
            "ResolvedRefs",
            "Every backendRef is a Service port that exists.".into(),
        )
    };
    let Some(r) = rejection else {
        return [
            d(
                "Accepted",
                "True",
                "Accepted",
                format!("In force on every proxy from config version {version}."),
            ),
            resolved(),
        ];
    };
    let kept = if r.previous_in_force {
        " The previous version of this route stays in force."
    } else {
        " Not in force."
    };
    let m = r.message.as_str();
    let refused = |reason| d("Accepted", "False", reason, format!("{m}.{kept}"));
    let unresolved = |reason| d("ResolvedRefs", "False", reason, m.to_string());
    if m.contains("parentRefs[") {
        [refused("NoMatchingParent"), resolved()]
    } else if m.contains("is already routed by") {
        [refused("Conflicted"), resolved()]
    } else if m.contains("needs a ReferenceGrant") {
        [refused("UnresolvedRefs"), unresolved("RefNotPermitted")]
    } else if m.contains("Strait routes to Services") {
        [refused("UnresolvedRefs"), unresolved("InvalidKind")]
    } else if m.contains(" not found") || m.contains(" has no port ") {
        [refused("UnresolvedRefs"), unresolved("BackendNotFound")]
    } else if m.contains("cannot be used together") {
        [refused("IncompatibleFilters"), resolved()]
    } else {
        [refused("UnsupportedValue"), resolved()]
    }
}

/// `status.parents` with Strait's entries replaced by one per Service
/// parent (as the route's spec wrote it) and everyone else's kept.
pub fn merge_parents(
    existing: &Value,
    parents: &[GatewayParentRef],
    conditions: &[Value],
) -> Vec<Value> {
    let mut out: Vec<Value> = existing
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.get("controllerName").and_then(Value::as_str) != Some(CONTROLLER_NAME))
        .cloned()
        .collect();
    for p in parents.iter().filter(|p| p.is_service()) {
        let mut parent_ref = json!({"group": "", "kind": "Service", "name": p.name});
        if let Some(ns) = &p.namespace {
            parent_ref["namespace"] = json!(ns);
        }
        if let Some(port) = p.port {
            parent_ref["port"] = json!(port);
        }
        if let Some(section) = &p.section_name {
            parent_ref["sectionName"] = json!(section);
        }
        out.push(json!({
            "parentRef": parent_ref,
            "controllerName": CONTROLLER_NAME,
            "conditions": conditions,
        }));
    }
    out
}

/// Writes Strait's entries of one route's `status.parents`.
pub async fn patch(
    client: &Client,
    key: &ObjectKey,
    generation: i64,
    parents: &[GatewayParentRef],
    conditions: &[Desired; 2],
) -> Result<(), kube::Error> {
    let plural = match key.kind.as_str() {
        "GRPCRoute" => "grpcroutes",
        _ => "httproutes",
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &key.namespace,
        &super::watch::gateway_resource(&key.kind, plural),
    );
    let current = api.get_status(&key.name).await?;
    let now = Time(Timestamp::now());
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|c| {
            json!({
                "type": c.type_, "status": c.status, "reason": c.reason,
                "message": c.message, "observedGeneration": generation,
                "lastTransitionTime": now,
            })
        })
        .collect();
    let existing = current
        .data
        .get("status")
        .and_then(|s| s.get("parents"))
        .cloned()
        .unwrap_or(Value::Null);
    let body = json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "status": {"parents": merge_parents(&existing, parents, &conditions)},
    });
    api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(message: &str) -> Rejection {
        Rejection {
            message: message.into(),
            previous_in_force: false,
        }
    }

    #[test]
    fn reasons_follow_gateway_api() {
        let table = [
            (
                "HTTPRoute a/r: parentRefs[0]: Service a/web not found",
                "NoMatchingParent",
                "ResolvedRefs",
            ),
            (
                "HTTPRoute a/r: a/web:80 is already routed by TrafficRoute a/t, which is older; …",
                "Conflicted",
                "ResolvedRefs",
            ),
            (
                "HTTPRoute a/r: rules[0].backendRefs[0]: Service a/ghost not found",
                "UnresolvedRefs",
                "BackendNotFound",
            ),
            (
                "HTTPRoute a/r: rules[0].backendRefs[0]: Service a/web has no port 81 (TCP ports: [80])",
                "UnresolvedRefs",
                "BackendNotFound",
            ),
            (
                "HTTPRoute a/r: rules[0].backendRefs[0]: Service b/x is in another namespace; that needs a ReferenceGrant, …",
                "UnresolvedRefs",
                "RefNotPermitted",
            ),
            (
                "HTTPRoute a/r: rules[0].backendRefs[0]: kind x/Y is not supported; Strait routes to Services",
                "UnresolvedRefs",
                "InvalidKind",
            ),
            (
                "HTTPRoute a/r: rules[0].filters: RequestRedirect and URLRewrite cannot be used together",
                "IncompatibleFilters",
                "ResolvedRefs",
            ),
            (
                "HTTPRoute a/r: rules[0].filters[0].cors: not supported by Strait",
                "UnsupportedValue",
                "ResolvedRefs",
            ),
        ];
        for (message, accepted, resolved) in table {
            let c = desired(Some(&rejection(message)), 3);
            assert_eq!((c[0].status, c[0].reason), ("False", accepted), "{message}");
            assert_eq!(c[1].reason, resolved, "{message}");
            assert_eq!(
                c[1].status == "True",
                resolved == "ResolvedRefs",
                "{message}"
            );
            assert!(c[0].message.ends_with("Not in force."), "{}", c[0].message);
        }
        let ok = desired(None, 9);
        assert_eq!((ok[0].reason, ok[1].reason), ("Accepted", "ResolvedRefs"));
        assert!(ok[0].message.contains("version 9"));
    }

    #[test]
    fn only_straits_entries_are_replaced() {
        let existing = json!([
            {"parentRef": {"name": "gw"}, "controllerName": "example.com/gateway", "conditions": []},
            {"parentRef": {"kind": "Service", "name": "old"}, "controllerName": CONTROLLER_NAME, "conditions": []},
        ]);
        let parents: Vec<GatewayParentRef> = serde_json::from_value(json!([
            {"group": "", "kind": "Service", "name": "web", "port": 80},
            {"name": "gw"},
        ]))
        .expect("parents");
        let merged = merge_parents(&existing, &parents, &[json!({"type": "Accepted"})]);
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!(merged[0]["controllerName"], "example.com/gateway");
        assert_eq!(
            merged[1],
            json!({"parentRef": {"group": "", "kind": "Service", "name": "web", "port": 80},
                   "controllerName": CONTROLLER_NAME, "conditions": [{"type": "Accepted"}]})
        );
        assert_eq!(merge_parents(&Value::Null, &parents, &[]).len(), 1);
    }
}
