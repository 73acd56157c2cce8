//! The webhook's HTTPS listener: `POST /inject` with an AdmissionReview,
//! `GET /healthz`. HTTP/1.1 over TLS 1.2+ with the certificate the
//! [`Resolver`] holds; bodies are capped, slow clients time out.

use super::review::{self, Decision};
use super::tls::Resolver;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::Namespace;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use strait_api::inject::Settings;

/// The largest AdmissionReview accepted (a Pod is far smaller; the API
/// server itself caps requests at 3 MiB).
const MAX_BODY: usize = 4 << 20;
/// A TLS handshake or a request head that takes longer is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the webhook needs to answer.
pub struct Admit {
    /// Reads namespaces' annotations; `None` in tests that pass them in.
    pub client: Option<kube::Client>,
    /// The injector's settings.
    pub settings: Settings,
    /// The mesh's current trust roots, given to each injected proxy.
    pub roots: Option<Arc<crate::identity::serving::Serving>>,
}

impl Admit {
    async fn namespace_annotations(&self, ns: &str) -> Result<BTreeMap<String, String>, String> {
        let Some(client) = &self.client else {
            return Ok(BTreeMap::new());
        };
        let api: kube::Api<Namespace> = kube::Api::all(client.clone());
        match api.get_opt(ns).await {
            Ok(Some(n)) => Ok(n.metadata.annotations.unwrap_or_default()),
            Ok(None) => Ok(BTreeMap::new()),
            Err(e) => Err(format!("reading namespace {ns}: {e}")),
        }
    }
}

/// Serves until the process ends.
pub async fn serve(
    addr: SocketAddr,
    resolver: Arc<Resolver>,
    admit: Arc<Admit>,
) -> std::io::Result<()> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "injection webhook listening");
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("webhook accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, admit) = (acceptor.clone(), admit.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let svc = service_fn(move |req| handle(admit.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT)
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn handle(
    admit: Arc<Admit>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => return Ok(text(StatusCode::OK, "ok\n".into())),
        (&Method::POST, "/inject") => {}
        _ => {
            return Ok(text(
                StatusCode::NOT_FOUND,
                "not found; the webhook serves POST /inject\n".into(),
            ));
        }
    }
    let body = match tokio::time::timeout(
        CLIENT_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("reading the body: {e}\n"),
            ));
        }
        Err(_) => {
            return Ok(text(
                StatusCode::REQUEST_TIMEOUT,
                "the body took too long\n".into(),
            ));
        }
    };
    let review: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Ok(text(StatusCode::BAD_REQUEST, format!("not JSON: {e}\n"))),
    };
    let ns = review::namespace(&review).unwrap_or("").to_owned();
    let annotations = match admit.namespace_annotations(&ns).await {
        Ok(a) => a,
        Err(e) => {
            // The API server applies the webhook's failurePolicy.
            tracing::warn!("admission of a pod in {ns} failed: {e}");
            return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")));
        }
    };
    let pod = review
        .pointer("/request/object/metadata")
        .and_then(|m| {
            m.get("name")
                .filter(|n| n.as_str() != Some(""))
                .or_else(|| m.get("generateName"))
        })
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_owned();
    let mut settings = admit.settings.clone();
    if let Some(roots) = admit.roots.as_ref().and_then(|s| s.roots.load_full()) {
        settings.trust_roots = (*roots).clone();
    }
    match review::respond(&review, &annotations, &settings) {
        Ok((answer, decision)) => {
            match &decision {
                Decision::Injected(w) => {
                    tracing::info!(namespace = %ns, %pod, warnings = w, "pod injected")
                }
                Decision::Skipped(why) => {
                    tracing::debug!(namespace = %ns, %pod, "pod not injected: {why}")
                }
            }
            let mut r = text(StatusCode::OK, answer.to_string());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        Err(e) => Ok(text(StatusCode::BAD_REQUEST, format!("{e}\n"))),
    }
}
