//! HTTP/1.1 connections to endpoints, kept alive and reused.
//!
//! Each endpoint (`ip:port`) has a stack of idle connections. A request takes
//! the most recently used one that is still open (warm in every cache, and
//! the ones left at the bottom age out), or connects. A connection goes back
//! on the stack when its response body has been read to the end, from the
//! body itself: no extra task and no timer per request, which is what
//! hyper-util's general-purpose pool spends on every request and what made
//! the HTTP/1.1 path slower than HAProxy.
//!
//! A request that could not be written because the pooled connection had
//! just been closed by the endpoint (an idle keep-alive race) is sent again
//! on a new connection; hyper hands such a request back untouched, so this
//! never sends anything twice.

use super::errors::ProxyError;
use super::{Body, boxed};
use crate::connect::{ConnectError, Peer};
use crate::tls::Current;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

/// Largest read buffer of an upstream connection.
pub const UPSTREAM_READ_BUF: usize = 16 * 1024;

/// Idle HTTP/1.1 connections per endpoint.
#[derive(Clone)]
pub struct H1Pool {
    inner: Arc<Inner>,
}

struct Inner {
    idle: Mutex<HashMap<Peer, Vec<Idle>>>,
    connect_timeout: Duration,
    /// This proxy's certificate, for meshed endpoints.
    mesh: Arc<Current>,
    idle_timeout: Duration,
    sweeping: AtomicBool,
    /// Sweeps so far. Idle time is counted in sweeps, half an idle timeout
    /// each, so the request path never reads the clock for it.
    sweeps: AtomicU64,
}

struct Idle {
    tx: SendRequest<Body>,
    /// `sweeps` when it went idle.
    since: u64,
}

/// Sweeps an idle connection lives through: idle for between one and one
/// and a half idle timeouts when it is closed.
const SWEEPS_IDLE: u64 = 3;

impl H1Pool {
    /// A pool whose connections are given `connect_timeout` to open and are
    /// closed after `idle_timeout` unused; meshed endpoints are reached
    /// with the certificate in `mesh`.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration, mesh: Arc<Current>) -> Self {
        Self {
            inner: Arc::new(Inner {
                idle: Mutex::default(),
                connect_timeout,
                mesh,
                idle_timeout,
                sweeping: AtomicBool::new(false),
                sweeps: AtomicU64::new(0),
            }),
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) to `peer`.
    pub async fn send(
        &self,
        peer: &Peer,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let addr = peer.addr;
        loop {
            let (mut tx, reused) = match self.inner.checkout(peer) {
                Some(tx) => (tx, true),
                None => (self.inner.connect(peer).await?, false),
            };
            if reused && tx.ready().await.is_err() {
                // Closed while idle; nothing was sent on it.
                continue;
            }
            // A bodiless idempotent request on a reused connection can be
            // sent again if the endpoint closed that connection under it
            // (its close crossed our write: a reset, no response byte), as
            // browsers and Go's transport do. Anything else is never sent
            // twice.
            let replay = (reused && is_idempotent(req.method()) && req.body().is_end_stream())
                .then(|| head_only(&req));
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.track(peer, tx, resp)),
                Err(mut e) => match e.take_message() {
                    // Not written: the endpoint closed an idle connection
                    // as we picked it. Safe to send again, on a new one.
                    Some(back) if reused => req = back,
                    _ => {
                        let e = e.into_error();
                        match replay {
                            Some(again) if closed_under_us(&e) => req = again,
                            _ => return Err(upstream(addr, &e)),
                        }
                    }
                },
            }
        }
    }

    /// Returns the connection to the pool once the response body has been
    /// read to its end; a `101` keeps it (the upgrade owns the socket now).
    fn track(
        &self,
        peer: &Peer,
        tx: SendRequest<Body>,
        resp: Response<Incoming>,
    ) -> Response<Body> {
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            return resp.map(boxed);
        }
        let pool = Arc::downgrade(&self.inner);
        resp.map(|inner| {
            boxed(Tracked {
                inner,
                back: Some(Back {
                    pool,
                    peer: peer.clone(),
                    tx,
                }),
            })
        })
    }
}

/// Methods a client expects may be retried (RFC 9110 §9.2.2).
fn is_idempotent(m: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(m)
}

/// A copy of a bodiless request, to send again.
fn head_only(req: &Request<Body>) -> Request<Body> {
    let mut again = Request::new(boxed(http_body_util::Empty::<Bytes>::new()));
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    again
}

/// The connection was closed or reset before any response came: the
/// endpoint closed it as the request went out.
fn closed_under_us(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted);
        }
        source = s.source();
    }
    false
}

impl Inner {
    /// The most recently used open connection to `addr`, dropping any that
    /// closed.
    fn checkout(&self, peer: &Peer) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().ok()?;
        let stack = idle.get_mut(peer)?;
        while let Some(entry) = stack.pop() {
            if !entry.tx.is_closed() {
                return Some(entry.tx);
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, peer: Peer, tx: SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(peer).or_default().push(Idle {
                tx,
                since: self.sweeps.load(Ordering::Relaxed),
            });
        }
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    async fn connect(&self, peer: &Peer) -> Result<SendRequest<Body>, ProxyError> {
        let addr = peer.addr;
        let stream = connect(peer, self.connect_timeout, &self.mesh).await?;
        let (tx, conn) = Builder::new()
            // One send() per request instead of writev(): cheaper in the
            // kernel for the few small pieces of a typical request.
            .writev(false)
            // What a response may have buffered here while its client is
            // slow to read (hyper's default, ~400 KiB, made a client that
            // stopped reading cost ~1 MiB of the proxy's memory).
            .max_buf_size(UPSTREAM_READ_BUF)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| upstream(addr, &e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "upstream connection ended");
            }
        });
        Ok(tx)
    }
}

/// Closes connections idle past the timeout, while the pool lives, so an
/// endpoint that is no longer used does not hold sockets open.
async fn sweep(pool: Weak<Inner>) {
    let period = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 2).max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let now = pool.sweeps.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut idle) = pool.idle.lock() else {
            return;
        };
        idle.retain(|_, stack| {
            stack.retain(|e| !e.tx.is_closed() && now - e.since < SWEEPS_IDLE);
            !stack.is_empty()
        });
    }
}

/// A connection to an endpoint as both clients want it
/// ([`crate::connect`]), its failure as the client will see it.
pub(super) async fn connect(
    peer: &Peer,
    timeout: Duration,
    mesh: &Current,
) -> Result<crate::connect::Upstream, ProxyError> {
    let addr = peer.addr;
    crate::connect::connect(addr, peer.identity.as_deref(), timeout, mesh)
        .await
        .map_err(|e| match e {
            ConnectError::Tls(crate::tls::ConnectError::IdentityMismatch { expected, reason }) => {
                ProxyError::TlsIdentityMismatch {
                    addr,
                    expected,
                    reason,
                }
            }
            e => ProxyError::Connect {
                addr,
                reason: e.to_string(),
            },
        })
}

pub(super) fn upstream(addr: SocketAddr, e: &hyper::Error) -> ProxyError {
    ProxyError::Upstream {
        addr,
        reason: super::errors::with_causes(e),
    }
}

/// Where a connection goes back to.
struct Back {
    pool: Weak<Inner>,
    peer: Peer,
    tx: SendRequest<Body>,
}

impl Back {
    fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.checkin(self.peer, self.tx);
        }
    }
}

/// A response body that returns its connection to the pool at its end. If
/// it is dropped before the end, hyper closes the connection instead (the
/// rest of the response is still on it).
struct Tracked {
    inner: Incoming,
    back: Option<Back>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // At the end, hand the connection back before the caller writes the
        // last bytes out, so the next request can take it at once.
        if (matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream())
            && let Some(back) = self.back.take()
        {
            back.give_back();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // A body never polled because it was empty from the start (HEAD,
        // 204, 304, `content-length: 0`) is complete too.
        if self.inner.is_end_stream()
            && let Some(back) = self.back.take()
        {
            back.give_back();
        }
    }
}
