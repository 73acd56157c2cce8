//! HTTP/1.1 upstream connection reuse, against scripted raw-socket upstreams
//! that count their connections: keep-alive reuse, bodiless responses,
//! `Connection: close`, an upstream that drops idle connections, and a client
//! that walks away mid-response. In every case no request fails.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{HttpClient, ProxyProc, services_yaml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the scripted upstream behaves on each connection.
#[derive(Clone, Copy)]
enum Script {
    /// Answers every request with a small body and keeps the connection.
    KeepAlive,
    /// `204` for every request (no body at all).
    NoContent,
    /// Answers with `Connection: close`, then closes.
    CloseHeader,
    /// Answers one request (keep-alive headers) and silently closes, as an
    /// upstream whose idle timeout is shorter than the proxy's does.
    DropsIdle,
    /// A 1 MiB chunked body, sent slowly.
    SlowLargeBody,
}

struct Scripted {
    port: u16,
    conns: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (counter, closes) = (conns.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let closes = closes.clone();
                tokio::spawn(async move {
                    serve(s, script).await;
                    closes.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            port,
            conns,
            closed,
        }
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// Connections that ended (the proxy closed them, or the script did).
    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Reads one request head and says whether it was a HEAD; None at EOF.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<bool> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.starts_with(b"HEAD ");
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn serve(mut s: TcpStream, script: Script) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut s, &mut buf).await {
        let reply: &[u8] = match script {
            // A HEAD answer has the GET's headers and no body.
            Script::KeepAlive if head => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
            Script::KeepAlive | Script::DropsIdle => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            }
            Script::NoContent => b"HTTP/1.1 204 No Content\r\n\r\n",
            Script::CloseHeader => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            }
            Script::SlowLargeBody => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
                for _ in 0..16 {
                    if s.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
                continue;
            }
        };
        if s.write_all(reply).await.is_err() {
            return;
        }
        if matches!(script, Script::CloseHeader | Script::DropsIdle) {
            return;
        }
    }
}

async fn proxy_to(up: &Scripted) -> ProxyProc {
    ProxyProc::start(&[("m.yaml", services_yaml(&[("web", &[up.port])]))]).await
}

/// `n` requests one after another on one client connection, all must be 2xx.
async fn sequential(p: &ProxyProc, method: &str, n: usize) {
    let client = HttpClient::new(p.outbound);
    for i in 0..n {
        let r = client
            .send(method, "web", "/", &[], Default::default())
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert!(
            (200..300).contains(&r.status),
            "request {i}: {} {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_one_upstream_connection() {
    let up = Scripted::start(Script::KeepAlive).await;
    let p = proxy_to(&up).await;
    sequential(&p, "GET", 50).await;
    assert_eq!(
        up.conns(),
        1,
        "one upstream connection for 50 sequential requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_the_idle_timeout() {
    let up = Scripted::start(Script::KeepAlive).await;
    let p = ProxyProc::start_with(
        &[("m.yaml", services_yaml(&[("web", &[up.port])]))],
        &["--idle-timeout", "1s"],
    )
    .await;
    sequential(&p, "GET", 3).await;
    assert_eq!((up.conns(), up.closed()), (1, 0), "kept while in use");
    // Closed between one and one and a half idle timeouts later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(up.closed(), 0, "closed before the idle timeout");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while up.closed() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.closed(), 1, "idle connection still open after 3 s");
    // The next request opens a new connection and succeeds.
    sequential(&p, "GET", 1).await;
    assert_eq!(up.conns(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_responses_give_the_connection_back() {
    let up = Scripted::start(Script::NoContent).await;
    let p = proxy_to(&up).await;
    sequential(&p, "GET", 20).await;
    let keep = Scripted::start(Script::KeepAlive).await;
    let p2 = proxy_to(&keep).await;
    sequential(&p2, "HEAD", 20).await;
    assert_eq!(up.conns(), 1, "204s reuse the connection");
    assert_eq!(keep.conns(), 1, "HEADs reuse the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_from_upstream_opens_a_new_one() {
    let up = Scripted::start(Script::CloseHeader).await;
    let p = proxy_to(&up).await;
    sequential(&p, "GET", 10).await;
    assert_eq!(up.conns(), 10, "a closed connection is never reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_dropping_idle_connections_costs_no_request() {
    let up = Scripted::start(Script::DropsIdle).await;
    let p = proxy_to(&up).await;
    // Back to back, so a request often picks a connection the upstream is
    // closing at that moment; the pool must send it again on a new one.
    sequential(&p, "GET", 200).await;
    assert!(up.conns() >= 200, "{} connections", up.conns());
    // And with pauses, where the close has surely been seen.
    let client = HttpClient::new(p.outbound);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(client.get("web", "/", &[]).await.unwrap().status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_response_does_not_poison_the_pool() {
    let up = Scripted::start(Script::SlowLargeBody).await;
    let p = proxy_to(&up).await;
    for _ in 0..3 {
        let mut s = TcpStream::connect(p.outbound).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1024];
        let n = s.read(&mut first).await.unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        drop(s);
    }
    // A whole response after three abandoned ones: it gets a connection
    // that is not carrying the rest of an earlier body.
    let r = HttpClient::new(p.outbound)
        .get("web", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1024 * 1024);
    assert_eq!(up.conns(), 4, "abandoned connections are not reused");
}
