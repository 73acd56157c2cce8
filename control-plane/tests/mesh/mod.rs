//! Helpers for tests that run a whole local mesh: plain HTTP upstreams,
//! the Strait binaries as child processes, curl as the client.

#![allow(dead_code)]

pub mod ab;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strait_test_support::netns::{End, Netns, require_root, veth};

pub fn bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_strait-controller")).with_file_name(name);
    assert!(
        p.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        p.display()
    );
    p
}

pub use strait_test_support::free_port;

/// An HTTP/1.1 keep-alive server answering its name.
pub fn upstream(name: &'static str) -> u16 {
    strait_test_support::upstream::keep_alive(name)
}

pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn controller(dir: &Path, port: u16, log: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_strait-controller"))
            .arg("--local")
            .arg(dir)
            .args([
                "--config-addr",
                &format!("127.0.0.1:{port}"),
                "--replica",
                "cp-0",
                // Tests run controllers side by side.
                "--health-addr",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

pub fn get(out: u16, host: &str) -> Option<String> {
    fetch(out, host, "/").map(|(_, _, body)| body)
}

/// `curl` through the proxy's outbound port: (status, Location, body), or
/// `None` when curl itself failed (no answer).
pub fn fetch(out: u16, host: &str, path: &str) -> Option<(String, String, String)> {
    let o = Command::new("curl")
        .args([
            "-s",
            "-m",
            "2",
            "-H",
            &format!("Host: {host}"),
            "-w",
            "\n%{http_code} %{redirect_url}",
            &format!("http://127.0.0.1:{out}{path}"),
        ])
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n')?;
    let (code, location) = tail.split_once(' ').unwrap_or((tail, ""));
    Some((code.to_string(), location.to_string(), body.to_string()))
}

pub fn admin_json(admin: u16, path: &str) -> serde_json::Value {
    let o = Command::new("curl")
        .args(["-s", "-m", "2", &format!("http://127.0.0.1:{admin}{path}")])
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Starts `strait-proxy --control-plane` in explicit mode; returns (process,
/// outbound port, admin port).
pub fn proxy(cp_port: u16, namespace: &str, pod: &str, log: &Path) -> (Proc, u16, u16) {
    let (out, admin) = (free_port(), free_port());
    let p = Proc(
        Command::new(bin("strait-proxy"))
            .args([
                "--control-plane",
                &format!("127.0.0.1:{cp_port}"),
                "--namespace",
                namespace,
                "--pod",
                pod,
            ])
            .args([
                "--outbound-addr",
                &format!("127.0.0.1:{out}"),
                "--inbound-addr",
                &format!("127.0.0.1:{}", free_port()),
                "--admin-addr",
                &format!("127.0.0.1:{admin}"),
            ])
            .stderr(std::fs::File::create(log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (p, out, admin)
}

/// A network namespace the test creates, joined to this one by a veth pair:
/// this side `10.252.N.1`, the namespace `10.252.N.2`. Kubernetes refuses
/// loopback endpoint addresses, so upstreams that EndpointSlices point at
/// live in here. Removed (processes first) on drop.
pub struct PodNet {
    pub ns: String,
    pub ip: String,
    host_if: String,
    netns: Netns,
}

const HTTP_NAME_SERVER: &str = r#"
import sys, http.server
name = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", str(len(name))); self.end_headers(); self.wfile.write(name)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"#;

impl PodNet {
    pub fn new() -> Self {
        require_root("it creates a network namespace (Kubernetes refuses loopback endpoints)");
        let id = std::process::id() % 10_000;
        let n = std::process::id() % 200 + 20;
        let ns = format!("stcp{id}");
        let (host_if, ns_if) = (format!("vc{id}h"), format!("vc{id}n"));
        let netns = Netns::new(&ns);
        let (host_addr, ns_addr) = (format!("10.252.{n}.1/24"), format!("10.252.{n}.2/24"));
        veth(
            End {
                ifname: &host_if,
                netns: None,
                addr: &host_addr,
            },
            End {
                ifname: &ns_if,
                netns: Some(&netns),
                addr: &ns_addr,
            },
        );
        Self {
            ns,
            ip: format!("10.252.{n}.2"),
            host_if,
            netns,
        }
    }

    /// An HTTP server in the namespace answering `name` on `port`.
    /// A pod network with the three upstreams the API server tests route
    /// between: `web` on 8080, `v1` on 8081, `v2` on 8082 (each answers its
    /// name; `ApiServer::shop` makes the Services that point at them).
    pub fn shop() -> PodNet {
        let mut pods = PodNet::new();
        for (name, port) in [("web", 8080), ("v1", 8081), ("v2", 8082)] {
            pods.upstream(name, port);
        }
        pods
    }

    pub fn upstream(&mut self, name: &str, port: u16) {
        self.netns.spawn(
            &[
                "/usr/bin/python3",
                "-c",
                HTTP_NAME_SERVER,
                &port.to_string(),
                name,
            ],
            Path::new("/dev/null"),
        );
        let url = format!("http://{}:{port}/", self.ip);
        wait_for(&format!("upstream {name}"), || {
            Command::new("curl")
                .args(["-sf", "-m", "1", &url])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        // The namespace (and its processes) goes when `netns` drops; the
        // host end of the veth pair is the host's to remove.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}
