//! Serving one detected HTTP connection with hyper.
//!
//! Limits that protect the proxy live here: a 64 KiB cap on a request head
//! (HTTP/1 answers `431` beyond it; HTTP/2 refuses the header list), a
//! header read timeout on HTTP/1 (hyper runs it while a head is awaited,
//! which also closes a kept-alive connection that sends nothing), an idle
//! timeout on HTTP/2 (no request in flight, counting a response body still
//! being sent, for [`ClientLimits::idle_timeout`]: this also ends a
//! connection that never finishes a HEADERS block), and a graceful close
//! when the proxy drains (in-flight requests finish, then the connection
//! closes).

use super::Body;
use crate::ClientLimits;
use crate::drain::Drain;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long an idle HTTP/2 connection has, after its GOAWAY and with no
/// request in flight, to close by itself before it is dropped.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Serves HTTP/1 (`h2 == false`) or HTTP/2 on `io` until it closes.
pub async fn serve<I, F, Fut>(io: I, h2: bool, drain: Drain, limits: ClientLimits, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let io = TokioIo::new(io);
    let result = if h2 {
        let activity = Arc::new(Activity::default());
        let a = activity.clone();
        let svc = service_fn(move |req| {
            let busy = Busy::new(a.clone());
            let fut = handler(req);
            async move {
                let resp = fut.await?;
                // In flight until the response body is sent, or dropped.
                Ok::<_, Infallible>(resp.map(|b| {
                    super::boxed(Guarded {
                        body: b,
                        _busy: busy,
                    })
                }))
            }
        });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            .serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = activity.idle_for(limits.idle_timeout) => {
                tracing::debug!(timeout = ?limits.idle_timeout, "closing idle HTTP/2 connection");
                // GOAWAY; a client that does not answer its PING (or has
                // stopped reading) is dropped once nothing has been in
                // flight for a short grace. A request accepted during the
                // GOAWAY exchange finishes first (the body and send
                // timeouts bound how long it can take).
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    r = conn.as_mut() => r,
                    _ = activity.idle_for(GOAWAY_GRACE) => Ok(()),
                }
            }
            _ = drain.signaled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            // One flattened buffer per response: a plain send() instead of
            // writev(), which costs more in the kernel for the few small
            // pieces (head, body) of a typical response.
            .writev(false)
            .serve_connection(io, service_fn(handler))
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = drain.signaled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Requests in flight on one HTTP/2 connection, and when that last
/// changed.
#[derive(Default)]
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

impl Activity {
    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        use std::sync::atomic::Ordering;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before reading the count, so no change is missed.
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(timeout) => return,
                    _ = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One request in flight; dropped when its response body is done.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: Arc<Activity>) -> Self {
        a.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        a.changed.notify_waiters();
        Self(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as in flight.
struct Guarded {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
