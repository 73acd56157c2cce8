//! One admission review: the API server's AdmissionReview (a Pod being
//! created) in, the answer out. Always `allowed`: the webhook only adds the
//! proxy, it never refuses a pod; a bad annotation comes back as a warning,
//! which kubectl prints.

use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use strait_api::inject::{self, Mode, Outcome, Settings};

/// What was decided, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The pod was meshed (with this many warnings).
    Injected(usize),
    /// Left alone, and why.
    Skipped(String),
}

/// Why a request body is not a review we can answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    /// Not an AdmissionReview with a request.
    #[error("not an AdmissionReview request: {0}")]
    Malformed(String),
}

/// The namespace the review's object is created in.
pub fn namespace(review: &Value) -> Option<&str> {
    review.pointer("/request/namespace")?.as_str()
}

/// Answers `review` for a pod in a namespace with `namespace_annotations`.
pub fn respond(
    review: &Value,
    namespace_annotations: &BTreeMap<String, String>,
    settings: &Settings,
) -> Result<(Value, Decision), ReviewError> {
    let request = review
        .get("request")
        .ok_or_else(|| ReviewError::Malformed("no request".into()))?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .ok_or_else(|| ReviewError::Malformed("no request.uid".into()))?;
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("admission.k8s.io/v1");
    let answer = |response: Value| json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response});
    let kind = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let operation = request
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(object) = request
        .get("object")
        .filter(|_| kind == "Pod" && operation == "CREATE")
    else {
        return Ok((
            answer(json!({"uid": uid, "allowed": true})),
            Decision::Skipped(format!("{operation} of a {kind} is not a pod creation")),
        ));
    };
    match inject::inject(object, namespace_annotations, settings, Mode::Admission) {
        Outcome::Skipped(why) => Ok((
            answer(json!({"uid": uid, "allowed": true})),
            Decision::Skipped(why),
        )),
        Outcome::Injected { pod, warnings } => {
            let patch = json_patch::diff(object, &pod);
            let patch =
                serde_json::to_vec(&patch).map_err(|e| ReviewError::Malformed(e.to_string()))?;
            let mut response = json!({
                "uid": uid,
                "allowed": true,
                "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(patch),
            });
            if !warnings.is_empty() {
                response["warnings"] = json!(warnings);
            }
            Ok((answer(response), Decision::Injected(warnings.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_api::inject::knobs::Knobs;

    fn settings() -> Settings {
        Settings {
            image: "img".into(),
            image_pull_policy: "IfNotPresent".into(),
            control_plane: "cp:8086".into(),
            version: "0.1.0".into(),
            identity_audience: "strait.dev/identity".into(),
            identity_addr: "cp:8080".into(),
            trust_domain: "cluster.local".into(),
            trust_roots: String::new(),
            control_plane_identity: String::new(),
            defaults: Knobs::default(),
        }
    }

    fn review(kind: &str, op: &str, annotations: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": kind},
                "operation": op, "namespace": "shop",
                "object": {"metadata": {"generateName": "web-", "annotations": annotations},
                           "spec": {"containers": [{"name": "app", "image": "app"}]}}
            }
        })
    }

    fn patched(resp: &Value, original: &Value) -> Value {
        let patch = base64::engine::general_purpose::STANDARD
            .decode(resp["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
        let mut pod = original["request"]["object"].clone();
        json_patch::patch(&mut pod, &patch).unwrap();
        pod
    }

    #[test]
    fn answers() {
        let enabled: BTreeMap<_, _> =
            [("strait.dev/inject".to_owned(), "enabled".to_owned())].into();
        let none = BTreeMap::new();
        // A pod in an enabled namespace: the patch gives the injected pod.
        let r = review("Pod", "CREATE", json!({}));
        let (resp, d) = respond(&r, &enabled, &settings()).unwrap();
        assert_eq!(d, Decision::Injected(0));
        assert_eq!(resp["response"]["uid"], "u-1");
        assert_eq!(resp["response"]["allowed"], true);
        assert_eq!(resp["response"]["patchType"], "JSONPatch");
        let pod = patched(&resp, &r);
        assert!(strait_api::inject::is_injected(&pod));
        match inject::inject(
            &r["request"]["object"],
            &enabled,
            &settings(),
            Mode::Admission,
        ) {
            Outcome::Injected { pod: want, .. } => assert_eq!(pod, want),
            o => panic!("{o:?}"),
        }
        // Not enabled: allowed, no patch.
        let (resp, d) = respond(&r, &none, &settings()).unwrap();
        assert!(matches!(d, Decision::Skipped(_)));
        assert!(resp["response"].get("patch").is_none());
        assert_eq!(resp["response"]["allowed"], true);
        // A bad knob: injected with a warning that names it.
        let r = review(
            "Pod",
            "CREATE",
            json!({"config.strait.dev/skip-inbound-ports": "abc"}),
        );
        let (resp, d) = respond(&r, &enabled, &settings()).unwrap();
        assert_eq!(d, Decision::Injected(1));
        assert!(
            resp["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .contains("config.strait.dev/skip-inbound-ports")
        );
        // Other kinds and operations pass untouched.
        for (kind, op) in [("Pod", "UPDATE"), ("Deployment", "CREATE")] {
            let (resp, _) = respond(&review(kind, op, json!({})), &enabled, &settings()).unwrap();
            assert!(resp["response"].get("patch").is_none(), "{kind} {op}");
        }
        // Malformed reviews are errors, not panics.
        assert!(respond(&json!({}), &enabled, &settings()).is_err());
        assert!(respond(&json!({"request": {}}), &enabled, &settings()).is_err());
    }
}
