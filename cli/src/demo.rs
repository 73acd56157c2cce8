//! `strait demo`: a local mesh in one command, no root and no cluster.
//!
//! Two versions of an app (v1, v2) run on loopback, each behind its own
//! `strait-proxy` (its inbound side, as in a meshed pod); a TrafficRoute
//! sends `x-canary: true` to v2 and splits everyone else 90/10, sticky per
//! `x-user-id`. A real `strait-controller --local` serves those manifests
//! over the config stream and signs every proxy's certificate with its
//! development CA; the client's proxy follows it, and each hop from it to
//! a version's proxy is mTLS. The demo drives load through the client's
//! proxy, then prints what the proxies' own `/metrics` saw.

use crate::{backend, prom};
use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Demo options.
pub struct Options {
    /// How long to send load.
    pub duration: Duration,
    /// Concurrent clients.
    pub concurrency: usize,
    /// The proxy binary.
    pub proxy_bin: PathBuf,
}

/// The manifests: the Services, each version's endpoint (its proxy's
/// inbound listener) with the meshed Pod behind it, and the route.
fn manifests(v1: SocketAddr, v2: SocketAddr) -> String {
    format!(
        r#"# The Service the app calls, and one Service per version.
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: demo}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-v1, namespace: demo}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-v2, namespace: demo}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
# Each version's endpoint is its proxy, in a meshed Pod that runs as the
# ServiceAccount `web`: the client's proxy speaks mTLS to it and expects
# spiffe://cluster.local/ns/demo/sa/web.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-v1-a, namespace: demo, labels: {{kubernetes.io/service-name: web-v1}}}}
addressType: IPv4
ports: [{{name: http, port: {p1}}}]
endpoints: [{{addresses: ["{ip1}"], targetRef: {{kind: Pod, name: web-v1-0}}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-v2-a, namespace: demo, labels: {{kubernetes.io/service-name: web-v2}}}}
addressType: IPv4
ports: [{{name: http, port: {p2}}}]
endpoints: [{{addresses: ["{ip2}"], targetRef: {{kind: Pod, name: web-v2-0}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web-v1-0, namespace: demo, annotations: {{strait.dev/proxy-version: demo}}}}
spec: {{serviceAccountName: web}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web-v2-0, namespace: demo, annotations: {{strait.dev/proxy-version: demo}}}}
spec: {{serviceAccountName: web}}
---
apiVersion: strait.dev/v1alpha1
kind: TrafficRoute
metadata: {{name: web, namespace: demo}}
spec:
  parentRef: {{name: web, port: 80}}
  rules:
    - name: canary-by-header
      matches:
        - headers: [{{name: x-canary, value: "true"}}]
      backends: [{{name: web-v2, port: 80}}]
    - name: ab-test
      backends:
        - {{name: web-v1, port: 80, weight: 90}}
        - {{name: web-v2, port: 80, weight: 10}}
      sessionAffinity: {{header: x-user-id}}
      timeout: 2s
"#,
        p1 = v1.port(),
        ip1 = v1.ip(),
        p2 = v2.port(),
        ip2 = v2.ip(),
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Kills the proxy when the demo ends, however it ends.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// The loopback address of a free port.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(([127, 0, 0, 1], free_port()?).into())
}

/// One `strait-proxy` of the demo: its admin address and log.
struct DemoProxy {
    _child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

/// Starts a proxy in namespace `demo` as `pod` (ServiceAccount `sa`),
/// following the controller and getting its certificate from it.
fn start_proxy(
    bin: &Path,
    dir: &Path,
    pod: &str,
    sa: &str,
    (control_plane, identity): (SocketAddr, SocketAddr),
    listeners: [SocketAddr; 3],
    inbound_forward: Option<SocketAddr>,
) -> anyhow::Result<DemoProxy> {
    let [outbound, inbound, admin] = listeners;
    let log = dir.join(format!("{pod}.log"));
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg(format!("--control-plane={control_plane}"))
        .arg(format!("--identity-addr={identity}"))
        .arg("--trust-roots")
        .arg(dir.join("roots.pem"))
        .args(["--namespace", "demo", "--pod", pod, "--service-account", sa])
        .args(["--log", "warn"])
        .arg(format!("--outbound-addr={outbound}"))
        .arg(format!("--inbound-addr={inbound}"))
        .arg(format!("--admin-addr={admin}"));
    if let Some(app) = inbound_forward {
        cmd.arg(format!("--inbound-forward={app}"));
    }
    let child = cmd
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with `cargo build -p strait-proxy`)",
                bin.display()
            )
        })?;
    Ok(DemoProxy {
        _child: Child(child),
        admin,
        log,
    })
}

/// Runs the demo.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let v1 = backend::start("v1", Duration::from_millis(2)).await?;
    let v2 = backend::start("v2", Duration::from_millis(4)).await?;
    let dir = tempfile::Builder::new().prefix("strait-demo-").tempdir()?;
    // Each version's proxy listens inbound here: these are its endpoints.
    let (v1_in, v2_in) = (free_addr()?, free_addr()?);
    let manifest_path = dir.path().join("mesh.yaml");
    std::fs::write(&manifest_path, manifests(v1_in, v2_in))?;
    let (outbound, admin, control_plane, identity) =
        (free_addr()?, free_addr()?, free_addr()?, free_addr()?);
    let controller_bin = opts.proxy_bin.with_file_name("strait-controller");
    let _controller = Child(
        tokio::process::Command::new(&controller_bin)
            .arg("--local")
            .arg(dir.path())
            .arg(format!("--config-addr={control_plane}"))
            .arg(format!("--identity-addr={identity}"))
            .arg("--dev-ca-roots")
            .arg(dir.path().join("roots.pem"))
            .args(["--health-addr", "127.0.0.1:0"])
            .args(["--replica", "demo-controller", "--log", "warn"])
            .stderr(std::fs::File::create(dir.path().join("controller.log"))?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with `cargo build -p strait-control-plane`)",
                    controller_bin.display()
                )
            })?,
    );
    wait_for_file(&dir.path().join("roots.pem"), dir.path()).await?;
    let proxy = |pod: &str, sa: &str, listeners, forward| {
        start_proxy(
            &opts.proxy_bin,
            dir.path(),
            pod,
            sa,
            (control_plane, identity),
            listeners,
            forward,
        )
    };
    let client_proxy = proxy(
        "demo-client",
        "demo-client",
        [outbound, free_addr()?, admin],
        None,
    )?;
    let v1_proxy = proxy(
        "web-v1-0",
        "web",
        [free_addr()?, v1_in, free_addr()?],
        Some(v1),
    )?;
    let v2_proxy = proxy(
        "web-v2-0",
        "web",
        [free_addr()?, v2_in, free_addr()?],
        Some(v2),
    )?;
    println!("Strait demo");
    println!(
        "  backends   v1 on {v1}, v2 on {v2}, each behind its own proxy (inbound {v1_in}, {v2_in})"
    );
    println!("  manifests  {}", manifest_path.display());
    println!(
        "  control    strait-controller --local on {control_plane}, its development CA on {identity} (try: strait proxy-status --control-plane {control_plane})"
    );
    println!(
        "  proxy      outbound {outbound}, admin http://{admin} (/metrics, /config), config from the control plane"
    );
    println!(
        "  route      x-canary: true → web-v2; everyone else 90/10 v1/v2, sticky per x-user-id"
    );
    println!("  mTLS       every hop from the client's proxy to a version's proxy");
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for p in [&client_proxy, &v1_proxy, &v2_proxy] {
        wait_ready(&client, p.admin, &p.log).await?;
    }

    let stats = Arc::new(Load::default());
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, stats) = (client.clone(), stats.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (user, canary) = {
                    let mut rng = rand::rng();
                    (rng.random_range(0..1000u32), rng.random_bool(0.02))
                };
                stats.send(&client, outbound, user, canary).await;
            }
        }));
    }
    let tty = std::io::stdout().is_terminal();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(if tty { 200 } else { 1000 })).await;
        let secs = started.elapsed().as_secs_f64();
        let n = stats.ok.load(Ordering::Relaxed) + stats.failed.load(Ordering::Relaxed);
        let line = format!(
            "  load       {secs:4.1}s  {n:>7} requests  {:>6.0} req/s  {} errors",
            n as f64 / secs,
            stats.failed.load(Ordering::Relaxed)
        );
        if tty {
            print!("\r{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
    }
    for w in workers {
        w.await?;
    }
    if tty {
        println!();
    }
    let metrics = prom::parse(&get(&client, admin, "/metrics").await?);
    print_report(&metrics, &stats);
    let mut servers = Vec::new();
    for (name, p) in [("web-v1", &v1_proxy), ("web-v2", &v2_proxy)] {
        servers.push((name, prom::parse(&get(&client, p.admin, "/metrics").await?)));
    }
    let plaintext = print_mtls(&metrics, &servers);
    println!("\nWhat the control plane sees (strait proxy-status):\n");
    crate::status::run(&control_plane.to_string()).await?;
    let failed = stats.failed.load(Ordering::Relaxed);
    let switched = stats.switched_users();
    if failed > 0 || switched > 0 || plaintext > 0.0 {
        bail!(
            "{failed} requests failed, {switched} users switched variants and {plaintext} requests left the client's proxy in plaintext; logs: {}",
            dir.path().display()
        );
    }
    Ok(())
}

/// Waits for the controller to write its development CA's root.
async fn wait_for_file(path: &Path, dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !path.exists() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("controller.log")).unwrap_or_default();
            bail!("the controller wrote no CA root within 15s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn wait_ready(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    admin: SocketAddr,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        // Ready (a config applied) and holding its certificate, so that
        // every request of the demo is mTLS.
        if let Ok(metrics) = get(client, admin, "/metrics").await
            && prom::parse(&metrics).iter().any(|s| {
                s.name == "strait_identity_renewals_total"
                    && s.label("result") == "success"
                    && s.value >= 1.0
            })
            && let Ok(uri) = format!("http://{admin}/ready").parse()
            && let Ok(r) = client.get(uri).await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    bail!("a proxy did not become ready with a certificate within 15s; its log:\n{log}")
}

async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    admin: SocketAddr,
    path: &str,
) -> anyhow::Result<String> {
    let resp = client.get(format!("http://{admin}{path}").parse()?).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// What the load generator saw, client-side.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    /// user → variants seen (A/B requests only; canary requests are routed
    /// by header, not by the split).
    seen: Mutex<HashMap<u32, (bool, bool)>>,
}

impl Load {
    async fn send(
        &self,
        client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
        proxy: SocketAddr,
        user: u32,
        canary: bool,
    ) {
        let mut req = http::Request::builder()
            .uri(format!("http://{proxy}/"))
            .header("host", "web")
            .header("x-user-id", format!("user-{user}"));
        if canary {
            req = req.header("x-canary", "true");
        }
        let result = match req.body(Empty::new()) {
            Ok(req) => match client.request(req).await {
                Ok(resp) if resp.status() == 200 => {
                    resp.into_body().collect().await.ok().map(|b| b.to_bytes())
                }
                _ => None,
            },
            Err(_) => None,
        };
        match result {
            Some(body) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if !canary && let Ok(mut seen) = self.seen.lock() {
                    let e = seen.entry(user).or_default();
                    if &body[..] == b"v1" {
                        e.0 = true;
                    } else {
                        e.1 = true;
                    }
                }
            }
            None => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn switched_users(&self) -> usize {
        self.seen
            .lock()
            .map(|s| s.values().filter(|(a, b)| *a && *b).count())
            .unwrap_or(usize::MAX)
    }
}

fn print_report(samples: &[prom::Sample], load: &Load) {
    let mut rows: HashMap<(String, String), f64> = HashMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == "strait_requests_total" && s.label("direction") == "outbound")
    {
        *rows
            .entry((s.label("route").to_string(), s.label("backend").to_string()))
            .or_default() += s.value;
    }
    let ab_total: f64 = rows
        .iter()
        .filter(|((r, _), _)| r == "web/ab-test")
        .map(|(_, v)| v)
        .sum();
    let mut keys: Vec<_> = rows.keys().cloned().collect();
    keys.sort();
    println!("\nWhat the proxy measured (from its /metrics):\n");
    println!(
        "  {:<22} {:<20} {:>9} {:>8} {:>9} {:>9}",
        "route", "backend", "requests", "share", "p50", "p99"
    );
    for (route, backend) in keys {
        let n = rows[&(route.clone(), backend.clone())];
        let b = prom::buckets(
            samples,
            "strait_request_duration_seconds",
            &[("route", &route), ("backend", &backend)],
        );
        let ms = |q| {
            prom::quantile(q, &b)
                .map(|s| format!("{:.1}ms", s * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        let share = if route == "web/ab-test" && ab_total > 0.0 {
            format!("{:.1}%", 100.0 * n / ab_total)
        } else {
            "-".into()
        };
        println!(
            "  {route:<22} {backend:<20} {n:>9} {share:>8} {:>9} {:>9}",
            ms(0.5),
            ms(0.99)
        );
    }
    let users = load.seen.lock().map(|s| s.len()).unwrap_or(0);
    println!(
        "\n  sticky     {users} users in the A/B test; {} saw more than one variant",
        load.switched_users()
    );
    println!(
        "  share      the ab-test shares follow the 90/10 weights; canary requests all went to v2"
    );
}

/// Prints each hop's mesh TLS as both ends saw it; returns how many
/// requests left the client's proxy in plaintext.
fn print_mtls(client: &[prom::Sample], servers: &[(&str, Vec<prom::Sample>)]) -> f64 {
    let mesh = |samples: &[prom::Sample], direction: &str, tls: &str| -> Vec<(String, f64)> {
        samples
            .iter()
            .filter(|s| {
                s.name == "strait_mesh_requests_total"
                    && s.label("direction") == direction
                    && s.label("tls") == tls
                    && s.value > 0.0
            })
            .map(|s| (s.label("peer_identity").to_string(), s.value))
            .collect()
    };
    println!("\nMesh TLS, as each end saw it (strait_mesh_requests_total):\n");
    for (peer, n) in mesh(client, "outbound", "true") {
        println!("  client proxy → {peer:<42} {n:>8} requests over mTLS");
    }
    for (name, samples) in servers {
        for (peer, n) in mesh(samples, "inbound", "true") {
            println!("  {name} proxy  ← {peer:<42} {n:>8} requests over mTLS");
        }
    }
    let plaintext: f64 = mesh(client, "outbound", "false")
        .iter()
        .fold(0.0, |sum, (_, n)| sum + n);
    println!("  plaintext from the client proxy: {plaintext} requests");
    plaintext
}
