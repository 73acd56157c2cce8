//! The request path, in the order it runs.
//!
//! Outbound (the app calling a Service):
//! 1. **resolve** the Service: from the intercepted `clusterIP:port`, or in
//!    explicit mode from the `Host` / `:authority`;
//! 2. **route**: the first matching rule of the Service's TrafficRoutes or
//!    HTTPRoutes (`strait_api::route::select`), or straight to the Service's
//!    own endpoints when it has none; a redirect rule answers here
//!    ([`super::url`]);
//! 3. **split**: a backend by weight, sticky when the rule has session
//!    affinity (`strait_api::split`);
//! 4. **policy**: fault injection, request header and URL changes, the backend's
//!    request limits (shed with 503 beyond them), the route timeout;
//! 5. **balance**: an endpoint of the backend ([`crate::balance`]), skipping
//!    ejected ones;
//! 6. **forward** ([`super::attempt`] → [`super::forward`]), retried within
//!    the backend's budget when the rule says so, mirrored when it says so.
//!
//! Inbound (a client calling this pod's app) only forwards to the app on
//! loopback. Both record `strait_requests_total` and the latency histogram.

use super::access::{self, RequestHead};
use super::attempt::{self, Plan};
use super::body_rate::{BodyFate, MinRate, RateLimited};
use super::errors::ProxyError;
use super::{Body, boxed, trace_ctx};
use crate::Proxy;
use crate::conn::Direction;
use crate::metrics::{FaultKind, RequestSeries, RouteLabels, UNKNOWN_SERVICE_LABEL};
use crate::resilience::fault;
use crate::spans::{self, Active};
use crate::state::{Applied, HostError};
use http::{Request, Response};
use hyper::body::Incoming;
use rand::Rng;
use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use strait_api::model::{DEFAULT_ROUTE, ServicePortKey};
use strait_api::{route, split};

/// Where an outbound connection was headed.
#[derive(Debug, Clone)]
pub enum Target {
    /// Intercepted traffic to a Service's clusterIP.
    Service(ServicePortKey),
    /// The app addressed the proxy itself: route by authority.
    Explicit,
}

/// What a request's metrics are labelled with, gathered along the way. On
/// the normal path only `series` is used (found without building labels);
/// the rest names whatever was known when a request failed early.
#[derive(Default)]
struct Labels<'a> {
    /// The Service asked for (owned when the config does not know it).
    service: Option<Cow<'a, ServicePortKey>>,
    /// The rule that matched.
    route: Option<&'a str>,
    /// The backend the split chose.
    backend: Option<&'a ServicePortKey>,
    /// The request series, once the backend's runtime state is found.
    series: Option<Arc<RequestSeries>>,
    /// The client named a Service the config does not have.
    unknown_service: bool,
}

impl Labels<'_> {
    /// The labels as strings (only for failures and the access log).
    fn strings(&self, direction: Direction) -> RouteLabels {
        if let Some(s) = &self.series {
            return s.labels.clone();
        }
        RouteLabels {
            direction,
            service: match &self.service {
                _ if self.unknown_service => UNKNOWN_SERVICE_LABEL.to_string(),
                Some(k) => k.to_string(),
                None => String::new(),
            },
            route: self.route.unwrap_or_default().to_string(),
            backend: self.backend.map(|k| k.to_string()).unwrap_or_default(),
        }
    }
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
    let span = proxy.spans.start(&mut req, spans::Kind::Client);
    let head = access::wanted(&proxy).then(|| RequestHead::new(&req));
    let mut labels = Labels::default();
    let resp = match route_and_forward(&proxy, &applied, &target, req, &mut labels).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(error = %e, service = ?labels.service, "request failed in the proxy");
            e.to_response()
        }
    };
    if head.is_some() || span.is_some() {
        let strings = labels.strings(Direction::Outbound);
        if let Some(span) = span {
            finish_span(span, &strings, &resp, None);
        }
        if let Some(head) = head {
            access::finish(&proxy, head, &strings, &resp, started);
        }
    }
    record(
        &proxy,
        Direction::Outbound,
        &labels,
        resp.status().as_u16(),
        started,
    );
    Ok(resp)
}

/// One authority per request, the one that routes it: two `Host` headers
/// are refused (as nginx and HAProxy do), and on HTTP/1 an absolute-form
/// target's authority replaces `Host` (RFC 9112 §3.2.2), so the upstream
/// receives the authority the request was routed by.
fn settle_host<B>(req: &mut Request<B>) -> Result<(), ProxyError> {
    if req
        .headers()
        .get_all(http::header::HOST)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(ProxyError::BadAuthority("two Host headers".into()));
    }
    if req.version() != http::Version::HTTP_2
        && let Some(a) = req.uri().authority()
    {
        let v = http::HeaderValue::from_str(a.as_str())
            .map_err(|_| ProxyError::BadAuthority(a.to_string()))?;
        req.headers_mut().insert(http::header::HOST, v);
    }
    Ok(())
}

/// Routes see, and upstreams get, the path normalised per RFC 3986
/// (`strait_api::route::path`): no `..` past a prefix rule, no escaped
/// letters around one. Most paths need nothing and are not touched.
fn normalize_path<B>(req: &mut Request<B>) -> Result<(), ProxyError> {
    let normal = match strait_api::route::path::normalize(req.uri().path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(e) => {
            return Err(ProxyError::BadPath {
                path: req.uri().path().to_owned(),
                reason: e.to_string(),
            });
        }
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_| ProxyError::BadPath {
        path: pq.clone(),
        reason: "not a valid path after normalising".into(),
    })?);
    *req.uri_mut() = http::Uri::from_parts(parts).map_err(|e| ProxyError::BadPath {
        path: pq,
        reason: e.to_string(),
    })?;
    Ok(())
}

async fn route_and_forward<'a>(
    proxy: &Proxy,
    applied: &'a Applied,
    target: &Target,
    mut req: Request<Incoming>,
    labels: &mut Labels<'a>,
) -> Result<Response<Body>, ProxyError> {
    settle_host(&mut req)?;
    normalize_path(&mut req)?;
    // 1. resolve
    let service = match target {
        Target::Service(key) => applied.snapshot.service(key).ok_or_else(|| {
            labels.service = Some(Cow::Owned(key.clone()));
            ProxyError::UnknownService(key.to_string())
        })?,
        Target::Explicit => {
            let authority = req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| {
                    req.headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                })
                .unwrap_or_default();
            match applied.service_by_host(authority, &proxy.settings.namespace) {
                Ok(service) => service,
                Err(HostError::Invalid) => {
                    return Err(ProxyError::BadAuthority(authority.to_string()));
                }
                Err(HostError::Unknown(key)) => {
                    // The answer names it; the metrics do not (any Host
                    // a client makes up would be a new series for good).
                    labels.unknown_service = true;
                    return Err(ProxyError::UnknownService(key.to_string()));
                }
            }
        }
    };
    let key = &service.key;
    labels.service = Some(Cow::Borrowed(key));

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
    if let Some(r) = rule.and_then(|r| r.redirect.as_ref()) {
        labels.route = rule.map(|r| r.name.as_str());
        return super::url::redirect(r, &req, &key.name, key.port);
    }
    let backend = match rule {
        None => &service.key,
        Some(rule) => {
            labels.route = Some(&rule.name);
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
    let route_name = rule.map_or(DEFAULT_ROUTE, |r| r.name.as_str());
    labels.route = Some(route_name);
    labels.backend = Some(backend);

    // 4. policy: faults, header rules, limits, timeout
    if let Some(fault) = rule.and_then(|r| r.fault.as_ref()) {
        let injection = {
            let mut rng = rand::rng();
            fault::decide(fault, rng.random(), rng.random())
        };
        let count = |kind| proxy.state.metrics.fault(route_name, kind);
        if let Some(delay) = injection.delay {
            count(FaultKind::Delay);
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = injection.abort {
            count(FaultKind::Abort);
            return Err(ProxyError::FaultAbort {
                route: route_name.to_string(),
                status,
            });
        }
    }
    let mut req = with_body_limit(req, proxy.settings.client.body);
    if let Some(rule) = rule {
        rule.request_headers.apply(req.headers_mut());
        if let Some(w) = &rule.rewrite {
            super::url::apply(w, &mut req)?;
        }
    }
    let target = applied
        .backends
        .get(backend)
        .ok_or_else(|| ProxyError::NoEndpoints(backend.to_string()))?;
    let series = target.series.get_or_insert(
        |(s, r)| s == key && r == route_name,
        || {
            let labels = RouteLabels {
                direction: Direction::Outbound,
                service: key.to_string(),
                route: route_name.to_string(),
                backend: target.label.clone(),
            };
            (
                (key.clone(), route_name.to_string()),
                RequestSeries::new(&proxy.state.metrics, labels),
            )
        },
    );
    labels.series = Some(series.clone());
    let _admitted = target.balancer.admit().await.map_err(|reason| {
        proxy.state.metrics.shed(&target.label, reason);
        ProxyError::Shed {
            backend: target.label.clone(),
            reason,
        }
    })?;

    // 5. balance and 6. forward (with retries), within the route timeout
    let plan = Plan {
        service: &series.labels.service,
        route: &series.labels.route,
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
    tls_peer: Option<Arc<str>>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let mut req = with_body_limit(req, proxy.settings.client.body);
    trace_ctx::propagate(req.headers_mut());
    let span = proxy.spans.start(&mut req, spans::Kind::Server);
    let head =
        access::wanted(&proxy).then(|| RequestHead::new(&req).with_tls_peer(tls_peer.clone()));
    let resp = match proxy
        .state
        .forwarders
        .default_forwarder()
        .forward(req, &crate::connect::Peer::plain(app))
        .await
    {
        Ok(resp) => resp,
        Err(e) => e.to_response(),
    };
    let series = proxy.state.inbound_series.get_or_insert(
        |a| *a == app,
        || {
            let labels = RouteLabels {
                direction: Direction::Inbound,
                service: String::new(),
                route: String::new(),
                backend: proxy.state.metrics.inbound_backend_label(app),
            };
            (app, RequestSeries::new(&proxy.state.metrics, labels))
        },
    );
    if let Some(span) = span {
        finish_span(span, &series.labels, &resp, tls_peer.as_deref());
    }
    if let Some(head) = head {
        access::finish(&proxy, head, &series.labels, &resp, started);
    }
    let secs = started.elapsed().as_secs_f64();
    series.record(&proxy.state.metrics, resp.status().as_u16(), secs);
    Ok(resp)
}

/// Boxes the request body, held to the minimum rate unless it is a gRPC
/// stream (which may pause between messages), its read errors marked as
/// the client's.
fn with_body_limit(req: Request<Incoming>, limit: MinRate) -> Request<Body> {
    use http_body::Body as _;
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if req.body().is_end_stream() {
        return req.map(boxed);
    }
    let limit = if grpc {
        MinRate { rate: 0, ..limit }
    } else {
        limit
    };
    let fate = BodyFate::default();
    let mut req = req.map(|b| boxed(RateLimited::new(b, limit, fate.clone())));
    req.extensions_mut().insert(fate);
    req
}

/// Ends a recorded request's span with what the response says.
fn finish_span(span: Active, labels: &RouteLabels, resp: &Response<Body>, peer: Option<&str>) {
    let peer = peer.or_else(|| resp.extensions().get::<access::TlsPeer>().map(|p| &*p.0));
    span.finish(&spans::Outcome {
        status: resp.status().as_u16(),
        service: &labels.service,
        route: &labels.route,
        backend: &labels.backend,
        peer,
        proxy_error: resp
            .headers()
            .get(super::errors::PROXY_ERROR_HEADER)
            .and_then(|v| v.to_str().ok()),
    });
}

fn record(proxy: &Proxy, direction: Direction, labels: &Labels, code: u16, started: Instant) {
    let m = &proxy.state.metrics;
    let secs = started.elapsed().as_secs_f64();
    match &labels.series {
        Some(series) => series.record(m, code, secs),
        // Failed before a backend was found: a one-off lookup.
        None => RequestSeries::new(m, labels.strings(direction)).record(m, code, secs),
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn one_host_the_routed_one() {
        // Two Host headers: refused.
        let mut r = Request::get("/")
            .header("host", "a")
            .header("host", "b")
            .body(())
            .unwrap();
        assert!(matches!(
            settle_host(&mut r),
            Err(ProxyError::BadAuthority(_))
        ));
        // Absolute form: its authority replaces Host.
        let mut r = Request::get("http://web.shop/x")
            .header("host", "admin.shop")
            .body(())
            .unwrap();
        settle_host(&mut r).unwrap();
        assert_eq!(r.headers()["host"], "web.shop");
        // Origin form: Host stays.
        let mut r = Request::get("/x")
            .header("host", "web.shop")
            .body(())
            .unwrap();
        settle_host(&mut r).unwrap();
        assert_eq!(r.headers()["host"], "web.shop");
        // HTTP/2 keeps :authority as it is.
        let mut r = Request::get("http://web.shop/x")
            .version(http::Version::HTTP_2)
            .body(())
            .unwrap();
        settle_host(&mut r).unwrap();
        assert!(r.headers().get("host").is_none());
    }
}
