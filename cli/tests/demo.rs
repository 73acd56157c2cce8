//! The README's first command, `strait demo`, run for real: it must finish
//! with no failed request, no user switching variants, a table whose shares
//! follow the weights, and the proxy in sync with the control plane.

use std::process::Command;

#[test]
fn demo_runs_and_reports_the_split() {
    let strait = env!("CARGO_BIN_EXE_strait");
    let proxy = std::path::Path::new(strait).with_file_name("strait-proxy");
    assert!(
        proxy.exists(),
        "{} missing: build it with `cargo build -p strait-proxy`",
        proxy.display()
    );
    let out = Command::new(strait)
        .args(["demo", "--duration", "2s", "--concurrency", "8"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 saw more than one variant"), "{stdout}");
    let share = |backend: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.contains("web/ab-test") && l.contains(backend))
            .unwrap_or_else(|| panic!("no row for {backend}:\n{stdout}"));
        line.split_whitespace()
            .find(|w| w.ends_with('%'))
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap()
    };
    let v2 = share("demo/web-v2:80");
    assert!(
        (4.0..=16.0).contains(&v2),
        "v2 share {v2}% is far from 10%:\n{stdout}"
    );
    assert!((share("demo/web-v1:80") + v2 - 100.0).abs() < 0.2);
    assert!(stdout.contains("web/canary-by-header"), "{stdout}");
    // The proxy got its config from the control plane and acknowledged it.
    assert!(
        stdout.contains("demo/demo-client") && stdout.contains("SYNCED"),
        "{stdout}"
    );
    // Every hop from the client's proxy was mTLS, as both ends saw it, and
    // all three proxies' config streams are mTLS.
    assert!(
        stdout.contains("client proxy → spiffe://cluster.local/ns/demo/sa/web")
            && stdout.contains("web-v1 proxy  ← spiffe://cluster.local/ns/demo/sa/demo-client")
            && stdout.contains("plaintext from the client proxy: 0 requests"),
        "{stdout}"
    );
    for proxy in ["demo/demo-client", "demo/web-v1-0", "demo/web-v2-0"] {
        let line = stdout.lines().find(|l| l.starts_with(proxy)).unwrap_or("");
        assert!(line.contains(" mtls "), "{proxy}: {stdout}");
    }
}
