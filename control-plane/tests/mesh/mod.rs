//! Helpers for tests that run a whole local mesh: plain HTTP upstreams,
//! the Strait binaries as child processes, curl as the client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
                while let Ok(n) = conn.read(&mut chunk) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}",
                            name.len()
                        );
                        if conn.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
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
    let o = Command::new("curl")
        .args([
            "-s",
            "-m",
            "2",
            "-H",
            &format!("Host: {host}"),
            &format!("http://127.0.0.1:{out}/"),
        ])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
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
    children: Vec<Child>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        assert_eq!(
            uid, "0",
            "this test needs root to create a network namespace (Kubernetes refuses loopback endpoints); CI runs as root"
        );
        let id = std::process::id() % 10_000;
        let n = std::process::id() % 200 + 20;
        let ns = format!("stcp{id}");
        let (host_if, ns_if) = (format!("vc{id}h"), format!("vc{id}n"));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        sh(&["ip", "netns", "add", &ns]);
        sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns,
        ]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("10.252.{n}.1/24"),
            "dev",
            &host_if,
        ]);
        sh(&["ip", "link", "set", &host_if, "up"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.252.{n}.2/24"),
            "dev",
            &ns_if,
        ]);
        sh(&["ip", "-n", &ns, "link", "set", &ns_if, "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        Self {
            ns,
            ip: format!("10.252.{n}.2"),
            host_if,
            children: Vec::new(),
        }
    }

    /// An HTTP server in the namespace answering `name` on `port`.
    pub fn upstream(&mut self, name: &str, port: u16) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "/usr/bin/python3",
                "-c",
                HTTP_NAME_SERVER,
                &port.to_string(),
                name,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
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
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}
