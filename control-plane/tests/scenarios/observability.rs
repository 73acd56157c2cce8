//! The chart's observability values. Its PodMonitor and ServiceMonitor
//! (`prometheus.podMonitor`, `prometheus.serviceMonitor`) against
//! prometheus-operator's own CRDs, taken from its Go module: the real API
//! server accepts them in a server-side dry run (schema included), and the
//! Grafana dashboards' ConfigMap with them. `tracing.collector` and
//! `tracing.sampling` reach the controller's environment (a sampling
//! `--set` gives as text included), and the schema refuses a share
//! outside 0 to 1 and a collector that is not OTLP/HTTP.

use crate::support::{ApiServer, repo};
use std::process::Command;
use std::sync::Arc;

/// The prometheus-operator release whose CRDs are checked against.
const OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator@v0.80.1";

pub async fn run(server: Arc<ApiServer>) {
    let download = Command::new("go")
        .args(["mod", "download", "-json", OPERATOR])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("go (the Go toolchain fetches prometheus-operator's module)");
    let info: serde_json::Value = serde_json::from_slice(&download.stdout).unwrap_or_default();
    let dir = info["Dir"].as_str().unwrap_or_else(|| {
        panic!(
            "go mod download {OPERATOR}: {}{}",
            String::from_utf8_lossy(&download.stdout),
            String::from_utf8_lossy(&download.stderr)
        )
    });
    for kind in ["podmonitors", "servicemonitors"] {
        let crd =
            format!("{dir}/example/prometheus-operator-crd/monitoring.coreos.com_{kind}.yaml");
        // Server-side: the CRDs are too large for the last-applied annotation.
        server
            .kubectl(&["apply", "--server-side", "-f", &crd], None)
            .ok();
        server
            .kubectl(
                &[
                    "wait",
                    "--for=condition=established",
                    "--timeout=60s",
                    &format!("crd/{kind}.monitoring.coreos.com"),
                ],
                None,
            )
            .ok();
    }

    // helm from the same tool cache as the API server.
    let tools = Command::new(repo().join("tests/k8s-tools/install.sh"))
        .output()
        .unwrap();
    let bin = String::from_utf8_lossy(&tools.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    let rendered = Command::new(format!("{bin}/helm"))
        .args(["template", "strait"])
        .arg(repo().join("helm/strait"))
        .args([
            "-n",
            "strait-system",
            "--show-only",
            "templates/monitors.yaml",
        ])
        .args(["--show-only", "templates/dashboards.yaml"])
        .args(["--show-only", "templates/deployment.yaml"])
        .args([
            "--set",
            "tracing.collector=jaeger-collector.observability:4318",
        ])
        .args(["--set", "tracing.sampling=0.05"])
        .args(["--set", "prometheus.podMonitor.enabled=true"])
        .args(["--set", "prometheus.serviceMonitor.enabled=true"])
        .args(["--set", "prometheus.podMonitor.labels.release=prometheus"])
        .args(["--set", "grafana.dashboards.enabled=true"])
        .output()
        .unwrap();
    let yaml = String::from_utf8_lossy(&rendered.stdout).into_owned();
    assert!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    super::namespace(&server, "strait-system");
    let out = server
        .kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml))
        .ok();
    for created in [
        "podmonitor.monitoring.coreos.com/strait-proxies created (server dry run)",
        "servicemonitor.monitoring.coreos.com/strait-controller created (server dry run)",
        "configmap/strait-dashboards created (server dry run)",
        "deployment.apps/strait-controller created (server dry run)",
    ] {
        assert!(out.contains(created), "{created}: {out}");
    }
    for env in [
        r#"{name: STRAIT_TRACE_COLLECTOR, value: "jaeger-collector.observability:4318"}"#,
        r#"{name: STRAIT_TRACE_SAMPLING, value: "0.05"}"#,
    ] {
        assert!(yaml.contains(env), "{env} not in:\n{yaml}");
    }
    for (value, refused) in [
        ("tracing.sampling=1.5", "/tracing/sampling"),
        ("tracing.sampling=2", "/tracing/sampling"),
        (
            "tracing.collector=https://jaeger:4318",
            "/tracing/collector",
        ),
        ("tracing.collector=jaeger", "/tracing/collector"),
    ] {
        let out = Command::new(format!("{bin}/helm"))
            .args(["template", "strait"])
            .arg(repo().join("helm/strait"))
            .args(["--set", value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(refused),
            "{value}: the schema should refuse it, naming {refused}: {err}"
        );
    }
}
