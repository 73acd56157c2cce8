//! Spans from a real mesh in a real Jaeger (v1.76, built from the Go
//! module proxy by `tests/k8s-tools/jaeger/install.sh`): the A/B mesh of
//! `mesh::ab` exports OTLP/HTTP to Jaeger's receiver, and Jaeger's query
//! API must show each request as one trace with the client proxy's span
//! under the caller's and the server proxy's span under the client's,
//! with the attributes the docs promise. The server proxies learn the
//! collector from the control plane (`--trace-collector` on the
//! controller); the client proxy has its own flag, which wins. With the
//! collector gone, requests keep succeeding and the drop counter grows.

mod mesh;

use mesh::ab::{AbMesh, curl};
use mesh::{Proc, free_port, wait_for};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn jaeger_bin() -> String {
    let script = strait_test_support::repo().join("tests/k8s-tools/jaeger/install.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string()
}

/// Jaeger with in-memory storage (`tests/k8s-tools/jaeger/config.yaml`):
/// OTLP/HTTP on `otlp`, the query API on `query`.
fn jaeger(dir: &std::path::Path, otlp: u16, query: u16) -> Proc {
    let config = strait_test_support::repo().join("tests/k8s-tools/jaeger/config.yaml");
    let p = Proc(
        Command::new(jaeger_bin())
            .arg("--config")
            .arg(format!("file:{}", config.display()))
            .env("JAEGER_OTLP", otlp.to_string())
            .env("JAEGER_QUERY", query.to_string())
            .env("JAEGER_GRPC", free_port().to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("jaeger.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("Jaeger's query API", || {
        curl(&["-m", "1", &format!("http://127.0.0.1:{query}/api/services")]).contains("data")
    });
    p
}

fn get_json(url: &str) -> Value {
    serde_json::from_str(&curl(&["-m", "2", url])).unwrap_or(Value::Null)
}

/// The trace's spans once it has `n` (waits up to 20 s).
fn trace(query: u16, id: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = get_json(&format!("http://127.0.0.1:{query}/api/traces/{id}"));
        if t["data"][0]["spans"]
            .as_array()
            .is_some_and(|s| s.len() >= n)
        {
            return t["data"][0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "trace {id} never had {n} spans: {t}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A span's tag (or its process's) as text.
fn tag(trace: &Value, span: &Value, key: &str) -> Option<String> {
    let process = &trace["processes"][span["processID"].as_str().unwrap_or("")];
    span["tags"]
        .as_array()
        .into_iter()
        .chain(process["tags"].as_array())
        .flatten()
        .find(|t| t["key"] == key)
        .map(|t| match &t["value"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
}

fn service(trace: &Value, span: &Value) -> String {
    let process = &trace["processes"][span["processID"].as_str().unwrap_or("")];
    process["serviceName"].as_str().unwrap_or("").to_string()
}

fn parent(span: &Value) -> Option<String> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")
        .and_then(|r| r["spanID"].as_str().map(str::to_string))
}

/// `strait_spans_dropped_total{reason}` on a proxy.
fn dropped(admin: u16, reason: &str) -> f64 {
    let series = format!("strait_spans_dropped_total{{reason=\"{reason}\"}} ");
    curl(&[&format!("http://127.0.0.1:{admin}/metrics")])
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn one_trace_through_two_proxies_in_jaeger_and_requests_outlive_the_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let (otlp, query) = (free_port(), free_port());
    let collector = format!("127.0.0.1:{otlp}");
    let jaeger = jaeger(tmp.path(), otlp, query);
    // The controller tells every proxy the collector and to start no
    // recorded traces of its own; the client proxy's flag says "all".
    let mesh = AbMesh::start(
        &["--trace-collector", &collector, "--trace-sampling", "0"],
        |pod| {
            let workload = pod.trim_end_matches("-0").to_string();
            let mut args = vec!["--workload".to_string(), workload];
            if pod == "web-client-0" {
                args.extend(["--trace-collector".into(), collector.clone()]);
                args.extend(["--trace-sampling".into(), "1".into()]);
            }
            args
        },
    );
    let url = mesh.url();
    let send = |traceparent: &str| {
        curl(&[
            "-m",
            "5",
            "-H",
            "Host: web",
            "-H",
            &format!("traceparent: {traceparent}"),
            &url,
        ])
    };

    // A caller that did not sample: nobody records, whatever the rates.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    assert!(matches!(
        send(&format!("00-{unsampled}-b7ad6b7169203331-00")).as_str(),
        "v1" | "v2"
    ));
    // A caller that sampled: both proxies record, in order.
    let tid = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = send(&format!("00-{tid}-00f067aa0ba902b7-01"));
    let version = match answer.as_str() {
        "v1" | "v2" => answer.clone(),
        other => panic!("{other:?}"),
    };
    let t = trace(query, tid, 2);
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{t}");
    let by_kind = |kind: &str| {
        spans
            .iter()
            .find(|s| tag(&t, s, "span.kind").as_deref() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} span: {t}"))
    };
    let (client, server) = (by_kind("client"), by_kind("server"));
    assert_eq!(parent(client).as_deref(), Some("00f067aa0ba902b7"), "{t}");
    assert_eq!(
        parent(server),
        client["spanID"].as_str().map(str::to_string),
        "{t}"
    );
    assert_eq!(client["operationName"], "GET web/ab");
    assert_eq!(server["operationName"], "GET");
    assert_eq!(service(&t, client), "web-client");
    assert_eq!(service(&t, server), format!("web-{version}"));
    let expect = |span: &Value, pairs: &[(&str, &str)]| {
        for (k, want) in pairs {
            assert_eq!(tag(&t, span, k).as_deref(), Some(*want), "{k} in {span}");
        }
    };
    let id = |sa: &str| format!("spiffe://cluster.local/ns/shop/sa/{sa}");
    expect(
        client,
        &[
            ("http.request.method", "GET"),
            ("http.response.status_code", "200"),
            ("server.address", "web"),
            ("url.full", "http://web/"),
            ("strait.service", "shop/web:80"),
            ("strait.route", "web/ab"),
            ("strait.backend", &format!("shop/web-{version}:80")),
            ("strait.peer.identity", &id(&format!("web-{version}"))),
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", "web-client-0"),
        ],
    );
    expect(
        server,
        &[
            ("http.request.method", "GET"),
            ("http.response.status_code", "200"),
            ("url.path", "/"),
            ("strait.peer.identity", &id("web-client")),
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", &format!("web-{version}-0")),
        ],
    );
    // The server span lies within the client span.
    let (cs, cd) = (
        client["startTime"].as_u64().unwrap(),
        client["duration"].as_u64().unwrap(),
    );
    let (ss, sd) = (
        server["startTime"].as_u64().unwrap(),
        server["duration"].as_u64().unwrap(),
    );
    assert!(cs <= ss && ss + sd <= cs + cd + 1000, "{t}");
    // The unsampled request (sent first, so exported first if at all)
    // left no trace.
    let none = get_json(&format!("http://127.0.0.1:{query}/api/traces/{unsampled}"));
    assert!(
        none["data"].as_array().is_none_or(|d| d.is_empty()),
        "{none}"
    );

    // Traces the client proxy started itself (rate 1): a root client span
    // with the server span under it. The two proxies export on their own
    // batch timers, so the server's half may land a moment later.
    let rooted_trace = || {
        let search = get_json(&format!(
            "http://127.0.0.1:{query}/api/traces?service=web-client&limit=50"
        ));
        let rooted = search["data"].as_array().into_iter().flatten().any(|t| {
            let spans = t["spans"].as_array().cloned().unwrap_or_default();
            let root = spans.iter().find(|s| parent(s).is_none());
            root.is_some_and(|r| {
                spans
                    .iter()
                    .any(|s| parent(s).as_deref() == r["spanID"].as_str())
            })
        });
        (rooted, search)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut rooted, mut search) = rooted_trace();
    while !rooted && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        (rooted, search) = rooted_trace();
    }
    assert!(rooted, "no trace started by the client proxy: {search}");

    // A proxy that drains sends its queued spans before it exits (here a
    // local-mode proxy with its own flag, in front of an upstream).
    let (inbound, admin) = (free_port(), free_port());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut solo = Command::new(mesh::bin("strait-proxy"))
        .arg("--local")
        .arg(&empty)
        .args(["--trace-collector", &collector, "--workload", "solo"])
        .args(["--inbound-addr", &format!("127.0.0.1:{inbound}")])
        .args(["--outbound-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args([
            "--inbound-forward",
            &format!("127.0.0.1:{}", mesh::upstream("solo")),
        ])
        .stderr(std::fs::File::create(tmp.path().join("solo.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for("the solo proxy", || {
        curl(&["-m", "1", &format!("http://127.0.0.1:{admin}/ready")]).starts_with("ready")
    });
    let last = "5e1f0c0ffee0c0ffee0c0ffee0c0ffee";
    let answer = curl(&[
        "-m",
        "5",
        "-H",
        &format!("traceparent: 00-{last}-00f067aa0ba902b7-01"),
        &format!("http://127.0.0.1:{inbound}/"),
    ]);
    assert_eq!(answer, "solo");
    curl(&[
        "-m",
        "2",
        "-X",
        "POST",
        &format!("http://127.0.0.1:{admin}/shutdown"),
    ]);
    let exited = solo.wait().unwrap();
    assert!(exited.success(), "{exited}");
    let t = trace(query, last, 1);
    assert_eq!(service(&t, &t["spans"][0]), "solo");
    assert_eq!(
        tag(&t, &t["spans"][0], "span.kind").as_deref(),
        Some("server")
    );

    // The collector goes away: every request still succeeds, and the
    // spans they would have made are counted as dropped.
    drop(jaeger);
    let before = dropped(mesh.client.admin, "export_failed");
    for i in 0..100 {
        let answer = send(&format!("00-{:032x}-00f067aa0ba902b7-01", i + 1));
        assert!(
            matches!(answer.as_str(), "v1" | "v2"),
            "request {i} with the collector gone: {answer:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped(mesh.client.admin, "export_failed") <= before {
        assert!(
            Instant::now() < deadline,
            "the drop counter did not grow:\n{}",
            mesh.log("web-client-0")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        mesh.log("web-client-0").contains("exporting spans failed"),
        "the proxy did not say why spans are dropped"
    );

    // A collector that takes the connection and never answers: exports
    // hang until their deadline, the queue fills, and what does not fit is
    // dropped; every request is still answered.
    let blackhole = std::net::TcpListener::bind(("127.0.0.1", otlp)).unwrap();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in blackhole.incoming().take(4) {
            open.push(conn);
        }
        std::thread::sleep(Duration::from_secs(60));
        drop(open);
    });
    let full_before = dropped(mesh.client.admin, "queue_full");
    // More than one batch in flight and a full queue hold (512 + 2,048),
    // sent faster than one export's 5 s deadline.
    let n = 5000;
    let mut args = vec!["-m", "60", "-H", "Host: web", "-w", "%{http_code}\n"];
    args.extend(["--parallel", "--parallel-max", "8"]);
    let urls = vec![url.as_str(); n];
    for u in &urls {
        args.extend(["-o", "/dev/null", u]);
    }
    let codes = curl(&args);
    let ok = codes.lines().filter(|c| *c == "200").count();
    assert_eq!(ok, n, "with a collector that never answers: {codes:.200}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped(mesh.client.admin, "queue_full") <= full_before {
        assert!(
            Instant::now() < deadline,
            "a full queue dropped nothing:\n{}",
            curl(&[&format!("http://127.0.0.1:{}/metrics", mesh.client.admin)])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(held);
}
