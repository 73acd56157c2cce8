//! A real `strait-proxy` process for the identity tests, and the small
//! helpers they share (serving tonic on a listener, waiting for a
//! condition).

use std::time::Duration;

/// The listener's connections as the stream tonic serves.
pub fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    })
}

pub fn wait(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The real `strait-proxy` binary getting its certificate from an identity
/// service, with a local config (`config`, or an empty directory).
pub struct RunningProxy {
    child: std::process::Child,
    /// Its admin port.
    pub admin: u16,
    /// Its outbound listener's port.
    pub outbound: u16,
    /// Its inbound listener's port.
    pub inbound: u16,
    log: std::path::PathBuf,
}

/// Who a [`RunningProxy`] is and what it reads.
pub struct ProxySpec<'a> {
    /// Its name (log and config directory names).
    pub name: &'a str,
    /// The identity service.
    pub identity: std::net::SocketAddr,
    /// The token file it presents.
    pub token: &'a std::path::Path,
    /// Its ServiceAccount (namespace `shop`).
    pub service_account: &'a str,
    /// Its manifests (`None`: an empty directory).
    pub config: Option<&'a std::path::Path>,
    /// More flags.
    pub extra: &'a [&'a str],
}

impl RunningProxy {
    pub fn start(dir: &std::path::Path, spec: ProxySpec<'_>) -> Self {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_strait-controller"))
            .with_file_name("strait-proxy");
        assert!(
            bin.exists(),
            "{} missing: build the workspace",
            bin.display()
        );
        let empty = dir.join(format!("{}-config", spec.name));
        std::fs::create_dir_all(&empty).unwrap();
        let config = spec.config.unwrap_or(&empty);
        let log = dir.join(format!("{}.log", spec.name));
        let port = strait_test_support::free_port;
        let (admin, outbound, inbound) = (port(), port(), port());
        let child = std::process::Command::new(bin)
            .arg("--local")
            .arg(config)
            .args([
                "--namespace",
                "shop",
                "--service-account",
                spec.service_account,
            ])
            .args(["--identity-addr", &spec.identity.to_string()])
            .arg("--identity-token")
            .arg(spec.token)
            .args(["--outbound-addr", &format!("127.0.0.1:{outbound}")])
            .args(["--inbound-addr", &format!("127.0.0.1:{inbound}")])
            .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
            .args(spec.extra)
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        RunningProxy {
            child,
            admin,
            outbound,
            inbound,
            log,
        }
    }

    pub fn get(&self, path: &str) -> Option<String> {
        let out = std::process::Command::new("curl")
            .args([
                "-sf",
                "-m",
                "2",
                &format!("http://127.0.0.1:{}{path}", self.admin),
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn metric(&self, selector: &str) -> f64 {
        self.get("/metrics")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(selector)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
