//! The request path, in the order it runs.
//!
//! Outbound (the app calling a Service):
//! 1. **resolve** the Service: from the intercepted `clusterIP:port`, or in
//!    explicit mode from the `Host` / `:authority`;
//! 2. **route**: the first matching rule of the Service's TrafficRoutes
//!    (`strait_api::route::select`), or straight to the Service's own
//!    endpoints when it has none;
//! 3. **split**: a backend by weight, sticky when the rule has session
//!    affinity (`strait_api::split`);
//! 4. **policy**: request header changes, trace headers, the route timeout;
//! 5. **balance**: an endpoint of the backend ([`crate::balance`]);
//! 6. **forward** ([`super::forward`]).
//!
//! Inbound (a client calling this pod's app) only forwards to the app on
//! loopback. Both record `strait_requests_total` and the latency histogram.

use super::errors::ProxyError;
use super::{Body, boxed, trace_ctx};
use crate::Proxy;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::Applied;
use http::{Request, Response};
use hyper::body::Incoming;
use rand::Rng;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use strait_api::model::{DEFAULT_ROUTE, HeaderModifier, ServicePortKey};
use strait_api::{authority, route, split};

/// Where an outbound connection was headed.
#[derive(Debug, Clone)]
pub enum Target {
    /// Intercepted traffic to a Service's clusterIP.
    Service(ServicePortKey),
    /// The app addressed the proxy itself: route by authority.
    Explicit,
}

/// Metric labels gathered along the way.
#[derive(Default)]
struct Labels {
    service: String,
    route: String,
    backend: String,
}

/// Handles one outbound request; never fails (errors become responses).
pub async fn outbound(
    proxy: Arc<Proxy>,
    target: Arc<Target>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let applied = proxy.state.load();
    trace_ctx::propagate(req.headers_mut());
    let access = proxy.settings.access_log.then(|| AccessEntry::new(&req));
    let mut labels = Labels::default();
    let resp = match route_and_forward(&proxy, &applied, &target, req, &mut labels).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(error = %e, service = %labels.service, "request failed in the proxy");
            e.to_response()
        }
    };
    if let Some(entry) = access {
        entry.write("outbound", &labels, &resp, started);
    }
    record(&proxy, "outbound", labels, resp.status().as_u16(), started);
    Ok(resp)
}

async fn route_and_forward(
    proxy: &Proxy,
    applied: &Applied,
    target: &Target,
    req: Request<Incoming>,
    labels: &mut Labels,
) -> Result<Response<Body>, ProxyError> {
    // 1. resolve
    let key = match target {
        Target::Service(key) => key.clone(),
        Target::Explicit => {
            let authority = req
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    req.headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            authority::parse(&authority, &proxy.settings.namespace)
                .ok_or(ProxyError::BadAuthority(authority))?
        }
    };
    labels.service = key.to_string();
    let service = applied
        .snapshot
        .service(&key)
        .ok_or_else(|| ProxyError::UnknownService(key.to_string()))?;

    // 2. route and 3. split
    let (route_name, backend, timeout, request_headers, response_headers) = match &service.routes {
        None => (DEFAULT_ROUTE, &service.key, None, None, None),
        Some(routes) => {
            let info = route::RequestInfo::from_parts(req.method(), req.uri(), req.headers());
            let rule = route::select(routes, &info).ok_or_else(|| ProxyError::NoRoute {
                service: key.to_string(),
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            })?;
            let draw = rule
                .affinity
                .as_ref()
                .and_then(|a| split::affinity_key(a, req.headers()))
                .map(split::sticky_draw)
                .unwrap_or_else(|| rand::rng().random());
            let chosen = split::pick(&rule.backends, draw)
                .ok_or_else(|| ProxyError::NoBackend(rule.name.clone()))?;
            (
                rule.name.as_str(),
                &chosen.backend,
                rule.timeout,
                Some(&rule.request_headers),
                Some(&rule.response_headers),
            )
        }
    };
    labels.route = route_name.to_string();
    labels.backend = backend.to_string();

    // 4. policy
    let mut req = req.map(boxed);
    if let Some(m) = request_headers {
        m.apply(req.headers_mut());
    }

    // 5. balance
    let endpoint = applied
        .balancers
        .get(backend)
        .and_then(|b| b.pick())
        .ok_or_else(|| ProxyError::NoEndpoints(backend.to_string()))?
        .clone();
    let _in_flight = endpoint.start();

    // 6. forward
    let forward = proxy.forwarder.forward(req, endpoint.addr);
    let mut resp = match timeout {
        Some(t) => tokio::time::timeout(t, forward)
            .await
            .map_err(|_| ProxyError::Timeout(t))??,
        None => forward.await?,
    };
    if let Some(m) = response_headers.filter(|m: &&HeaderModifier| !m.is_empty()) {
        m.apply(resp.headers_mut());
    }
    Ok(resp)
}

/// Handles one inbound request: forward to the app on loopback.
pub async fn inbound(
    proxy: Arc<Proxy>,
    app: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let mut req = req.map(boxed);
    trace_ctx::propagate(req.headers_mut());
    let access = proxy.settings.access_log.then(|| AccessEntry::new(&req));
    let resp = match proxy.forwarder.forward(req, app).await {
        Ok(resp) => resp,
        Err(e) => e.to_response(),
    };
    let labels = Labels {
        service: String::new(),
        route: String::new(),
        backend: app.to_string(),
    };
    if let Some(entry) = access {
        entry.write("inbound", &labels, &resp, started);
    }
    record(&proxy, "inbound", labels, resp.status().as_u16(), started);
    Ok(resp)
}

/// One access-log line: what was asked, captured before the request is
/// consumed, written as JSON to stdout when the response head is sent.
struct AccessEntry {
    method: String,
    authority: String,
    path: String,
    request_id: String,
    user_agent: String,
}

impl AccessEntry {
    fn new<B>(req: &Request<B>) -> Self {
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
        }
    }

    fn write(self, direction: &str, labels: &Labels, resp: &Response<Body>, started: Instant) {
        let line = serde_json::json!({
            "ts": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            "direction": direction,
            "method": self.method,
            "authority": self.authority,
            "path": self.path,
            "status": resp.status().as_u16(),
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
            "service": labels.service,
            "route": labels.route,
            "backend": labels.backend,
            "request_id": self.request_id,
            "user_agent": self.user_agent,
            "proxy_error": resp.headers().get(super::errors::PROXY_ERROR_HEADER).and_then(|v| v.to_str().ok()),
        });
        use std::io::Write;
        // A full or closed stdout must not fail the request.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

fn record(proxy: &Proxy, direction: &'static str, labels: Labels, code: u16, started: Instant) {
    let m = &proxy.state.metrics;
    m.request_duration
        .get_or_create(&RouteLabels {
            direction,
            service: labels.service.clone(),
            route: labels.route.clone(),
            backend: labels.backend.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            direction,
            service: labels.service,
            route: labels.route,
            backend: labels.backend,
            code,
        })
        .inc();
}
