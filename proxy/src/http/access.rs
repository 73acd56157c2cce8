//! What is told about a finished request beyond the metrics: the access
//! log (`--access-log`, one JSON line on stdout) and open taps
//! ([`crate::tap`]). Both need the request's head after the request itself
//! has gone upstream, so [`RequestHead`] captures it first, and only when
//! one of them wants it ([`wanted`]): otherwise a request pays nothing.

use super::{Body, trace_ctx};
use crate::Proxy;
use crate::metrics::RouteLabels;
use crate::tap::Event;
use http::{Request, Response};
use std::sync::Arc;
use std::time::Instant;

/// The identity of the other proxy when a hop was mesh TLS, set on an
/// outbound response while a tap is open.
#[derive(Debug, Clone)]
pub struct TlsPeer(pub Arc<str>);

/// Whether anything will want the request's head.
pub fn wanted(proxy: &Proxy) -> bool {
    proxy.settings.access_log || proxy.taps.active()
}

/// What was asked, captured before the request is consumed.
pub struct RequestHead {
    method: String,
    authority: String,
    path: String,
    request_id: String,
    user_agent: String,
    tls_peer: Option<Arc<str>>,
}

impl RequestHead {
    /// Captures `req`'s head.
    pub fn new<B>(req: &Request<B>) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        Self {
            method: req.method().to_string(),
            authority: req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_else(|| header("host")),
            path: req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            request_id: header(trace_ctx::REQUEST_ID),
            user_agent: header("user-agent"),
            tls_peer: None,
        }
    }

    /// The client's identity, for an inbound request over mesh TLS.
    pub fn with_tls_peer(mut self, peer: Option<Arc<str>>) -> Self {
        self.tls_peer = peer;
        self
    }
}

/// Writes the access log line and tells open taps, as configured.
pub fn finish(
    proxy: &Proxy,
    head: RequestHead,
    labels: &RouteLabels,
    resp: &Response<Body>,
    started: Instant,
) {
    let elapsed = started.elapsed();
    if proxy.settings.access_log {
        write_access_log(&head, labels, resp, elapsed.as_secs_f64());
    }
    if proxy.taps.active() {
        let tls_peer = head
            .tls_peer
            .clone()
            .or_else(|| resp.extensions().get::<TlsPeer>().map(|p| p.0.clone()));
        proxy.taps.publish(Event {
            direction: labels.direction.label(),
            method: head.method,
            authority: head.authority,
            path: head.path,
            route: labels.route.clone(),
            backend: labels.backend.clone(),
            status: resp.status().as_u16(),
            latency_ms: elapsed.as_secs_f64() * 1000.0,
            tls_peer,
        });
    }
}

fn write_access_log(head: &RequestHead, labels: &RouteLabels, resp: &Response<Body>, secs: f64) {
    let line = serde_json::json!({
        "ts": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        "direction": labels.direction.label(),
        "method": head.method,
        "authority": head.authority,
        "path": head.path,
        "status": resp.status().as_u16(),
        "duration_ms": secs * 1000.0,
        "service": labels.service,
        "route": labels.route,
        "backend": labels.backend,
        "request_id": head.request_id,
        "user_agent": head.user_agent,
        "proxy_error": resp.headers().get(super::errors::PROXY_ERROR_HEADER).and_then(|v| v.to_str().ok()),
    });
    use std::io::Write;
    // A full or closed stdout must not fail the request.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
