//! Network namespaces as test "pods": created with `ip netns`, joined by a
//! veth pair, torn down (processes first) when dropped, even on panic.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command in a namespace; returns (success, stdout+stderr).
pub fn exec(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// Fails the test (never skips) when the machine cannot run it.
pub fn require_root() {
    let uid = sh(&["id", "-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "interception tests need root (network namespaces, iptables); CI runs as root"
    );
    for tool in ["ip", "iptables", "setpriv", "curl", "openssl"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{tool} is not installed (scripts/test.sh installs it)"
        );
    }
}

/// Two namespaces joined by a veth pair: `a` at `10.250.N.1`, `b` at `10.250.N.2`.
pub struct Pair {
    pub a: String,
    pub b: String,
    pub net: u8,
    children: Vec<Child>,
}

impl Pair {
    pub fn new(tag: &str) -> Self {
        let id = std::process::id() % 10_000;
        let net = (std::process::id() % 200) as u8 + 20;
        let (a, b) = (format!("st{id}{tag}a"), format!("st{id}{tag}b"));
        for ns in [&a, &b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let pair = Self {
            a: a.clone(),
            b: b.clone(),
            net,
            children: Vec::new(),
        };
        let (va, vb) = (format!("v{id}{tag}a"), format!("v{id}{tag}b"));
        sh(&[
            "ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b,
        ]);
        sh(&[
            "ip",
            "-n",
            &a,
            "addr",
            "add",
            &format!("10.250.{net}.1/24"),
            "dev",
            &va,
        ]);
        sh(&[
            "ip",
            "-n",
            &b,
            "addr",
            "add",
            &format!("10.250.{net}.2/24"),
            "dev",
            &vb,
        ]);
        sh(&["ip", "-n", &a, "link", "set", &va, "up"]);
        sh(&["ip", "-n", &b, "link", "set", &vb, "up"]);
        // Service cluster IPs live in 10.251.N.0/24: routable from `a`, never
        // reached (the outbound redirect takes them first).
        sh(&[
            "ip",
            "-n",
            &a,
            "route",
            "add",
            &format!("10.251.{net}.0/24"),
            "dev",
            &va,
        ]);
        pair
    }

    pub fn ip_a(&self) -> String {
        format!("10.250.{}.1", self.net)
    }
    pub fn ip_b(&self) -> String {
        format!("10.250.{}.2", self.net)
    }
    pub fn cluster_ip(&self, host: u8) -> String {
        format!("10.251.{}.{host}", self.net)
    }

    /// Starts a long-running process in a namespace, stopped on drop.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) {
        let logf = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
