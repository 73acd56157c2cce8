//! The harness of the cluster tests: [`Cluster::get`] brings up the real
//! single-node cluster with `tests/cluster/up.sh` (or reuses the one that is
//! up) once per test binary, and every call goes through the real `kubectl`.
//! Nothing here skips: when the cluster cannot start, the test fails with
//! up.sh's output.
//!
//! Each scenario works in a namespace of its own, deleted when the
//! [`Namespace`] value is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The image tag of Strait's images (the workspace version), as
/// `tests/cluster/images.sh` tags them.
pub fn image(name: &str) -> String {
    format!("docker.io/strait/{name}:{}", env!("CARGO_PKG_VERSION"))
}

/// The directory with the cluster's tools (helm, kube-apiserver, ...), from
/// `tests/cluster/install.sh` (a cache hit after the first build).
pub fn tools_bin() -> PathBuf {
    let out = Command::new(repo().join("tests/cluster/install.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/cluster/install.sh: {e}"));
    assert!(out.status.success(), "tests/cluster/install.sh failed");
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim(),
    )
}

/// The `strait` CLI of this workspace (built by `cargo build -p strait-cli`,
/// which scripts/test.sh runs before the cluster tests).
pub fn strait_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let bin = target.join("debug/strait");
    assert!(
        bin.exists(),
        "{} is missing: run cargo build -p strait-cli",
        bin.display()
    );
    bin
}

/// `GET http://addr/path` over a plain TCP connection (the host reaches pod
/// addresses directly); the whole response, head and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A running cluster.
pub struct Cluster {
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

impl Cluster {
    /// The cluster of this test binary, started on first use.
    pub fn get() -> &'static Cluster {
        CLUSTER.get_or_init(|| Cluster::up().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Runs `tests/cluster/up.sh` (which reuses a cluster that is up).
    pub fn up() -> Result<Cluster, String> {
        let t = Instant::now();
        let out = Command::new(repo().join("tests/cluster/up.sh"))
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run tests/cluster/up.sh: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = stdout.lines().last().unwrap_or("").trim();
        if !out.status.success() || kubeconfig.is_empty() {
            return Err(format!(
                "tests/cluster/up.sh failed ({}); its logs are in /tmp/strait-cluster/logs. stdout: {stdout}",
                out.status
            ));
        }
        eprintln!("cluster up in {:.1?}", t.elapsed());
        Ok(Cluster {
            kubeconfig: kubeconfig.into(),
        })
    }

    /// `kubectl ARGS` with this cluster's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"))
    }

    /// `kubectl ARGS`, which must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl ARGS` with `input` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("write to kubectl");
        child.wait_with_output().expect("kubectl")
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n---\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let text = self.kubectl_ok(&a);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("kubectl {a:?} gave no JSON: {e}: {text}"))
    }

    /// A fresh namespace, deleted (without waiting) on drop.
    pub fn namespace(&'static self, name: &str) -> Namespace {
        let _ = self.kubectl(&[
            "delete",
            "namespace",
            name,
            "--wait=true",
            "--ignore-not-found",
        ]);
        self.kubectl_ok(&["create", "namespace", name]);
        // Pods cannot be created before the namespace's default ServiceAccount exists.
        wait_until(
            &format!("the default ServiceAccount in {name}"),
            Duration::from_secs(60),
            || {
                self.kubectl(&["-n", name, "get", "serviceaccount", "default"])
                    .status
                    .success()
                    .then_some(())
            },
        );
        Namespace {
            cluster: self,
            name: name.into(),
        }
    }
}

/// A namespace of one scenario.
pub struct Namespace {
    /// Its cluster.
    pub cluster: &'static Cluster,
    /// Its name.
    pub name: String,
}

impl Namespace {
    /// `kubectl -n NS ARGS`, which must succeed.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        self.cluster.kubectl_ok(&a)
    }

    /// `kubectl -n NS ARGS`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        self.cluster.kubectl(&a)
    }

    /// `kubectl -n NS get ARGS -o json`.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        self.cluster.get_json(&a)
    }

    /// Applies `yaml` in this namespace.
    pub fn apply(&self, yaml: &str) {
        self.cluster.apply(&yaml.replace("@NS@", &self.name));
    }

    /// `kubectl exec POD -- ARGS`: (success, stdout + stderr).
    pub fn exec(&self, pod: &str, args: &[&str]) -> (bool, String) {
        let mut a = vec!["exec", pod, "--"];
        a.extend_from_slice(args);
        let out = self.kubectl(&a);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// Polls `f` every 250 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
