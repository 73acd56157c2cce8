//! The chart's Grafana dashboards against a real Prometheus (Debian's
//! package) scraping a real mesh under load: a `strait-controller --local`
//! with its development CA, a client proxy splitting a route 50/50 between
//! two server proxies over mTLS, each in front of its own upstream. Every
//! PromQL expression of every panel (and every variable's query) is run
//! through Prometheus' HTTP API and must return data; `promtool check
//! metrics` must accept every `/metrics` page.

mod mesh;

use mesh::ab::{AbMesh, curl};
use mesh::{Proc, free_port};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "{name} is missing: install Debian's prometheus package (scripts/test.sh does)"
    );
    PathBuf::from(path)
}

/// What Prometheus answers to an instant query.
fn query(prom: u16, q: &str) -> serde_json::Value {
    let body = curl(&[
        "-m",
        "5",
        &format!("http://127.0.0.1:{prom}/api/v1/query"),
        "--data-urlencode",
        &format!("query={q}"),
    ]);
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// Whether an instant query's answer holds at least one number.
fn has_data(answer: &serde_json::Value) -> bool {
    answer["status"] == "success"
        && answer["data"]["result"].as_array().is_some_and(|r| {
            r.iter().any(|s| {
                s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v.is_finite())
            })
        })
}

/// A Grafana expression as Prometheus takes it: every variable at "All"
/// (`.*`), the rate window at one minute, `label_values(m, l)` as
/// `count by (l) (m)`.
fn as_promql(expr: &str) -> String {
    let mut q = expr.replace("$__rate_interval", "1m");
    for v in ["$namespace", "$app", "$pod", "$route"] {
        q = q.replace(v, ".*");
    }
    if let Some(args) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (metric, label) = args.rsplit_once(',').unwrap_or((args, ""));
        return format!("count by ({}) ({metric})", label.trim());
    }
    q
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let (prometheus, promtool) = (tool("prometheus"), tool("promtool"));
    let mesh = AbMesh::start(&[], |_| Vec::new());
    let (client, s1, s2, health) = (&mesh.client, &mesh.s1, &mesh.s2, mesh.health);
    let tmp = mesh.dir.path();
    let url = mesh.url();
    // A change every proxy acknowledges: a version the controller times.
    mesh.set_weight(60);

    // Prometheus scrapes all four every second, with the labels its
    // Kubernetes service discovery gives them (docs/observability.md).
    let prom = free_port();
    let target = |port: u16, pod: &str, app: &str| {
        format!(
            "{{targets: ['127.0.0.1:{port}'], labels: {{namespace: shop, pod: {pod}, app: {app}}}}}"
        )
    };
    std::fs::write(
        tmp.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: strait-proxies\n    static_configs: [{}, {}, {}]\n  - job_name: strait-controller\n    static_configs: [{{targets: ['127.0.0.1:{health}'], labels: {{namespace: strait-system, pod: strait-controller-0}}}}]\n",
            target(client.admin, "web-client-0", "web-client"),
            target(s1.admin, "web-v1-0", "web"),
            target(s2.admin, "web-v2-0", "web"),
        ),
    )
    .unwrap();
    let _prometheus = Proc(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                tmp.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom}"))
            .stderr(std::fs::File::create(tmp.join("prometheus.log")).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Load: keep-alive curls through the client proxy until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), url.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut args = vec!["-m", "5", "-o", "/dev/null", "-H", "Host: web"];
                let urls = vec![url.as_str(); 50];
                for u in &urls {
                    args.extend(["-o", "/dev/null", u]);
                }
                curl(&args);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = has_data(&query(prom, "count(up == 1) >= 4"))
            && has_data(&query(
                prom,
                "sum(rate(strait_requests_total{direction=\"inbound\"}[1m])) > 0",
            ))
            && has_data(&query(
                prom,
                "sum(strait_controller_convergence_seconds_count) > 0",
            ));
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the mesh under load: {}",
            std::fs::read_to_string(tmp.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let dir = strait_test_support::repo().join("helm/strait/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let mut exprs: Vec<(String, String)> = Vec::new();
    for file in &files {
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                exprs.push((
                    format!("{name}: {}", p["title"].as_str().unwrap()),
                    t["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if let Some(q) = v["query"]["query"].as_str() {
                exprs.push((format!("{name}: variable {}", v["name"]), q.to_string()));
            }
        }
    }
    assert!(exprs.len() >= 30, "only {} expressions", exprs.len());
    // A series has a rate once Prometheus has scraped it twice: a few
    // rounds may pass before every one has.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let empty: Vec<String> = exprs
            .iter()
            .filter_map(|(what, expr)| {
                let q = as_promql(expr);
                let answer = query(prom, &q);
                (!has_data(&answer)).then(|| format!("{what}\n    {q}\n    {answer}"))
            })
            .collect();
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} dashboard expressions returned no data:\n{}",
            empty.len(),
            exprs.len(),
            empty.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    // promtool accepts every /metrics page.
    for port in [client.admin, s1.admin, s2.admin, health] {
        let page = curl(&[&format!("http://127.0.0.1:{port}/metrics")]);
        let mut check = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        check
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics on :{port}/metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
