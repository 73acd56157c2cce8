//! Graceful shutdown: SIGTERM and `/shutdown` stop accepting, let in-flight
//! requests finish, and exit 0.

mod support;

use std::time::{Duration, Instant};
use support::upstream::Upstream;
use support::{HttpClient, ProxyProc, admin_get, services_yaml};

async fn wait_exit(proxy: &mut ProxyProc, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = proxy.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "proxy did not exit:\n{}",
            proxy.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let up = Upstream::start("v1").await;
    let mut proxy = ProxyProc::start(&[("m.yaml", services_yaml(&[("web", &[up.port()])]))]).await;
    let c = HttpClient::new(proxy.outbound);
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get("web", "/delay/700", &[]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.sigterm();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: not ready, and no new connections are accepted.
    assert_eq!(admin_get(proxy.admin, "/ready").await.map(|r| r.0), Ok(503));
    assert!(
        tokio::net::TcpStream::connect(proxy.outbound)
            .await
            .is_err(),
        "listener still accepting while draining"
    );
    for r in in_flight {
        let r = r.await.unwrap().expect("in-flight request completes");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let status = wait_exit(&mut proxy, Duration::from_secs(5)).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        proxy.logs().contains("drained; exiting"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_bounds_the_drain() {
    let up = Upstream::start("v1").await;
    let mut proxy = ProxyProc::start_with(
        &[("m.yaml", services_yaml(&[("web", &[up.port()])]))],
        &["--drain-timeout", "300ms"],
    )
    .await;
    let c = HttpClient::new(proxy.outbound);
    let stuck = tokio::spawn(async move { c.get("web", "/delay/10000", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.sigterm();
    let status = wait_exit(&mut proxy, Duration::from_secs(5)).await;
    assert!(status.success());
    assert!(
        proxy.logs().contains("grace period over"),
        "{}",
        proxy.logs()
    );
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck request was cut off at the grace period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_shutdown_is_loopback_post_only() {
    let up = Upstream::start("v1").await;
    let mut proxy = ProxyProc::start(&[("m.yaml", services_yaml(&[("web", &[up.port()])]))]).await;
    assert_eq!(admin_get(proxy.admin, "/shutdown").await.unwrap().0, 405);
    assert_eq!(admin_get(proxy.admin, "/live").await.unwrap().0, 200);
    assert_eq!(admin_get(proxy.admin, "/nope").await.unwrap().0, 404);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://{}/shutdown", proxy.admin),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "draining\n");
    let status = wait_exit(&mut proxy, Duration::from_secs(5)).await;
    assert!(status.success());
}
