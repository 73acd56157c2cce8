//! Test support: real upstream servers on loopback, the real `strait-proxy`
//! binary as a subprocess, manifests written to a temp dir, and a pooled
//! keep-alive HTTP client. Every test in `tests/` builds on these.

#![allow(dead_code, missing_docs)]

pub mod load;
pub mod netns;
pub mod upstream;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // some test binaries pick ports for their upstreams
pub use strait_test_support::free_port;

/// A running `strait-proxy`.
pub struct ProxyProc {
    pub child: Child,
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// Where this run's lines start in `log` (restarts append to it).
    log_offset: u64,
    _tmp: Option<tempfile::TempDir>,
}

impl ProxyProc {
    /// Starts the proxy on a fresh temp dir holding `manifests` (file name,
    /// content) and waits until it is ready.
    pub async fn start(manifests: &[(&str, String)]) -> Self {
        Self::start_with(manifests, &[]).await
    }

    pub async fn start_with(manifests: &[(&str, String)], extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        for (name, content) in manifests {
            std::fs::write(dir.join(name), content).unwrap();
        }
        let log = tmp.path().join("proxy.log");
        let mut p = Self::spawn(&dir, &log, extra);
        p._tmp = Some(tmp);
        p.wait_ready().await;
        p
    }

    /// Spawns on an existing directory (for restart tests).
    ///
    /// The listeners bind port 0 and `wait_ready` reads the ports the proxy
    /// logged: a port picked free beforehand can be taken by another test's
    /// connection before the proxy binds it.
    pub fn spawn(dir: &Path, log: &Path, extra: &[&str]) -> Self {
        let (o, i, a) = (0, 0, 0);
        let log_offset = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strait-proxy"))
            .arg("--local")
            .arg(dir)
            .args(["--outbound-addr", &format!("127.0.0.1:{o}")])
            .args(["--inbound-addr", &format!("127.0.0.1:{i}")])
            .args(["--admin-addr", &format!("127.0.0.1:{a}")])
            .args(["--log", "info,strait_proxy=debug"])
            .args(extra)
            .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
            .stderr(logf)
            .spawn()
            .expect("spawning strait-proxy");
        Self {
            child,
            outbound: ([127, 0, 0, 1], o).into(),
            inbound: ([127, 0, 0, 1], i).into(),
            admin: ([127, 0, 0, 1], a).into(),
            dir: dir.to_path_buf(),
            log: log.to_path_buf(),
            log_offset,
            _tmp: None,
        }
    }

    /// The listeners' addresses from this run's "strait-proxy listening"
    /// log line, once written.
    fn logged_addresses(&self) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
        let log = std::fs::read(&self.log).ok()?;
        let log = String::from_utf8_lossy(log.get(self.log_offset as usize..)?);
        let line = log.lines().find(|l| l.contains("strait-proxy listening"))?;
        let field = |name: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))?
                .parse()
                .ok()
        };
        Some((field("outbound=")?, field("inbound=")?, field("admin=")?))
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("strait-proxy exited early ({status}):\n{}", self.logs());
            }
            if self.admin.port() == 0 {
                if let Some((o, i, a)) = self.logged_addresses() {
                    (self.outbound, self.inbound, self.admin) = (o, i, a);
                } else {
                    assert!(
                        Instant::now() < deadline,
                        "no listening line in 20s:\n{}",
                        self.logs()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
            if let Ok((200, _)) = admin_get(self.admin, "/ready").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "proxy not ready in 20s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the proxy wrote to stdout (the access log).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.log.with_extension("out")).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        admin_get(self.admin, "/metrics").await.unwrap().1
    }

    pub async fn config(&self) -> serde_json::Value {
        serde_json::from_str(&admin_get(self.admin, "/config").await.unwrap().1).unwrap()
    }

    /// The value of one metric sample, 0 when absent. `selector` is the
    /// series name with its labels in exposition order, without the value.
    pub async fn metric(&self, selector: &str) -> f64 {
        metric_value(&self.metrics().await, selector)
    }

    /// Writes a manifest file and waits until the proxy applied a newer version.
    pub async fn rewrite(&self, name: &str, content: &str) -> u64 {
        let before = self.config().await["version"].as_u64().unwrap();
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.config().await["version"].as_u64().unwrap();
            if v > before {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "config not applied:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_value(text: &str, selector: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(selector)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// GET on the admin port: (status, body).
pub async fn admin_get(admin: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = client
        .get(format!("http://{admin}{path}").parse().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A keep-alive HTTP/1.1 client that sends to the proxy with a Host header.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    pub proxy: SocketAddr,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// The upstream that answered (from the echo body).
    pub fn upstream(&self) -> String {
        self.json()["name"].as_str().unwrap_or("").to_string()
    }
}

impl HttpClient {
    pub fn new(proxy: SocketAddr) -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
            proxy,
        }
    }

    pub async fn get(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        self.send("GET", host, path, headers, Bytes::new()).await
    }

    pub async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.proxy))
            .header("host", host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self
            .inner
            .request(b.body(Full::new(body)).unwrap())
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// Manifests for Services backed by loopback endpoints:
/// `(name, [upstream ports])`, each Service on port 80 in `default`.
pub fn services_yaml(services: &[(&str, &[u16])]) -> String {
    let mut out = String::new();
    for (name, ports) in services {
        out.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n"
        ));
        for (i, port) in ports.iter().enumerate() {
            out.push_str(&format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-{i}, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n---\n"
            ));
        }
    }
    out
}

/// A TrafficRoute on `web:80` with the given rules YAML (indented 4).
pub fn route_yaml(rules: &str) -> String {
    format!(
        "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: web, namespace: default}}\nspec:\n  parentRef: {{name: web, port: 80}}\n  rules:\n{rules}"
    )
}
