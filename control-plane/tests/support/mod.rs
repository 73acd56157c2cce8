//! A real etcd + kube-apiserver for tests, on loopback.
//!
//! [`ApiServer::start`] runs `tests/k8s-tools/install.sh` (builds the
//! binaries on a fresh machine, about 6 minutes; restores them from the cache
//! in milliseconds after that) and `start-apiserver.sh` into a temporary
//! directory. Dropping the value stops both processes, also when a test
//! panics; a watchdog process stops them if the test binary dies without
//! unwinding (SIGKILL, a timeout). When anything is missing or fails, `start`
//! panics with the reason: these tests never skip.
//!
//! One server serves a whole test binary; each scenario works in its own
//! namespace.

#![allow(dead_code)] // each test binary uses a different part

pub mod proxy;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("control-plane/ has a parent")
        .to_path_buf()
}

/// A running etcd + kube-apiserver pair.
pub struct ApiServer {
    dir: Option<tempfile::TempDir>,
    work: PathBuf,
    kubeconfig: PathBuf,
    watchdog: Option<Child>,
}

impl ApiServer {
    /// Builds or restores the tools, starts the server and waits until it
    /// is ready. Panics with the reason when it cannot.
    pub fn start() -> ApiServer {
        let tools = repo().join("tests/k8s-tools");
        if Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_err()
        {
            panic!("kubectl is not on PATH; the CRD tests apply manifests with the real kubectl");
        }

        let t = Instant::now();
        // stderr is inherited, so a cold build shows its progress.
        let install = Command::new(tools.join("install.sh"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/k8s-tools/install.sh: {e}"));
        let stdout = String::from_utf8_lossy(&install.stdout);
        let bin = stdout.lines().last().unwrap_or("").trim().to_string();
        if !install.status.success() || bin.is_empty() {
            panic!(
                "tests/k8s-tools/install.sh failed ({}); it builds kube-apiserver and etcd with Go \
                 (see docs/testing.md). stdout: {stdout}",
                install.status
            );
        }
        eprintln!("k8s tools ready in {:.1?}: {bin}", t.elapsed());

        let dir = tempfile::Builder::new()
            .prefix("strait-apiserver-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let work = dir.path().to_path_buf();
        let t = Instant::now();
        let started = Command::new(tools.join("start-apiserver.sh"))
            .arg(&work)
            .env("STRAIT_K8S_BIN", &bin)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/k8s-tools/start-apiserver.sh: {e}"));
        let mut server = ApiServer {
            kubeconfig: work.join("kubeconfig"),
            work,
            dir: Some(dir),
            watchdog: None,
        };
        if !started.status.success() || !server.kubeconfig.exists() {
            panic!(
                "start-apiserver.sh failed ({}):\n{}",
                started.status,
                tail(&started.stderr, 60)
            );
        }
        server.watchdog = Some(server.spawn_watchdog());
        eprintln!(
            "kube-apiserver ready in {:.1?} ({})",
            t.elapsed(),
            server.work.display()
        );
        server
    }

    /// Stops the server if this process goes away without running `Drop`.
    /// It runs in its own session, so a Ctrl-C to the test does not kill it
    /// before it has stopped the server.
    fn spawn_watchdog(&self) -> Child {
        let stop = repo().join("tests/k8s-tools/stop-apiserver.sh");
        Command::new("setsid")
            .args([
                "bash",
                "-c",
                r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3""#,
                "strait-apiserver-watchdog",
            ])
            .arg(std::process::id().to_string())
            .arg(stop)
            .arg(&self.work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the apiserver watchdog: {e}"))
    }

    /// The server's certificates and keys (`sa.key` signs ServiceAccount
    /// tokens).
    pub fn pki(&self) -> PathBuf {
        self.work.join("pki")
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs kubectl against this server, with `stdin` piped in when given.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Kubectl {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.work.join("kube-cache"))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        let out = child.wait_with_output().expect("wait for kubectl");
        Kubectl {
            args: args.join(" "),
            out,
        }
    }

    /// `kubectl apply -f crds/`, then waits until both CRDs are established.
    /// The apply must be clean: no warnings (an unknown `format` in a schema,
    /// for example, makes the server warn on every apply).
    pub fn install_crds(&self) {
        let crds = repo().join("crds");
        let apply = self.kubectl(&["apply", "-f", crds.to_str().unwrap()], None);
        let out = apply.ok();
        assert!(
            out.contains("trafficroutes.strait.dev created")
                && out.contains("destinationpolicies.strait.dev created"),
            "{out}"
        );
        assert_eq!(apply.stderr(), "", "warnings while applying the CRDs");
        self.kubectl(
            &[
                "wait",
                "--for=condition=established",
                "--timeout=60s",
                "crd/trafficroutes.strait.dev",
                "crd/destinationpolicies.strait.dev",
            ],
            None,
        )
        .ok();
    }

    /// Namespaces `shop` and `strait-system`, and Services `web`, `web-v1`
    /// and `web-v2` (port 80) whose one endpoint each is `ip` on 8080, 8081
    /// and 8082 (upstreams answering `web`, `v1`, `v2` in the tests).
    pub fn shop(&self, ip: &str) {
        self.kubectl(&["create", "namespace", "shop"], None).ok();
        self.kubectl(&["create", "namespace", "strait-system"], None)
            .ok();
        let objects = format!(
            "{}{}{}",
            service_and_slice("web", ip, 8080),
            service_and_slice("web-v1", ip, 8081),
            service_and_slice("web-v2", ip, 8082)
        );
        self.kubectl(&["apply", "-f", "-"], Some(&objects)).ok();
    }

    /// Installs the Gateway API route CRDs the chart carries
    /// (`helm/strait/gateway-api/`, standard channel) and waits until they
    /// are served. Server-side: they are too big for client-side apply's
    /// last-applied annotation.
    pub fn install_gateway_crds(&self) {
        let dir = repo().join("helm/strait/gateway-api");
        self.kubectl(
            &["apply", "--server-side", "-f", dir.to_str().unwrap()],
            None,
        )
        .ok();
        self.kubectl(
            &[
                "wait",
                "--for=condition=established",
                "--timeout=60s",
                "crd/httproutes.gateway.networking.k8s.io",
                "crd/grpcroutes.gateway.networking.k8s.io",
            ],
            None,
        )
        .ok();
    }

    /// A kube-rs client for the admin user.
    pub async fn client(&self) -> kube::Client {
        // Ignore the error: another test in this binary may have installed it.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig: {e}"));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client: {e}"))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let stopped = Command::new(repo().join("tests/k8s-tools/stop-apiserver.sh"))
            .arg(&self.work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut watchdog) = self.watchdog.take() {
            // The watchdog leads its own process group: end it and its `sleep`.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", watchdog.id())])
                .stderr(Stdio::null())
                .status();
            let _ = watchdog.wait();
        }
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("stop-apiserver.sh failed: {stopped:?}");
        }
        if (std::thread::panicking() || !matches!(stopped, Ok(s) if s.success()))
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "kube-apiserver and etcd logs kept in {}/logs",
                dir.keep().display()
            );
        }
    }
}

/// What one kubectl run printed.
pub struct Kubectl {
    args: String,
    /// Exit status and output.
    pub out: Output,
}

impl Kubectl {
    /// stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    /// stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// stdout, after asserting that kubectl succeeded.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert!(
            self.out.status.success(),
            "kubectl {} failed ({}):\n{}{}",
            self.args,
            self.out.status,
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A Service `name` in `shop` (port 80, named http) and an EndpointSlice
/// with one endpoint, `ip:port`.
pub fn service_and_slice(name: &str, ip: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [\"{ip}\"]}}]\n---\n"
    )
}
