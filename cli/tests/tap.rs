//! `strait tap` against a real proxy carrying real traffic (curl through
//! `strait-proxy` to a plain HTTP/1.1 upstream): the filtered requests and
//! nothing else; and a tap that stops reading loses lines, not requests.

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use strait_test_support::upstream::{keep_alive, local_proxy, web_service};
use strait_test_support::{free_port, rss_kib};

struct Proxy {
    child: Child,
    out: u16,
    admin: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local proxy with Service `web` in front of a keep-alive upstream.
fn proxy() -> Proxy {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_strait")).with_file_name("strait-proxy");
    let dir = tempfile::tempdir().unwrap();
    let up = keep_alive("ok");
    std::fs::write(dir.path().join("m.yaml"), web_service(up)).unwrap();
    let (out, admin) = (free_port(), free_port());
    // One worker: one allocator arena, so the memory bound below is tight.
    let child = local_proxy(&bin, dir.path(), out, admin, &["--workers", "1"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !curl(&[&format!("http://127.0.0.1:{admin}/ready")]).contains("200") {
        assert!(Instant::now() < deadline, "proxy not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proxy {
        child,
        out,
        admin,
        _dir: dir,
    }
}

/// curl with `args`, printing each response's status on its own line.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}\n",
            "-H",
            "Host: web",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `n` requests (keep-alive, 100 per curl) of `method` to `path`s ending
/// in a counter; how many answered 200.
fn load(p: &Proxy, method: &str, path: &str, n: usize) -> usize {
    let urls: Vec<String> = (0..n)
        .map(|i| format!("http://127.0.0.1:{}{path}{i}", p.out))
        .collect();
    let mut ok = 0;
    for chunk in urls.chunks(100) {
        let mut args: Vec<&str> = vec!["-X", method];
        for u in chunk {
            args.extend(["-o", "/dev/null", u.as_str()]);
        }
        ok += curl(&args).lines().filter(|l| *l == "200").count();
    }
    ok
}

fn metric(p: &Proxy, name: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{}/metrics", p.admin)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(name) && l.contains("direction=\"outbound\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn tap_shows_the_filtered_requests_and_nothing_else() {
    let p = proxy();
    let mut tap = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args([
            "tap",
            "--admin",
            &format!("127.0.0.1:{}", p.admin),
            "--method",
            "GET",
            "--path",
            "/api/",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let stdout = tap.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    // The tap is open once a probe shows up in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    'probe: loop {
        assert!(Instant::now() < deadline, "the tap never showed a request");
        load(&p, "GET", "/api/probe-", 1);
        while let Ok(v) = rx.recv_timeout(Duration::from_millis(200)) {
            if v["path"].as_str().unwrap_or("").starts_with("/api/probe-") {
                break 'probe;
            }
        }
    }
    assert_eq!(load(&p, "GET", "/other/", 20), 20);
    assert_eq!(load(&p, "POST", "/api/post-", 10), 10);
    assert_eq!(load(&p, "GET", "/api/seen-", 30), 30);
    let mut seen = Vec::new();
    while let Ok(v) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.push(v);
    }
    let _ = tap.kill();
    let _ = tap.wait();
    let paths: Vec<&str> = seen
        .iter()
        .map(|v| v["path"].as_str().unwrap_or(""))
        .collect();
    assert!(
        seen.iter()
            .all(|v| v["method"] == "GET" && v["path"].as_str().unwrap_or("").starts_with("/api/")),
        "only GET /api/… passes the filter: {paths:?}"
    );
    let real: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|v| v["path"].as_str().unwrap_or("").starts_with("/api/seen-"))
        .collect();
    assert_eq!(real.len(), 30, "{paths:?}");
    for v in real {
        assert_eq!(v["direction"], "outbound");
        assert_eq!(v["authority"], "web");
        assert_eq!(v["route"], "default");
        assert_eq!(v["backend"], "default/web:80");
        assert_eq!(v["status"], 200);
        assert!(v["latency_ms"].as_f64().is_some_and(|l| l > 0.0), "{v}");
        assert!(v.get("tls_peer").is_none(), "plaintext: {v}");
    }
}

#[test]
fn a_tap_that_stops_reading_loses_lines_not_requests() {
    let p = proxy();
    // A warm-up without a tap: connections, buffers and metric series
    // exist before the memory baseline.
    assert_eq!(load(&p, "GET", "/warm-", 2000), 2000);
    let count = |p: &Proxy| metric(p, "strait_request_duration_seconds_count");
    let sum = |p: &Proxy| metric(p, "strait_request_duration_seconds_sum");
    // Long paths make long lines: more than the kernel's socket buffers
    // (up to 4 MiB) hold, so the tap's own backlog fills. The same
    // requests without a tap give the latency to compare with.
    let long = format!("/{}-", "x".repeat(2000));
    let (c0, s0) = (count(&p), sum(&p));
    assert_eq!(load(&p, "GET", &long, 3000), 3000);
    let (c1, s1) = (count(&p), sum(&p));
    let untapped_mean = (s1 - s0) / (c1 - c0);
    let rss_before = rss_kib(p.child.id());

    // A tap that reads nothing (with a small receive buffer: less for the
    // kernel to soak up for it).
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", p.admin).parse().unwrap();
    sock.connect(&admin.into()).unwrap();
    let mut stalled: std::net::TcpStream = sock.into();
    stalled
        .write_all(b"GET /tap HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    assert_eq!(
        load(&p, "GET", &long, 8000),
        8000,
        "every request answered while the tap was stalled"
    );
    let (c2, s2) = (count(&p), sum(&p));
    let stalled_mean = (s2 - s1) / (c2 - c1);
    let rss_after = rss_kib(p.child.id());
    // The bounds: the tap's backlog (1,024 events) and hyper's write
    // buffer, well under 4 MiB; requests do not wait for the tap (a
    // request that did would wait forever: the tap never reads).
    assert!(
        rss_after < rss_before + 4096,
        "RSS grew from {rss_before} to {rss_after} KiB with a stalled tap"
    );
    assert!(
        stalled_mean < untapped_mean + 0.002,
        "mean latency {:.3} ms with the stalled tap against {:.3} ms without",
        stalled_mean * 1e3,
        untapped_mean * 1e3
    );

    // Reading again: the tap says how many lines it lost.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let lost = loop {
        match stalled.read(&mut buf) {
            Ok(0) | Err(_) => break false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.windows(8).any(|w| w == b"{\"lost\":") {
            break true;
        }
    };
    assert!(
        lost,
        "no `lost` line in {} bytes of the stalled tap's stream",
        got.len()
    );
}
