//! Routing and splitting through the real proxy binary, in explicit mode
//! (clients address the proxy and name the Service in `Host`).

mod support;

use support::upstream::Upstream;
use support::{HttpClient, ProxyProc, free_port, route_yaml, services_yaml};

const RULES: &str = "    - name: canary
      matches:
        - headers: [{name: x-canary, value: \"true\"}]
      backends: [{name: web-v2}]
    - name: api
      matches:
        - path: {type: PathPrefix, value: /api}
          method: POST
      backends: [{name: web-v2}]
      requestHeaders: {set: {x-route: api}, remove: [x-debug]}
    - name: slow
      matches: [{path: {type: PathPrefix, value: /delay}}]
      backends: [{name: web-v1}]
      timeout: 200ms
    - name: ab
      matches: [{path: {type: PathPrefix, value: /}}]
      backends: [{name: web-v1, weight: 90}, {name: web-v2, weight: 10}]
      sessionAffinity: {header: x-user-id}
";

struct Mesh {
    proxy: ProxyProc,
    client: HttpClient,
    _v1: Upstream,
    _v2: Upstream,
}

async fn mesh() -> Mesh {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let dead = free_port();
    let manifests = format!(
        "{}{}",
        services_yaml(&[
            ("web", &[]),
            ("web-v1", &[v1.port()]),
            ("web-v2", &[v2.port()]),
            ("plain", &[v1.port()]),
            ("empty", &[]),
            ("dead", &[dead])
        ]),
        route_yaml(RULES)
    );
    let proxy = ProxyProc::start(&[("mesh.yaml", manifests)]).await;
    let client = HttpClient::new(proxy.outbound);
    Mesh {
        proxy,
        client,
        _v1: v1,
        _v2: v2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_over_2000_requests() {
    let m = mesh().await;
    let mut v2 = 0;
    for _ in 0..2000 {
        let r = m.client.get("web", "/", &[]).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        if r.upstream() == "v2" {
            v2 += 1;
        }
    }
    let share = f64::from(v2) / 2000.0;
    // 10 % ± 3 points: at n = 2000 the standard deviation is 0.67 points.
    assert!((0.07..=0.13).contains(&share), "v2 share {share}");
    // The proxy's own metrics agree with what the client saw.
    let seen = m
        .proxy
        .metric("strait_requests_total{direction=\"outbound\",service=\"default/web:80\",route=\"web/ab\",backend=\"default/web-v2:80\",code=\"200\"}")
        .await;
    assert_eq!(seen as i32, v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_split_keeps_each_user_on_one_backend() {
    let m = mesh().await;
    let mut v2_users = 0;
    for user in 0..200 {
        let id = format!("user-{user}");
        let first = m
            .client
            .get("web", "/", &[("x-user-id", &id)])
            .await
            .unwrap()
            .upstream();
        for _ in 0..4 {
            assert_eq!(
                m.client
                    .get("web", "/", &[("x-user-id", &id)])
                    .await
                    .unwrap()
                    .upstream(),
                first,
                "{id} moved"
            );
        }
        if first == "v2" {
            v2_users += 1;
        }
    }
    // 200 users at 10 %: expect 20, allow a wide band (σ ≈ 4.2).
    assert!(
        (5..=40).contains(&v2_users),
        "{v2_users} of 200 users on v2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_choice_survives_a_restart() {
    let m = mesh().await;
    let users: Vec<String> = (0..50).map(|u| format!("u{u}")).collect();
    let mut before = Vec::new();
    for u in &users {
        before.push(
            m.client
                .get("web", "/", &[("x-user-id", u)])
                .await
                .unwrap()
                .upstream(),
        );
    }
    // A second, independent proxy process on the same manifests.
    let mut other = ProxyProc::spawn(&m.proxy.dir, &m.proxy.dir.join("../other.log"), &[]);
    other.wait_ready().await;
    let client = HttpClient::new(other.outbound);
    for (u, want) in users.iter().zip(&before) {
        assert_eq!(
            &client
                .get("web", "/", &[("x-user-id", u)])
                .await
                .unwrap()
                .upstream(),
            want,
            "{u}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_headers_path_and_method() {
    let m = mesh().await;
    for _ in 0..20 {
        assert_eq!(
            m.client
                .get("web", "/", &[("x-canary", "true")])
                .await
                .unwrap()
                .upstream(),
            "v2"
        );
    }
    let r = m
        .client
        .send(
            "POST",
            "web.default.svc.cluster.local",
            "/api/orders",
            &[("x-debug", "1")],
            "{}".into(),
        )
        .await
        .unwrap();
    let j = r.json();
    assert_eq!(j["name"], "v2");
    assert_eq!(j["headers"]["x-route"], "api", "requestHeaders.set applied");
    assert!(
        j["headers"].get("x-debug").is_none(),
        "requestHeaders.remove applied"
    );
    assert_eq!(
        j["headers"]["host"], "web.default.svc.cluster.local",
        "Host is kept"
    );
    // GET /api is not the POST rule: falls through to the split.
    let r = m
        .client
        .get("web.default", "/api/orders", &[("x-user-id", "alice")])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-route").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_errors_are_explicit() {
    let m = mesh().await;
    // (host, path, status, strait-proxy-error)
    let table = [
        ("nope", "/", 404, "unknown-service"),
        ("10.0.0.1", "/", 400, "bad-authority"),
        ("empty", "/", 503, "no-endpoints"),
        ("dead", "/", 502, "connect-failed"),
        ("web", "/delay/2000", 504, "timeout"),
        ("plain", "/reset", 502, "upstream-reset"),
    ];
    for (host, path, status, reason) in table {
        let r = m.client.get(host, path, &[]).await.unwrap();
        assert_eq!(r.status, status, "{host}{path}: {}", r.body);
        assert_eq!(r.headers["strait-proxy-error"], reason, "{host}{path}");
        assert!(
            !r.body.is_empty(),
            "{host}{path}: the body says what happened"
        );
    }
    // A Service without a TrafficRoute goes straight to its endpoints.
    assert_eq!(
        m.client.get("plain", "/", &[]).await.unwrap().upstream(),
        "v1"
    );
    // Upstream statuses pass through untouched, without the proxy header.
    let r = m.client.get("plain", "/status/503", &[]).await.unwrap();
    assert_eq!(r.status, 503);
    assert!(r.headers.get("strait-proxy-error").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rule_matches_gives_404() {
    let v1 = Upstream::start("v1").await;
    let manifests = format!(
        "{}{}",
        services_yaml(&[("web", &[]), ("web-v1", &[v1.port()])]),
        route_yaml(
            "    - matches: [{path: {type: Exact, value: /only}}]\n      backends: [{name: web-v1}]\n"
        )
    );
    let proxy = ProxyProc::start(&[("m.yaml", manifests)]).await;
    let c = HttpClient::new(proxy.outbound);
    assert_eq!(c.get("web", "/only", &[]).await.unwrap().status, 200);
    let r = c.get("web", "/other", &[]).await.unwrap();
    assert_eq!(
        (r.status, r.headers["strait-proxy-error"].to_str().unwrap()),
        (404, "no-route")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_headers_and_request_id() {
    let m = mesh().await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let j = m
        .client
        .get(
            "plain",
            "/",
            &[
                ("traceparent", tp),
                ("tracestate", "a=b"),
                ("x-b3-traceid", "463ac35c9f6413ad"),
                ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ],
        )
        .await
        .unwrap()
        .json();
    let h = &j["headers"];
    // No collector is configured, so the proxy reports no span and must not
    // pose as a parent: the app's trace context arrives exactly as sent.
    assert_eq!(h["traceparent"], tp, "traceparent untouched");
    assert_eq!(h["tracestate"], "a=b");
    assert_eq!(h["x-b3-traceid"], "463ac35c9f6413ad");
    assert_eq!(h["x-b3-spanid"], "a2fb4a1d1a96d312", "B3 span id untouched");
    assert!(
        h.get("x-b3-parentspanid").is_none(),
        "no parent invented: {h}"
    );
    assert_eq!(h["x-request-id"].as_str().unwrap().len(), 36);
    let j = m
        .client
        .get("plain", "/", &[("x-request-id", "abc")])
        .await
        .unwrap()
        .json();
    assert_eq!(j["headers"]["x-request-id"], "abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_from_destination_policy() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let policy = "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p, namespace: default}\nspec:\n  targetRef: {name: web}\n  loadBalancer: RoundRobin\n";
    let proxy = ProxyProc::start(&[(
        "m.yaml",
        format!(
            "{}{policy}",
            services_yaml(&[("web", &[a.port(), b.port()])])
        ),
    )])
    .await;
    let c = HttpClient::new(proxy.outbound);
    let seq: Vec<String> = futures_util::future::join_all((0..6).map(|_| c.get("web", "/", &[])))
        .await
        .into_iter()
        .map(|r| r.unwrap().upstream())
        .collect();
    let a_count = seq.iter().filter(|n| *n == "a").count();
    assert_eq!(a_count, 3, "{seq:?}");
}

/// The `process_*` metrics Prometheus users expect are on /metrics, with
/// plausible values; without `Accept: application/openmetrics-text` in
/// the Prometheus text format (counters named with `_total`, no `# EOF`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_metrics_on_the_admin_port() {
    let m = mesh().await;
    let text = m.proxy.metrics().await;
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter") && !text.contains("# EOF"),
        "{text}"
    );
    for (name, min) in [
        ("process_resident_memory_bytes", 1e6),
        ("process_open_fds", 3.0),
        ("process_max_fds", 64.0),
        ("process_start_time_seconds", 1.6e9),
        ("process_cpu_seconds_total", 0.0),
    ] {
        let v = m.proxy.metric(name).await;
        assert!(v >= min, "{name} = {v}");
    }
}

/// Paths are normalised before routing and forwarded as matched:
/// `/api/../x` does not pass the `/api` rule, `/%61pi/...` does, and the
/// upstream receives the path that was routed; a path that climbs above
/// the root or has a bad escape gets 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalised_before_routing() {
    let m = mesh().await;
    let post = |path: &'static str| {
        let c = &m.client;
        async move { c.send("POST", "web", path, &[], "{}".into()).await.unwrap() }
    };
    // The POST /api rule sets x-route: api.
    let r = post("/%61pi/orders").await;
    let j = r.json();
    assert_eq!(
        (r.status, j["headers"]["x-route"].as_str()),
        (200, Some("api")),
        "{j}"
    );
    assert_eq!(
        j["path"], "/api/orders",
        "the upstream gets the routed path"
    );
    let r = post("/api/../admin").await;
    let j = r.json();
    assert!(
        j["headers"].get("x-route").is_none(),
        "/api/../admin is not under /api: {j}"
    );
    assert_eq!(j["path"], "/admin");
    let r = post("/api/%2e%2e/admin").await;
    assert!(r.json()["headers"].get("x-route").is_none());
    for bad in ["/../etc/passwd", "/api/%zz"] {
        let r = post(bad).await;
        assert_eq!(
            (r.status, r.headers["strait-proxy-error"].to_str().unwrap()),
            (400, "bad-path"),
            "{bad}: {}",
            r.body
        );
    }
}
