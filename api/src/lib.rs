//! The contract shared by every Strait component.
//!
//! * [`manifest`] holds light, serde-only mirrors of the Kubernetes and Strait
//!   objects the mesh reads (`Service`, `EndpointSlice`, `TrafficRoute`,
//!   `DestinationPolicy`) and the YAML loader that reports file and line.
//! * [`translate`] turns a set of manifests into a validated [`model::Snapshot`]:
//!   the one value a proxy needs. It is a pure function, so the proxy's local
//!   mode and the control plane share it.
//! * [`route`], [`split`] and [`authority`] are the pure decisions of the
//!   request path: which rule matches, which backend a request goes to, and
//!   which Service an explicit request names.
//!
//! Nothing here does IO; everything is table-tested.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]
// The one crate whose types the others build on, and whose doc comments on
// the Strait manifest types become the CRDs' field descriptions (what
// `kubectl explain` prints): every public item says what it is. The other
// crates document what a reader needs, not every field.
#![warn(missing_docs)]

pub mod authority;
pub mod bounds;
pub mod collector;
pub mod duration;
pub mod exposition;
pub mod identity;
pub mod inject;
pub mod manifest;
pub mod model;
pub mod parts;
pub mod process;
pub mod rewrite;
pub mod route;
pub mod split;
pub mod translate;

pub use model::Snapshot;

pub mod codec;

/// The identity service's wire types and gRPC service (generated from
/// `proto/strait/identity/v1/identity.proto`).
pub mod identity_wire {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("strait.identity.v1");
}

/// The config stream's wire types and gRPC service (generated from
/// `proto/strait/config/v1/config.proto`).
pub mod wire {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("strait.config.v1");
}
