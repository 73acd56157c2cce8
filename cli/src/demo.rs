//! `strait demo`: a local mesh in one command, no root and no cluster.
//!
//! Two versions of an app (v1, v2) run on loopback; a TrafficRoute sends
//! `x-canary: true` to v2 and splits everyone else 90/10, sticky per
//! `x-user-id`. A real `strait-controller` serves those manifests over the
//! config stream and a real `strait-proxy` follows it; the demo drives load
//! through the proxy, then prints what the proxy's own `/metrics` saw.

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
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-v1-a, namespace: demo, labels: {{kubernetes.io/service-name: web-v1}}}}
addressType: IPv4
ports: [{{name: http, port: {p1}}}]
endpoints: [{{addresses: ["{ip1}"]}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-v2-a, namespace: demo, labels: {{kubernetes.io/service-name: web-v2}}}}
addressType: IPv4
ports: [{{name: http, port: {p2}}}]
endpoints: [{{addresses: ["{ip2}"]}}]
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

/// Runs the demo.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let v1 = backend::start("v1", Duration::from_millis(2)).await?;
    let v2 = backend::start("v2", Duration::from_millis(4)).await?;
    let dir = tempfile::Builder::new().prefix("strait-demo-").tempdir()?;
    let manifest_path = dir.path().join("mesh.yaml");
    std::fs::write(&manifest_path, manifests(v1, v2))?;
    let (out_port, in_port, admin_port, cp_port) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let outbound: SocketAddr = ([127, 0, 0, 1], out_port).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let control_plane: SocketAddr = ([127, 0, 0, 1], cp_port).into();
    let controller_bin = opts.proxy_bin.with_file_name("strait-controller");
    let _controller = Child(
        tokio::process::Command::new(&controller_bin)
            .arg("--local")
            .arg(dir.path())
            .arg(format!("--config-addr={control_plane}"))
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
    let log = std::fs::File::create(dir.path().join("proxy.log"))?;
    let _proxy = Child(
        tokio::process::Command::new(&opts.proxy_bin)
            .arg(format!("--control-plane={control_plane}"))
            .args([
                "--namespace",
                "demo",
                "--pod",
                "demo-client",
                "--log",
                "warn",
            ])
            .arg(format!("--outbound-addr={outbound}"))
            .arg(format!("--inbound-addr=127.0.0.1:{in_port}"))
            .arg(format!("--admin-addr={admin}"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with `cargo build -p strait-proxy`)",
                    opts.proxy_bin.display()
                )
            })?,
    );
    println!("Strait demo");
    println!("  backends   v1 on {v1}, v2 on {v2}");
    println!("  manifests  {}", manifest_path.display());
    println!(
        "  control    strait-controller --local on {control_plane} (try: strait proxy-status --control-plane {control_plane})"
    );
    println!(
        "  proxy      outbound {outbound}, admin http://{admin} (/metrics, /config), config from the control plane"
    );
    println!(
        "  route      x-canary: true → web-v2; everyone else 90/10 v1/v2, sticky per x-user-id"
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    wait_ready(&client, admin, dir.path()).await?;

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
    let metrics = get(&client, admin, "/metrics").await?;
    print_report(&prom::parse(&metrics), &stats);
    println!("\nWhat the control plane sees (strait proxy-status):\n");
    crate::status::run(&control_plane.to_string()).await?;
    let failed = stats.failed.load(Ordering::Relaxed);
    let switched = stats.switched_users();
    if failed > 0 || switched > 0 {
        bail!(
            "{failed} requests failed and {switched} users switched variants; proxy log: {}",
            dir.path().join("proxy.log").display()
        );
    }
    Ok(())
}

async fn wait_ready(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    admin: SocketAddr,
    dir: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(uri) = format!("http://{admin}/ready").parse()
            && let Ok(r) = client.get(uri).await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default();
    bail!("the proxy did not become ready within 15s; its log:\n{log}")
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
