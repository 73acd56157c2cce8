//! The echo server: one listener, HTTP/1.1 or HTTP/2 per connection (hyper's
//! auto builder), gRPC requests (by content type) to the tonic Echo service,
//! everything else to the JSON echo.

use crate::wire::echo_server::{Echo, EchoServer};
use crate::wire::{EchoReply, EchoRequest};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Who answers: the pod's name and the app version.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `POD_NAME`, else `HOSTNAME`, else `unknown`.
    pub pod: String,
    /// `VERSION`, else `unknown`.
    pub version: String,
}

impl Identity {
    /// Reads the identity from the environment (the downward API sets `POD_NAME`).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            pod: var("POD_NAME")
                .or_else(|| var("HOSTNAME"))
                .unwrap_or_else(|| "unknown".into()),
            version: var("VERSION").unwrap_or_else(|| "unknown".into()),
        }
    }
}

struct EchoSvc(Arc<Identity>);

#[tonic::async_trait]
impl Echo for EchoSvc {
    async fn echo(
        &self,
        req: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Ok(tonic::Response::new(EchoReply {
            message: req.into_inner().message,
            pod: self.0.pod.clone(),
            version: self.0.version.clone(),
        }))
    }
}

/// Serves until the process is stopped.
pub async fn serve(listen: SocketAddr, id: Identity) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let id = Arc::new(id);
    let grpc = tonic::service::Routes::new(EchoServer::new(EchoSvc(id.clone())));
    eprintln!(
        "strait-testapp serving on {} as pod {} version {}",
        listener.local_addr()?,
        id.pod,
        id.version
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (id, grpc) = (id.clone(), grpc.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let (id, grpc) = (id.clone(), grpc.clone());
                async move {
                    let is_grpc = req
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                    if is_grpc {
                        return Ok::<_, Infallible>(match grpc.oneshot(req).await {
                            Ok(resp) => resp,
                            Err(e) => match e {},
                        });
                    }
                    Ok(echo(&id, req).await.map(tonic::body::Body::new))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The JSON echo of one request.
async fn echo(id: &Identity, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = |name: &str| -> Option<u64> {
        req.uri().query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.parse().ok()).flatten()
        })
    };
    if req.uri().path() == "/healthz" {
        return Response::new(Full::new(Bytes::from_static(b"ok\n")));
    }
    if let Some(ms) = query("delay_ms") {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let status = query("status")
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let body = serde_json::json!({
        "pod": id.pod,
        "version": id.version,
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "authority": authority,
        "protocol": format!("{:?}", req.version()),
        "headers": headers,
    });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
