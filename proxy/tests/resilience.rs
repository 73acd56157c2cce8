//! Resilience under chaos, through the real proxy with real upstreams the
//! test controls (issue 4's proof). Each test asserts the figure the issue
//! names; the figures measured are in docs/resilience.md.

mod support;

use std::time::Duration;
use support::load::constant_rate;
use support::upstream::Upstream;
use support::{HttpClient, ProxyProc, route_yaml, services_yaml};

fn policy(target: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {{name: {target}, namespace: default}}\nspec:\n  targetRef: {{name: {target}}}\n{spec}"
    )
}

async fn upstreams(n: usize) -> Vec<Upstream> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(Upstream::start(&format!("u{i}")).await);
    }
    v
}

fn ports(us: &[Upstream]) -> Vec<u16> {
    us.iter().map(Upstream::port).collect()
}

fn hits(us: &[Upstream]) -> usize {
    us.iter().map(Upstream::hits).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_killed_mid_run_keeps_success_above_99_9_percent() {
    let us = upstreams(3).await;
    let manifests = format!(
        "{}{}{}",
        services_yaml(&[("web", &[]), ("web-pods", &ports(&us))]),
        route_yaml(
            "    - name: all\n      backends: [{name: web-pods}]\n      retry: {attempts: 3, on: [connect-failure, reset, gateway-error], backoff: 5ms}\n"
        ),
        policy(
            "web-pods",
            "  circuitBreaker: {consecutiveFailures: 3, baseEjectionTime: 10s}\n"
        )
    );
    let proxy = ProxyProc::start(&[("m.yaml", manifests)]).await;
    let client = HttpClient::new(proxy.outbound);
    let mut killed = false;
    let result = constant_rate(&client, "web", "/", 1000, Duration::from_secs(4), |t| {
        if !killed && t >= Duration::from_millis(1500) {
            us[1].kill();
            killed = true;
        }
    })
    .await;
    eprintln!(
        "success over time while u1 dies at 1.5 s:\n{}",
        result.table()
    );
    eprintln!(
        "statuses {:?}, transport errors {}",
        result.statuses, result.errors
    );
    let rate = result.success_rate();
    assert!(
        rate >= 0.999,
        "success {:.4} < 99.9 % ({} of {})",
        rate,
        result.ok,
        result.sent
    );
    assert!(
        proxy
            .metric("strait_ejections_total{backend=\"default/web-pods:80\"}")
            .await
            >= 1.0,
        "the dead endpoint was ejected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_failing_endpoint_is_ejected_and_upstream_load_stays_bounded() {
    let us = upstreams(3).await;
    us[0].set_fail_pct(50);
    let manifests = format!(
        "{}{}{}",
        services_yaml(&[("web", &[]), ("web-pods", &ports(&us))]),
        route_yaml(
            "    - name: all\n      backends: [{name: web-pods}]\n      retry: {attempts: 2, on: [gateway-error], backoff: 1ms}\n"
        ),
        policy(
            "web-pods",
            "  circuitBreaker:\n    consecutiveFailures: 3\n    baseEjectionTime: 30s\n    successRate: {threshold: \"0.8\", window: 10s, minRequests: 20}\n"
        )
    );
    let proxy = ProxyProc::start(&[("m.yaml", manifests)]).await;
    let client = HttpClient::new(proxy.outbound);
    let result = constant_rate(&client, "web", "/", 1000, Duration::from_secs(3), |_| {}).await;
    let upstream_load = hits(&us) as f64 / result.sent as f64;
    eprintln!(
        "sent {}, ok {}, upstream load {:.3}×, bad endpoint got {} of {} hits",
        result.sent,
        result.ok,
        upstream_load,
        us[0].hits(),
        hits(&us)
    );
    assert!(
        proxy
            .metric("strait_ejections_total{backend=\"default/web-pods:80\"}")
            .await
            >= 1.0
    );
    assert!(
        upstream_load <= 1.2,
        "upstream load {upstream_load:.3}× the client load"
    );
    let bad_share = us[0].hits() as f64 / hits(&us) as f64;
    assert!(
        bad_share < 0.05,
        "the failing endpoint still got {:.1} % of the traffic",
        bad_share * 100.0
    );
    assert!(
        result.success_rate() >= 0.999,
        "success {:.4}",
        result.success_rate()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_failing_stops_retries_at_the_budget() {
    let us = upstreams(2).await;
    for u in &us {
        u.set_fail_pct(100);
    }
    let manifests = format!(
        "{}{}",
        services_yaml(&[("web", &[]), ("web-pods", &ports(&us))]),
        route_yaml(
            "    - name: all\n      backends: [{name: web-pods}]\n      retry: {attempts: 3, on: [gateway-error], backoff: 1ms}\n"
        ),
    );
    let proxy = ProxyProc::start(&[("m.yaml", manifests)]).await;
    let client = HttpClient::new(proxy.outbound);
    let result = constant_rate(&client, "web", "/", 500, Duration::from_secs(3), |_| {}).await;
    let sent = result.sent as f64;
    let amplification = hits(&us) as f64 / sent;
    // Default budget: ratio 0.2, 10 retries/s over a 10 s window (100).
    let bound = 1.2 + 100.0 / sent;
    eprintln!(
        "sent {}, upstream hits {}, amplification {amplification:.3} (bound {bound:.3})",
        result.sent,
        hits(&us)
    );
    assert!(
        amplification <= bound,
        "amplification {amplification:.3} > {bound:.3}"
    );
    assert_eq!(
        result.statuses.get(&503).copied(),
        Some(result.sent),
        "the failure is returned, not hidden"
    );
    let budget = proxy.metric("strait_retries_total{service=\"default/web:80\",route=\"web/all\",backend=\"default/web-pods:80\",outcome=\"budget\"}").await;
    assert!(budget > 0.0, "requests were refused a retry by the budget");
    assert_eq!(
        support::admin_get(proxy.admin, "/ready").await.unwrap().0,
        200,
        "the proxy stays responsive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_gets_a_small_share() {
    let us = upstreams(3).await;
    us[2].set_delay_ms(200);
    let proxy = ProxyProc::start(&[("m.yaml", services_yaml(&[("web", &ports(&us))]))]).await;
    let client = HttpClient::new(proxy.outbound);
    // Closed loop: 8 clients for 3 s.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let end = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < end {
                assert_eq!(c.get("web", "/", &[]).await.unwrap().status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let share = us[2].hits() as f64 / hits(&us) as f64;
    eprintln!(
        "slow endpoint share {:.2} % of {} requests",
        share * 100.0,
        hits(&us)
    );
    assert!(
        share < 0.02,
        "the +200 ms endpoint got {:.1} %",
        share * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_and_large_bodies_are_not_retried_unless_allowed() {
    let u = Upstream::start("u").await;
    u.set_fail_pct(100);
    let rules = "    - name: strict\n      matches: [{path: {value: /strict}}]\n      backends: [{name: web-pods}]\n      retry: {attempts: 3, on: [5xx], backoff: 1ms}\n    - name: lax\n      backends: [{name: web-pods}]\n      retry: {attempts: 3, on: [5xx], backoff: 1ms, nonIdempotent: true}\n";
    let proxy = ProxyProc::start(&[(
        "m.yaml",
        format!(
            "{}{}",
            services_yaml(&[("web", &[]), ("web-pods", &[u.port()])]),
            route_yaml(rules)
        ),
    )])
    .await;
    let c = HttpClient::new(proxy.outbound);
    // (method, path, body size, upstream hits expected)
    let table: [(&str, &str, usize, usize); 5] = [
        ("GET", "/strict", 0, 3),
        ("POST", "/strict", 10, 1),
        ("POST", "/lax", 10, 3),
        ("PUT", "/strict", 1024, 3),
        ("PUT", "/strict", 1024 * 1024, 1),
    ];
    for (method, path, size, want) in table {
        let before = u.hits();
        let r = c
            .send(method, "web", path, &[], vec![b'x'; size].into())
            .await
            .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(u.hits() - before, want, "{method} {path} with {size} bytes");
    }
    let m = proxy.metrics().await;
    let get = |outcome: &str| {
        support::metric_value(
            &m,
            &format!(
                "strait_retries_total{{service=\"default/web:80\",route=\"web/strict\",backend=\"default/web-pods:80\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(get("body-too-large"), 1.0, "{m}");
    assert_eq!(get("not-retryable"), 1.0);
    assert_eq!(get("exhausted"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_shed_with_503_and_recover() {
    let u = Upstream::start("u").await;
    u.set_delay_ms(400);
    let manifests = format!(
        "{}{}",
        services_yaml(&[("web", &[u.port()])]),
        policy("web", "  limits: {maxRequests: 2, maxPendingRequests: 2}\n")
    );
    let proxy = ProxyProc::start(&[("m.yaml", manifests)]).await;
    let c = HttpClient::new(proxy.outbound);
    let burst: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get("web", "/", &[]).await.unwrap() })
        })
        .collect();
    let mut ok = 0;
    let mut shed = 0;
    for r in burst {
        let r = r.await.unwrap();
        match r.status {
            200 => ok += 1,
            503 => {
                assert_eq!(r.headers["strait-proxy-error"], "max-pending-requests");
                shed += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(
        (ok, shed),
        (4, 6),
        "2 in flight + 2 waiting served, the rest shed at once"
    );
    assert_eq!(proxy.metric("strait_shed_requests_total{backend=\"default/web:80\",reason=\"max-pending-requests\"}").await, 6.0);
    assert_eq!(
        c.get("web", "/", &[]).await.unwrap().status,
        200,
        "recovers once the burst is over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_percentages_hold_over_10k_requests() {
    let u = Upstream::start("u").await;
    let rules = "    - name: chaos\n      backends: [{name: web-pods}]\n      fault: {delay: {percent: 20, duration: 1ms}, abort: {percent: 10, status: 503}}\n";
    let proxy = ProxyProc::start(&[(
        "m.yaml",
        format!(
            "{}{}",
            services_yaml(&[("web", &[]), ("web-pods", &[u.port()])]),
            route_yaml(rules)
        ),
    )])
    .await;
    let c = HttpClient::new(proxy.outbound);
    let n = 10_000;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut aborted = 0;
            for _ in 0..n / 16 {
                let r = c.get("web", "/", &[]).await.unwrap();
                if r.status == 503 {
                    assert_eq!(r.headers["strait-proxy-error"], "fault-injected");
                    aborted += 1;
                }
            }
            aborted
        }));
    }
    let mut aborted = 0;
    for t in tasks {
        aborted += t.await.unwrap();
    }
    let sent = (n / 16 * 16) as f64;
    let abort_share = aborted as f64 / sent;
    let delay_share = proxy
        .metric("strait_faults_injected_total{route=\"web/chaos\",kind=\"delay\"}")
        .await
        / sent;
    eprintln!(
        "abort {:.2} %, delay {:.2} %",
        abort_share * 100.0,
        delay_share * 100.0
    );
    assert!(
        (abort_share - 0.10).abs() <= 0.02,
        "abort share {abort_share}"
    );
    assert!(
        (delay_share - 0.20).abs() <= 0.02,
        "delay share {delay_share}"
    );
    assert_eq!(
        u.hits() as f64,
        sent - aborted as f64,
        "aborted requests never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_copies_without_holding_the_primary() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    // The shadow holds every request for 3 s; the primary must not wait for it.
    shadow.set_delay_ms(3000);
    let rules = "    - name: shadowed\n      backends: [{name: web-pods}]\n      mirror: {name: web-shadow, percent: 100}\n";
    let manifests = format!(
        "{}{}",
        services_yaml(&[
            ("web", &[]),
            ("web-pods", &[primary.port()]),
            ("web-shadow", &[shadow.port()])
        ]),
        route_yaml(rules)
    );
    let proxy = ProxyProc::start(&[("m.yaml", manifests)]).await;
    let c = HttpClient::new(proxy.outbound);
    for i in 0..20 {
        let r = c
            .send(
                "POST",
                "web",
                &format!("/orders/{i}"),
                &[],
                "payload".into(),
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.upstream()), (200, "primary".to_string()));
    }
    // Every primary response came back while the shadow is still holding the copies.
    assert!(
        shadow.active() > 0,
        "mirrored copies are in flight at the shadow"
    );
    // Copies are fire-and-forget: the last may still be on its way.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while shadow.hits() < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(shadow.hits(), 20, "every request was copied");
    assert_eq!(
        proxy
            .metric("strait_mirrored_requests_total{route=\"web/shadowed\",kind=\"sent\"}")
            .await,
        20.0
    );
}
