//! Where `strait stat` reads metrics from: proxies' admin ports given by
//! address, or every meshed pod that matches a label selector, read through
//! the Kubernetes API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/POD:4191/proxy/metrics`), so no port has to
//! be forwarded and only `get pods` and `get pods/proxy` are needed.
//!
//! Pods are listed again on every scrape, so scaled-up pods join the table
//! and deleted ones leave it.

use crate::prom::{self, Sample};
use futures_util::future::join_all;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use std::collections::BTreeMap;
use strait_api::inject::{ADMIN_PORT, PROXY_CONTAINER};

/// Which proxies to read.
#[derive(Debug, Clone)]
pub enum Target {
    /// Admin addresses, `HOST:PORT`.
    Admin(Vec<String>),
    /// The meshed pods matching `selector` in `namespace` (every namespace
    /// when `None`).
    Pods {
        /// The namespace, or all.
        namespace: Option<String>,
        /// A label selector such as `app=web` (empty: every meshed pod).
        selector: String,
    },
}

/// One round of scraping.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Samples per proxy, keyed so that a recreated pod is a new proxy.
    pub proxies: BTreeMap<String, Vec<Sample>>,
    /// Proxies that did not answer, with why.
    pub failed: Vec<(String, String)>,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// Reads a [`Target`]'s proxies.
pub struct Scraper {
    target: Target,
    http: HttpClient,
    kube: Option<kube::Client>,
}

impl Scraper {
    /// Connects to the API server when the target needs it.
    pub async fn new(target: Target) -> anyhow::Result<Self> {
        let kube = match &target {
            Target::Admin(_) => None,
            Target::Pods { .. } => Some(kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!("cannot reach the Kubernetes API server (KUBECONFIG?): {e}")
            })?),
        };
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Ok(Self { target, http, kube })
    }

    /// What is being read, for the table's title.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Admin(a) => a.join(", "),
            Target::Pods {
                namespace,
                selector,
            } => format!(
                "meshed pods{}{}",
                namespace
                    .as_ref()
                    .map(|n| format!(" in {n}"))
                    .unwrap_or_else(|| " in every namespace".into()),
                if selector.is_empty() {
                    String::new()
                } else {
                    format!(" matching {selector}")
                }
            ),
        }
    }

    /// Scrapes every proxy once, concurrently.
    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        let jobs: Vec<(String, String)> = match (&self.target, &self.kube) {
            (Target::Admin(addrs), _) => addrs.iter().map(|a| (a.clone(), a.clone())).collect(),
            (
                Target::Pods {
                    namespace,
                    selector,
                },
                Some(kube),
            ) => meshed_pods(kube, namespace.as_deref(), selector).await?,
            (Target::Pods { .. }, None) => anyhow::bail!("no API server client"),
        };
        let results = join_all(jobs.iter().map(|(_, at)| self.fetch(at))).await;
        let mut out = Scrape::default();
        for ((key, _), r) in jobs.into_iter().zip(results) {
            match r {
                Ok(text) => {
                    out.proxies.insert(key, prom::parse(&text));
                }
                Err(e) => out.failed.push((key, e)),
            }
        }
        Ok(out)
    }

    /// `at` is an admin address, or an API server path for the pod proxy.
    async fn fetch(&self, at: &str) -> Result<String, String> {
        let timeout = std::time::Duration::from_secs(5);
        if let Some(kube) = &self.kube {
            let req = http::Request::get(at)
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            return tokio::time::timeout(timeout, kube.request_text(req))
                .await
                .map_err(|_| "no answer within 5 s".to_string())?
                .map_err(|e| format!("through the API server's pod proxy: {e}"));
        }
        let url: http::Uri = format!("http://{at}/metrics")
            .parse()
            .map_err(|e| format!("{at}: {e}"))?;
        let get = async {
            let resp = self.http.get(url).await.map_err(|e| {
                format!("scraping http://{at}/metrics: {e} (is the proxy's admin port {at}?)")
            })?;
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
        };
        tokio::time::timeout(timeout, get)
            .await
            .map_err(|_| format!("http://{at}/metrics: no answer within 5 s"))?
    }
}

/// Running, meshed pods: (key `ns/name` plus the uid, the pod-proxy path of
/// their proxy's `/metrics`).
async fn meshed_pods(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(list_meshed(client, namespace, selector)
        .await?
        .into_iter()
        .map(|p| {
            (
                format!("{}/{} {}", p.namespace, p.name, p.uid),
                format!(
                    "/api/v1/namespaces/{}/pods/{}:{}/proxy/metrics",
                    p.namespace, p.name, p.admin_port
                ),
            )
        })
        .collect())
}

/// A running meshed pod.
#[derive(Debug, Clone)]
pub struct MeshedPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (a recreated pod is another proxy).
    pub uid: String,
    /// Its proxy's admin port.
    pub admin_port: u16,
}

/// The running meshed pods matching `selector` in `namespace` (every
/// namespace when `None`).
pub async fn list_meshed(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: &str,
) -> anyhow::Result<Vec<MeshedPod>> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut lp = ListParams::default();
    if !selector.is_empty() {
        lp = lp.labels(selector);
    }
    let pods = api
        .list(&lp)
        .await
        .map_err(|e| anyhow::anyhow!("listing pods: {e}"))?;
    let mut out = Vec::new();
    for p in pods.items {
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let spec = match &p.spec {
            Some(s) if running && p.metadata.deletion_timestamp.is_none() => s,
            _ => continue,
        };
        // The proxy is a native sidecar (an init container) or, injected
        // by an older release, a regular one.
        let proxy = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == PROXY_CONTAINER);
        let Some(proxy) = proxy else { continue };
        let admin_port = proxy
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("strait-admin"))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(ADMIN_PORT);
        out.push(MeshedPod {
            namespace: p.metadata.namespace.unwrap_or_default(),
            name: p.metadata.name.unwrap_or_default(),
            uid: p.metadata.uid.unwrap_or_default(),
            admin_port,
        });
    }
    Ok(out)
}
