//! The request path in-process, on tokio's paused clock: a whole proxy
//! (`strait_proxy::app::start`) and real upstream servers on loopback in the
//! test's own runtime. Timeouts, backoffs and idle timers run on virtual
//! time, so what depends on time (a per-try timeout, an idle upstream
//! connection) is decided the same way on every run, and takes no real
//! time. The end-to-end tests beside this file run the real binary.
//!
//! Covered: the attempt loop (retries and their limit, per-try timeouts, the
//! retry budget, ejection by the circuit breaker), the HTTP/1.1 upstream
//! pool (reuse, idle expiry), and how the pipeline maps each failure to a
//! status and a `strait-proxy-error` value.

mod support;

use std::time::Duration;
use strait_proxy::app::{self, Running};
use strait_proxy::config::{Config, Source};
use support::upstream::{Step, Upstream};
use support::{HttpClient, route_yaml, services_yaml};
use tokio::time::Instant;

/// A proxy on ephemeral loopback ports reading `manifests`, ready.
async fn proxy(manifests: String) -> (Running, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("m.yaml"), manifests).unwrap();
    let mut config = Config::new(Source::Local(vec![tmp.path().to_path_buf()]));
    let any = "127.0.0.1:0".parse().unwrap();
    (config.outbound_addr, config.inbound_addr, config.admin_addr) = (any, any, any);
    let running = app::start(config).await.unwrap();
    while !running.proxy.state.is_ready() {
        assert_eq!(
            metric(&running, "strait_config_reloads_total{result=\"failure\"}"),
            0.0,
            "the proxy refused the test's manifests (a typo in the test?)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (running, tmp)
}

/// The sum of a metric's series whose labels include every `name="value"`
/// in `selector` (written `metric{a="x",b="y"}` or just `metric`).
fn metric(running: &Running, selector: &str) -> f64 {
    let (name, labels) = selector.split_once('{').unwrap_or((selector, "}"));
    let labels: Vec<&str> = labels
        .trim_end_matches('}')
        .split(',')
        .filter(|l| !l.is_empty())
        .collect();
    running
        .proxy
        .state
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn policy(spec: &str) -> String {
    format!(
        "---\napiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {{name: web, namespace: default}}\nspec:\n  targetRef: {{name: web}}\n{spec}"
    )
}

fn step(delay_ms: u64, status: u16) -> Step {
    Step { delay_ms, status }
}

const RETRY_3: &str = "    - name: all\n      backends: [{name: web}]\n      retry: {attempts: 3, on: [5xx], backoff: 10ms}\n";

#[tokio::test(start_paused = true)]
async fn retries_until_success_and_no_further_than_the_rule_allows() {
    let up = Upstream::start("a").await;
    let (p, _tmp) = proxy(services_yaml(&[("web", &[up.port()])]) + &route_yaml(RETRY_3)).await;
    let client = HttpClient::new(p.outbound);

    // Two failures, then success: the client sees only the success.
    up.script(&[step(0, 503), step(0, 503)]);
    let r = client.get("web", "/", &[]).await.unwrap();
    assert_eq!((r.status, up.hits()), (200, 3));
    assert_eq!(metric(&p, "strait_retries_total{outcome=\"success\"}"), 1.0);
    assert_eq!(metric(&p, "strait_retry_attempts_total"), 2.0);

    // Failing for ever: three attempts, not four, and the last answer.
    up.script(&[step(0, 503); 5]);
    let r = client.get("web", "/", &[]).await.unwrap();
    assert_eq!((r.status, up.hits()), (503, 6), "{}", r.body);
    assert_eq!(
        metric(&p, "strait_retries_total{outcome=\"exhausted\"}"),
        1.0
    );

    // A POST is not retried (not idempotent, the rule does not say so).
    up.script(&[step(0, 503)]);
    let r = client
        .send("POST", "web", "/", &[], "x".into())
        .await
        .unwrap();
    assert_eq!((r.status, up.hits()), (503, 7));
    assert_eq!(
        metric(&p, "strait_retries_total{outcome=\"not-retryable\"}"),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_per_try_timeout_cuts_a_slow_attempt_and_the_retry_answers() {
    let up = Upstream::start("a").await;
    let rules = "    - name: all\n      backends: [{name: web}]\n      retry: {attempts: 2, on: [gateway-error], perTryTimeout: 1s, backoff: 10ms}\n";
    let (p, _tmp) = proxy(services_yaml(&[("web", &[up.port()])]) + &route_yaml(rules)).await;
    let client = HttpClient::new(p.outbound);
    up.script(&[step(60_000, 200)]);
    let started = Instant::now();
    let r = client.get("web", "/", &[]).await.unwrap();
    let took = started.elapsed();
    assert_eq!((r.status, up.hits()), (200, 2), "{}", r.body);
    // Virtual time: the first try was given up at its 1 s, not awaited for
    // its 60 s.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // Both tries slow: 504 with the proxy's reason, after two timeouts.
    up.script(&[step(60_000, 200), step(60_000, 200)]);
    let started = Instant::now();
    let r = client.get("web", "/", &[]).await.unwrap();
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.headers["strait-proxy-error"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_bounds_retries() {
    let up = Upstream::start("a").await;
    up.set_fail_pct(100);
    // No ratio, one retry a second over 10 s: 10 retries in all.
    let budget = policy("  retryBudget: {ratio: \"0\", minPerSecond: 1, window: 10s}\n");
    let (p, _tmp) =
        proxy(services_yaml(&[("web", &[up.port()])]) + &route_yaml(RETRY_3) + &budget).await;
    let client = HttpClient::new(p.outbound);
    for _ in 0..20 {
        let r = client.get("web", "/", &[]).await.unwrap();
        assert_eq!(r.status, 503);
    }
    // 5 requests used 2 retries each; 15 found the budget spent.
    assert_eq!(up.hits(), 20 + 10);
    assert_eq!(metric(&p, "strait_retries_total{outcome=\"budget\"}"), 15.0);
    assert_eq!(
        metric(&p, "strait_retries_total{outcome=\"exhausted\"}"),
        5.0
    );
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_eject_an_endpoint_until_its_time_is_up() {
    let bad = Upstream::start("bad").await;
    let good = Upstream::start("good").await;
    bad.set_fail_pct(100);
    // Round robin, so both endpoints are tried from the start (peak-EWMA
    // would keep to the one that answered first).
    let breaker = policy(
        "  loadBalancer: RoundRobin\n  circuitBreaker: {consecutiveFailures: 3, baseEjectionTime: 30s}\n",
    );
    let (p, _tmp) = proxy(services_yaml(&[("web", &[bad.port(), good.port()])]) + &breaker).await;
    let client = HttpClient::new(p.outbound);
    let mut ok = 0;
    for _ in 0..40 {
        ok += (client.get("web", "/", &[]).await.unwrap().status == 200) as usize;
    }
    // Exactly three failures reached the client, then the bad one was out.
    assert_eq!((bad.hits(), ok), (3, 37));
    assert_eq!(metric(&p, "strait_ejections_total"), 1.0);
    assert_eq!(metric(&p, "strait_endpoints{state=\"ejected\"}"), 1.0);
    // After its ejection time, one request probes it again.
    tokio::time::sleep(Duration::from_secs(40)).await;
    for _ in 0..20 {
        client.get("web", "/", &[]).await.unwrap();
    }
    assert_eq!(bad.hits(), 4, "one probe after the ejection time");
}

#[tokio::test(start_paused = true)]
async fn upstream_connections_are_reused_until_idle() {
    let up = Upstream::start("a").await;
    let (p, _tmp) = proxy(services_yaml(&[("web", &[up.port()])])).await;
    let client = HttpClient::new(p.outbound);
    for _ in 0..20 {
        assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    }
    assert_eq!(up.conns(), 1, "one kept-alive connection for 20 requests");
    // Still within the pool's idle timeout (90 s): reused.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    assert_eq!(up.conns(), 1);
    // Idle past it (closed between one and one and a half idle timeouts,
    // by a sweep every half timeout): the next request opens a new one.
    tokio::time::sleep(Duration::from_secs(140)).await;
    assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    assert_eq!(up.conns(), 2);
}

/// Each failure the pipeline meets, and what the client gets for it.
#[tokio::test(start_paused = true)]
async fn failures_map_to_a_status_and_a_reason() {
    let up = Upstream::start("a").await;
    let closed = strait_test_support::free_port();
    let rules = "    - name: slow\n      matches: [{path: {value: /delay}}]\n      backends: [{name: web}]\n      timeout: 2s\n    - name: aborted\n      matches: [{path: {value: /abort}}]\n      backends: [{name: web}]\n      fault: {abort: {status: 418, percent: 100}}\n    - name: all\n      backends: [{name: web}]\n";
    let manifests = services_yaml(&[("web", &[up.port()]), ("dead", &[closed]), ("empty", &[])])
        + &route_yaml(rules);
    let (p, _tmp) = proxy(manifests).await;
    let client = HttpClient::new(p.outbound);
    let cases: &[(&str, &str, u16, &str)] = &[
        ("web", "/", 200, ""),
        ("web", "/delay/5000", 504, "timeout"),
        ("web", "/abort", 418, "fault-injected"),
        ("web", "/reset", 502, "upstream-reset"),
        ("dead", "/", 502, "connect-failed"),
        ("empty", "/", 503, "no-endpoints"),
        ("nowhere", "/", 404, "unknown-service"),
    ];
    for (host, path, status, reason) in cases {
        let r = client.get(host, path, &[]).await.unwrap();
        let got = r
            .headers
            .get("strait-proxy-error")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert_eq!(
            (r.status, got.as_str()),
            (*status, *reason),
            "{host}{path}: {}",
            r.body
        );
    }
    p.drain().await;
}
