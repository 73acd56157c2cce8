//! The controller's health port (9990): `/live` answers while the process
//! runs, `/ready` once it can do its job (its sources are synced and, in a
//! cluster, the webhook has its certificate), `/metrics` the controller's
//! gauges, its counters ([`crate::metrics`]) and the usual `process_*`
//! metrics in OpenMetrics text. Kubelet probes, `strait check` and
//! Prometheus read them.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why the controller is not ready, or `None` when it is.
pub type Readiness = Arc<dyn Fn() -> Option<String> + Send + Sync>;
/// The controller's own metric families, OpenMetrics text without `# EOF`.
pub type Gauges = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves until the process ends.
pub async fn serve(addr: SocketAddr, ready: Readiness, gauges: Gauges) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health listening");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (ready, gauges) = (ready.clone(), gauges.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let (ready, gauges) = (ready.clone(), gauges.clone());
                async move {
                    let mut content_type = "text/plain; charset=utf-8";
                    let (status, body) = match req.uri().path() {
                        "/live" => (StatusCode::OK, "live\n".to_owned()),
                        "/metrics" => {
                            use strait_api::exposition;
                            let mut text = gauges();
                            if let Some(p) = strait_api::process::read() {
                                strait_api::process::render(&p, &mut text);
                            }
                            text.push_str("# EOF\n");
                            // OpenMetrics for Prometheus (which asks for
                            // it); the text format for promtool and curl.
                            let accept = req
                                .headers()
                                .get(http::header::ACCEPT)
                                .and_then(|v| v.to_str().ok());
                            if exposition::wants_openmetrics(accept) {
                                content_type = exposition::OPENMETRICS;
                            } else {
                                content_type = exposition::TEXT;
                                text = exposition::to_text_format(&text);
                            }
                            (StatusCode::OK, text)
                        }
                        "/ready" => match ready() {
                            None => (StatusCode::OK, "ready\n".to_owned()),
                            Some(why) => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("not ready: {why}\n"),
                            ),
                        },
                        _ => (
                            StatusCode::NOT_FOUND,
                            "not found; try /live or /ready\n".to_owned(),
                        ),
                    };
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = status;
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(content_type),
                    );
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
