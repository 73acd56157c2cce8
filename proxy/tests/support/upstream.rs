//! A real HTTP server on loopback (HTTP/1.1 and HTTP/2 prior knowledge via
//! hyper-util's auto builder) that tests point Services at.
//!
//! | path              | answer                                                   |
//! |-------------------|----------------------------------------------------------|
//! | any               | 200, JSON `{name, method, path, version, authority, headers}` (`authority`: HTTP/2's `:authority`) |
//! | `/delay/<ms>`     | the same, after sleeping                                 |
//! | `/status/<code>`  | that status                                              |
//! | `/reset`          | the connection is dropped without a response             |
//! | `/ws`             | `101` on an Upgrade request, then echoes bytes           |
//! | `/stream`         | echoes each request body frame as a response frame, then trailers `grpc-status: 0` |
//! | `/read-body`      | reads the whole request body first, then answers its length |
//! | `/bytes/<n>`      | `n` bytes (`content-length` set), streamed in 64 KiB chunks |

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Per-instance behaviour, changeable while running.
#[derive(Default)]
pub struct Behaviour {
    /// Share of requests answered 503, in percent.
    pub fail_pct: std::sync::atomic::AtomicU32,
    /// Added delay per request, ms.
    pub delay_ms: std::sync::atomic::AtomicU64,
    /// Requests being handled now.
    pub active: AtomicUsize,
    /// What the next requests get, one step each, before the rules above.
    pub script: std::sync::Mutex<std::collections::VecDeque<Step>>,
}

/// One scripted answer.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Held this long first.
    pub delay_ms: u64,
    /// Then answered with this status (200: the normal echo).
    pub status: u16,
}

pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    pub behaviour: Arc<Behaviour>,
    killed: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Behaviour::default());
        let (killed, _) = tokio::sync::watch::channel(false);
        let (n, h, b, k, c) = (
            name.to_string(),
            hits.clone(),
            behaviour.clone(),
            killed.clone(),
            conns.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (n, h, b) = (n.clone(), h.clone(), b.clone());
                let mut dead = k.subscribe();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(n.clone(), h.clone(), b.clone(), req));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    // Killing drops every open connection, as a crashed pod would.
                    tokio::select! {
                        _ = conn => {}
                        _ = dead.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        Self {
            name: name.to_string(),
            addr,
            hits,
            conns,
            behaviour,
            killed,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting (existing connections live on until they close).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Crashes: stops accepting and drops every open connection.
    pub fn kill(&self) {
        self.task.abort();
        self.killed.send_replace(true);
    }

    pub fn set_fail_pct(&self, pct: u32) {
        self.behaviour.fail_pct.store(pct, Ordering::SeqCst);
    }

    /// The next requests get these answers, in order.
    pub fn script(&self, steps: &[Step]) {
        self.behaviour.script.lock().unwrap().extend(steps);
    }

    pub fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    pub fn set_delay_ms(&self, ms: u64) {
        self.behaviour.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn active(&self) -> usize {
        self.behaviour.active.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// Decrements `active` when a request ends, however it ends.
struct Active(Arc<Behaviour>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    name: String,
    hits: Arc<AtomicUsize>,
    behaviour: Arc<Behaviour>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    hits.fetch_add(1, Ordering::SeqCst);
    behaviour.active.fetch_add(1, Ordering::SeqCst);
    let _active = Active(behaviour.clone());
    let step = behaviour.script.lock().unwrap().pop_front();
    if let Some(step) = step {
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
        if step.status != 200 {
            let _ = req.into_body().collect().await;
            let mut r = Response::new(full(format!("{name} scripted {}", step.status)));
            *r.status_mut() = StatusCode::from_u16(step.status).unwrap();
            return Ok(r);
        }
    }
    let delay = behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = behaviour.fail_pct.load(Ordering::SeqCst);
    if fail > 0 && rand::random_range(0..100) < fail {
        // Read the request first, as servers normally do: answering before a
        // large body is read makes the kernel reset the connection, and the
        // reset can reach the proxy before the response does.
        let _ = req.into_body().collect().await;
        let mut r = Response::new(full(format!("{name} failing")));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(r);
    }
    let path = req.uri().path().to_string();
    if path == "/reset" {
        return Err(std::io::Error::other("reset requested"));
    }
    if path == "/read-body" {
        let body = req.into_body().collect().await;
        let len = body.map(|b| b.to_bytes().len()).unwrap_or(0);
        return Ok(Response::new(full(format!("{len}"))));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(full(format!("status {code}")));
        *r.status_mut() = StatusCode::from_u16(code.parse().unwrap_or(500))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(r);
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    if path == "/ws" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = upgrade.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        return Ok(r);
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let total: usize = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'b'; 64 * 1024]);
        let stream = futures_util::stream::unfold(total, move |left| {
            let chunk = chunk.clone();
            async move {
                (left > 0).then(|| {
                    let n = left.min(chunk.len());
                    (Ok::<_, Infallible>(Frame::data(chunk.slice(..n))), left - n)
                })
            }
        });
        let mut r = Response::new(StreamBody::new(stream.boxed()).boxed_unsync());
        r.headers_mut().insert("content-length", total.into());
        return Ok(r);
    }
    if path == "/stream" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Frame<Bytes>>(16);
        let mut body = req.into_body();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data()
                    && tx.send(Frame::data(data)).await.is_err()
                {
                    return;
                }
            }
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let _ = tx.send(Frame::trailers(trailers)).await;
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (Ok::<_, Infallible>(f), rx))
        });
        let mut r = Response::new(StreamBody::new(stream.boxed()).boxed_unsync());
        r.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        return Ok(r);
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
            )
        })
        .collect();
    let body = serde_json::json!({
        "name": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "version": format!("{:?}", req.version()),
        "authority": req.uri().authority().map(|a| a.as_str()),
        "headers": headers,
    });
    let mut r = Response::new(full(body.to_string()));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(r)
}
