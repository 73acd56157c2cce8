//! The workload a pod belongs to, named once at injection: the proxy
//! reports it as its spans' `service.name`, so a trace reads "web called
//! checkout", not "web-7d4b9c8f5-x2k4q called checkout-5c9d-…".

use serde_json::Value;

/// The workload's name (pure), from the first that is set:
/// the `app.kubernetes.io/name` label, the `app` label, the owning
/// controller's name (a ReplicaSet's pod-template hash removed, so it names
/// the Deployment), the pod's `generateName` without its trailing dash, the
/// pod's name, and its ServiceAccount.
pub fn name(pod: &Value) -> String {
    let meta = |p: &str| {
        pod.pointer(&format!("/metadata/{p}"))
            .and_then(Value::as_str)
    };
    let label = |k: &str| {
        pod.pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = label("app.kubernetes.io/name").or_else(|| label("app")) {
        return v.to_string();
    }
    let owner = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        });
    if let Some(owner) = owner
        && let Some(name) = owner.get("name").and_then(Value::as_str)
    {
        let hash = label("pod-template-hash").map(|h| format!("-{h}"));
        let is_rs = owner.get("kind").and_then(Value::as_str) == Some("ReplicaSet");
        return match hash {
            Some(h) if is_rs && name.ends_with(&h) => name[..name.len() - h.len()].to_string(),
            _ => name.to_string(),
        };
    }
    if let Some(g) = meta("generateName")
        .map(|g| g.trim_end_matches('-'))
        .filter(|g| !g.is_empty())
    {
        return g.to_string();
    }
    meta("name")
        .filter(|n| !n.is_empty())
        .or_else(|| {
            pod.pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
        })
        .unwrap_or("default")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_workload_not_the_pod() {
        let rs_owner = json!([{"kind": "ReplicaSet", "name": "web-7d4b9c8f5", "controller": true}]);
        let cases = [
            (
                json!({"metadata": {"labels": {"app.kubernetes.io/name": "shop", "app": "web"}}}),
                "shop",
            ),
            (json!({"metadata": {"labels": {"app": "web"}}}), "web"),
            (
                json!({"metadata": {"name": "web-7d4b9c8f5-x2k4q", "labels": {"pod-template-hash": "7d4b9c8f5"}, "ownerReferences": rs_owner}}),
                "web",
            ),
            // Not a ReplicaSet: the owner's name as it is.
            (
                json!({"metadata": {"name": "db-0", "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": true}]}}),
                "db",
            ),
            // A ReplicaSet without the hash label keeps its name.
            (
                json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "api-abc", "controller": true}]}}),
                "api-abc",
            ),
            // A non-controller owner is not the workload.
            (
                json!({"metadata": {"generateName": "job-", "ownerReferences": [{"kind": "Thing", "name": "x"}]}}),
                "job",
            ),
            (
                json!({"metadata": {"name": "solo", "labels": {"app": ""}}}),
                "solo",
            ),
            (
                json!({"metadata": {}, "spec": {"serviceAccountName": "checkout"}}),
                "checkout",
            ),
            (json!({}), "default"),
        ];
        for (pod, want) in cases {
            assert_eq!(name(&pod), want, "{pod}");
        }
    }
}
