//! Bounded floods a hostile client on the pod network can send: each runs
//! against a real proxy, asserts what the proxy keeps (series, memory,
//! connections) stays bounded, and that ordinary requests keep succeeding
//! during and after it.

mod support;

use support::upstream::Upstream;
use support::{HttpClient, ProxyProc, metric_value, services_yaml};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn series(metrics: &str, name: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_made_up_hosts_add_no_series() {
    let up = Upstream::start("v1").await;
    let p = ProxyProc::start(&[("m.yaml", services_yaml(&[("web", &[up.port()])]))]).await;
    let client = HttpClient::new(p.outbound);
    // Warm up: the Service's own series and the allocator's arenas exist.
    for _ in 0..200 {
        assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    }
    let unknown = client.get("made-up-0", "/", &[]).await.unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let before_rss = rss_kib(p.child.id());
    let before = p.metrics().await;

    // 20,000 distinct Hosts naming no Service (each used to add ~18 series
    // for good), with a real request every 100.
    for i in 0..20_000 {
        let host = format!("made-up-{i}.nowhere");
        let r = client.get(&host, "/", &[]).await.unwrap();
        assert_eq!(r.status, 404);
        if i % 100 == 0 {
            assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
        }
    }

    let after = p.metrics().await;
    for name in [
        "strait_requests_total",
        "strait_request_duration_seconds_bucket",
    ] {
        assert_eq!(
            series(&after, name),
            series(&before, name),
            "{name}: made-up Hosts added series"
        );
    }
    assert!(
        metric_value(
            &after,
            r#"strait_requests_total{direction="outbound",service="unknown",route="",backend="",code="404"}"#
        ) >= 20_000.0,
        "made-up Hosts are counted under service=\"unknown\""
    );
    assert!(
        after.len() < before.len() + 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    let after_rss = rss_kib(p.child.id());
    assert!(
        after_rss < before_rss + 8 * 1024,
        "RSS grew from {before_rss} KiB to {after_rss} KiB"
    );
}
