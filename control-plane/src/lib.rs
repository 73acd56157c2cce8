//! Strait's control plane.
//!
//! * [`crd`] holds the Kubernetes custom resources `TrafficRoute` and
//!   `DestinationPolicy` (`strait.dev/v1alpha1`): their kube-rs types, their
//!   status conditions and the generated `CustomResourceDefinition`s that
//!   `crdgen` writes to `crds/`.
//!
//! * [`config`] is the config server: a store of validated objects published
//!   as versioned deltas, and the gRPC stream every proxy holds open.
//!
//! * [`k8s`] is the Kubernetes source: watchers into the store, status
//!   conditions, and Lease-based leader election for writing them.
//!
//! * [`webhook`] is the injection webhook: the admission review, its own
//!   certificate and `caBundle`, and the HTTPS listener.
//!
//! * [`identity`] is the identity service: the mesh's trust anchor, and
//!   certificates for the ServiceAccount a proxy's token proves.
//!
//! * [`health`] serves `/live` and `/ready` on the controller's health port.
//!
//! * [`app`] builds and runs all of it from a typed [`app::Config`]; the
//!   binary, `strait-controller` (`src/main.rs`), only parses flags into one.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod app;
pub mod config;
pub mod crd;
pub mod health;
pub mod identity;
pub mod k8s;
pub mod metrics;
pub mod webhook;
