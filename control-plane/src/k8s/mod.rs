//! The Kubernetes source of the control plane.
//!
//! * [`watch`]: kube-rs watchers for Services, EndpointSlices, TrafficRoutes,
//!   DestinationPolicies, HTTPRoutes and GRPCRoutes feed the config store;
//! * [`pods`]: a kube-rs watcher for Pods feeds the pod index that proxy
//!   identities are checked against;
//! * [`conditions`]: the pure function from the store's verdict on an object
//!   to its `Accepted` / `ResolvedRefs` conditions;
//! * [`leader`]: a Lease, so that of several replicas (all of which serve
//!   config streams) only one writes status;
//! * [`status`]: the writer that patches conditions when they change;
//! * [`gateway_status`]: the same for HTTPRoutes and GRPCRoutes, in
//!   GAMMA's shape (`status.parents[]`);
//! * [`owner`]: the Lease and the webhook's Secret belong to the
//!   controller's Deployment, so an uninstall removes them;
//! * [`secret`]: the Secrets it writes, PEM under named keys.

pub mod conditions;
pub mod gateway_status;
pub mod leader;
pub mod owner;
pub mod pods;
pub mod secret;
pub mod status;
pub mod watch;
