//! The Strait CRDs as kube-rs types, and the CRD manifests generated from
//! them.
//!
//! The nested spec types (rules, backends, retries, circuit breakers, …) are
//! the `strait-api` ones, shared with the proxy's local mode, so a field
//! exists in exactly one place. Their JSON schemas and CEL rules
//! (`x-kubernetes-validations`) are declared beside them in
//! `api/src/manifest/strait.rs` (feature `schema`). The top-level specs here
//! are thin wrappers of the `strait-api` ones, because kube's
//! `CustomResource` derive has to sit on a type of this crate.
//!
//! What a schema cannot check (regexes compile, referenced Services exist,
//! header names are legal) the controller checks and reports in the
//! `Accepted` and `ResolvedRefs` conditions of [`status::RouteStatus`].

mod destination_policy;
pub mod status;
mod traffic_route;

pub use destination_policy::{DestinationPolicy, DestinationPolicySpec};
pub use status::{Condition, RouteStatus};
pub use traffic_route::{TrafficRoute, TrafficRouteSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Strait CRD.
pub const GROUP: &str = "strait.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Every Strait CRD, in a stable order, as installed (see [`for_kubernetes`]).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        for_kubernetes(TrafficRoute::crd()),
        for_kubernetes(DestinationPolicy::crd()),
    ]
}

/// Tidies what schemars derives into what the API server should get:
///
/// * every `default` goes. schemars turns each `#[serde(default)]` into a
///   schema default (`[]`, `{}`), but those are Rust conveniences, not API
///   defaults: the API server would write them into every stored object, and
///   `backends: []` would even contradict `minItems: 1` (a CRD whose defaults
///   do not validate is refused). Readers fill in defaults when they
///   translate the spec.
/// * every `nullable: true` goes. Our `Option`s mean "absent", and kube-rs
///   serialises `None` as `null`. The API server prunes nulls from fields
///   that are not nullable, so objects are stored as if the field were left
///   out; a nullable field would keep the `null`, and fail any `enum`.
/// * integer formats Kubernetes does not know (`uint16`, `uint32`) go; the
///   server warns about each on every apply. `minimum`/`maximum` carry the
///   range.
pub fn for_kubernetes(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn tidy(schema: &mut serde_json::Value) {
        let Some(o) = schema.as_object_mut() else {
            return;
        };
        o.remove("default");
        o.remove("nullable");
        if o.get("format")
            .and_then(|f| f.as_str())
            .is_some_and(|f| f.starts_with("uint"))
        {
            o.remove("format");
        }
        for (key, sub) in o.iter_mut() {
            match (key.as_str(), sub) {
                // A map from field name to schema: its keys are not keywords.
                ("properties", serde_json::Value::Object(fields)) => {
                    fields.values_mut().for_each(tidy)
                }
                ("items" | "additionalProperties", sub) => tidy(sub),
                ("allOf" | "anyOf" | "oneOf", serde_json::Value::Array(subs)) => {
                    subs.iter_mut().for_each(tidy)
                }
                _ => {}
            }
        }
    }
    for version in &mut crd.spec.versions {
        let Some(schema) = version.schema.as_mut() else {
            continue;
        };
        let Some(props) = schema.open_api_v3_schema.as_mut() else {
            continue;
        };
        if let Ok(mut v) = serde_json::to_value(&*props) {
            tidy(&mut v);
            if let Ok(tidied) = serde_json::from_value(v) {
                *props = tidied;
            }
        }
    }
    crd
}

/// The file a CRD is written to under `crds/`: `<plural>.<group>.yaml`,
/// which is also the CRD's object name.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.{}.yaml", crd.spec.names.plural, crd.spec.group)
}

/// One CRD as the YAML committed under `crds/`: a header saying it is
/// generated, then the object.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    let body = serde_saphyr::to_string(crd)?;
    Ok(format!(
        "# Generated from control-plane/src/crd by `cargo run -p strait-control-plane --bin crdgen`.\n\
         # Do not edit: change the Rust types and regenerate.\n{body}"
    ))
}

/// The metadata the shared translation reads (name, namespace, labels,
/// annotations, generation).
fn api_meta(m: &kube::api::ObjectMeta) -> strait_api::manifest::ObjectMeta {
    strait_api::manifest::ObjectMeta {
        name: m.name.clone().unwrap_or_default(),
        namespace: m.namespace.clone(),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        generation: m.generation,
        creation_timestamp: m.creation_timestamp.as_ref().map(|t| t.0.to_string()),
    }
}

#[cfg(test)]
mod tests;
