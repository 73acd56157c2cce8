//! The scenarios of `crds.rs`, in the order they run.

mod examples;
mod invalid;
mod observability;
mod round_trip;

use crate::support::ApiServer;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One scenario: gets the shared server, panics on failure.
pub type Scenario = fn(Arc<ApiServer>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every scenario, by name.
pub const ALL: &[(&str, Scenario)] = &[
    ("examples", |s| Box::pin(examples::run(s))),
    ("invalid", |s| Box::pin(invalid::run(s))),
    ("observability", |s| Box::pin(observability::run(s))),
    ("round_trip", |s| Box::pin(round_trip::run(s))),
];

/// Installs the CRDs (see [`ApiServer::install_crds`]).
pub fn install_crds(server: &ApiServer) {
    server.install_crds();
}

/// Creates a namespace with kubectl.
pub fn namespace(server: &ApiServer, name: &str) {
    server.kubectl(&["create", "namespace", name], None).ok();
}
