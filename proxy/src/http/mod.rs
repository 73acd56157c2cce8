//! HTTP: serving detected connections and the request path.
//!
//! * [`server`] runs hyper on a connection whose protocol detection said
//!   HTTP/1 or HTTP/2.
//! * [`pipeline`] is the request path, one `async fn` to read top to bottom:
//!   resolve the Service → match a route → split to a backend → apply the
//!   rule's policy → pick an endpoint → [`forward`].
//! * [`attempt`] sends to a backend: retries within the budget, per-try
//!   timeouts, circuit-breaker bookkeeping; [`mirror`] sends a sampled
//!   copy to a shadow backend.
//! * [`pool`] keeps HTTP/1.1 connections to endpoints alive for reuse;
//!   [`h2pool`] keeps one multiplexed HTTP/2 connection per endpoint.
//! * [`body_rate`] fails a request body that arrives slower than a
//!   minimum rate (a client dribbling bytes to hold the request open).
//! * [`errors`] is the one place a proxy error becomes a status code, a
//!   `strait-proxy-error` header and a metric code.
//! * [`access`] captures a request's head for the access log and open
//!   taps, only when one of them wants it.
//! * [`orig_proto`] carries HTTP/1.1 as HTTP/2 between two proxies.
//! * [`trace_ctx`] passes W3C and B3 trace headers through untouched (no
//!   span is reported yet) and sets `x-request-id`.

pub mod access;
pub mod attempt;
pub mod body_rate;
pub mod errors;
pub mod forward;
pub mod h2pool;
pub mod mirror;
pub mod orig_proto;
pub mod pipeline;
pub mod pool;
pub mod server;
pub mod trace_ctx;
pub mod url;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

/// Errors carried in bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type used at stage boundaries.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body from bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body.
pub fn boxed<B>(b: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}
