//! The admin server (default `0.0.0.0:4191`).
//!
//! | path        | what                                                        |
//! |-------------|-------------------------------------------------------------|
//! | `/metrics`  | Prometheus / OpenMetrics text                               |
//! | `/ready`    | 200 once a config is applied (and, with an identity service, a certificate issued) and while not draining, else 503 |
//! | `/live`     | 200 while the process serves                                |
//! | `/config`   | loopback only: the applied config, its version and source, as JSON |
//! | `/shutdown` | `POST` from loopback only: drain and exit                   |
//! | `/tap`      | loopback only: the requests this proxy sees, live, one JSON line each, filtered by the query ([`crate::tap`]) |
//!
//! The port listens on the pod address because scrapers and kubelet probes
//! come from there; `/config` (every route, endpoint and header value),
//! `/tap` (request paths, which can carry secrets) and `/shutdown` answer
//! only a peer on loopback, so a neighbour on the pod
//! network reads metrics and probes, nothing more.

use crate::Proxy;
use crate::http::{Body, full};
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves admin requests until the process exits. The admin server keeps
/// answering while the proxy drains, so probes see `/ready` turn 503.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, peer, req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection error");
            }
        });
    }
}

/// Whether `ip` is this host's loopback, IPv4-mapped (`::ffff:127.0.0.1`,
/// as an IPv4 peer appears on a `[::]` listener) included.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Answers one admin request. Pure apart from `/shutdown`'s side effect.
pub fn handle(proxy: &Proxy, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(full(body));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            use strait_api::exposition;
            // OpenMetrics for Prometheus (which asks for it); the text
            // format for promtool, curl and older scrapers.
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let (body, content_type) = if exposition::wants_openmetrics(accept) {
                (proxy.state.metrics.encode(), exposition::OPENMETRICS)
            } else {
                let om = proxy.state.metrics.encode();
                (exposition::to_text_format(&om), exposition::TEXT)
            };
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(content_type),
            );
            r
        }
        (&Method::GET, "/ready") if proxy.is_ready() => text(StatusCode::OK, "ready\n".into()),
        (&Method::GET, "/ready") => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        (&Method::GET, "/live") => text(StatusCode::OK, "live\n".into()),
        (&Method::GET, "/config") if !is_loopback(peer.ip()) => text(
            StatusCode::FORBIDDEN,
            "/config is only served to loopback (it shows every route and endpoint)\n".into(),
        ),
        (&Method::GET, "/config") => {
            let mut r = text(StatusCode::OK, proxy.state.load().to_json(proxy.spans.settings().as_ref()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        (&Method::GET, "/tap") if !is_loopback(peer.ip()) => text(
            StatusCode::FORBIDDEN,
            "/tap is only served to loopback (request paths can carry secrets); use a port-forward\n"
                .into(),
        ),
        (&Method::GET, "/tap") => tap(proxy, req.uri().query().unwrap_or(""))
            .unwrap_or_else(|(status, why)| text(status, why)),
        (&Method::POST, "/shutdown") if is_loopback(peer.ip()) => {
            tracing::info!("shutdown requested on the admin port");
            proxy.state.set_draining();
            proxy.drain.start();
            text(StatusCode::OK, "draining\n".into())
        }
        (&Method::POST, "/shutdown") => text(
            StatusCode::FORBIDDEN,
            "shutdown is only allowed from loopback\n".into(),
        ),
        (_, "/shutdown") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into()),
        (_, "/metrics" | "/ready" | "/live" | "/config" | "/tap") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /ready, /live, /config, /tap, /shutdown\n".into(),
        ),
    }
}

/// A tap's response: one JSON line per request that passes the filter in
/// `query`, for as long as the client reads.
fn tap(proxy: &Proxy, query: &str) -> Result<Response<Body>, (StatusCode, String)> {
    use crate::tap::Filter;
    use http_body::Frame;
    let filter =
        Filter::from_query(query).map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")))?;
    let tap = proxy.taps.open().ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} taps are open already\n", crate::tap::MAX_TAPS),
        )
    })?;
    let lines = futures_util::stream::unfold((tap, filter), |(mut tap, filter)| async move {
        let line = tap.next(&filter).await?;
        let mut json = serde_json::to_vec(&line).ok()?;
        json.push(b'\n');
        Some((
            Ok::<_, crate::http::BoxError>(Frame::data(bytes::Bytes::from(json))),
            (tap, filter),
        ))
    });
    let mut r = Response::new(crate::http::boxed(http_body_util::StreamBody::new(lines)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_peers() {
        for (ip, want) in [
            ("127.0.0.1", true),
            ("127.9.9.9", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.244.0.7", false),
            ("::ffff:10.244.0.7", false),
            ("fe80::1", false),
        ] {
            assert_eq!(super::is_loopback(ip.parse().unwrap()), want, "{ip}");
        }
    }
}
