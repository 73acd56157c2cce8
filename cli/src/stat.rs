//! `strait stat`: live golden metrics from one proxy's admin `/metrics`.
//!
//! Every interval the proxy is scraped, and the difference between two
//! scrapes gives, per service / route / backend: requests per second, success
//! rate (non-5xx), p50/p95/p99 latency (from histogram bucket deltas, as
//! PromQL's `histogram_quantile` does), retries sent per second and endpoints
//! ejected now. [`rows`] is the pure part.

use crate::prom::{self, Sample};
use std::collections::BTreeMap;
use std::time::Duration;

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `namespace/name:port`.
    pub service: String,
    /// Route label.
    pub route: String,
    /// Backend label.
    pub backend: String,
    /// Requests per second.
    pub rps: f64,
    /// Share of non-5xx responses (None without requests).
    pub success: Option<f64>,
    /// Latency quantiles in seconds.
    pub p50: Option<f64>,
    /// p95.
    pub p95: Option<f64>,
    /// p99.
    pub p99: Option<f64>,
    /// Retries sent per second to the backend.
    pub retries: f64,
    /// Endpoints ejected now.
    pub ejected: f64,
}

type Key = (String, String, String);

fn key(s: &Sample) -> Key {
    (
        s.label("service").to_string(),
        s.label("route").to_string(),
        s.label("backend").to_string(),
    )
}

/// Rows from two scrapes `secs` apart. Pure.
pub fn rows(prev: &[Sample], cur: &[Sample], secs: f64) -> Vec<Row> {
    let outbound = |s: &&Sample| s.label("direction") == "outbound";
    let mut totals: BTreeMap<Key, (f64, f64)> = BTreeMap::new();
    let before: BTreeMap<(Key, String), f64> = prev
        .iter()
        .filter(|s| s.name == "strait_requests_total")
        .filter(outbound)
        .map(|s| ((key(s), s.label("code").to_string()), s.value))
        .collect();
    for s in cur
        .iter()
        .filter(|s| s.name == "strait_requests_total")
        .filter(outbound)
    {
        let delta = s.value
            - before
                .get(&(key(s), s.label("code").to_string()))
                .copied()
                .unwrap_or(0.0);
        let e = totals.entry(key(s)).or_default();
        e.0 += delta;
        if !s.label("code").starts_with('5') {
            e.1 += delta;
        }
    }
    let backend_value =
        |samples: &[Sample], name: &str, backend: &str, extra: Option<(&str, &str)>| -> f64 {
            samples
                .iter()
                .filter(|s| {
                    s.name == name
                        && s.label("backend") == backend
                        && extra.is_none_or(|(k, v)| s.label(k) == v)
                })
                .map(|s| s.value)
                .sum()
        };
    totals
        .into_iter()
        .map(|((service, route, backend), (n, ok))| {
            let filter = [
                ("direction", "outbound"),
                ("service", service.as_str()),
                ("route", route.as_str()),
                ("backend", backend.as_str()),
            ];
            let now = prom::buckets(cur, "strait_request_duration_seconds", &filter);
            let then = prom::buckets(prev, "strait_request_duration_seconds", &filter);
            let delta: Vec<(f64, f64)> = now
                .iter()
                .map(|(le, c)| {
                    (
                        *le,
                        c - then
                            .iter()
                            .find(|(l, _)| l == le)
                            .map(|(_, c)| *c)
                            .unwrap_or(0.0),
                    )
                })
                .collect();
            let retries = backend_value(cur, "strait_retry_attempts_total", &backend, None)
                - backend_value(prev, "strait_retry_attempts_total", &backend, None);
            Row {
                rps: n / secs,
                success: (n > 0.0).then(|| ok / n),
                p50: prom::quantile(0.5, &delta),
                p95: prom::quantile(0.95, &delta),
                p99: prom::quantile(0.99, &delta),
                retries: retries / secs,
                ejected: backend_value(
                    cur,
                    "strait_endpoints",
                    &backend,
                    Some(("state", "ejected")),
                ),
                service,
                route,
                backend,
            }
        })
        .collect()
}

/// Formats rows as a table.
pub fn render(rows: &[Row]) -> String {
    let ms = |v: Option<f64>| {
        v.map(|s| format!("{:.1}ms", s * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = format!(
        "{:<24} {:<22} {:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}\n",
        "SERVICE", "ROUTE", "BACKEND", "RPS", "SUCCESS", "P50", "P95", "P99", "RETRY/s", "EJECTED"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24} {:<22} {:<24} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>7}\n",
            r.service,
            r.route,
            r.backend,
            r.rps,
            r.success
                .map(|s| format!("{:.2}%", s * 100.0))
                .unwrap_or_else(|| "-".into()),
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            r.retries,
            r.ejected
        ));
    }
    if rows.is_empty() {
        out.push_str("(no outbound requests yet)\n");
    }
    out
}

/// Scrapes `admin` every `interval` and prints the table; `once` prints one
/// table after one interval and returns.
pub async fn run(admin: &str, interval: Duration, once: bool) -> anyhow::Result<()> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let url: http::Uri = format!("http://{admin}/metrics").parse()?;
    let scrape = || async {
        use http_body_util::BodyExt;
        let resp = client.get(url.clone()).await.map_err(|e| {
            anyhow::anyhow!("scraping {url}: {e} (is the proxy's admin port {admin}?)")
        })?;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>(prom::parse(&String::from_utf8_lossy(&body)))
    };
    let mut prev = scrape().await?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let started = std::time::Instant::now();
        tokio::time::sleep(interval).await;
        let cur = scrape().await?;
        let table = render(&rows(&prev, &cur, started.elapsed().as_secs_f64()));
        if tty && !once {
            // Clear the screen and redraw, like `top`.
            print!("\x1b[2J\x1b[H{admin}, every {interval:?}\n\n{table}");
        } else {
            print!("{table}");
        }
        if once {
            return Ok(());
        }
        prev = cur;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREV: &str = r#"strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="200"} 100
strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="503"} 0
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.01"} 100
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.1"} 100
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="+Inf"} 100
strait_retry_attempts_total{backend="s/v1:80"} 5
"#;
    const CUR: &str = r#"strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="200"} 280
strait_requests_total{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",code="503"} 20
strait_requests_total{direction="inbound",service="",route="",backend="127.0.0.1:8080",code="200"} 999
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.01"} 200
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="0.1"} 300
strait_request_duration_seconds_bucket{direction="outbound",service="s/web:80",route="web/ab",backend="s/v1:80",le="+Inf"} 300
strait_retry_attempts_total{backend="s/v1:80"} 25
strait_endpoints{backend="s/v1:80",state="ejected"} 1
strait_endpoints{backend="s/v1:80",state="ready"} 2
"#;

    #[test]
    fn rows_from_two_scrapes() {
        let rows = rows(&prom::parse(PREV), &prom::parse(CUR), 2.0);
        assert_eq!(rows.len(), 1, "inbound traffic is not listed: {rows:?}");
        let r = &rows[0];
        assert_eq!(
            (r.service.as_str(), r.route.as_str(), r.backend.as_str()),
            ("s/web:80", "web/ab", "s/v1:80")
        );
        assert_eq!(r.rps, 100.0, "200 requests in 2 s");
        assert_eq!(r.success, Some(0.9));
        // 100 of the 200 new observations ≤ 10 ms, the rest ≤ 100 ms.
        assert_eq!(r.p50, Some(0.01));
        assert!((r.p99.unwrap() - 0.0982).abs() < 1e-9, "{:?}", r.p99);
        assert_eq!(r.retries, 10.0);
        assert_eq!(r.ejected, 1.0);
        let table = render(&rows);
        assert!(
            table.contains("90.00%") && table.contains("100.0"),
            "{table}"
        );
    }

    #[test]
    fn quiet_proxy() {
        assert!(
            rows(&prom::parse(CUR), &prom::parse(CUR), 1.0)
                .iter()
                .all(|r| r.rps == 0.0 && r.success.is_none())
        );
        assert!(render(&[]).contains("no outbound requests"));
    }
}
