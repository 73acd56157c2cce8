//! `TrafficRoute`: ordered routing rules for one Service (and port).

use super::RouteStatus;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strait_api::manifest as api;

/// `TrafficRoute.spec`: exactly [`strait_api::manifest::TrafficRouteSpec`]
/// (same fields, same schema), wrapped because kube's `CustomResource`
/// derive has to sit on a type of this crate. It dereferences to the shared
/// spec and converts to and from it.
// Several `printcolumn(type_ = "string", ..)` read as duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(transparent)]
#[schemars(
    description = "The Service (and port) whose traffic this routes, and the rules, first match wins."
)]
#[kube(
    group = "strait.dev",
    version = "v1alpha1",
    kind = "TrafficRoute",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq",
    shortname = "tr",
    category = "strait",
    doc = "Routes the traffic sent to one Service (port): ordered rules with matches, weighted backends, sticky splits, timeouts, retries, fault injection, header changes and mirroring.",
    printcolumn(
        name = "Parent",
        type_ = "string",
        json_path = ".spec.parentRef.name",
        description = "The Service whose traffic this routes"
    ),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#,
        description = "Whether the controller accepted the route"
    ),
    printcolumn(
        name = "ResolvedRefs",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="ResolvedRefs")].status"#,
        description = "Whether every referenced Service and port exists"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct TrafficRouteSpec(pub api::TrafficRouteSpec);

impl std::ops::Deref for TrafficRouteSpec {
    type Target = api::TrafficRouteSpec;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<api::TrafficRouteSpec> for TrafficRouteSpec {
    fn from(s: api::TrafficRouteSpec) -> Self {
        TrafficRouteSpec(s)
    }
}

impl From<TrafficRouteSpec> for api::TrafficRouteSpec {
    fn from(s: TrafficRouteSpec) -> Self {
        s.0
    }
}

impl From<&TrafficRoute> for api::TrafficRoute {
    /// The object as the shared translation (`strait_api::translate`) reads it.
    fn from(o: &TrafficRoute) -> Self {
        api::TrafficRoute {
            metadata: super::api_meta(&o.metadata),
            spec: o.spec.0.clone(),
        }
    }
}
