//! `strait stat` against a real proxy carrying real traffic (curl through
//! `strait-proxy` to a plain HTTP/1.1 upstream), summed over two proxies.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strait_test_support::upstream::{keep_alive, local_proxy, web_service};

use strait_test_support::free_port;

fn wait_ready(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{admin}/ready")])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "proxy not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stat_shows_rps_success_and_latency_of_live_traffic() {
    let strait = env!("CARGO_BIN_EXE_strait");
    let proxy_bin = std::path::Path::new(strait).with_file_name("strait-proxy");
    let dir = tempfile::tempdir().unwrap();
    let up = keep_alive("ok");
    std::fs::write(dir.path().join("m.yaml"), web_service(up)).unwrap();
    let (out, admin) = (free_port(), free_port());
    let mut proxy = local_proxy(&proxy_bin, dir.path(), out, admin, &[]);
    wait_ready(admin);
    // Load for ~3 s from curl (keep-alive, many URLs in one process).
    let url = format!("http://127.0.0.1:{out}/");
    let load = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            let mut args = vec![
                "-s".to_string(),
                "-o".into(),
                "/dev/null".into(),
                "-H".into(),
                "Host: web".into(),
            ];
            for _ in 0..100 {
                args.push(url.clone());
            }
            Command::new("curl")
                .args(&args)
                .stdout(Stdio::null())
                .status()
                .unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // A second, idle proxy: stat sums over every proxy it is given.
    let idle_admin = free_port();
    let mut idle = local_proxy(&proxy_bin, dir.path(), free_port(), idle_admin, &[]);
    wait_ready(idle_admin);
    let stat = Command::new(strait)
        .args([
            "stat",
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--admin",
            &format!("127.0.0.1:{idle_admin}"),
            "--once",
            "--interval",
            "2s",
        ])
        .output()
        .unwrap();
    load.join().unwrap();
    for p in [&mut proxy, &mut idle] {
        let _ = p.kill();
        let _ = p.wait();
    }
    let text = String::from_utf8_lossy(&stat.stdout);
    assert!(
        stat.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&stat.stderr)
    );
    assert!(text.starts_with("2 proxies ("), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("outbound") && l.contains("default/web:80"))
        .unwrap_or_else(|| panic!("no row for the Service:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // DIR SERVICE ROUTE BACKEND RPS SUCCESS P50 P95 P99 RETRY/s EJECTED
    assert_eq!(cols[2], "default");
    let rps: f64 = cols[4].parse().unwrap();
    assert!(rps > 10.0, "rps {rps}:\n{text}");
    assert_eq!(cols[5], "100.00%");
    assert!(cols[6].ends_with("ms") && cols[8].ends_with("ms"), "{row}");
}

#[test]
fn stat_says_clearly_when_the_proxy_is_unreachable() {
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args([
            "stat",
            "--admin",
            &format!("127.0.0.1:{}", free_port()),
            "--once",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the proxy's admin port"), "{err}");
}
