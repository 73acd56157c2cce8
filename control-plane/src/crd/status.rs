//! The status both CRDs share: Gateway-API style conditions.
//!
//! `Accepted` says whether the controller took the object (a valid spec that
//! reached the proxies); `ResolvedRefs` whether every referenced Service (and
//! port) exists. Each condition carries the `metadata.generation` it was
//! computed from (`observedGeneration`), so a reader can tell a stale status
//! from a current one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Condition type: the object is valid and in force.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: every referenced Service and port exists.
pub const RESOLVED_REFS: &str = "ResolvedRefs";

/// `.status` of a `TrafficRoute` or `DestinationPolicy`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// Current conditions, at most one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[schemars(length(max = 8))]
    pub conditions: Vec<Condition>,
}

impl RouteStatus {
    /// The condition of the given type, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
