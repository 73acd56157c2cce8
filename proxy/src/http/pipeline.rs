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
//! 4. **policy**: fault injection, request header changes, the backend's
//!    request limits (shed with 503 beyond them), the route timeout;
//! 5. **balance**: an endpoint of the backend ([`crate::balance`]), skipping
//!    ejected ones;
//! 6. **forward** ([`super::attempt`] → [`super::forward`]), retried within
//!    the backend's budget when the rule says so, mirrored when it says so.
//!
//! Inbound (a client calling this pod's app) only forwards to the app on
//! loopback. Both record `strait_requests_total` and the latency histogram.

use super::attempt::{self, Plan};
use super::errors::ProxyError;
use super::{Body, boxed, trace_ctx};
use crate::Proxy;
use crate::balance::Shed;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::metrics::{RouteKindLabels, ShedLabels};
use crate::resilience::fault;
use crate::state::Applied;
use http::{Request, Response};
use hyper::body::Incoming;
use rand::Rng;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use strait_api::model::{DEFAULT_ROUTE, ServicePortKey};
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
    let rule = match &service.routes {
        None => None,
        Some(routes) => {
            let info = route::RequestInfo::from_parts(req.method(), req.uri(), req.headers());
            Some(
                route::select(routes, &info).ok_or_else(|| ProxyError::NoRoute {
                    service: key.to_string(),
                    method: req.method().to_string(),
                    path: req.uri().path().to_string(),
                })?,
            )
        }
    };
    let backend = match rule {
        None => &service.key,
        Some(rule) => {
            labels.route = rule.name.clone();
            let draw = rule
                .affinity
                .as_ref()
                .and_then(|a| split::affinity_key(a, req.headers()))
                .map(split::sticky_draw)
                .unwrap_or_else(|| rand::rng().random());
            &split::pick(&rule.backends, draw)
                .ok_or_else(|| ProxyError::NoBackend(rule.name.clone()))?
                .backend
        }
    };
    if rule.is_none() {
        labels.route = DEFAULT_ROUTE.to_string();
    }
    labels.backend = backend.to_string();

    // 4. policy: faults, header rules, limits, timeout
    if let Some(fault) = rule.and_then(|r| r.fault.as_ref()) {
        let injection = {
            let mut rng = rand::rng();
            fault::decide(fault, rng.random(), rng.random())
        };
        let count = |kind| {
            proxy
                .state
                .metrics
                .faults
                .get_or_create(&RouteKindLabels {
                    route: labels.route.clone(),
                    kind,
                })
                .inc()
        };
        if let Some(delay) = injection.delay {
            count("delay");
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = injection.abort {
            count("abort");
            return Err(ProxyError::FaultAbort {
                route: labels.route.clone(),
                status,
            });
        }
    }
    let mut req = req.map(boxed);
    if let Some(rule) = rule {
        rule.request_headers.apply(req.headers_mut());
    }
    let target = applied
        .backends
        .get(backend)
        .ok_or_else(|| ProxyError::NoEndpoints(backend.to_string()))?;
    let _admitted = target.balancer.admit().await.map_err(|shed| {
        let reason = match shed {
            Shed::MaxPendingRequests => "max-pending-requests",
        };
        proxy
            .state
            .metrics
            .shed
            .get_or_create(&ShedLabels {
                backend: target.label.clone(),
                reason,
            })
            .inc();
        ProxyError::Shed {
            backend: target.label.clone(),
            reason,
        }
    })?;

    // 5. balance and 6. forward (with retries), within the route timeout
    let plan = Plan {
        service: &labels.service,
        route: &labels.route,
        retry: rule.and_then(|r| r.retry.as_ref()),
        mirror: rule.and_then(|r| r.mirror.as_ref()),
    };
    let send = attempt::send(proxy, applied, target, &plan, req);
    let mut resp = match rule.and_then(|r| r.timeout) {
        Some(t) => tokio::time::timeout(t, send)
            .await
            .map_err(|_| ProxyError::Timeout(t))??,
        None => send.await?,
    };
    if let Some(rule) = rule.filter(|r| !r.response_headers.is_empty()) {
        rule.response_headers.apply(resp.headers_mut());
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
    let resp = match proxy
        .state
        .forwarders
        .default_forwarder()
        .forward(req, app)
        .await
    {
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
