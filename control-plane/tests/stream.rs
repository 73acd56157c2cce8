//! The config stream end to end, without Kubernetes: `strait-controller
//! --local DIR` serving, `strait-proxy --control-plane` following, real HTTP
//! upstreams, real requests.

mod mesh;

use mesh::{admin_json, bin, controller, free_port, get, proxy, upstream, wait_for};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn manifests(v1: u16, v2: u16, w1: u32, w2: u32) -> String {
    let svc = |n: &str, port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {n}, namespace: shop}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {n}-1, namespace: shop, labels: {{kubernetes.io/service-name: {n}}}}}\naddressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n---\n"
        )
    };
    format!(
        "{}{}apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: web, namespace: shop}}\nspec:\n  parentRef: {{name: web, port: 80}}\n  rules:\n    - name: split\n      backends: [{{name: web-v1, weight: {w1}}}, {{name: web-v2, weight: {w2}}}]\n",
        svc("web-v1", v1),
        svc("web-v2", v2)
    )
}

#[test]
fn proxies_follow_the_control_plane_and_survive_its_absence() {
    let (v1, v2) = (upstream("v1"), upstream("v2"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), manifests(v1, v2, 100, 0)).unwrap();
    let cp_port = free_port();
    let mut cp = controller(&dir, cp_port, &tmp.path().join("cp.log"));
    let (_proxy, out, admin) = proxy(
        cp_port,
        "shop",
        "web-client-0",
        &tmp.path().join("proxy.log"),
    );

    // 1. The first config arrives over the stream.
    wait_for("first config", || get(out, "web").as_deref() == Some("v1"));
    let cfg = admin_json(admin, "/config");
    assert_eq!(cfg["source"], format!("control-plane:127.0.0.1:{cp_port}"));
    let v_first = cfg["version"].as_u64().unwrap();
    assert!(v_first >= 1);

    // 2. A change reaches the proxy as a new version.
    std::fs::write(dir.join("mesh.yaml"), manifests(v1, v2, 0, 100)).unwrap();
    wait_for("the new split", || get(out, "web").as_deref() == Some("v2"));
    assert!(admin_json(admin, "/config")["version"].as_u64().unwrap() > v_first);

    // 3. proxy-status: the proxy is connected and runs the latest version.
    let status = Command::new(bin("strait"))
        .args([
            "proxy-status",
            "--control-plane",
            &format!("127.0.0.1:{cp_port}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        text.contains("shop/web-client-0") && text.contains("SYNCED"),
        "{text}"
    );

    // 4. An invalid change never reaches the proxy; the last good stays.
    let version = admin_json(admin, "/config")["version"].as_u64().unwrap();
    std::fs::write(
        dir.join("mesh.yaml"),
        manifests(v1, v2, 0, 100).replace("name: web-v2, weight", "name: web-v3, weight"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        admin_json(admin, "/config")["version"].as_u64().unwrap(),
        version,
        "nothing new was published"
    );
    assert_eq!(get(out, "web").as_deref(), Some("v2"));
    let log = std::fs::read_to_string(tmp.path().join("cp.log")).unwrap();
    assert!(log.contains("Service shop/web-v3 not found"), "{log}");
    std::fs::write(dir.join("mesh.yaml"), manifests(v1, v2, 0, 100)).unwrap();

    // 5. The control plane goes away: the proxy serves on, with no failure.
    drop(cp);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failures) = (stop.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // v2 until the switch, v1 after it: anything else is a failure.
                if !matches!(get(out, "web").as_deref(), Some("v1" | "v2")) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    // 6. It comes back with a change: the proxy reconnects and converges.
    std::fs::write(dir.join("mesh.yaml"), manifests(v1, v2, 100, 0)).unwrap();
    cp = controller(&dir, cp_port, &tmp.path().join("cp2.log"));
    wait_for("reconnect and converge", || {
        get(out, "web").as_deref() == Some("v1")
    });
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap();
    // Each curl is a process; on a loaded 2-core machine a few per second.
    assert!(sent >= 5, "only {sent} requests during the outage");
    let failed = failures.load(Ordering::Relaxed);
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed while the control plane was away"
    );
    let log = std::fs::read_to_string(tmp.path().join("proxy.log")).unwrap();
    assert!(log.contains("serving the last config"), "{log}");
    drop(cp);
}

/// `strait-controller --local DIR` with its health port where a test reads it.
fn controller_with_health(
    dir: &std::path::Path,
    port: u16,
    health: u16,
    log: &std::path::Path,
) -> mesh::Proc {
    mesh::Proc(
        Command::new(bin("strait-controller"))
            .arg("--local")
            .arg(dir)
            .args(["--config-addr", &format!("127.0.0.1:{port}")])
            .args(["--health-addr", &format!("127.0.0.1:{health}")])
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// A one-shot reader (`strait explain` sends Hello and half-closes its
/// side) always gets the whole set: the controller used to end the stream
/// when the reader's request side closed, which failed about half the runs
/// with "the control plane ended the stream mid-update".
#[test]
fn explain_gets_the_whole_set_every_time() {
    let (v1, v2) = (upstream("v1"), upstream("v2"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    // Enough objects for the full set to travel in several parts.
    let mut yaml = manifests(v1, v2, 90, 10);
    for i in 0..300 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: filler-{i}, namespace: shop, annotations: {{pad: \"{}\"}}}}\nspec: {{ports: [{{port: 80}}]}}\n",
            "x".repeat(200)
        ));
    }
    std::fs::write(dir.join("mesh.yaml"), yaml).unwrap();
    let cp_port = free_port();
    let _cp = controller(&dir, cp_port, &tmp.path().join("cp.log"));
    let addr = format!("127.0.0.1:{cp_port}");
    let explain = || {
        Command::new(bin("strait"))
            .args([
                "explain",
                "--from",
                "shop/client",
                "--control-plane",
                &addr,
                "GET",
                "http://web/",
            ])
            .output()
            .unwrap()
    };
    wait_for("the controller to publish the manifests", || {
        String::from_utf8_lossy(&explain().stdout).contains("web-v2")
    });
    for run in 1..=100 {
        let out = explain();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("web-v1") && text.contains("web-v2"),
            "run {run} of 100: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The controller's health port: `/live`, `/ready` once its manifests are
/// read, and `/metrics` with its gauges and the `process_*` metrics.
#[test]
fn health_port_serves_probes_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("mesh.yaml"),
        manifests(free_port(), free_port(), 1, 1),
    )
    .unwrap();
    let (cp_port, health) = (free_port(), free_port());
    let _cp = controller_with_health(&dir, cp_port, health, &tmp.path().join("cp.log"));
    let curl = |path: &str| {
        let o = Command::new("curl")
            .args([
                "-s",
                "-m",
                "2",
                "-w",
                "\n%{http_code}",
                &format!("http://127.0.0.1:{health}{path}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    wait_for("/ready", || curl("/ready").ends_with("200"));
    assert!(curl("/live").ends_with("200"));
    // Ready means the manifests are read; the first version is published a
    // few milliseconds later (the publisher coalesces changes).
    wait_for("version 1 published", || {
        curl("/metrics").contains("strait_controller_config_version 1")
    });
    let m = curl("/metrics");
    for name in [
        "strait_controller_proxies_connected 0",
        "strait_controller_config_version 1",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "# TYPE strait_controller_versions_published_total counter",
    ] {
        assert!(m.contains(name), "{name} in {m}");
    }
    // OpenMetrics to a scraper that asks for it (Prometheus does).
    let o = Command::new("curl")
        .args([
            "-s",
            "-H",
            "Accept: application/openmetrics-text;version=1.0.0",
            &format!("http://127.0.0.1:{health}/metrics"),
        ])
        .output()
        .unwrap();
    let om = String::from_utf8_lossy(&o.stdout);
    assert!(
        om.ends_with("# EOF\n")
            && om.contains("# TYPE strait_controller_versions_published counter"),
        "{om}"
    );
}

/// The controller's own metrics follow what happens on the config stream:
/// versions published, a real proxy's ACKs and the time until every proxy
/// had each version, and a NACK with its reason.
#[test]
fn controller_metrics_count_versions_acks_and_nacks() {
    use strait_api::wire::{
        Hello, Nack, ProxyMessage, config_discovery_client::ConfigDiscoveryClient, proxy_message,
    };
    let (v1, v2) = (upstream("v1"), upstream("v2"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), manifests(v1, v2, 100, 0)).unwrap();
    let (cp_port, health) = (free_port(), free_port());
    let _cp = controller_with_health(&dir, cp_port, health, &tmp.path().join("cp.log"));
    let metrics = || {
        let o = Command::new("curl")
            .args([
                "-s",
                "-m",
                "2",
                &format!("http://127.0.0.1:{health}/metrics"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let (_proxy, out, _admin) = proxy(cp_port, "shop", "web-client-0", &tmp.path().join("p.log"));
    wait_for("first config", || get(out, "web").as_deref() == Some("v1"));
    std::fs::write(dir.join("mesh.yaml"), manifests(v1, v2, 0, 100)).unwrap();
    wait_for("the new split", || get(out, "web").as_deref() == Some("v2"));
    // Version 1 was published before the proxy connected (nothing to
    // time); version 2 reached it, and is timed.
    wait_for("both versions acknowledged, the second timed", || {
        let m = metrics();
        value(&m, "strait_controller_acks_total") >= 2.0
            && value(&m, "strait_controller_convergence_seconds_count") >= 1.0
    });
    let m = metrics();
    assert!(
        value(&m, "strait_controller_versions_published_total") >= 2.0,
        "{m}"
    );
    assert_eq!(value(&m, "strait_controller_proxies_connected"), 1.0, "{m}");

    // A proxy that refuses a version, with its reason.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = ConfigDiscoveryClient::connect(format!("http://127.0.0.1:{cp_port}"))
            .await
            .unwrap();
        let msgs = [
            proxy_message::Kind::Hello(Hello {
                namespace: "shop".into(),
                pod: "refuser".into(),
                ..Hello::default()
            }),
            proxy_message::Kind::Nack(Nack {
                version: 2,
                reason: "route web/split: made-up refusal".into(),
            }),
        ]
        .map(|k| ProxyMessage { kind: Some(k) });
        let outgoing = futures_util::StreamExt::chain(
            futures_util::stream::iter(msgs),
            futures_util::stream::pending(),
        );
        let _stream = client.stream(outgoing).await.unwrap();
        wait_for("the NACK counted", || {
            value(
                &metrics(),
                "strait_controller_nacks_total{reason=\"route web/split: made-up refusal\"}",
            ) == 1.0
        });
    });
}
