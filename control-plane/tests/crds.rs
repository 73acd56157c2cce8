//! The Strait CRDs against a real kube-apiserver (see `support`).
//!
//! One server for the whole binary; the scenarios run in order, each in its
//! own namespace, and every scenario runs even when an earlier one fails:
//!
//! * `examples`: `kubectl apply` of `crds/` and of every example, the printer
//!   columns of `kubectl get`, nothing pruned;
//! * `invalid`: one object per schema / CEL rule, each refused by the API
//!   server with the expected message;
//! * `round_trip`: create, watch, status patch and read back with kube-rs.

mod scenarios;
mod support;

use std::time::Instant;
use support::ApiServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_against_a_real_apiserver() {
    let server = std::sync::Arc::new(ApiServer::start());
    let t = Instant::now();
    scenarios::install_crds(&server);
    eprintln!("CRDs installed and established in {:.1?}", t.elapsed());

    let mut failed = Vec::new();
    for (name, scenario) in scenarios::ALL {
        let t = Instant::now();
        // Each scenario in its own task, so a panic fails the scenario (its
        // message is printed) and the next one still runs.
        let result = tokio::spawn(scenario(server.clone())).await;
        let outcome = if result.is_ok() { "ok" } else { "FAILED" };
        eprintln!("scenario {name}: {outcome} in {:.1?}", t.elapsed());
        if result.is_err() {
            failed.push(name);
        }
    }
    // Fails while the server is still up, so its logs are kept.
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}
