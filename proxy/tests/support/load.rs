//! A bounded constant-rate load generator: requests are started on a fixed
//! schedule whatever the latency (open loop, so a slow proxy cannot hide by
//! slowing the client), and results are grouped in 250 ms windows.

use super::HttpClient;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub struct LoadResult {
    pub sent: usize,
    pub ok: usize,
    pub statuses: BTreeMap<u16, usize>,
    pub errors: usize,
    /// (ok, total) per 250 ms window, by send time.
    pub windows: Vec<(usize, usize)>,
}

impl LoadResult {
    pub fn success_rate(&self) -> f64 {
        self.ok as f64 / self.sent.max(1) as f64
    }

    /// The per-window table a person reads: time, requests, success rate.
    pub fn table(&self) -> String {
        let mut out = String::from("| t (s) | requests | success |\n|---|---|---|\n");
        for (i, (ok, total)) in self.windows.iter().enumerate() {
            out.push_str(&format!(
                "| {:.2} | {total} | {:.1} % |\n",
                i as f64 * WINDOW.as_secs_f64(),
                100.0 * *ok as f64 / (*total).max(1) as f64
            ));
        }
        out
    }
}

/// Sends `rps` requests per second for `duration`; a request is a success
/// when it gets a 200. `at` is called with the elapsed time on every tick so
/// a test can act mid-run (kill an endpoint, …).
pub async fn constant_rate(
    client: &HttpClient,
    host: &str,
    path: &str,
    rps: u32,
    duration: Duration,
    mut at: impl FnMut(Duration),
) -> LoadResult {
    let period = Duration::from_secs(1) / rps;
    let mut tick = tokio::time::interval(period);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    while start.elapsed() < duration {
        tick.tick().await;
        let elapsed = start.elapsed();
        at(elapsed);
        let (c, host, path) = (client.clone(), host.to_string(), path.to_string());
        let window = (elapsed.as_millis() / WINDOW.as_millis()) as usize;
        tasks.spawn(async move { (window, c.get(&host, &path, &[]).await.map(|r| r.status)) });
    }
    let mut result = LoadResult::default();
    while let Some(joined) = tasks.join_next().await {
        let (window, outcome) = joined.unwrap();
        if result.windows.len() <= window {
            result.windows.resize(window + 1, (0, 0));
        }
        result.sent += 1;
        result.windows[window].1 += 1;
        match outcome {
            Ok(status) => {
                *result.statuses.entry(status).or_default() += 1;
                if status == 200 {
                    result.ok += 1;
                    result.windows[window].0 += 1;
                }
            }
            Err(_) => result.errors += 1,
        }
    }
    result
}
