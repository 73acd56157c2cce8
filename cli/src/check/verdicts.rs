//! The verdicts of `strait check`, pure functions of what was read: each
//! returns ✔ or ✘ with a hint that says what to run, and [`render`] prints
//! them. Table-tested in `tests.rs`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::json;
use std::collections::BTreeMap;
use strait_api::inject::PROXY_CONTAINER;
use strait_api::wire::{ProxyInfo, ProxyStatusResponse};

/// The oldest Kubernetes minor version Strait supports (native sidecars).
pub const MIN_MINOR: u32 = 29;
/// A webhook certificate must stay valid at least this long.
pub const CERT_MARGIN_DAYS: i64 = 7;
pub(super) const CRDS: [&str; 2] = ["trafficroutes.strait.dev", "destinationpolicies.strait.dev"];

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Passed?
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to run when it failed.
    pub hint: String,
}

pub(super) fn pass(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        hint: String::new(),
    }
}

pub(super) fn fail(name: &str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        hint: hint.into(),
    }
}

/// The API server's version against [`MIN_MINOR`].
pub fn version_verdict(major: &str, minor: &str, git: &str) -> Check {
    let name = "Kubernetes version is supported";
    let minor_n: Option<u32> = minor.trim_end_matches('+').parse().ok();
    match (major, minor_n) {
        ("1", Some(m)) if m >= MIN_MINOR => pass(name, format!("{git} (1.{MIN_MINOR} or newer)")),
        _ => fail(
            name,
            format!("{git}: Strait needs Kubernetes 1.{MIN_MINOR} or newer (native sidecars)"),
            "upgrade the cluster",
        ),
    }
}

/// A webhook certificate valid until `not_after` (Unix seconds) at `now`,
/// and whether the configuration's caBundle is the Secret's CA.
pub fn cert_verdict(not_after: i64, now: i64, ca_matches: bool, namespace: &str) -> Vec<Check> {
    let days = (not_after - now) / 86_400;
    let validity = if not_after - now >= CERT_MARGIN_DAYS * 86_400 {
        pass(
            "webhook certificate is valid for 7 more days",
            format!("expires in {days} days"),
        )
    } else {
        fail(
            "webhook certificate is valid for 7 more days",
            format!("expires in {days} days"),
            format!(
                "the controller renews it; check its logs: kubectl -n {namespace} logs deploy/strait-controller"
            ),
        )
    };
    let bundle = if ca_matches {
        pass("webhook caBundle matches the certificate's CA", "")
    } else {
        fail(
            "webhook caBundle matches the certificate's CA",
            "the API server would not trust the webhook",
            format!(
                "the controller repairs it within 30 s; if not: kubectl -n {namespace} rollout restart deploy/strait-controller"
            ),
        )
    };
    vec![validity, bundle]
}

/// The Lease holder must be one of the ready controller pods, renewed
/// within its lease duration.
pub fn leader_verdict(
    holder: Option<&str>,
    renewed_secs_ago: Option<i64>,
    lease_secs: i64,
    ready: &[String],
    namespace: &str,
) -> Check {
    let name = "one controller replica leads";
    match (holder, renewed_secs_ago) {
        (Some(h), Some(age)) if ready.iter().any(|r| r == h) && age <= lease_secs => {
            pass(name, format!("{h}, renewed {age}s ago"))
        }
        (Some(h), Some(age)) => fail(
            name,
            format!("the Lease names {h}, renewed {age}s ago, which is not a ready controller pod"),
            format!("wait for a takeover (15 s), or: kubectl -n {namespace} get pods,leases"),
        ),
        _ => fail(
            name,
            "no Lease holder",
            format!("kubectl -n {namespace} logs deploy/strait-controller"),
        ),
    }
}

/// Every meshed pod's proxy connected and SYNCED; pods in meshed namespaces
/// without a proxy listed. `meshed`: (namespace/pod, injected?).
pub fn proxy_verdicts(meshed: &[(String, bool)], statuses: &[ProxyStatusResponse]) -> Vec<Check> {
    let mut connected: BTreeMap<String, (ProxyInfo, u64)> = BTreeMap::new();
    for r in statuses {
        for p in &r.proxies {
            connected.insert(
                format!("{}/{}", p.namespace, p.pod),
                (p.clone(), r.latest_version),
            );
        }
    }
    let mut out = Vec::new();
    for (pod, injected) in meshed {
        let name = format!("proxy of {pod}");
        let (pod_ns, pod_name) = pod.split_once('/').unwrap_or(("", pod.as_str()));
        if !injected {
            out.push(fail(
                &name,
                "no proxy: the pod started while the webhook could not inject it",
                format!(
                    "kubectl -n {pod_ns} delete pod {pod_name} (its controller makes a meshed one)"
                ),
            ));
            continue;
        }
        match connected.get(pod) {
            Some((p, latest)) => {
                let state = crate::status::sync_state(p, *latest);
                if state == "SYNCED" {
                    out.push(pass(
                        &name,
                        format!(
                            "connected, SYNCED at v{}, identity {}",
                            p.acked_version,
                            crate::status::identity(p)
                        ),
                    ));
                } else {
                    out.push(fail(
                        &name,
                        state,
                        format!("strait proxy-status; kubectl logs {pod} -c {PROXY_CONTAINER}"),
                    ));
                }
            }
            None => out.push(fail(
                &name,
                "not connected to any control-plane replica",
                format!("kubectl -n {pod_ns} logs {pod_name} -c {PROXY_CONTAINER}"),
            )),
        }
    }
    out
}

/// The CRDs this CLI was built with (what `helm install` of the same
/// version applies).
pub(super) const CRD_FILES: [(&str, &str); 2] = [
    (
        "trafficroutes.strait.dev",
        include_str!("../../../crds/trafficroutes.strait.dev.yaml"),
    ),
    (
        "destinationpolicies.strait.dev",
        include_str!("../../../crds/destinationpolicies.strait.dev.yaml"),
    ),
];

/// An installed CRD must serve `v1alpha1` with the schema this version of
/// Strait writes: Helm installs CRDs but never upgrades them, so a cluster
/// upgraded with `helm upgrade` can keep an older schema that refuses (or
/// silently drops) newer fields.
pub fn crd_verdict(name: &str, installed: &CustomResourceDefinition, crd: &str) -> Check {
    let Some(served) = installed
        .spec
        .versions
        .iter()
        .find(|v| v.name == "v1alpha1" && v.served)
    else {
        return fail(name, "v1alpha1 is not served", "kubectl apply -f crds/");
    };
    let expected = CRD_FILES
        .iter()
        .find(|(n, _)| *n == crd)
        .and_then(|(_, yaml)| serde_saphyr::from_str::<CustomResourceDefinition>(yaml).ok())
        .and_then(|c| c.spec.versions.into_iter().find(|v| v.name == "v1alpha1"))
        .and_then(|v| serde_json::to_value(v.schema).ok())
        .map(without_descriptions);
    let installed = serde_json::to_value(&served.schema)
        .ok()
        .map(without_descriptions);
    match (expected, installed) {
        (Some(e), Some(i)) if e == i => pass(name, "v1alpha1 served, schema as this version's"),
        _ => fail(
            name,
            format!(
                "v1alpha1's schema is not the one strait {} installs (CRDs from another version)",
                env!("CARGO_PKG_VERSION")
            ),
            "kubectl apply --server-side -f crds/ (helm upgrade does not update CRDs)",
        ),
    }
}

/// A schema without its `description`s: a release that only rewords them
/// has the same schema (a property itself named `description` is kept).
fn without_descriptions(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map
                    .get("description")
                    .is_some_and(serde_json::Value::is_string)
                {
                    map.remove("description");
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// Renders the verdicts: a ✔/✘ line each (with the hint under a ✘), or JSON.
pub fn render(checks: &[Check], json_out: bool) -> String {
    if json_out {
        let v: Vec<_> = checks
            .iter()
            .map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail, "hint": c.hint}))
            .collect();
        return format!(
            "{}\n",
            json!({"ok": checks.iter().all(|c| c.ok), "checks": v})
        );
    }
    let mut out = String::new();
    for c in checks {
        let detail = if c.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.detail)
        };
        out.push_str(&format!(
            "{} {}{detail}\n",
            if c.ok { "✔" } else { "✘" },
            c.name
        ));
        if !c.ok && !c.hint.is_empty() {
            out.push_str(&format!("    hint: {}\n", c.hint));
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    out.push_str(&if failed == 0 {
        "\nStatus check results are ✔\n".to_owned()
    } else {
        format!("\n{failed} check(s) failed ✘\n")
    });
    out
}
