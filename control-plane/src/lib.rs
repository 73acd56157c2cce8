//! Strait's control plane.
//!
//! * [`crd`] holds the Kubernetes custom resources `TrafficRoute` and
//!   `DestinationPolicy` (`strait.dev/v1alpha1`): their kube-rs types, their
//!   status conditions and the generated `CustomResourceDefinition`s that
//!   `crdgen` writes to `crds/`.
//!
//! The controller, config server, injector and identity service will live
//! here too (`strait-controller`).

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod crd;
