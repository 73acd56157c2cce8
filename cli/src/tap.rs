//! `strait tap`: the requests one or more proxies see, live.
//!
//! Each proxy streams its requests from its admin port's `/tap` (one JSON
//! object per line, filtered on the proxy's side), which it serves to
//! loopback only. Given admin addresses, `strait tap` reads them directly
//! (a local mesh, or a `kubectl port-forward` already running); given a
//! label selector, it opens a port-forward to each matching meshed pod's
//! admin port through the API server (which checks `pods/portforward`),
//! so the proxy sees a loopback client. Lines from every proxy are printed
//! as they come, one per request; a proxy that had to drop lines for a
//! slow reader says how many.

use crate::stat::scrape::{MeshedPod, Target, list_meshed};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// The filters, as the proxy's `/tap` takes them.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// `outbound` or `inbound`.
    pub direction: Option<String>,
    /// Method.
    pub method: Option<String>,
    /// Authority.
    pub authority: Option<String>,
    /// Path prefix.
    pub path: Option<String>,
    /// Route label.
    pub route: Option<String>,
    /// Backend label.
    pub backend: Option<String>,
    /// Status or class (`5xx`).
    pub status: Option<String>,
}

impl Filters {
    /// The query string.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("direction", &self.direction),
            ("method", &self.method),
            ("authority", &self.authority),
            ("path", &self.path),
            ("route", &self.route),
            ("backend", &self.backend),
            ("status", &self.status),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

/// One line for a person: direction, method, authority and path, route,
/// backend, status, latency, TLS peer; or how many lines were lost.
pub fn human(proxy: Option<&str>, line: &Value) -> String {
    let who = proxy.map(|p| format!("[{p}] ")).unwrap_or_default();
    if let Some(lost) = line.get("lost") {
        return format!("{who}({lost} requests not shown: this tap read too slowly)");
    }
    let s = |k: &str| line.get(k).and_then(Value::as_str).unwrap_or("");
    let dash = |v: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    let tls = match line.get("tls_peer").and_then(Value::as_str) {
        Some(p) => format!("mtls={p}"),
        None => "plaintext".to_string(),
    };
    format!(
        "{who}{dir:<8} {method} {authority}{path} route={route} backend={backend} {status} {ms:.1}ms {tls}",
        dir = s("direction"),
        method = s("method"),
        authority = s("authority"),
        path = s("path"),
        route = dash(s("route")),
        backend = dash(s("backend")),
        status = line.get("status").and_then(Value::as_u64).unwrap_or(0),
        ms = line
            .get("latency_ms")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
    )
}

/// Streams lines until every proxy's stream has ended, `count` requests
/// were shown, or Ctrl-C.
pub async fn run(
    target: Target,
    filters: Filters,
    json: bool,
    count: Option<u64>,
) -> anyhow::Result<()> {
    let query = filters.query();
    let (tx, mut rx) = mpsc::channel::<(Option<String>, Result<Value, String>)>(256);
    let many = match target {
        Target::Admin(addrs) => {
            let many = addrs.len() > 1;
            for addr in addrs {
                let (tx, query) = (tx.clone(), query.clone());
                tokio::spawn(async move {
                    let name = many.then(|| addr.clone());
                    let io = tokio::net::TcpStream::connect(&addr)
                        .await
                        .map_err(|e| format!("{addr}: {e} (is the proxy's admin port {addr}?)"));
                    match io {
                        Ok(io) => stream(io, &addr, &query, name, &tx).await,
                        Err(e) => drop(tx.send((name, Err(e))).await),
                    }
                });
            }
            many
        }
        Target::Pods {
            namespace,
            selector,
        } => {
            let client = kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!("cannot reach the Kubernetes API server (KUBECONFIG?): {e}")
            })?;
            let pods = list_meshed(&client, namespace.as_deref(), &selector).await?;
            if pods.is_empty() {
                anyhow::bail!("no running meshed pod matches");
            }
            for pod in pods {
                let (tx, query, client) = (tx.clone(), query.clone(), client.clone());
                tokio::spawn(async move {
                    let name = format!("{}/{}", pod.namespace, pod.name);
                    match forward(&client, &pod).await {
                        Ok((pf, io)) => {
                            stream(io, &name, &query, Some(name.clone()), &tx).await;
                            drop(pf);
                        }
                        Err(e) => drop(tx.send((Some(name), Err(e))).await),
                    }
                });
            }
            true
        }
    };
    drop(tx);
    let mut failed = 0usize;
    let mut shown = 0u64;
    let mut out = std::io::stdout().lock();
    while let Some((proxy, line)) = rx.recv().await {
        use std::io::Write;
        if count.is_some_and(|c| shown >= c) {
            break;
        }
        if matches!(&line, Ok(v) if v.get("lost").is_none()) {
            shown += 1;
        }
        match line {
            Ok(mut v) if json => {
                if let (Some(p), Some(o)) = (&proxy, v.as_object_mut()) {
                    o.insert("proxy".into(), Value::String(p.clone()));
                }
                writeln!(out, "{v}")?;
            }
            Ok(v) => writeln!(out, "{}", human(proxy.as_deref().filter(|_| many), &v))?,
            Err(e) => {
                failed += 1;
                eprintln!("strait tap: {e}");
            }
        }
        out.flush()?;
        if count.is_some_and(|c| shown >= c) {
            break;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} tap(s) failed");
    }
    Ok(())
}

/// A port-forward to `pod`'s admin port, and its stream.
async fn forward(
    client: &kube::Client,
    pod: &MeshedPod,
) -> Result<
    (
        kube::api::Portforwarder,
        impl AsyncRead + AsyncWrite + Unpin + use<>,
    ),
    String,
> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let mut pf = api
        .portforward(&pod.name, &[pod.admin_port])
        .await
        .map_err(|e| format!("{}/{}: port-forward: {e}", pod.namespace, pod.name))?;
    let io = pf.take_stream(pod.admin_port).ok_or_else(|| {
        format!(
            "{}/{}: the port-forward gave no stream",
            pod.namespace, pod.name
        )
    })?;
    Ok((pf, io))
}

/// Reads one proxy's `/tap` over `io` and sends each line to `tx`.
async fn stream<I>(
    io: I,
    at: &str,
    query: &str,
    name: Option<String>,
    tx: &mpsc::Sender<(Option<String>, Result<Value, String>)>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fail = |e: String| (name.clone(), Err(format!("{at}: {e}")));
    let (mut send, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(io)).await {
        Ok(c) => c,
        Err(e) => return drop(tx.send(fail(e.to_string())).await),
    };
    tokio::spawn(conn);
    let req = http::Request::get(format!("/tap?{query}"))
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new());
    let resp = match req {
        Ok(req) => send.send_request(req).await,
        Err(e) => return drop(tx.send(fail(e.to_string())).await),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return drop(tx.send(fail(e.to_string())).await),
    };
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let text = body
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        return drop(tx.send(fail(format!("{status}: {text}"))).await);
    }
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame
            .map_err(|e| e.to_string())
            .and_then(|f| f.into_data().map_err(|_| String::new()))
        else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let parsed = serde_json::from_slice::<Value>(&line)
                .map_err(|e| format!("{at}: a line that is not JSON: {e}"));
            if tx.send((name.clone(), parsed)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_the_query() {
        let f = Filters {
            method: Some("GET".into()),
            path: Some("/api items".into()),
            status: Some("5xx".into()),
            ..Default::default()
        };
        assert_eq!(f.query(), "method=GET&path=%2Fapi+items&status=5xx");
        assert_eq!(Filters::default().query(), "");
    }

    #[test]
    fn human_lines() {
        let v = serde_json::json!({
            "direction": "outbound", "method": "GET", "authority": "web.shop", "path": "/x",
            "route": "web/ab", "backend": "shop/web-v2:80", "status": 200, "latency_ms": 1.26,
            "tls_peer": "spiffe://cluster.local/ns/shop/sa/web"
        });
        assert_eq!(
            human(None, &v),
            "outbound GET web.shop/x route=web/ab backend=shop/web-v2:80 200 1.3ms mtls=spiffe://cluster.local/ns/shop/sa/web"
        );
        let v = serde_json::json!({
            "direction": "inbound", "method": "POST", "authority": "10.0.0.7:8080", "path": "/",
            "route": "", "backend": "10.0.0.7:8080", "status": 503, "latency_ms": 0.04
        });
        assert_eq!(
            human(Some("shop/web-0"), &v),
            "[shop/web-0] inbound  POST 10.0.0.7:8080/ route=- backend=10.0.0.7:8080 503 0.0ms plaintext"
        );
        assert_eq!(
            human(None, &serde_json::json!({"lost": 12})),
            "(12 requests not shown: this tap read too slowly)"
        );
    }
}
