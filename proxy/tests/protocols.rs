//! Protocols through the proxy with real clients: curl (HTTP/1.1 and HTTP/2
//! prior knowledge), an HTTP/2 bidirectional stream with trailers (what a
//! gRPC streaming call is on the wire), and an HTTP/1.1 Upgrade.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioExecutor;
use std::process::Command;
use support::upstream::Upstream;
use support::{ProxyProc, services_yaml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn proxy_to(up: &Upstream) -> ProxyProc {
    ProxyProc::start(&[("m.yaml", services_yaml(&[("web", &[up.port()])]))]).await
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http1_and_http2() {
    let up = Upstream::start("v1").await;
    let proxy = proxy_to(&up).await;
    let url = format!("http://{}/hello?x=1", proxy.outbound);
    let (body, _) = curl(&["-H", "Host: web", &url]);
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            j["name"].as_str(),
            j["version"].as_str(),
            j["path"].as_str()
        ),
        (Some("v1"), Some("HTTP/1.1"), Some("/hello?x=1"))
    );
    let (body, _) = curl(&["--http2-prior-knowledge", "-H", "Host: web", &url]);
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        j["version"], "HTTP/2.0",
        "HTTP/2 stays HTTP/2 to the upstream"
    );
    assert_eq!(
        j["authority"], "web",
        "the client's :authority reaches the upstream, not the endpoint's address"
    );
    // POST with a body, keep-alive reuse of several requests in one curl.
    let (out, _) = curl(&[
        "-H",
        "Host: web",
        "-d",
        "payload",
        &url,
        "-o",
        "/dev/null",
        &url,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\n",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["200 1", "200 0"],
        "second request reuses the connection"
    );
    let requests = proxy.metric("strait_requests_total{direction=\"outbound\",service=\"default/web:80\",route=\"default\",backend=\"default/web:80\",code=\"200\"}").await;
    assert_eq!(requests, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_bidirectional_stream_with_trailers() {
    let up = Upstream::start("grpc").await;
    let proxy = proxy_to(&up).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Frame<Bytes>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|f| (Ok::<_, std::convert::Infallible>(f), rx))
    });
    // An h2 connection to the proxy whose :authority names the Service.
    let tcp = tokio::net::TcpStream::connect(proxy.outbound)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("POST")
        .uri("http://web.default.svc.cluster.local/stream")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(Box::pin(stream)))
        .unwrap();
    let resp_fut = sender.send_request(req);
    // The response head arrives before the request ends: a real stream.
    tx.send(Frame::data(Bytes::from_static(b"one")))
        .await
        .unwrap();
    let resp = resp_fut.await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(
        &first[..],
        b"one",
        "first message echoed while the call is open"
    );
    tx.send(Frame::data(Bytes::from_static(b"two")))
        .await
        .unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&second[..], b"two");
    drop(tx);
    let trailers = loop {
        let f = body.frame().await.expect("trailers arrive").unwrap();
        if let Ok(t) = f.into_trailers() {
            break t;
        }
    };
    assert_eq!(trailers["grpc-status"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_upgrade_is_spliced() {
    let up = Upstream::start("ws").await;
    let proxy = proxy_to(&up).await;
    let mut s = tokio::net::TcpStream::connect(proxy.outbound)
        .await
        .unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(
            s.read(&mut b).await.unwrap(),
            1,
            "connection closed during the handshake"
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"hello"[..], b"second frame"] {
        s.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, msg);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // A real WebSocket echo server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    let proxy = ProxyProc::start(&[("m.yaml", services_yaml(&[("chat", &[port])]))]).await;
    let tcp = tokio::net::TcpStream::connect(proxy.outbound)
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://chat.default/socket", tcp)
        .await
        .expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through", "strait"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_is_one_json_line_per_request() {
    let up = Upstream::start("v1").await;
    let proxy = ProxyProc::start_with(
        &[("m.yaml", services_yaml(&[("web", &[up.port()])]))],
        &["--access-log"],
    )
    .await;
    let c = support::HttpClient::new(proxy.outbound);
    c.get(
        "web",
        "/a?b=1",
        &[("x-request-id", "rid-1"), ("user-agent", "t/1")],
    )
    .await
    .unwrap();
    c.get("nope", "/", &[]).await.unwrap();
    let out = proxy.stdout();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let first = &lines[0];
    assert_eq!(
        (
            first["method"].as_str(),
            first["path"].as_str(),
            first["status"].as_u64()
        ),
        (Some("GET"), Some("/a?b=1"), Some(200))
    );
    assert_eq!(
        (first["request_id"].as_str(), first["user_agent"].as_str()),
        (Some("rid-1"), Some("t/1"))
    );
    assert_eq!(
        (first["service"].as_str(), first["backend"].as_str()),
        (Some("default/web:80"), Some("default/web:80"))
    );
    assert_eq!(lines[1]["proxy_error"], "unknown-service");
    assert_eq!(
        lines[1]["request_id"].as_str().map(str::len),
        Some(36),
        "a generated request id is logged"
    );
}
