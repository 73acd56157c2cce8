//! Balancing a backend's endpoints.
//!
//! The default is power-of-two-choices over peak-EWMA latency (as Linkerd
//! does): draw two distinct endpoints at random and take the one with the
//! lower cost, where cost = peak-EWMA round-trip time × (1 + requests in
//! flight). Peak EWMA jumps straight up to a slow sample and decays towards fast
//! ones, so a slow endpoint is avoided at once and tried again gradually.
//! `RoundRobin` and `LeastRequest` are the alternatives. The choosing is
//! pure ([`p2c`]); the statistics are atomics updated as responses finish.

use rand::Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use strait_api::model::{Endpoint, LoadBalancer, Policy};

/// How fast peak EWMA forgets a slow sample.
const DECAY: Duration = Duration::from_secs(10);
/// The RTT assumed for an endpoint with no samples yet.
const DEFAULT_RTT_NS: f64 = 1_000_000.0;

/// Live statistics of one endpoint. Shared across config updates, so an
/// endpoint keeps its history when unrelated config changes.
#[derive(Debug)]
pub struct EndpointStats {
    /// Address.
    pub addr: SocketAddr,
    in_flight: AtomicUsize,
    /// f64 bits of the peak-EWMA RTT in nanoseconds.
    ewma_ns: AtomicU64,
    /// Nanoseconds since `epoch` of the last sample.
    last_ns: AtomicU64,
    epoch: Instant,
}

impl EndpointStats {
    /// New statistics for an endpoint.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            in_flight: AtomicUsize::new(0),
            ewma_ns: AtomicU64::new(DEFAULT_RTT_NS.to_bits()),
            last_ns: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
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

    fn observe(&self, rtt: Duration) {
        let now = self.epoch.elapsed().as_nanos() as u64;
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
        self.stats.observe(self.started.elapsed());
    }
}

/// The balancer of one backend.
#[derive(Debug)]
pub struct Balancer {
    kind: LoadBalancer,
    endpoints: Vec<Arc<EndpointStats>>,
    next: AtomicUsize,
}

impl Balancer {
    /// Builds a balancer, reusing statistics of endpoints already known.
    pub fn new(
        policy: &Policy,
        endpoints: &[Endpoint],
        known: &dyn Fn(SocketAddr) -> Option<Arc<EndpointStats>>,
    ) -> Self {
        Self {
            kind: policy.load_balancer,
            endpoints: endpoints
                .iter()
                .map(|e| known(e.addr).unwrap_or_else(|| Arc::new(EndpointStats::new(e.addr))))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints' statistics.
    pub fn endpoints(&self) -> &[Arc<EndpointStats>] {
        &self.endpoints
    }

    /// Picks an endpoint; `None` when there are none.
    pub fn pick(&self) -> Option<&Arc<EndpointStats>> {
        let n = self.endpoints.len();
        match (n, self.kind) {
            (0, _) => None,
            (1, _) => self.endpoints.first(),
            (_, LoadBalancer::RoundRobin) => self
                .endpoints
                .get(self.next.fetch_add(1, Ordering::Relaxed) % n),
            (_, kind) => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let b = rng.random_range(0..n - 1);
                let i = p2c(n, a, b, |i| match kind {
                    LoadBalancer::LeastRequest => self.endpoints[i].in_flight() as f64,
                    _ => self.endpoints[i].cost(),
                });
                self.endpoints.get(i)
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
mod tests {
    use super::*;

    #[test]
    fn p2c_table() {
        let costs = [5.0, 1.0, 3.0];
        // (a, b, want)
        for (a, b, want) in [
            (0, 0, 1),
            (0, 1, 2),
            (1, 0, 1),
            (1, 1, 1),
            (2, 0, 2),
            (2, 1, 1),
        ] {
            assert_eq!(p2c(3, a, b, |i| costs[i]), want, "a={a} b={b}");
        }
        // Ties keep the first draw.
        assert_eq!(p2c(2, 1, 0, |_| 1.0), 1);
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        assert_eq!(peak_ewma(1.0, 200.0, Duration::ZERO), 200.0);
        assert_eq!(peak_ewma(200.0, 1.0, Duration::ZERO), 200.0);
        let after_decay = peak_ewma(200.0, 1.0, DECAY);
        assert!(
            (after_decay - (200.0 / std::f64::consts::E + 1.0 * (1.0 - 1.0 / std::f64::consts::E)))
                .abs()
                < 1e-9
        );
        assert!(peak_ewma(200.0, 1.0, DECAY * 10) < 1.01);
    }

    fn eps(n: u16) -> Vec<Endpoint> {
        (0..n)
            .map(|i| Endpoint {
                addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i)),
                pod: None,
            })
            .collect()
    }

    #[test]
    fn round_robin_cycles() {
        let policy = Policy {
            load_balancer: LoadBalancer::RoundRobin,
            ..Policy::default()
        };
        let b = Balancer::new(&policy, &eps(3), &|_| None);
        let picks: Vec<u16> = (0..6)
            .map(|_| b.pick().expect("endpoint").addr.port())
            .collect();
        assert_eq!(picks, [1000, 1001, 1002, 1000, 1001, 1002]);
        assert!(Balancer::new(&policy, &[], &|_| None).pick().is_none());
    }

    #[test]
    fn ewma_avoids_a_slow_endpoint() {
        let b = Balancer::new(&Policy::default(), &eps(3), &|_| None);
        // Endpoint 0 has been slow (200 ms), the others fast (1 ms).
        b.endpoints()[0].observe(Duration::from_millis(200));
        for e in &b.endpoints()[1..] {
            e.observe(Duration::from_millis(1));
        }
        let slow = (0..3000)
            .filter(|_| b.pick().expect("endpoint").addr.port() == 1000)
            .count();
        assert_eq!(
            slow, 0,
            "P2C never prefers the slow endpoint when two fast ones exist"
        );
    }

    #[test]
    fn stats_survive_a_rebuild_and_in_flight_is_tracked() {
        let first = Balancer::new(&Policy::default(), &eps(2), &|_| None);
        let guard = first.endpoints()[0].start();
        let again = Balancer::new(&Policy::default(), &eps(3), &|addr| {
            first.endpoints().iter().find(|e| e.addr == addr).cloned()
        });
        assert_eq!(again.endpoints()[0].in_flight(), 1);
        drop(guard);
        assert_eq!(again.endpoints()[0].in_flight(), 0);
        assert_eq!(again.endpoints()[2].in_flight(), 0);
    }
}
