//! The scenarios of `crds.rs`, in the order they run.

mod examples;
mod invalid;
mod round_trip;

use crate::support::{ApiServer, repo};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One scenario: gets the shared server, panics on failure.
pub type Scenario = fn(Arc<ApiServer>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every scenario, by name.
pub const ALL: &[(&str, Scenario)] = &[
    ("examples", |s| Box::pin(examples::run(s))),
    ("invalid", |s| Box::pin(invalid::run(s))),
    ("round_trip", |s| Box::pin(round_trip::run(s))),
];

/// `kubectl apply -f crds/`, then waits until both CRDs are established.
/// The apply must be clean: no warnings (an unknown `format` in a schema,
/// for example, makes the server warn on every apply).
pub fn install_crds(server: &ApiServer) {
    let crds = repo().join("crds");
    let apply = server.kubectl(&["apply", "-f", crds.to_str().unwrap()], None);
    let out = apply.ok();
    assert!(
        out.contains("trafficroutes.strait.dev created")
            && out.contains("destinationpolicies.strait.dev created"),
        "{out}"
    );
    assert_eq!(apply.stderr(), "", "warnings while applying the CRDs");
    server
        .kubectl(
            &[
                "wait",
                "--for=condition=established",
                "--timeout=60s",
                "crd/trafficroutes.strait.dev",
                "crd/destinationpolicies.strait.dev",
            ],
            None,
        )
        .ok();
}

/// Creates a namespace with kubectl.
pub fn namespace(server: &ApiServer, name: &str) {
    server.kubectl(&["create", "namespace", name], None).ok();
}
