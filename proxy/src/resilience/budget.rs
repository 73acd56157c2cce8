//! The retry budget: retries can never multiply load.
//!
//! Per backend and per proxy, over a sliding window (default 10 s, in ten
//! slots): retries allowed = max(minPerSecond × window, ratio × requests).
//! Every first attempt deposits a request; every retry must withdraw. When
//! the budget is spent the failure goes back to the client at once. This is
//! the Linkerd model (ServiceProfile retry budgets), and what keeps a fleet
//! of proxies from turning one slow backend into a retry storm.

use std::sync::Mutex;
use strait_api::model::RetryBudget as Config;

const SLOTS: u64 = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    epoch: u64,
    requests: u64,
    retries: u64,
}

/// The window's counters. Pure given the time.
#[derive(Debug)]
pub struct Window {
    cfg: Config,
    slot_ms: u64,
    slots: [Slot; SLOTS as usize],
}

impl Window {
    /// An empty window.
    pub fn new(cfg: &Config) -> Self {
        let window_ms = (cfg.window.as_millis() as u64).max(SLOTS);
        Self {
            cfg: cfg.clone(),
            slot_ms: window_ms / SLOTS,
            slots: [Slot::default(); SLOTS as usize],
        }
    }

    fn slot(&mut self, now_ms: u64) -> &mut Slot {
        let epoch = now_ms / self.slot_ms;
        let s = &mut self.slots[(epoch % SLOTS) as usize];
        if s.epoch != epoch {
            *s = Slot {
                epoch,
                ..Slot::default()
            };
        }
        s
    }

    fn totals(&self, now_ms: u64) -> (u64, u64) {
        let epoch = now_ms / self.slot_ms;
        self.slots
            .iter()
            .filter(|s| s.epoch + SLOTS > epoch && s.epoch <= epoch)
            .fold((0, 0), |(r, t), s| (r + s.requests, t + s.retries))
    }

    /// Retries allowed in the window now, minus those spent.
    pub fn remaining(&self, now_ms: u64) -> f64 {
        let (requests, retries) = self.totals(now_ms);
        let floor = f64::from(self.cfg.min_per_second) * self.cfg.window.as_secs_f64();
        floor.max(self.cfg.ratio * requests as f64) - retries as f64
    }

    /// Records a first attempt.
    pub fn deposit(&mut self, now_ms: u64) {
        self.slot(now_ms).requests += 1;
    }

    /// Takes one retry if the budget allows it.
    pub fn withdraw(&mut self, now_ms: u64) -> bool {
        if self.remaining(now_ms) >= 1.0 {
            self.slot(now_ms).retries += 1;
            true
        } else {
            false
        }
    }
}

/// A thread-safe budget (one per backend).
#[derive(Debug)]
pub struct Budget(Mutex<Window>);

impl Budget {
    /// A budget with this config.
    pub fn new(cfg: &Config) -> Self {
        Self(Mutex::new(Window::new(cfg)))
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        if let Ok(mut w) = self.0.lock() {
            w.deposit(super::now_ms());
        }
    }

    /// Takes one retry if allowed.
    pub fn withdraw(&self) -> bool {
        self.0
            .lock()
            .map(|mut w| w.withdraw(super::now_ms()))
            .unwrap_or(false)
    }

    /// Retries left now.
    pub fn remaining(&self) -> f64 {
        self.0
            .lock()
            .map(|w| w.remaining(super::now_ms()))
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(ratio: f64, min: u32, window_s: u64) -> Config {
        Config {
            ratio,
            min_per_second: min,
            window: Duration::from_secs(window_s),
        }
    }

    #[test]
    fn floor_then_ratio() {
        let mut w = Window::new(&cfg(0.2, 1, 10));
        // Floor: 1/s × 10 s = 10 retries with no traffic.
        assert_eq!(w.remaining(0), 10.0);
        for _ in 0..10 {
            assert!(w.withdraw(0));
        }
        assert!(!w.withdraw(0), "floor spent");
        // 100 requests allow 20 retries in total, 10 of them spent.
        for _ in 0..100 {
            w.deposit(0);
        }
        assert_eq!(w.remaining(0), 10.0);
        let extra = (0..100).filter(|_| w.withdraw(0)).count();
        assert_eq!(extra, 10);
    }

    #[test]
    fn amplification_is_bounded_under_total_failure() {
        // 1000 rps for 5 s, every request failing and wanting 2 retries.
        let mut w = Window::new(&cfg(0.2, 10, 10));
        let (mut sent, mut first) = (0u64, 0u64);
        for ms in 0..5000u64 {
            w.deposit(ms);
            first += 1;
            sent += 1;
            for _ in 0..2 {
                if w.withdraw(ms) {
                    sent += 1;
                }
            }
        }
        let amplification = sent as f64 / first as f64;
        // ≤ 1.2 plus the floor (10/s × 10 s = 100 over 5000 requests = 0.02).
        assert!(amplification <= 1.2 + 0.02 + 1e-9, "{amplification}");
        assert!(
            amplification > 1.19,
            "the budget is used, not starved: {amplification}"
        );
    }

    #[test]
    fn old_slots_expire() {
        let mut w = Window::new(&cfg(0.0, 1, 10));
        for _ in 0..10 {
            assert!(w.withdraw(0));
        }
        assert!(!w.withdraw(5_000));
        // After a full window the spent retries are forgotten.
        assert!(w.withdraw(10_000));
        assert_eq!(w.remaining(10_000), 9.0);
    }
}
