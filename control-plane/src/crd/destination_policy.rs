//! `DestinationPolicy`: how traffic to one Service is balanced and protected.

use super::RouteStatus;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strait_api::manifest as api;

/// `DestinationPolicy.spec`: exactly [`strait_api::manifest::DestinationPolicySpec`]
/// (same fields, same schema), wrapped because kube's `CustomResource`
/// derive has to sit on a type of this crate. It dereferences to the shared
/// spec and converts to and from it.
// Several `printcolumn(type_ = "string", ..)` read as duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(transparent)]
#[schemars(
    description = "The Service this applies to, and how its traffic is balanced and protected."
)]
#[kube(
    group = "strait.dev",
    version = "v1alpha1",
    kind = "DestinationPolicy",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq",
    shortname = "dp",
    category = "strait",
    doc = "How traffic to one Service is balanced and protected: load balancer, circuit breaker, connection limits, retry budget, connect/idle timeouts and mTLS mode.",
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.targetRef.name",
        description = "The Service this policy applies to"
    ),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#,
        description = "Whether the controller accepted the policy"
    ),
    printcolumn(
        name = "ResolvedRefs",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="ResolvedRefs")].status"#,
        description = "Whether the target Service exists"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct DestinationPolicySpec(pub api::DestinationPolicySpec);

impl std::ops::Deref for DestinationPolicySpec {
    type Target = api::DestinationPolicySpec;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<api::DestinationPolicySpec> for DestinationPolicySpec {
    fn from(s: api::DestinationPolicySpec) -> Self {
        DestinationPolicySpec(s)
    }
}

impl From<DestinationPolicySpec> for api::DestinationPolicySpec {
    fn from(s: DestinationPolicySpec) -> Self {
        s.0
    }
}

impl From<&DestinationPolicy> for api::DestinationPolicy {
    /// The object as the shared translation (`strait_api::translate`) reads it.
    fn from(o: &DestinationPolicy) -> Self {
        api::DestinationPolicy {
            metadata: super::api_meta(&o.metadata),
            spec: o.spec.0.clone(),
        }
    }
}
