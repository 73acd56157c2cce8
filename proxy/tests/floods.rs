//! Bounded floods a hostile client on the pod network can send: each runs
//! against a real proxy, asserts what the proxy keeps (series, memory,
//! connections) stays bounded, and that ordinary requests keep succeeding
//! during and after it.

mod support;

use strait_test_support::rss_kib;

use support::upstream::Upstream;
use support::{HttpClient, ProxyProc, metric_value, services_yaml};

/// One flood at a time: each opens hundreds of connections, whose
/// ephemeral ports could take the port another test's proxy is about to
/// bind, and RSS is measured best with nothing else running.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn series(metrics: &str, name: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_made_up_hosts_add_no_series() {
    let _serial = ONE_AT_A_TIME.lock().await;
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

/// A proxy whose client timeouts are short enough to watch.
async fn impatient_proxy() -> (ProxyProc, Upstream) {
    let up = Upstream::start("v1").await;
    let p = ProxyProc::start_with(
        &[("m.yaml", services_yaml(&[("web", &[up.port()])]))],
        &[
            "--client-idle-timeout",
            "2s",
            "--body-grace",
            "1s",
            "--body-min-rate",
            "500",
        ],
    )
    .await;
    (p, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_sent_a_byte_at_a_time_get_408_and_free_their_connections() {
    let _serial = ONE_AT_A_TIME.lock().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (p, _up) = impatient_proxy().await;
    let started = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(p.outbound).await.unwrap();
        s.write_all(b"POST /read-body HTTP/1.1\r\nHost: web\r\nContent-Length: 1000\r\n\r\n")
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            // One byte every 500 ms, until the proxy answers.
            let mut reply = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    n = s.read(&mut buf) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => reply.extend_from_slice(&buf[..n]),
                    },
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                        if s.write_all(b"x").await.is_err() {
                            break;
                        }
                    }
                }
            }
            String::from_utf8_lossy(&reply).into_owned()
        }));
    }
    // Ordinary requests keep succeeding meanwhile.
    let client = HttpClient::new(p.outbound);
    for _ in 0..20 {
        assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    }
    for s in slow {
        let reply = tokio::time::timeout(std::time::Duration::from_secs(10), s)
            .await
            .expect("the proxy ends a dribbling body")
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
        assert!(reply.contains("request-body-too-slow"), "{reply:?}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A whole body is forwarded as before.
    let body = bytes::Bytes::from(vec![b'y'; 4096]);
    let r = client
        .send("POST", "web", "/read-body", &[], body)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "4096"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_http2_connections_are_closed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (p, _up) = impatient_proxy().await;
    // 200 connections that finish the handshake and ask nothing, and 50
    // that start a HEADERS block and never end it (no END_HEADERS).
    let mut conns = Vec::new();
    for i in 0..250 {
        let mut s = tokio::net::TcpStream::connect(p.outbound).await.unwrap();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
        if i >= 200 {
            // HEADERS on stream 1, one HPACK byte (:method GET), no END_HEADERS.
            hello.extend_from_slice(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82]);
        }
        s.write_all(&hello).await.unwrap();
        conns.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
            started.elapsed()
        }));
    }
    let client = HttpClient::new(p.outbound);
    assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    for c in conns {
        let held = tokio::time::timeout(std::time::Duration::from_secs(15), c)
            .await
            .expect("the proxy closes an idle HTTP/2 connection")
            .unwrap();
        assert!(
            held >= std::time::Duration::from_millis(1500),
            "closed after {held:?}, before the idle timeout"
        );
    }
    assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_in_flight_is_not_idle() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // A response that takes longer than the idle timeout still arrives.
    let (p, _up) = impatient_proxy().await;
    let io = tokio::net::TcpStream::connect(p.outbound).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://web/delay/3500")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_hold_bounded_memory_until_the_send_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start("v1").await;
    let p = ProxyProc::start_with(
        &[("m.yaml", services_yaml(&[("web", &[up.port()])]))],
        &["--send-timeout", "4s"],
    )
    .await;
    let client = HttpClient::new(p.outbound);
    // Warm up the allocator with a few complete large responses.
    for _ in 0..4 {
        let r = client.get("web", "/bytes/4000000", &[]).await.unwrap();
        assert_eq!(r.body.len(), 4_000_000);
    }
    let before = rss_kib(p.child.id());
    // 200 clients ask for 10 MB each and never read a byte of it.
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(p.outbound).await.unwrap();
        s.write_all(b"GET /bytes/10000000 HTTP/1.1\r\nHost: web\r\n\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    // Let every response fill what it can.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = rss_kib(p.child.id());
    let per_conn = (after.saturating_sub(before)) / 200;
    println!("RSS {before} -> {after} KiB, {per_conn} KiB per stalled connection");
    assert!(
        per_conn < 200,
        "a stalled reader holds {per_conn} KiB (RSS {before} -> {after} KiB)"
    );
    assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    // After the send timeout the proxy lets them go.
    let open = r#"strait_tcp_connections_open{direction="outbound"}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while metric_value(&p.metrics().await, open) > 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "stalled readers still held: {}",
            metric_value(&p.metrics().await, open)
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_do_not_eject_healthy_endpoints() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _serial = ONE_AT_A_TIME.lock().await;
    let up = Upstream::start("v1").await;
    let policy = "---\napiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: web, namespace: default}\nspec:\n  targetRef: {name: web}\n  circuitBreaker: {consecutiveFailures: 2, baseEjectionTime: 60s}\n";
    let p = ProxyProc::start_with(
        &[(
            "m.yaml",
            format!("{}{policy}", services_yaml(&[("web", &[up.port()])])),
        )],
        &["--body-grace", "1s"],
    )
    .await;
    // Five malformed chunked bodies and five dribbled ones: the client's
    // fault each time, answered 400 / 408.
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(p.outbound).await.unwrap();
        s.write_all(b"POST /read-body HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    }
    // HTTP/2: the body stalls after one byte; the upstream client only sees
    // a reset stream, and the answer is still the client's 408.
    for _ in 0..5 {
        let io = tokio::net::TcpStream::connect(p.outbound).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let (body_tx, body_rx) = tokio::sync::mpsc::channel::<
            Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >(1);
        body_tx
            .send(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
                b"x",
            ))))
            .await
            .unwrap();
        let body = http_body_util::StreamBody::new(Box::pin(futures_util::stream::unfold(
            body_rx,
            |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
        )));
        let req = http::Request::post("http://web/read-body")
            .body(body)
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 408, "HTTP/2 dribbled body");
        drop(body_tx);
    }
    let m = p.metrics().await;
    assert_eq!(
        metric_value(&m, "strait_ejections_total{backend=\"default/web:80\"}"),
        0.0,
        "{m}"
    );
    let client = HttpClient::new(p.outbound);
    assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
}
