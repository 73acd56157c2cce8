//! Malformed and hostile input: every case gets a clear answer or a close,
//! memory stays bounded, and the proxy keeps serving afterwards.

mod support;

use strait_test_support::rss_kib;

use std::time::Duration;
use support::upstream::Upstream;
use support::{HttpClient, ProxyProc, services_yaml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn proxy() -> (ProxyProc, Upstream) {
    let up = Upstream::start("v1").await;
    let p = ProxyProc::start_with(
        &[("m.yaml", services_yaml(&[("web", &[up.port()])]))],
        &["--detect-timeout", "300ms"],
    )
    .await;
    (p, up)
}

/// Sends `bytes`, returns what came back before the proxy closed (or 5 s).
async fn exchange(proxy: &ProxyProc, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy.outbound).await.unwrap();
    // The peer may close while we are still writing a large request.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("proxy closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

async fn still_serves(proxy: &ProxyProc) {
    let r = HttpClient::new(proxy.outbound)
        .get("web", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(proxy.child.id() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_request_lines_get_400() {
    let (p, _up) = proxy().await;
    for req in [
        &b"GET / HTTP/9.9\r\nHost: web\r\n\r\n"[..],
        b"GET /\x01bad HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost web\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: x\r\n\r\n",
    ] {
        let reply = exchange(&p, req).await;
        assert!(
            reply.starts_with("HTTP/1.1 400"),
            "{:?} -> {reply:?}",
            String::from_utf8_lossy(req)
        );
    }
    still_serves(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_of_headers_gets_431_and_memory_stays_bounded() {
    let (p, _up) = proxy().await;
    let before = rss_kib(p.child.id());
    let big = "a".repeat(1024 * 1024);
    for _ in 0..5 {
        let reply = exchange(
            &p,
            format!("GET / HTTP/1.1\r\nHost: web\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
            "{reply:?}"
        );
    }
    let many: String = (0..20_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let reply = exchange(
        &p,
        format!("GET / HTTP/1.1\r\nHost: web\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply:?}"
    );
    let after = rss_kib(p.child.id());
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    still_serves(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_detection_timeout() {
    let (p, _up) = proxy().await;
    let mut s = TcpStream::connect(p.outbound).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed, not left hanging");
    assert_eq!(n.unwrap_or(0), 0);
    assert!(
        p.logs().contains("protocol detection failed"),
        "{}",
        p.logs()
    );
    still_serves(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_garbage_and_broken_h2_are_closed() {
    let (p, _up) = proxy().await;
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert_eq!(exchange(&p, &garbage).await, "");
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2.extend_from_slice(&[0xff; 64]);
    let _ = exchange(&p, &h2).await;
    // A TLS ClientHello in explicit mode cannot name a destination.
    assert_eq!(exchange(&p, b"\x16\x03\x01\x00\x05hello").await, "");
    still_serves(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_reset_is_a_502_not_a_crash() {
    let (p, _up) = proxy().await;
    let c = HttpClient::new(p.outbound);
    for _ in 0..20 {
        let r = c.get("web", "/reset", &[]).await.unwrap();
        assert_eq!(r.status, 502);
    }
    still_serves(&p).await;
}

/// One request, one authority: two Host headers get 400 (nginx and HAProxy
/// answer so), and an absolute-form target's authority is the Host the
/// upstream receives, not the different Host the client also sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_confusion_is_refused_or_resolved() {
    let (p, _up) = proxy().await;
    let out = exchange(
        &p,
        b"GET / HTTP/1.1\r\nHost: web\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("strait-proxy-error: bad-authority"), "{out}");
    let out = exchange(
        &p,
        b"GET http://web/x HTTP/1.1\r\nHost: admin.internal\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("\"host\":\"web\""),
        "the upstream sees the routed authority: {out}"
    );
    still_serves(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunk_is_the_clients_fault_400_not_502() {
    let (p, _up) = proxy().await;
    // A valid first chunk, then a chunk-size line that is not hex.
    let reply = exchange(
        &p,
        b"POST /read-body HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\nboom\r\n0\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    assert!(
        reply.contains("strait-proxy-error: bad-request-body"),
        "{reply:?}"
    );
    still_serves(&p).await;
}
