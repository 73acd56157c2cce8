//! The upstream Gateway API conformance suite, mesh profiles MESH-HTTP and
//! MESH-GRPC, against Strait on the real single-node cluster: the chart
//! installed with `gatewayAPI.installCRDs=true` (so the CRDs are the
//! chart's, v1.6.3, the suite's own version), the suite's echo apps meshed
//! by the namespace annotation, every request from a meshed pod through
//! Strait's proxies and mTLS. `tests/conformance/run.sh` builds the suite
//! and its echo image from source and runs it; this test installs Strait,
//! runs it, and reads its report: every core test of both profiles passes,
//! and every extended feature Strait claims (tests/conformance/options.yaml)
//! passes. The report is copied to `target/conformance-report.yaml`
//! (docs/conformance.md holds the one of the last recorded run).

use std::process::Command;
use strait_cluster_tests::{Cluster, repo, tools_bin};

const NS: &str = "strait-system";

fn helm(args: &[&str]) -> std::process::Output {
    Command::new(tools_bin().join("helm"))
        .env("KUBECONFIG", &Cluster::get().kubeconfig)
        .args(args)
        .output()
        .expect("run helm")
}

#[test]
fn gateway_api_mesh_conformance() {
    let cluster = Cluster::get();
    let chart = repo().join("helm/strait");
    let _ = helm(&["uninstall", "strait", "-n", NS, "--wait"]);
    let install = helm(&[
        "install",
        "strait",
        chart.to_str().expect("path"),
        "-n",
        NS,
        "--create-namespace",
        "--wait",
        "--timeout",
        "4m",
        "--set",
        "gatewayAPI.installCRDs=true",
    ]);
    assert!(
        install.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&install.stderr)
    );

    let report = repo().join("target/conformance-report.yaml");
    let _ = std::fs::remove_file(&report);
    let log = repo().join("target/conformance.log");
    let run = Command::new(repo().join("tests/conformance/run.sh"))
        .arg(&report)
        .stderr(std::fs::File::create(&log).expect("log file"))
        .status()
        .expect("run tests/conformance/run.sh");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = log_text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    };
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no report at {} ({e}); suite exit {run}; log {}:\n{tail}",
            report.display(),
            log.display()
        )
    });
    println!("{text}");
    let v: serde_json::Value = serde_saphyr::from_str(&text).expect("the report is YAML");
    assert_eq!(v["gatewayAPIVersion"], "v1.6.3", "{text}");
    let profiles = v["profiles"].as_array().expect("profiles");
    let mut names: Vec<&str> = profiles.iter().filter_map(|p| p["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["MESH-GRPC", "MESH-HTTP"], "{text}");
    for p in profiles {
        let name = p["name"].as_str().unwrap_or("?");
        for level in ["core", "extended"] {
            let r = &p[level];
            if r.is_null() {
                continue;
            }
            let stats = &r["statistics"];
            println!(
                "{name} {level}: {} passed, {} failed, {} skipped",
                stats["Passed"], stats["Failed"], stats["Skipped"]
            );
            assert_eq!(
                r["result"],
                "success",
                "{name} {level}: {r}\nlog {}:\n{tail}",
                log.display()
            );
        }
        assert!(
            p["core"]["statistics"]["Passed"].as_u64().unwrap_or(0) > 0,
            "{name}: no core test ran: {text}"
        );
    }
    assert!(
        run.success(),
        "the suite failed; log {}:\n{tail}",
        log.display()
    );

    let _ = helm(&["uninstall", "strait", "-n", NS, "--wait"]);
    let _ = cluster.kubectl(&["delete", "namespace", NS, "--wait=false"]);
}
