//! Network namespaces as test "pods" (root only): created with `ip netns`,
//! joined by veth pairs, and torn down when dropped, even on panic, their
//! processes first. The proxy's interception tests pair two namespaces; the
//! controller's tests join one to the host, because the real API server
//! refuses loopback endpoint addresses.

use std::path::Path;
use std::process::{Child, Command};

/// Runs a command, panicking with its output if it fails; returns stdout.
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

/// Runs a command in the namespace `ns`; returns (success, stdout+stderr).
pub fn exec(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip netns exec {ns}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// Panics with a clear message unless running as root.
pub fn require_root(why: &str) {
    let uid = sh(&["id", "-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "this test needs root: {why}; CI runs as root"
    );
}

/// A network namespace with loopback up, removed on drop with the
/// processes started in it.
pub struct Netns {
    /// Its name (`ip netns`).
    pub name: String,
    children: Vec<Child>,
}

impl Netns {
    /// Creates `name` (removing a leftover of the same name first).
    pub fn new(name: &str) -> Self {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        sh(&["ip", "netns", "add", name]);
        sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
        Netns {
            name: name.to_owned(),
            children: Vec::new(),
        }
    }

    /// Runs a command in the namespace; returns (success, stdout+stderr).
    pub fn exec(&self, args: &[&str]) -> (bool, String) {
        exec(&self.name, args)
    }

    /// Starts a long-running process in the namespace, its output to `log`;
    /// stopped on drop.
    pub fn spawn(&mut self, args: &[&str], log: &Path) {
        let logf = std::fs::File::create(log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(logf.try_clone().expect("log file"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn in {}: {args:?}: {e}", self.name));
        self.children.push(child);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// One end of a veth pair: its interface name, its namespace (`None`: the
/// host's) and its address with prefix (`10.250.1.1/24`).
pub struct End<'a> {
    /// The interface.
    pub ifname: &'a str,
    /// Where it lives; `None` for the host.
    pub netns: Option<&'a Netns>,
    /// Address with prefix length.
    pub addr: &'a str,
}

/// Joins two ends with a veth pair, addressed and up. A host end is not
/// removed with a namespace: delete it with `ip link del` (its peer goes
/// with it).
pub fn veth(a: End<'_>, b: End<'_>) {
    let _ = Command::new("ip").args(["link", "del", a.ifname]).output();
    let mut add = vec!["ip", "link", "add", a.ifname];
    if let Some(ns) = a.netns {
        add.extend(["netns", &ns.name]);
    }
    add.extend(["type", "veth", "peer", "name", b.ifname]);
    if let Some(ns) = b.netns {
        add.extend(["netns", &ns.name]);
    }
    sh(&add);
    for end in [&a, &b] {
        let on = |args: &[&str]| {
            let mut cmd = vec!["ip"];
            if let Some(ns) = end.netns {
                cmd.extend(["-n", &ns.name]);
            }
            cmd.extend(args);
            sh(&cmd);
        };
        on(&["addr", "add", end.addr, "dev", end.ifname]);
        on(&["link", "set", end.ifname, "up"]);
    }
}
