//! The client side: one request (`get`), many at a fixed concurrency
//! (`load`, counting answers by status and by the version that served
//! them), and one gRPC call (`grpc`).

use crate::wire::EchoRequest;
use crate::wire::echo_client::EchoClient;
use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client(http2: bool) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http()
}

fn parse_header(h: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (k, v) = h
        .split_once(':')
        .with_context(|| format!("header {h:?} is not `name: value`"))?;
    Ok((k.trim().parse()?, v.trim().parse()?))
}

fn request(
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> anyhow::Result<Request<Empty<Bytes>>> {
    let mut req = Request::get(url).body(Empty::new())?;
    for (k, v) in headers {
        req.headers_mut().append(k.clone(), v.clone());
    }
    Ok(req)
}

/// One request; true when it got an answer below 400.
pub async fn get(url: &str, headers: &[String], http2: bool) -> anyhow::Result<bool> {
    let headers = headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let resp = client(http2)
        .request(request(url, &headers)?)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let mut head = format!("{status}");
    for (k, v) in resp.headers() {
        if k.as_str().starts_with("strait-") {
            head.push_str(&format!(" {k}={}", String::from_utf8_lossy(v.as_bytes())));
        }
    }
    println!("{head}");
    let body = resp.into_body().collect().await?.to_bytes();
    print!("{}", String::from_utf8_lossy(&body));
    Ok(status.as_u16() < 400)
}

/// What `load` sends.
pub struct LoadOptions {
    /// Target URL.
    pub url: String,
    /// Total requests.
    pub requests: u64,
    /// In flight at once (at least 1).
    pub concurrency: usize,
    /// `name: value` headers on every request.
    pub headers: Vec<String>,
    /// Header carrying a per-request user id, if any.
    pub user_header: Option<String>,
    /// Distinct user ids (at least 1).
    pub users: u64,
    /// HTTP/2 prior knowledge.
    pub http2: bool,
}

#[derive(Default)]
struct Tally {
    status: BTreeMap<String, u64>,
    version: BTreeMap<String, u64>,
    /// Versions each user saw (for stickiness).
    user_versions: BTreeMap<u64, std::collections::BTreeSet<String>>,
}

/// Sends the requests and returns a one-line JSON report.
pub async fn load(opts: LoadOptions) -> anyhow::Result<String> {
    let headers = Arc::new(
        opts.headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let user_header = opts
        .user_header
        .as_deref()
        .map(HeaderName::try_from)
        .transpose()?;
    let client = client(opts.http2);
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let opts = Arc::new(opts);
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, next, tally, opts, headers, user_header) = (
            client.clone(),
            next.clone(),
            tally.clone(),
            opts.clone(),
            headers.clone(),
            user_header.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.requests {
                    return Ok::<_, anyhow::Error>(());
                }
                let user = i % opts.users;
                let mut req = request(&opts.url, &headers)?;
                if let Some(h) = &user_header {
                    req.headers_mut()
                        .insert(h.clone(), HeaderValue::from_str(&format!("user-{user}"))?);
                }
                let (status, version) = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16().to_string();
                        let body = resp
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let version = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v.get("version")?.as_str().map(str::to_owned))
                            .unwrap_or_else(|| "-".into());
                        (status, version)
                    }
                    Err(e) => (format!("error: {e}"), "-".into()),
                };
                let mut t = tally.lock().await;
                *t.status.entry(status).or_default() += 1;
                *t.version.entry(version.clone()).or_default() += 1;
                if user_header.is_some() {
                    t.user_versions.entry(user).or_default().insert(version);
                }
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let t = tally.lock().await;
    let users_with_several = t.user_versions.values().filter(|v| v.len() > 1).count();
    if t.status.is_empty() {
        bail!("no request was sent");
    }
    Ok(serde_json::json!({
        "requests": opts.requests,
        "status": t.status,
        "version": t.version,
        "users": t.user_versions.len(),
        "users_seeing_several_versions": users_with_several,
    })
    .to_string())
}

/// One gRPC Echo call; prints the reply as JSON.
pub async fn grpc(addr: String, message: String) -> anyhow::Result<()> {
    let mut client = EchoClient::connect(addr.clone())
        .await
        .with_context(|| format!("connect {addr}"))?;
    let reply = client.echo(EchoRequest { message }).await?.into_inner();
    println!(
        "{}",
        serde_json::json!({"message": reply.message, "pod": reply.pod, "version": reply.version})
    );
    Ok(())
}
