//! Mirroring: copies of a share of requests sent to a shadow backend,
//! fire-and-forget. A fixed number of mirrored requests may be in flight;
//! beyond that, copies are dropped (and counted) rather than queued, so a slow
//! shadow can never slow or pile up behind the primary traffic.

use std::sync::Arc;
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
