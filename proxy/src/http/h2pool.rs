//! HTTP/2 connections to endpoints: one multiplexed connection each,
//! opened on first use and replaced when it closes.
//!
//! A pool of our own rather than hyper-util's: that one picks a connection
//! by the request URI's authority, so the proxy had to put the endpoint's
//! `ip:port` there, and the upstream received it as `:authority` (strict
//! HTTP/2 servers and virtual hosting broke). Here the endpoint is chosen
//! by address and the request keeps the authority the client sent, as
//! Envoy and Linkerd do.

use super::errors::ProxyError;
use super::pool::{connect, upstream};
use super::{Body, boxed};
use crate::connect::Peer;
use crate::tls::{Certified, Current};
use http::{Request, Response};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// HTTP/2 keep-alive PINGs to endpoints, so a dead one is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// What became of a request given to [`H2Pool::send`].
pub enum Sent {
    /// The endpoint answered.
    Response(Response<Body>),
    /// A carried HTTP/1.1 request ([`super::orig_proto`]) the endpoint's
    /// proxy would not restore, handed back unsent.
    NotCarried(Request<Body>),
}

/// A pooled connection: its sender, when it was last used, whether the
/// endpoint's proxy restores carried HTTP/1.1 on it, and the certificate
/// it was made with (mesh TLS).
struct Conn {
    tx: SendRequest<Body>,
    used: Instant,
    carries: bool,
    cert: Option<Arc<Certified>>,
}

/// One HTTP/2 connection per endpoint.
#[derive(Clone)]
pub struct H2Pool {
    inner: Arc<Inner>,
}

struct Inner {
    conns: Mutex<HashMap<Peer, Conn>>,
    connect_timeout: Duration,
    /// This proxy's certificate, for meshed endpoints.
    mesh: Arc<Current>,
    idle_timeout: Duration,
}

impl H2Pool {
    /// An empty pool.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration, mesh: Arc<Current>) -> Self {
        Self {
            inner: Arc::new(Inner {
                conns: Mutex::default(),
                connect_timeout,
                mesh,
                idle_timeout,
            }),
        }
    }

    /// Sends `req` (its URI as the client sent it) to the endpoint `peer`.
    /// A request the pooled connection did not send (the endpoint had just
    /// sent GOAWAY or closed it) goes again, once, on a new connection:
    /// hyper hands it back untouched, so nothing is sent twice. A
    /// `carried` request goes only where the endpoint's proxy restores it.
    pub async fn send(
        &self,
        peer: &Peer,
        req: Request<Body>,
        carried: bool,
    ) -> Result<Sent, ProxyError> {
        let addr = peer.addr;
        let ((mut tx, carries), pooled) = match self.open(peer) {
            Some(open) => (open, true),
            None => (self.connect(peer).await?, false),
        };
        if carried && !carries {
            return Ok(Sent::NotCarried(req));
        }
        let req = match tx.ready().await {
            Ok(()) => match tx.try_send_request(req).await {
                Ok(resp) => return Ok(Sent::Response(resp.map(boxed))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if pooled => unsent,
                    _ => return Err(upstream(addr, &e.into_error())),
                },
            },
            Err(e) if pooled => {
                tracing::debug!(%addr, error = %e, "pooled HTTP/2 connection closed; connecting again");
                req
            }
            Err(e) => return Err(upstream(addr, &e)),
        };
        self.forget(peer);
        let (mut tx, carries) = self.connect(peer).await?;
        if carried && !carries {
            return Ok(Sent::NotCarried(req));
        }
        tx.ready().await.map_err(|e| upstream(addr, &e))?;
        let resp = tx.send_request(req).await.map_err(|e| upstream(addr, &e))?;
        Ok(Sent::Response(resp.map(boxed)))
    }

    fn forget(&self, peer: &Peer) {
        if let Ok(mut conns) = self.inner.conns.lock() {
            conns.remove(peer);
        }
    }

    /// The endpoint's open connection, if any, and whether it carries.
    fn open(&self, peer: &Peer) -> Option<(SendRequest<Body>, bool)> {
        let mut conns = self.inner.conns.lock().ok()?;
        let conn = conns.get_mut(peer)?;
        // Once this proxy's certificate is renewed (or its roots change),
        // requests go on a new connection made with it; the old one ends
        // when its last stream does. One shared connection would otherwise
        // outlive every certificate and root it was made with.
        let stale = || {
            peer.identity.is_some()
                && match (&conn.cert, &*self.inner.mesh.load()) {
                    (Some(made), Some(now)) => !Arc::ptr_eq(made, now),
                    (None, None) => false,
                    _ => true,
                }
        };
        if conn.tx.is_closed() || stale() {
            conns.remove(peer);
            return None;
        }
        conn.used = Instant::now();
        Some((conn.tx.clone(), conn.carries))
    }

    async fn connect(&self, peer: &Peer) -> Result<(SendRequest<Body>, bool), ProxyError> {
        let addr = peer.addr;
        let cert = self.inner.mesh.load_full();
        let stream = connect(peer, self.inner.connect_timeout, &self.inner.mesh).await?;
        let carries = stream.carries_h1();
        let (tx, conn) = Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE)
            .handshake(TokioIo::new(stream))
            .await
            // No HTTP/2 connection came of it: a connect failure, which
            // `connect-failure` retries and the breaker count as such.
            .map_err(|e| ProxyError::Connect {
                addr,
                reason: format!("HTTP/2 handshake: {e}"),
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream HTTP/2 connection ended");
            }
        });
        if let Ok(mut conns) = self.inner.conns.lock() {
            // Connecting is rare: the moment to forget closed connections
            // and ones unused for the idle timeout (dropping the last
            // sender closes the connection once its streams are done).
            let idle = self.inner.idle_timeout;
            conns.retain(|_, c| !c.tx.is_closed() && c.used.elapsed() < idle);
            conns.insert(
                peer.clone(),
                Conn {
                    tx: tx.clone(),
                    used: Instant::now(),
                    carries,
                    cert,
                },
            );
        }
        Ok((tx, carries))
    }
}
