//! Balancing a backend's endpoints, with circuit breaking and load shedding.
//!
//! The default is power-of-two-choices over peak-EWMA latency (as Linkerd
//! does): draw two distinct endpoints at random and take the one with the
//! lower cost, where cost = peak-EWMA round-trip time × (1 + requests in
//! flight). Peak EWMA jumps straight up to a slow sample and decays towards
//! fast ones, so a slow endpoint is avoided at once and tried again
//! gradually. `RoundRobin` and `LeastRequest` are the alternatives.
//!
//! With a circuit breaker, ejected endpoints are skipped (a lock-free check
//! on the hot path); when an ejection ends, the next request is its probe.
//! No more than `maxEjectedPercent` of the endpoints are ejected, and if
//! every endpoint is ejected the least bad one (ejection ending soonest) is
//! still tried rather than failing closed. `limits` bound requests in flight
//! per endpoint (`maxConnections`: an HTTP/1 request holds one connection)
//! and per backend (`maxRequests`, with at most `maxPendingRequests`
//! waiting); beyond them the request is shed with a 503 at once.

use crate::resilience::breaker::{Breaker, Verdict};
use crate::resilience::budget::Budget;
use crate::resilience::now_ms;
use crate::resilience::retry::Outcome;
use rand::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strait_api::identity::SpiffeId;
use strait_api::model::{CircuitBreaker, Endpoint, Limits, LoadBalancer, Policy};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How fast peak EWMA forgets a slow sample.
const DECAY: Duration = Duration::from_secs(10);
/// The RTT assumed for an endpoint with no samples yet.
const DEFAULT_RTT_NS: f64 = 1_000_000.0;

/// Live statistics of one endpoint. Shared across config updates, so an
/// endpoint keeps its history (latency, ejection) when other config changes.
#[derive(Debug)]
pub struct EndpointStats {
    pub addr: SocketAddr,
    /// The identity the endpoint must prove over mesh TLS; `None`: it is
    /// reached in plaintext (no proxy there, or TLS disabled by policy).
    pub identity: Option<Arc<SpiffeId>>,
    /// `strait_mesh_requests_total` of requests to it in plaintext and
    /// over mesh TLS.
    counted: [prometheus_client::metrics::counter::Counter; 2],
    in_flight: AtomicUsize,
    /// f64 bits of the peak-EWMA RTT in nanoseconds.
    ewma_ns: AtomicU64,
    /// Nanoseconds since `epoch` of the last sample.
    last_ns: AtomicU64,
    epoch: Instant,
    /// 0 when in service, else the ms (on `now_ms`) its ejection ends.
    ejected_until: AtomicU64,
    /// A probe is in flight.
    probing: AtomicBool,
    breaker: Mutex<Breaker>,
}

impl EndpointStats {
    /// New statistics for an endpoint, reached over mesh TLS as
    /// `identity` when it has one.
    pub fn new(addr: SocketAddr, identity: Option<Arc<SpiffeId>>) -> Self {
        Self {
            addr,
            identity,
            counted: Default::default(),
            in_flight: AtomicUsize::new(0),
            ewma_ns: AtomicU64::new(DEFAULT_RTT_NS.to_bits()),
            last_ns: AtomicU64::new(0),
            epoch: Instant::now(),
            ejected_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// Counts requests to it in `strait_mesh_requests_total`: `plaintext`
    /// and `tls` are the counters of its two label sets.
    pub fn counting(
        mut self,
        plaintext: prometheus_client::metrics::counter::Counter,
        tls: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        self.counted = [plaintext, tls];
        self
    }

    /// A request was sent to it, over mesh TLS or not.
    pub fn count(&self, tls: bool) {
        self.counted[usize::from(tls)].inc();
    }

    /// The endpoint as the pools key it.
    pub fn peer(&self) -> crate::connect::Peer {
        crate::connect::Peer {
            addr: self.addr,
            identity: self.identity.clone(),
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the endpoint is ejected now.
    pub fn is_ejected(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0
    }

    /// The peak-EWMA cost used by P2C.
    pub fn cost(&self) -> f64 {
        f64::from_bits(self.ewma_ns.load(Ordering::Relaxed)) * (self.in_flight() as f64 + 1.0)
    }

    /// Marks a request as started; the guard records its latency when it
    /// finishes (or when dropped, e.g. on error or cancellation).
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: self.clone(),
            started: Instant::now(),
        }
    }

    /// Records a latency sample `rtt` taken at `at` (the caller's one clock
    /// read serves both the sample and the decay).
    fn observe(&self, at: Instant, rtt: Duration) {
        let now = at.duration_since(self.epoch).as_nanos() as u64;
        let rtt = rtt.as_nanos() as f64;
        let prev = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let last = self.last_ns.swap(now, Ordering::Relaxed);
        let next = peak_ewma(prev, rtt, Duration::from_nanos(now.saturating_sub(last)));
        // A lost update between racing responses only drops one sample.
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
    }
}

/// The next peak-EWMA value. Pure.
pub fn peak_ewma(prev: f64, sample: f64, elapsed: Duration) -> f64 {
    if sample > prev {
        return sample;
    }
    let w = (-elapsed.as_secs_f64() / DECAY.as_secs_f64()).exp();
    prev * w + sample * (1.0 - w)
}

/// A request in flight to an endpoint.
pub struct InFlight {
    stats: Arc<EndpointStats>,
    started: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        let at = Instant::now();
        self.stats.observe(at, at.duration_since(self.started));
    }
}

/// Why no endpoint was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickError {
    /// The backend has no endpoints.
    NoEndpoints,
    /// Every usable endpoint is at `maxConnections`.
    MaxConnections,
}

/// Why a request was shed (answered 503 by a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shed {
    /// `maxRequests` in flight and `maxPendingRequests` waiting.
    MaxPendingRequests,
    /// Every usable endpoint at `maxConnections` ([`PickError::MaxConnections`]).
    MaxConnections,
}

impl Shed {
    /// The `reason` label and `strait-proxy-error` value.
    pub fn label(self) -> &'static str {
        match self {
            Shed::MaxPendingRequests => "max-pending-requests",
            Shed::MaxConnections => "max-connections",
        }
    }
}

/// What changed when a result was recorded (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// The endpoint was ejected for this long.
    Ejected(Duration),
    /// The endpoint was restored after a good probe.
    Restored,
}

/// The balancer of one backend, with its breaker, limits and retry budget.
#[derive(Debug)]
pub struct Balancer {
    kind: LoadBalancer,
    endpoints: Vec<Arc<EndpointStats>>,
    next: AtomicUsize,
    breaker: Option<CircuitBreaker>,
    limits: Limits,
    requests: Option<Arc<Semaphore>>,
    pending: AtomicUsize,
    /// The backend's retry budget (kept across config updates).
    pub budget: Arc<Budget>,
}

impl Balancer {
    /// Builds a balancer over the statistics `stats` gives for each
    /// endpoint (those already known, so history survives a config
    /// change, or new ones), keeping the previous retry budget when its
    /// settings did not change.
    pub fn new(
        policy: &Policy,
        endpoints: &[Endpoint],
        stats: &dyn Fn(&Endpoint) -> Arc<EndpointStats>,
        budget: Option<Arc<Budget>>,
    ) -> Self {
        Self {
            kind: policy.load_balancer,
            endpoints: endpoints.iter().map(stats).collect(),
            next: AtomicUsize::new(0),
            breaker: policy.circuit_breaker.clone(),
            limits: policy.limits.clone(),
            requests: policy
                .limits
                .max_requests
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            pending: AtomicUsize::new(0),
            budget: budget.unwrap_or_else(|| Arc::new(Budget::new(&policy.retry_budget))),
        }
    }

    /// The endpoints' statistics.
    pub fn endpoints(&self) -> &[Arc<EndpointStats>] {
        &self.endpoints
    }

    /// Endpoints ejected now.
    pub fn ejected(&self) -> usize {
        self.endpoints.iter().filter(|e| e.is_ejected()).count()
    }

    /// Admits a request under `maxRequests`, waiting while fewer than
    /// `maxPendingRequests` wait; the permit is held until the response.
    pub async fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, Shed> {
        let Some(sem) = &self.requests else {
            return Ok(None);
        };
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        let max_pending = self.limits.max_pending_requests.unwrap_or(0) as usize;
        if self.pending.fetch_add(1, Ordering::AcqRel) >= max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Shed::MaxPendingRequests);
        }
        let permit = sem.clone().acquire_owned().await.ok();
        self.pending.fetch_sub(1, Ordering::AcqRel);
        Ok(permit)
    }

    fn usable(&self, e: &EndpointStats) -> bool {
        !e.is_ejected()
            && self
                .limits
                .max_connections
                .is_none_or(|m| e.in_flight() < m as usize)
    }

    /// Picks an endpoint.
    pub fn pick(&self) -> Result<&Arc<EndpointStats>, PickError> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(PickError::NoEndpoints);
        }
        let now = now_ms();
        if self.breaker.is_some() {
            // An endpoint whose ejection is over gets the next request as its probe.
            for e in &self.endpoints {
                let until = e.ejected_until.load(Ordering::Relaxed);
                if until != 0 && now >= until && !e.probing.swap(true, Ordering::AcqRel) {
                    return Ok(e);
                }
            }
        }
        let simple = self.breaker.is_none() && self.limits.max_connections.is_none();
        if simple {
            return Ok(self.choose(n, |i| i));
        }
        let candidates: Vec<usize> = (0..n)
            .filter(|&i| self.usable(&self.endpoints[i]))
            .collect();
        if !candidates.is_empty() {
            return Ok(self.choose(candidates.len(), |i| candidates[i]));
        }
        if self.endpoints.iter().any(|e| !e.is_ejected()) {
            return Err(PickError::MaxConnections);
        }
        // Every endpoint is ejected: try the one whose ejection ends first.
        self.endpoints
            .iter()
            .min_by_key(|e| e.ejected_until.load(Ordering::Relaxed))
            .ok_or(PickError::NoEndpoints)
    }

    /// Chooses among `n` candidates, `index` mapping to endpoint positions.
    fn choose(&self, n: usize, index: impl Fn(usize) -> usize) -> &Arc<EndpointStats> {
        let at = |i: usize| &self.endpoints[index(i)];
        if n == 1 {
            return at(0);
        }
        match self.kind {
            LoadBalancer::RoundRobin => at(self.next.fetch_add(1, Ordering::Relaxed) % n),
            kind => {
                let mut rng = rand::rng();
                let (a, b) = (rng.random_range(0..n), rng.random_range(0..n - 1));
                at(p2c(n, a, b, |i| match kind {
                    LoadBalancer::LeastRequest => at(i).in_flight() as f64,
                    _ => at(i).cost(),
                }))
            }
        }
    }

    /// Records an attempt's outcome for circuit breaking.
    pub fn record(&self, e: &EndpointStats, outcome: Outcome) -> Change {
        let Some(cfg) = &self.breaker else {
            return Change::None;
        };
        let now = now_ms();
        let Ok(mut b) = e.breaker.lock() else {
            return Change::None;
        };
        match b.on_result(cfg, outcome.is_failure(), now) {
            Verdict::Keep => Change::None,
            Verdict::Restore => {
                b.restore(now);
                e.ejected_until.store(0, Ordering::Relaxed);
                e.probing.store(false, Ordering::Release);
                Change::Restored
            }
            Verdict::Eject => {
                let already = b.is_ejected();
                let cap = self.endpoints.len() * cfg.max_ejected_percent as usize / 100;
                if !already && self.ejected() + 1 > cap {
                    b.forgive();
                    return Change::None;
                }
                let d = b.eject(cfg, now, rand::rng().random());
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                e.ejected_until
                    .store(now.saturating_add(ms), Ordering::Relaxed);
                e.probing.store(false, Ordering::Release);
                Change::Ejected(d)
            }
        }
    }
}

/// Power of two choices: `a` in `0..n`, `b` in `0..n-1` (shifted past `a`
/// so the two differ); returns the cheaper, `a` on a tie. Pure.
pub fn p2c(n: usize, a: usize, b: usize, cost: impl Fn(usize) -> f64) -> usize {
    debug_assert!(n >= 2 && a < n && b < n - 1);
    let b = if b >= a { b + 1 } else { b };
    if cost(b) < cost(a) { b } else { a }
}

#[cfg(test)]
mod tests;
