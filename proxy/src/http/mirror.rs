//! Mirroring: copies of a share of a rule's requests sent to a shadow
//! backend, fire-and-forget; the answers are read and dropped. A fixed number of mirrored requests may be in flight;
//! beyond that, copies are dropped (and counted) rather than queued, so a slow
//! shadow can never slow or pile up behind the primary traffic.

use super::Body;
use crate::metrics::{Metrics, MirrorOutcome};
use crate::state::{Applied, Backend};
use http::Request;
use http_body_util::BodyExt;
use rand::Rng;
use std::sync::Arc;
use strait_api::model::Mirror;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Mirrored requests in flight at most, per proxy.
pub const MAX_IN_FLIGHT: usize = 64;

/// The bound on mirrored requests in flight.
#[derive(Clone)]
pub struct Limiter(Arc<Semaphore>);

impl Default for Limiter {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_IN_FLIGHT)))
    }
}

impl Limiter {
    /// A permit if a mirror may start now.
    pub fn try_start(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// Copies a request (built by `request`, only when this one is sampled)
/// to the rule's mirror backend, fire-and-forget.
pub fn start(
    limiter: &Limiter,
    m: &Metrics,
    applied: &Applied,
    route: &str,
    mirror: &Mirror,
    request: impl FnOnce() -> Request<Body>,
) {
    let count = |kind| m.mirrored(route, kind);
    if rand::rng().random_range(0..100) >= mirror.percent {
        return;
    }
    let (Some(target), Some(permit)) = (
        applied.backends.get(&mirror.backend).cloned(),
        limiter.try_start(),
    ) else {
        count(MirrorOutcome::Dropped);
        return;
    };
    count(MirrorOutcome::Sent);
    let req = request();
    let failed = m.mirror_counter(route, MirrorOutcome::Failed);
    let target: Arc<Backend> = target;
    tokio::spawn(async move {
        let Ok(endpoint) = target.balancer.pick().cloned() else {
            failed.inc();
            return;
        };
        let _in_flight = endpoint.start();
        match target.forwarder.forward(req, &endpoint.peer()).await {
            // Read the response to its end so the connection is reused.
            Ok(resp) => drop(resp.into_body().collect().await),
            Err(_) => {
                failed.inc();
            }
        }
        drop(permit);
    });
}
