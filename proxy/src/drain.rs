//! Graceful shutdown.
//!
//! On SIGTERM or `/shutdown` the proxy stops accepting, tells every open
//! connection to finish (HTTP connections close after their in-flight
//! requests; opaque TCP streams run on), and exits once all are done or the
//! grace period ends. Connections hold a [`ConnGuard`]; the watcher waits for
//! the count to reach zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The shutdown signal and the open-connection count.
#[derive(Clone)]
pub struct Drain {
    signal: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

/// Held by each open connection.
pub struct ConnGuard {
    open: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    /// A drain that has not started.
    pub fn new() -> Self {
        Self {
            signal: watch::channel(false).0,
            open: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
        }
    }

    /// Registers a connection.
    pub fn guard(&self) -> ConnGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnGuard {
            open: self.open.clone(),
            idle: self.idle.clone(),
        }
    }

    /// Starts draining.
    pub fn start(&self) {
        self.signal.send_replace(true);
    }

    /// Resolves when draining starts.
    pub async fn signaled(&self) {
        let mut rx = self.signal.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` holds it; treat it as a signal anyway.
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Waits until every connection closed or `grace` passed; returns the
    /// number still open.
    pub async fn wait_idle(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            let open = self.open.load(Ordering::Acquire);
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open.load(Ordering::Acquire);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_connections_then_returns() {
        let d = Drain::new();
        let g = d.guard();
        let d2 = d.clone();
        let t = tokio::spawn(async move {
            d2.signaled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(g);
        });
        d.start();
        assert_eq!(d.wait_idle(Duration::from_secs(5)).await, 0);
        t.await.expect("task");
        let _stuck = d.guard();
        assert_eq!(d.wait_idle(Duration::from_millis(20)).await, 1);
    }
}
