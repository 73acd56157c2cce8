//! Config changes while serving: atomic swaps with zero failed requests, and
//! bad manifests refused with file and line while the last good config stays.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::upstream::Upstream;
use support::{HttpClient, ProxyProc, route_yaml, services_yaml};

fn split(v1: u32, v2: u32) -> String {
    route_yaml(&format!(
        "    - name: ab\n      backends: [{{name: web-v1, weight: {v1}}}, {{name: web-v2, weight: {v2}}}]\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let services = services_yaml(&[
        ("web", &[]),
        ("web-v1", &[v1.port()]),
        ("web-v2", &[v2.port()]),
    ]);
    let proxy =
        ProxyProc::start(&[("services.yaml", services), ("route.yaml", split(100, 0))]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let c = HttpClient::new(proxy.outbound);
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match c.get("web", "/delay/2", &[]).await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        eprintln!("failed: {} {}", r.status, r.body);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    // Ten updates while the load runs, ending on 0/100.
    for i in 0..10u32 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (a, b) = if i % 2 == 0 {
            (50, 50)
        } else {
            (100 - i * 10, i * 10)
        };
        let (a, b) = if i == 9 { (0, 100) } else { (a, b) };
        proxy.rewrite("route.yaml", &split(a, b)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 500, "only {ok} requests completed");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across 10 reloads",
        ok + failed
    );
    assert_eq!(proxy.config().await["version"], 11);
    // The last update is in force.
    let c = HttpClient::new(proxy.outbound);
    for _ in 0..50 {
        assert_eq!(c.get("web", "/", &[]).await.unwrap().upstream(), "v2");
    }
    assert_eq!(
        proxy
            .metric("strait_config_reloads_total{result=\"success\"}")
            .await,
        11.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifest_is_refused_and_last_good_config_stays() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let services = services_yaml(&[
        ("web", &[]),
        ("web-v1", &[v1.port()]),
        ("web-v2", &[v2.port()]),
    ]);
    let proxy =
        ProxyProc::start(&[("services.yaml", services), ("route.yaml", split(100, 0))]).await;
    let c = HttpClient::new(proxy.outbound);
    // (file content, what the log must say)
    let bad = [
        (
            split(100, 0).replace("weight: 100", "weigth: 100"),
            "route.yaml:8:",
        ),
        (split(0, 0), "at least one backend needs a weight above 0"),
        (
            route_yaml("    - backends: [{name: ghost}]\n"),
            "Service default/ghost not found",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: [oops\n".to_string(),
            "route.yaml:3:",
        ),
    ];
    for (i, (content, expect)) in bad.iter().enumerate() {
        let path = proxy.dir.join("route.yaml");
        std::fs::write(&path, content).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proxy
            .metric("strait_config_reloads_total{result=\"failure\"}")
            .await
            < (i + 1) as f64
        {
            assert!(
                std::time::Instant::now() < deadline,
                "refusal not counted:\n{}",
                proxy.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            proxy.logs().contains(expect),
            "log lacks {expect:?}:\n{}",
            proxy.logs()
        );
        assert_eq!(
            proxy.config().await["version"],
            1,
            "version unchanged after a bad update"
        );
        for _ in 0..10 {
            assert_eq!(
                c.get("web", "/", &[]).await.unwrap().upstream(),
                "v1",
                "old config still serves"
            );
        }
    }
    // Fixing the file applies it.
    std::fs::write(proxy.dir.join("route.yaml"), split(0, 1)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while proxy.config().await["version"] != 2 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(c.get("web", "/", &[]).await.unwrap().upstream(), "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_change_while_serving() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let proxy = ProxyProc::start(&[("m.yaml", services_yaml(&[("web", &[a.port()])]))]).await;
    let c = HttpClient::new(proxy.outbound);
    assert_eq!(c.get("web", "/", &[]).await.unwrap().upstream(), "a");
    proxy
        .rewrite("m.yaml", &services_yaml(&[("web", &[b.port()])]))
        .await;
    for _ in 0..20 {
        assert_eq!(c.get("web", "/", &[]).await.unwrap().upstream(), "b");
    }
    let cfg = proxy.config().await;
    assert_eq!(cfg["endpoints"], 1);
    assert!(cfg["source"].as_str().unwrap().starts_with("local:"));
}
