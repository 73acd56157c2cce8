//! Gateway API routes for mesh traffic (GAMMA) against a real kube-apiserver
//! with the upstream CRDs the chart carries (Gateway API v1.6.3, standard
//! channel):
//!
//! * the controller starts and publishes while the Gateway API CRDs are
//!   absent, and reads HTTPRoutes once they are installed;
//! * an HTTPRoute with a Service parent, applied with kubectl, reaches a
//!   running proxy: its weights split traffic, a redirect rule answers with
//!   its `Location`, a rewrite reaches the upstream;
//! * its status carries `status.parents[]` with `controllerName`
//!   `strait.dev/mesh`, `Accepted` and `ResolvedRefs` for the generation;
//! * a TrafficRoute on the same Service port is refused because the
//!   HTTPRoute is older, and says so in its own status; the proxy keeps
//!   the HTTPRoute's rules;
//! * a filter Strait cannot honour (CORS) and a missing backend are refused
//!   with Gateway API's reasons, and nothing changes on the proxy;
//! * a GRPCRoute routes by `/service/method`;
//! * the chart's `gatewayAPI.installCRDs` installs a missing CRD, leaves one
//!   another tool installed alone, never replaces a newer one, and keeps
//!   the CRDs on uninstall (real helm against the same API server).

mod mesh;
mod support;

use mesh::{PodNet, Proc, bin, fetch, free_port, get, proxy, wait_for};
use std::process::{Command, Stdio};
use support::ApiServer;

fn http_route(name: &str, parent: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: {parent}, port: 80}}]\n  rules:\n{rules}"
    )
}

/// Strait's entry of a route's `status.parents`: (Accepted status and
/// reason, ResolvedRefs status and reason, Accepted message, observed
/// generation, generation).
fn parent_status(server: &ApiServer, kind: &str, name: &str) -> (String, String, String, i64, i64) {
    let out = server
        .kubectl(&["get", kind, name, "-n", "shop", "-o", "json"], None)
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let generation = v["metadata"]["generation"].as_i64().unwrap_or(-1);
    let ours = v["status"]["parents"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["controllerName"] == "strait.dev/mesh")
                .cloned()
        })
        .unwrap_or_default();
    let cond = |t: &str| {
        ours["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
            .unwrap_or_default()
    };
    let (a, r) = (cond("Accepted"), cond("ResolvedRefs"));
    let word = |c: &serde_json::Value| {
        format!(
            "{} {}",
            c["status"].as_str().unwrap_or(""),
            c["reason"].as_str().unwrap_or("")
        )
    };
    (
        word(&a),
        word(&r),
        a["message"].as_str().unwrap_or("").to_string(),
        a["observedGeneration"].as_i64().unwrap_or(-2),
        generation,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_routes_against_a_real_apiserver() {
    let server = ApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    server.install_crds();
    let pods = PodNet::shop();
    let ip = pods.ip.clone();
    server.shop(&ip);

    let cp_port = free_port();
    let log = tmp.path().join("cp.log");
    let _cp = Proc(
        Command::new(bin("strait-controller"))
            .env("KUBECONFIG", server.kubeconfig())
            .args([
                "--config-addr",
                &format!("127.0.0.1:{cp_port}"),
                "--lease-namespace",
                "strait-system",
                "--health-addr",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (_proxy, out, _admin) = proxy(cp_port, "shop", "client-0", &tmp.path().join("proxy.log"));
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // 1. No Gateway API CRDs: the mesh is published all the same.
    wait_for("default routing without the Gateway API", || {
        get(out, "web").as_deref() == Some("web")
    });
    assert!(
        logs().contains("Gateway API kind not readable"),
        "{}",
        logs()
    );

    // 2. The CRDs arrive, then an HTTPRoute: the proxy routes by it.
    server.install_gateway_crds();
    let split = |v1: u32, v2: u32| {
        http_route(
            "web",
            "web",
            &format!(
                "    - name: old\n      matches: [{{path: {{type: PathPrefix, value: /old}}}}]\n      filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}, statusCode: 301}}}}]\n    - name: v1-api\n      matches: [{{path: {{type: PathPrefix, value: /v1}}}}]\n      filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}}}}]\n      backendRefs: [{{name: web-v2, port: 80}}]\n    - name: split\n      backendRefs: [{{name: web-v1, port: 80, weight: {v1}}}, {{name: web-v2, port: 80, weight: {v2}}}]\n"
            ),
        )
    };
    server
        .kubectl(&["apply", "-f", "-"], Some(&split(100, 0)))
        .ok();
    // The CRD is looked for every 5 s; the watch then delivers the route.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get(out, "web").as_deref() != Some("v1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTPRoute never reached the proxy\n{}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server
        .kubectl(&["apply", "-f", "-"], Some(&split(0, 100)))
        .ok();
    wait_for("the new weights", || {
        get(out, "web").as_deref() == Some("v2")
    });
    let (code, location, _) = fetch(out, "web.shop:80", "/old/page?x=1").unwrap_or_default();
    assert_eq!(
        (code.as_str(), location.as_str()),
        ("301", "http://web.shop/new/page?x=1")
    );
    let (code, _, body) = fetch(out, "web", "/v1/items").unwrap_or_default();
    assert_eq!((code.as_str(), body.as_str()), ("200", "v2"));

    // 3. Status the GAMMA way.
    wait_for("HTTPRoute Accepted", || {
        parent_status(&server, "httproute", "web").0 == "True Accepted"
    });
    let (_, resolved, message, observed, generation) = parent_status(&server, "httproute", "web");
    assert_eq!(resolved, "True ResolvedRefs");
    assert_eq!(observed, generation, "status for the current generation");
    assert!(message.contains("In force on every proxy"), "{message}");
    let parents = server
        .kubectl(
            &[
                "get",
                "httproute",
                "web",
                "-n",
                "shop",
                "-o",
                "jsonpath={.status.parents[0].parentRef}",
            ],
            None,
        )
        .ok();
    let parent: serde_json::Value = serde_json::from_str(&parents).unwrap();
    assert_eq!(
        parent,
        serde_json::json!({"group": "", "kind": "Service", "name": "web", "port": 80})
    );

    // 4. A newer TrafficRoute on the same port: refused, naming the HTTPRoute.
    let traffic_route = "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {name: web, namespace: shop}\nspec:\n  parentRef: {name: web, port: 80}\n  rules: [{backends: [{name: web-v1, port: 80}]}]\n";
    server
        .kubectl(&["apply", "-f", "-"], Some(traffic_route))
        .ok();
    let accepted = |server: &ApiServer| {
        server
            .kubectl(
                &[
                    "get",
                    "trafficroute",
                    "web",
                    "-n",
                    "shop",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Accepted\")].message}",
                ],
                None,
            )
            .ok()
    };
    wait_for("the TrafficRoute refused", || {
        accepted(&server).contains("already routed by HTTPRoute shop/web, which is older")
    });
    assert_eq!(
        get(out, "web").as_deref(),
        Some("v2"),
        "the HTTPRoute holds"
    );
    server
        .kubectl(&["delete", "trafficroute", "web", "-n", "shop"], None)
        .ok();

    // 5. What Strait cannot do, and a missing backend: Gateway API reasons;
    // the proxy keeps what it had.
    let cors = http_route(
        "cors",
        "web-v1",
        "    - filters: [{type: CORS, cors: {allowOrigins: [\"https://shop.example\"]}}]\n      backendRefs: [{name: web-v1, port: 80}]\n",
    );
    server.kubectl(&["apply", "-f", "-"], Some(&cors)).ok();
    wait_for("CORS refused", || {
        parent_status(&server, "httproute", "cors").0 == "False UnsupportedValue"
    });
    let (_, _, message, _, _) = parent_status(&server, "httproute", "cors");
    assert!(
        message.contains("rules[0].filters[0].cors: not supported by Strait"),
        "{message}"
    );
    server
        .kubectl(
            &["apply", "-f", "-"],
            Some(&split(0, 100).replace("web-v2, port: 80, weight", "web-v3, port: 80, weight")),
        )
        .ok();
    wait_for("missing backend reported", || {
        parent_status(&server, "httproute", "web").1 == "False BackendNotFound"
    });
    let (accepted_now, _, message, _, _) = parent_status(&server, "httproute", "web");
    assert_eq!(accepted_now, "False UnresolvedRefs");
    assert!(
        message.contains("Service shop/web-v3 not found")
            && message.contains("previous version of this route stays in force"),
        "{message}"
    );
    assert_eq!(get(out, "web").as_deref(), Some("v2"));

    // 6. A GRPCRoute: methods are paths.
    server
        .kubectl(&["delete", "httproute", "web", "-n", "shop"], None)
        .ok();
    let grpc = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: web, namespace: shop}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: web, port: 80}]\n  rules:\n    - matches: [{method: {service: shop.Cart, method: Add}}]\n      backendRefs: [{name: web-v2, port: 80}]\n    - backendRefs: [{name: web-v1, port: 80}]\n";
    server.kubectl(&["apply", "-f", "-"], Some(grpc)).ok();
    wait_for("the GRPCRoute", || {
        fetch(out, "web", "/shop.Cart/Add").is_some_and(|r| r.2 == "v2")
            && fetch(out, "web", "/shop.Cart/Remove").is_some_and(|r| r.2 == "v1")
    });
    wait_for("GRPCRoute Accepted", || {
        parent_status(&server, "grpcroute", "web").0 == "True Accepted"
    });

    // 7. The chart and the Gateway API CRDs. httproutes was installed by
    // kubectl above (another tool, as far as helm knows); grpcroutes is
    // deleted so that it is absent.
    server
        .kubectl(&["delete", "grpcroute", "--all", "-A"], None)
        .ok();
    server
        .kubectl(
            &["delete", "crd", "grpcroutes.gateway.networking.k8s.io"],
            None,
        )
        .ok();
    let tools = Command::new(support::repo().join("tests/k8s-tools/install.sh"))
        .output()
        .unwrap();
    let helm = format!(
        "{}/helm",
        String::from_utf8_lossy(&tools.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim()
    );
    let chart = support::repo().join("helm/strait");
    let helm_run = |verb: &str| {
        let o = Command::new(&helm)
            .env("KUBECONFIG", server.kubeconfig())
            .args([verb, "gamma", chart.to_str().unwrap()])
            .args([
                "-n",
                "strait-system",
                "--set",
                "gatewayAPI.installCRDs=true",
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "helm {verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let crd = |name: &str| -> serde_json::Value {
        let out = server
            .kubectl(
                &[
                    "get",
                    "crd",
                    &format!("{name}.gateway.networking.k8s.io"),
                    "-o",
                    "json",
                ],
                None,
            )
            .ok();
        serde_json::from_str(&out).unwrap()
    };
    let annotation = |v: &serde_json::Value, key: &str| {
        v["metadata"]["annotations"][key]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    helm_run("install");
    let (http, grpc) = (crd("httproutes"), crd("grpcroutes"));
    assert_eq!(
        annotation(&http, "meta.helm.sh/release-name"),
        "",
        "a CRD another tool installed is left alone"
    );
    assert_eq!(annotation(&grpc, "meta.helm.sh/release-name"), "gamma");
    assert_eq!(
        annotation(&grpc, "gateway.networking.k8s.io/bundle-version"),
        "v1.6.3"
    );
    assert_eq!(annotation(&grpc, "helm.sh/resource-policy"), "keep");
    // A newer Gateway API (say, another tool upgraded it) is never replaced.
    server
        .kubectl(
            &[
                "annotate",
                "--overwrite",
                "crd",
                "grpcroutes.gateway.networking.k8s.io",
                "gateway.networking.k8s.io/bundle-version=v1.99.0",
            ],
            None,
        )
        .ok();
    helm_run("upgrade");
    assert_eq!(
        annotation(
            &crd("grpcroutes"),
            "gateway.networking.k8s.io/bundle-version"
        ),
        "v1.99.0"
    );
    // Uninstall keeps both: deleting a CRD would delete every route.
    let o = Command::new(&helm)
        .env("KUBECONFIG", server.kubeconfig())
        .args(["uninstall", "gamma", "-n", "strait-system"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        crd("grpcroutes")["metadata"]["name"],
        "grpcroutes.gateway.networking.k8s.io"
    );
    assert_eq!(
        crd("httproutes")["metadata"]["name"],
        "httproutes.gateway.networking.k8s.io"
    );
}
