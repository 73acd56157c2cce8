//! Sending a request to a backend: one attempt, or several under the rule's
//! retry policy and the backend's retry budget; a sampled copy goes to the
//! rule's mirror backend ([`super::mirror`]).
//!
//! Retrying needs the body again, so when a rule retries or mirrors, request
//! bodies up to 64 KiB are buffered; a larger body is streamed once and not
//! retried (`strait_retries_total{outcome="body-too-large"}`). A retry is
//! decided on the response *head*, before anything is streamed to the client,
//! so a response that has started is never retried. Only idempotent methods
//! are retried unless the rule says `nonIdempotent: true`.

use super::body_rate::BodyFate;
use super::errors::ProxyError;
use super::{Body, full, mirror};
use crate::Proxy;
use crate::balance::Shed;
use crate::balance::{Change, PickError};
use crate::metrics::RetryOutcome;
use crate::resilience::retry::{self, Outcome};
use crate::state::{Applied, Backend};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use rand::Rng;

use strait_api::model::{Mirror, RetryPolicy};

/// Largest request body buffered for replay.
pub const MAX_REPLAY_BODY: usize = 64 * 1024;

/// What the attempt loop needs to know about the route.
pub struct Plan<'a> {
    /// Metric labels.
    pub service: &'a str,
    /// Metric labels.
    pub route: &'a str,
    /// Retries, if the rule has them.
    pub retry: Option<&'a RetryPolicy>,
    /// Mirroring, if the rule has it.
    pub mirror: Option<&'a Mirror>,
}

/// A request head that can be rebuilt for each attempt.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    fate: Option<BodyFate>,
}

impl Head {
    fn request(&self, body: Body) -> Request<Body> {
        let mut r = Request::new(body);
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = self.version;
        *r.headers_mut() = self.headers.clone();
        if let Some(f) = &self.fate {
            r.extensions_mut().insert(f.clone());
        }
        r
    }
}

/// The body, buffered when small enough to replay.
enum ReqBody {
    Replayable(Bytes),
    Streaming(Body),
}

/// Reads up to `limit` bytes; a larger body (or one with trailers) comes back
/// as a stream that replays what was read, then the rest.
async fn buffer(mut body: Body, headers: &HeaderMap, limit: usize) -> Result<ReqBody, ProxyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(ReqBody::Streaming(body));
    }
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(ReqBody::Replayable(buf.freeze())),
            Some(Err(e)) => {
                if super::body_rate::is_too_slow(e.as_ref()) {
                    return Err(ProxyError::BodyTooSlow(e.to_string()));
                }
                return Err(ProxyError::BadRequestBody(e.to_string()));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    if buf.len() > limit {
                        return Ok(ReqBody::Streaming(prepend(buf.freeze(), body)));
                    }
                }
                Err(frame) => {
                    // Trailers: keep them, stream the whole thing once.
                    let rest = futures_util::stream::iter([Ok(frame)]);
                    let head =
                        futures_util::stream::iter([Ok(http_body::Frame::data(buf.freeze()))]);
                    let s = futures_util::StreamExt::chain(
                        futures_util::StreamExt::chain(head, rest),
                        http_body_util::BodyStream::new(body),
                    );
                    return Ok(ReqBody::Streaming(super::boxed(
                        http_body_util::StreamBody::new(s),
                    )));
                }
            },
        }
    }
}

fn prepend(prefix: Bytes, rest: Body) -> Body {
    let head = futures_util::stream::iter([Ok(http_body::Frame::data(prefix))]);
    super::boxed(http_body_util::StreamBody::new(
        futures_util::StreamExt::chain(head, http_body_util::BodyStream::new(rest)),
    ))
}

/// Sends `req` to `backend`, retrying and mirroring as the plan says.
pub async fn send(
    proxy: &Proxy,
    applied: &Applied,
    backend: &Backend,
    plan: &Plan<'_>,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let m = &proxy.state.metrics;
    backend.balancer.budget.deposit();
    let retry_policy = plan.retry.filter(|r| r.attempts > 1);
    let upgrade = req.headers().contains_key(http::header::UPGRADE);
    if upgrade || (retry_policy.is_none() && plan.mirror.is_none()) {
        return attempt(proxy, backend, req, None).await.0;
    }
    let (parts, body) = req.into_parts();
    let head = Head {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        fate: parts.extensions.get::<BodyFate>().cloned(),
    };
    let mut body = match buffer(body, &head.headers, MAX_REPLAY_BODY).await? {
        ReqBody::Replayable(b) => Ok(b),
        ReqBody::Streaming(s) => Err(Some(s)),
    };
    if let (Some(mirror), Ok(bytes)) = (plan.mirror, &body) {
        mirror::start(
            &proxy.mirrors,
            &proxy.state.metrics,
            applied,
            plan.route,
            mirror,
            || head.request(full(bytes.clone())),
        );
    }
    let method_ok =
        retry_policy.is_some_and(|r| r.non_idempotent || retry::is_idempotent(&head.method));
    let attempts = match (&body, retry_policy) {
        (Ok(_), Some(r)) if method_ok => r.attempts,
        _ => 1,
    };
    let mut n = 1;
    loop {
        let req_body = match &mut body {
            Ok(bytes) => full(bytes.clone()),
            Err(stream) => stream.take().unwrap_or_else(|| full(Bytes::new())),
        };
        let per_try = retry_policy.and_then(|r| r.per_try_timeout);
        let (result, outcome) = attempt(proxy, backend, head.request(req_body), per_try).await;
        let Some(policy) =
            retry_policy.filter(|p| outcome.is_some_and(|o| retry::retryable_class(p, o)))
        else {
            if n > 1 {
                let outcome = if outcome.is_some_and(Outcome::is_failure) {
                    RetryOutcome::Exhausted
                } else {
                    RetryOutcome::Success
                };
                retried(m, plan, backend, outcome);
            } else if retry_policy.is_some() && outcome.is_some_and(Outcome::is_failure) {
                retried(m, plan, backend, RetryOutcome::NotRetryable);
            }
            return result;
        };
        let stop = if body.is_err() {
            Some(RetryOutcome::BodyTooLarge)
        } else if !method_ok {
            Some(RetryOutcome::NotRetryable)
        } else if n >= attempts {
            Some(RetryOutcome::Exhausted)
        } else if !backend.balancer.budget.withdraw() {
            Some(RetryOutcome::Budget)
        } else {
            None
        };
        m.retry_budget(&backend.label, backend.balancer.budget.remaining());
        if let Some(why) = stop {
            retried(m, plan, backend, why);
            return result;
        }
        m.retry_sent(&backend.label);
        let pause = retry::backoff(policy.backoff, n, rand::rng().random());
        drop(result);
        tokio::time::sleep(pause).await;
        n += 1;
    }
}

fn retried(m: &crate::metrics::Metrics, plan: &Plan<'_>, backend: &Backend, outcome: RetryOutcome) {
    m.retried(plan.service, plan.route, &backend.label, outcome);
}

/// One attempt: pick an endpoint, forward, record the outcome for the
/// circuit breaker. `None` outcome: the request was never sent.
async fn attempt(
    proxy: &Proxy,
    backend: &Backend,
    req: Request<Body>,
    per_try: Option<std::time::Duration>,
) -> (Result<Response<Body>, ProxyError>, Option<Outcome>) {
    let endpoint = match backend.balancer.pick() {
        Ok(e) => e.clone(),
        Err(PickError::NoEndpoints) => {
            return (Err(ProxyError::NoEndpoints(backend.label.clone())), None);
        }
        Err(PickError::MaxConnections) => {
            proxy
                .state
                .metrics
                .shed(&backend.label, Shed::MaxConnections);
            return (
                Err(ProxyError::Shed {
                    backend: backend.label.clone(),
                    reason: Shed::MaxConnections,
                }),
                None,
            );
        }
    };
    let in_flight = endpoint.start();
    let peer = endpoint.peer();
    // Mesh TLS exactly when the forwarder will use it (see Forwarder::forward).
    let mesh_tls = peer.identity.is_some() && proxy.identity.load().is_some();
    endpoint.count(mesh_tls);
    // Who answered, for a tap or a recorded span (only then: an extension
    // costs an allocation per request).
    let wanted = proxy.taps.active() || req.extensions().get::<crate::spans::Recorded>().is_some();
    let tls_peer = (mesh_tls && wanted)
        .then(|| {
            peer.identity
                .as_ref()
                .map(|id| super::access::TlsPeer(std::sync::Arc::from(id.to_string())))
        })
        .flatten();
    let forward = backend.forwarder.forward(req, &peer);
    let result = match per_try {
        Some(t) => tokio::time::timeout(t, forward)
            .await
            .unwrap_or(Err(ProxyError::Timeout(t))),
        None => forward.await,
    };
    drop(in_flight);
    let result = result.map(|mut r| {
        if let Some(p) = tls_peer {
            r.extensions_mut().insert(p);
        }
        r
    });
    let outcome = match &result {
        Ok(r) => Outcome::Status(r.status()),
        // The client's own body failed (too slow, malformed): nothing the
        // endpoint did, so neither recorded for the breaker nor retried;
        // or a client could eject healthy endpoints with bad bodies.
        Err(ProxyError::BodyTooSlow(_) | ProxyError::BadRequestBody(_)) => {
            return (result, None);
        }
        // Nothing was sent to an endpoint with the wrong identity: retried
        // elsewhere like a refused connection, and counted against it.
        Err(ProxyError::Connect { .. } | ProxyError::TlsIdentityMismatch { .. }) => {
            Outcome::ConnectFailure
        }
        Err(ProxyError::Timeout(_)) => Outcome::Timeout,
        Err(_) => Outcome::Reset,
    };
    match backend.balancer.record(&endpoint, outcome) {
        Change::None => {}
        Change::Ejected(d) => {
            tracing::info!(backend = %backend.label, endpoint = %endpoint.addr, ejected_for = ?d, "endpoint ejected");
            proxy.state.metrics.ejected(
                &backend.label,
                backend.balancer.endpoints().len(),
                backend.balancer.ejected(),
            );
        }
        Change::Restored => {
            tracing::info!(backend = %backend.label, endpoint = %endpoint.addr, "endpoint restored after a good probe");
            proxy.state.metrics.endpoint_states(
                &backend.label,
                backend.balancer.endpoints().len(),
                backend.balancer.ejected(),
            );
        }
    }
    (result, Some(outcome))
}
