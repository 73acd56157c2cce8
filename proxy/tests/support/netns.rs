//! Two network namespaces as test "pods", built on
//! `strait_test_support::netns` (removed when dropped, even on panic).

use std::path::Path;
use std::process::{Command, Stdio};
use strait_test_support::netns::{End, Netns, veth};
#[allow(unused_imports)] // each test binary uses some of them
pub use strait_test_support::netns::{exec, sh};

/// The metrics page of the proxy in namespace `ns` (its admin port).
#[allow(dead_code)] // each test binary uses some of these
pub fn metrics(ns: &str) -> String {
    exec(
        ns,
        &["curl", "-s", "-m", "2", "http://127.0.0.1:4191/metrics"],
    )
    .1
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
    veth_b: String,
    a_ns: Netns,
    b_ns: Netns,
}

impl Pair {
    pub fn new(tag: &str) -> Self {
        let id = std::process::id() % 10_000;
        let net = (std::process::id() % 200) as u8 + 20;
        let (a, b) = (format!("st{id}{tag}a"), format!("st{id}{tag}b"));
        let (a_ns, b_ns) = (Netns::new(&a), Netns::new(&b));
        let (va, vb) = (format!("v{id}{tag}a"), format!("v{id}{tag}b"));
        let (addr_a, addr_b) = (format!("10.250.{net}.1/24"), format!("10.250.{net}.2/24"));
        veth(
            End {
                ifname: &va,
                netns: Some(&a_ns),
                addr: &addr_a,
            },
            End {
                ifname: &vb,
                netns: Some(&b_ns),
                addr: &addr_b,
            },
        );
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
        Self {
            a,
            b,
            net,
            veth_b: vb,
            a_ns,
            b_ns,
        }
    }

    pub fn ip_a(&self) -> String {
        format!("10.250.{}.1", self.net)
    }
    pub fn ip_b(&self) -> String {
        format!("10.250.{}.2", self.net)
    }
    /// The name of `b`'s end of the veth pair (to capture its traffic).
    pub fn veth_b(&self) -> String {
        self.veth_b.clone()
    }
    pub fn cluster_ip(&self, host: u8) -> String {
        format!("10.251.{}.{host}", self.net)
    }

    /// Starts a long-running process in a namespace, stopped on drop.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) {
        let netns = if ns == self.a {
            &mut self.a_ns
        } else {
            &mut self.b_ns
        };
        netns.spawn(args, log);
    }
}
