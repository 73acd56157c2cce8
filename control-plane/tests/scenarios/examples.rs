//! Every example under `examples/` is accepted by the API server as it is,
//! stored without losing a field, and shown by `kubectl get` with the
//! printer columns; `examples/loopback` (local modes only) is refused. The
//! HTTPRoute examples are applied against the upstream Gateway API CRDs the
//! chart installs (standard channel); the `-experimental` one is refused by
//! them, naming the experimental fields, as its comment says.

use crate::support::{ApiServer, repo};
use std::path::PathBuf;
use std::sync::Arc;
use strait_api::manifest::{self as api, Object};
use strait_control_plane::crd;

pub async fn run(server: Arc<ApiServer>) {
    let files = example_files();
    assert!(!files.is_empty(), "no examples found");

    // Each example directory as a user applies it, in one command: kubectl
    // takes the files in name order, so the Namespace must come first
    // (`00-namespace.yaml`).
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|(p, _)| p.parent().map(PathBuf::from))
        .collect();
    dirs.dedup();
    // `loopback/` is the quick tour's endpoints on this machine, for the
    // local modes only: the API server refuses loopback addresses, so it
    // can never reach a cluster by mistake.
    let (local_only, dirs): (Vec<PathBuf>, Vec<PathBuf>) =
        dirs.into_iter().partition(|d| d.ends_with("loopback"));
    assert_eq!(local_only.len(), 1, "examples/loopback exists");
    let (experimental, dirs): (Vec<PathBuf>, Vec<PathBuf>) = dirs
        .into_iter()
        .partition(|d| d.to_string_lossy().ends_with("-experimental"));
    assert_eq!(
        experimental.len(),
        1,
        "examples/shop-gateway-experimental exists"
    );
    server.install_gateway_crds();
    let refused = server.kubectl(
        &[
            "apply",
            "--dry-run=server",
            "-f",
            experimental[0].join("httproute.yaml").to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !refused.out.status.success()
            && refused.stderr().contains("sessionPersistence")
            && refused.stderr().contains("retry"),
        "the experimental example on the standard channel: {}",
        refused.stderr()
    );
    for dir in &dirs {
        let out = server
            .kubectl(&["apply", "-f", dir.to_str().unwrap()], None)
            .ok();
        eprintln!("{}", out.trim_end());
    }
    let refused = server.kubectl(&["apply", "-f", local_only[0].to_str().unwrap()], None);
    assert!(
        !refused.out.status.success()
            && refused
                .stderr()
                .contains("may not be in the loopback range"),
        "examples/loopback on a real API server: {}",
        refused.stderr()
    );

    // Each Strait object reads back with the spec it was written with: the
    // schema covers every field (nothing pruned) and adds nothing.
    let mut seen = 0;
    for (path, text) in &files {
        let (objects, errors) = api::parse_file(&path.display().to_string(), text);
        assert!(errors.is_empty(), "{errors:?}");
        for located in objects {
            match located.object {
                Object::TrafficRoute(want) => {
                    let got: crd::TrafficRoute = get_json(&server, "trafficroute", &want.metadata);
                    assert_eq!(api::TrafficRoute::from(&got).spec, want.spec, "{path:?}");
                    seen += 1;
                }
                Object::HttpRoute(want) if !path.to_string_lossy().contains("experimental") => {
                    let got: serde_json::Value = get_json(&server, "httproute", &want.metadata);
                    let got: api::HttpRoute = serde_json::from_value(got).unwrap();
                    assert_eq!(got.spec.rules.len(), want.spec.rules.len(), "{path:?}");
                    assert!(got.spec.unsupported.is_empty(), "{path:?}");
                    seen += 1;
                }
                Object::DestinationPolicy(want) => {
                    let got: crd::DestinationPolicy =
                        get_json(&server, "destinationpolicy", &want.metadata);
                    assert_eq!(
                        api::DestinationPolicy::from(&got).spec,
                        want.spec,
                        "{path:?}"
                    );
                    seen += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        seen >= 3,
        "the examples hold a TrafficRoute, an HTTPRoute and a DestinationPolicy"
    );

    // Printer columns: empty status columns until a controller writes them.
    let table = get_table(&server, "trafficroutes", "shop");
    assert_eq!(
        table[0],
        ["NAME", "PARENT", "ACCEPTED", "RESOLVEDREFS", "AGE"]
    );
    assert_eq!(table[1][..2], ["web", "web"], "{table:?}");
    assert_eq!(table[1].len(), 3, "no status yet: {table:?}");

    // A status like the controller's fills them in.
    let status = r#"{"status": {"conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
        {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
         "message": "Service shop/web-v3 not found",
         "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}}"#;
    for kind in ["trafficroute/web", "destinationpolicy/web-v1"] {
        server
            .kubectl(
                &[
                    "patch",
                    kind,
                    "-n",
                    "shop",
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    status,
                ],
                None,
            )
            .ok();
    }
    let table = get_table(&server, "trafficroutes", "shop");
    assert_eq!(table[1][..4], ["web", "web", "True", "False"], "{table:?}");
    let table = get_table(&server, "destinationpolicies", "shop");
    assert_eq!(
        table[0],
        ["NAME", "TARGET", "ACCEPTED", "RESOLVEDREFS", "AGE"]
    );
    assert_eq!(
        table[1][..4],
        ["web-v1", "web-v1", "True", "False"],
        "{table:?}"
    );

    // Short names and the `strait` category.
    let all = server.kubectl(&["get", "strait", "-n", "shop"], None).ok();
    assert!(
        all.contains("trafficroute.strait.dev/web")
            && all.contains("destinationpolicy.strait.dev/web-v1"),
        "{all}"
    );
    server.kubectl(&["get", "tr,dp", "-n", "shop"], None).ok();
}

/// Every `*.yaml` under `examples/`, with its text, sorted by path.
fn example_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&repo().join("examples"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

fn get_json<T: serde::de::DeserializeOwned>(
    server: &ApiServer,
    kind: &str,
    meta: &api::ObjectMeta,
) -> T {
    let json = server
        .kubectl(
            &[
                "get",
                kind,
                &meta.name,
                "-n",
                meta.namespace(),
                "-o",
                "json",
            ],
            None,
        )
        .ok();
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{kind} {}: {e}\n{json}", meta.name))
}

/// `kubectl get` output as words per line.
fn get_table(server: &ApiServer, resource: &str, ns: &str) -> Vec<Vec<String>> {
    let out = server.kubectl(&["get", resource, "-n", ns], None).ok();
    eprintln!("$ kubectl get {resource} -n {ns}\n{}", out.trim_end());
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}
