//! What the tests of every Strait crate share, so that each helper exists
//! once: a free loopback port ([`free_port`]), a process's memory
//! ([`rss_kib`]), the check that keeps a binary's `--help` and the flag
//! tables of the docs identical ([`flags::check`]), network namespaces
//! joined by veth pairs ([`netns`]), a keep-alive HTTP/1.1 upstream
//! ([`upstream::keep_alive`]) and a local proxy in front of it
//! ([`upstream::local_proxy`]). A dev-dependency only; nothing here ships.

pub mod flags;
pub mod netns;
pub mod upstream;

/// A loopback port that was free a moment ago (the listener is closed
/// before returning, so a test binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// The repository's root (this crate lives in `tests/support`).
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// A process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}
