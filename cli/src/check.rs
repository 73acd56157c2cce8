//! `strait check`, like `linkerd check`: is the mesh healthy? A list of
//! checks, each ✔ or ✘ with a hint that says what to run. `--pre` checks a
//! cluster before install; `--proxies` also checks every meshed pod's proxy.
//! Exit code 1 when a check fails; `-o json` for scripts.
//!
//! The verdicts are pure functions of what was read ([`cert_verdict`],
//! [`version_verdict`], [`leader_verdict`], [`proxy_verdicts`]); `run` only
//! reads the cluster (through the API server, and the config stream through
//! a port-forward, as kubectl would).

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use std::collections::BTreeMap;
use strait_api::inject::{INJECT_ANNOTATION, PROXY_CONTAINER, VERSION_ANNOTATION};
use strait_api::wire::{ProxyInfo, ProxyStatusRequest, ProxyStatusResponse};

/// The oldest Kubernetes minor version Strait supports (native sidecars).
pub const MIN_MINOR: u32 = 29;
/// A webhook certificate must stay valid at least this long.
pub const CERT_MARGIN_DAYS: i64 = 7;
const CRDS: [&str; 2] = ["trafficroutes.strait.dev", "destinationpolicies.strait.dev"];

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

fn pass(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        hint: String::new(),
    }
}

fn fail(name: &str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        hint: hint.into(),
    }
}

/// What to check.
pub struct Options {
    /// The control plane's namespace.
    pub namespace: String,
    /// Before install: only the cluster's prerequisites.
    pub pre: bool,
    /// Also every meshed pod's proxy.
    pub proxies: bool,
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
                        format!("connected, SYNCED at v{}", p.acked_version),
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

/// Runs the checks.
pub async fn run(opts: &Options) -> Vec<Check> {
    let mut out = Vec::new();
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            out.push(fail(
                "can reach the Kubernetes API",
                e.to_string(),
                "set KUBECONFIG or check kubectl config current-context",
            ));
            return out;
        }
    };
    match client.apiserver_version().await {
        Ok(v) => {
            out.push(pass("can reach the Kubernetes API", v.git_version.clone()));
            out.push(version_verdict(&v.major, &v.minor, &v.git_version));
        }
        Err(e) => {
            out.push(fail(
                "can reach the Kubernetes API",
                e.to_string(),
                "set KUBECONFIG or check kubectl cluster-info",
            ));
            return out;
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    if opts.pre {
        out.extend(pre(&client, &opts.namespace).await);
        return out;
    }
    for crd in CRDS {
        let name = format!("CRD {crd} is installed");
        out.push(match crds.get_opt(crd).await {
            Ok(Some(c)) => crd_verdict(&name, &c, crd),
            Ok(None) => fail(
                &name,
                "missing",
                format!(
                    "helm install strait helm/strait -n {} --create-namespace",
                    opts.namespace
                ),
            ),
            Err(e) => fail(&name, e.to_string(), "check your RBAC"),
        });
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &opts.namespace);
    let ready: Vec<String> = match pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=strait-controller"))
        .await
    {
        Ok(l) => l
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|p| p.metadata.name.clone())
            .collect(),
        Err(e) => {
            out.push(fail(
                "controller pods are ready",
                e.to_string(),
                "check your RBAC",
            ));
            Vec::new()
        }
    };
    out.push(if ready.is_empty() {
        fail(
            "controller pods are ready",
            format!("no ready strait-controller pod in {}", opts.namespace),
            format!("kubectl -n {} get deploy,pods; kubectl -n {0} scale deploy/strait-controller --replicas=2", opts.namespace),
        )
    } else {
        pass("controller pods are ready", ready.join(", "))
    });
    let leases: Api<Lease> = Api::namespaced(client.clone(), &opts.namespace);
    if let Ok(Some(l)) = leases.get_opt("strait-controller").await {
        let spec = l.spec.unwrap_or_default();
        let age = spec
            .renew_time
            .map(|t| k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second());
        out.push(leader_verdict(
            spec.holder_identity.as_deref(),
            age,
            i64::from(spec.lease_duration_seconds.unwrap_or(15)),
            &ready,
            &opts.namespace,
        ));
    } else {
        out.push(leader_verdict(None, None, 15, &ready, &opts.namespace));
    }
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &opts.namespace);
    match hooks.get_opt("strait-webhook").await {
        Ok(Some(h)) => {
            out.push(pass(
                "the injection webhook is configured",
                "strait-webhook",
            ));
            let bundle = h
                .webhooks
                .unwrap_or_default()
                .first()
                .and_then(|w| w.client_config.ca_bundle.clone());
            match secrets.get_opt("strait-webhook-tls").await {
                Ok(Some(s)) => {
                    let data = s.data.unwrap_or_default();
                    let expiry = data.get("tls.crt").and_then(|c| not_after(&c.0));
                    let ca_matches = bundle.is_some() && data.get("ca.crt").map(|c| &c.0) == bundle.as_ref().map(|b| &b.0);
                    match expiry {
                        Some(na) => out.extend(cert_verdict(na, k8s_openapi::jiff::Timestamp::now().as_second(), ca_matches, &opts.namespace)),
                        None => out.push(fail("webhook certificate is valid for 7 more days", "tls.crt does not parse", format!("kubectl -n {} delete secret strait-webhook-tls (the controller makes a new one)", opts.namespace))),
                    }
                }
                Ok(None) => out.push(fail("webhook certificate exists", "no Secret strait-webhook-tls", format!("the controller creates it at start: kubectl -n {} logs deploy/strait-controller", opts.namespace))),
                Err(e) => out.push(fail("webhook certificate exists", e.to_string(), "check your RBAC")),
            }
        }
        Ok(None) => out.push(fail(
            "the injection webhook is configured",
            "no MutatingWebhookConfiguration strait-webhook",
            format!("helm install strait helm/strait -n {}", opts.namespace),
        )),
        Err(e) => out.push(fail(
            "the injection webhook is configured",
            e.to_string(),
            "check your RBAC",
        )),
    }
    // The config stream, through a port-forward to each ready replica.
    let mut statuses = Vec::new();
    for pod in &ready {
        match proxy_status(&pods, pod).await {
            Ok(s) => statuses.push(s),
            Err(e) => out.push(fail(
                &format!("config stream of {pod} answers"),
                e,
                format!("kubectl -n {} logs {pod}", opts.namespace),
            )),
        }
    }
    if ready.is_empty() {
        out.push(fail(
            "the config stream answers",
            "no ready controller replica to ask",
            "meshed pods keep their last config meanwhile; bring a replica back (see above)",
        ));
    } else if statuses.len() == ready.len() {
        let n: usize = statuses.iter().map(|s| s.proxies.len()).sum();
        out.push(pass(
            "the config stream answers",
            format!("{} replica(s), {n} proxies connected", statuses.len()),
        ));
    }
    if opts.proxies {
        match meshed_pods(&client).await {
            Ok(meshed) if meshed.is_empty() => out.push(pass("meshed pods", "none yet")),
            Ok(meshed) => out.extend(proxy_verdicts(&meshed, &statuses)),
            Err(e) => out.push(fail("meshed pods", e, "check your RBAC")),
        }
    }
    out
}

/// The CRDs this CLI was built with (what `helm install` of the same
/// version applies).
const CRD_FILES: [(&str, &str); 2] = [
    (
        "trafficroutes.strait.dev",
        include_str!("../../crds/trafficroutes.strait.dev.yaml"),
    ),
    (
        "destinationpolicies.strait.dev",
        include_str!("../../crds/destinationpolicies.strait.dev.yaml"),
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

/// Before install: can this user install Strait here, and is it not
/// installed already?
async fn pre(client: &kube::Client, namespace: &str) -> Vec<Check> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let mut out = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let installed = (
        deployments.get_opt("strait-controller").await,
        hooks.get_opt("strait-webhook").await,
    );
    let name = "no Strait control plane is installed yet";
    out.push(match installed {
        (Ok(None), Ok(None)) => pass(name, format!("nothing in {namespace}")),
        (Ok(Some(_)), _) | (_, Ok(Some(_))) => fail(
            name,
            format!("deploy/strait-controller in {namespace} or the strait-webhook configuration exists"),
            format!("strait check -n {namespace} (it is installed: check it instead), or helm uninstall strait -n {namespace}"),
        ),
        (Err(e), _) | (_, Err(e)) => fail(name, e.to_string(), "check your RBAC"),
    });
    // What `helm install` creates, asked of the API server as this user.
    // Creating the namespace is needed only when it does not exist yet.
    let namespace_missing = Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .map(|n| n.is_none())
        .unwrap_or(true);
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut wanted: Vec<(&str, &str, Option<&str>)> = vec![
        ("apiextensions.k8s.io", "customresourcedefinitions", None),
        ("rbac.authorization.k8s.io", "clusterroles", None),
        ("rbac.authorization.k8s.io", "clusterrolebindings", None),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            None,
        ),
        ("apps", "deployments", Some(namespace)),
        ("", "secrets", Some(namespace)),
    ];
    if namespace_missing {
        wanted.push(("", "namespaces", None));
    }
    for (group, resource, ns) in wanted {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    verb: Some("create".into()),
                    namespace: ns.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let name = format!("can create {resource}");
        out.push(match reviews.create(&Default::default(), &review).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => pass(&name, ""),
            Ok(r) => fail(
                &name,
                r.status
                    .and_then(|s| s.reason)
                    .unwrap_or_else(|| "not allowed".into()),
                "helm install needs cluster-admin (or these rights)",
            ),
            Err(e) => fail(&name, e.to_string(), "check your RBAC"),
        });
    }
    // CRDs left by an earlier install are fine (Helm keeps them); say so.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in CRDS {
        if let Ok(Some(c)) = crds.get_opt(crd).await {
            let v = crd_verdict(
                &format!("CRD {crd} left from an earlier install is current"),
                &c,
                crd,
            );
            out.push(v);
        }
    }
    out
}

fn not_after(pem: &[u8]) -> Option<i64> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = block.parse_x509().ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Running pods that should be meshed (their namespace or template says
/// enabled) or are: (namespace/pod, has the proxy).
async fn meshed_pods(client: &kube::Client) -> Result<Vec<(String, bool)>, String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let enabled: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|n| {
            n.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(INJECT_ANNOTATION))
                .map(String::as_str)
                == Some("enabled")
        })
        .filter_map(|n| n.metadata.name)
        .collect();
    let pods: Api<Pod> = Api::all(client.clone());
    let mut out = Vec::new();
    for p in pods
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
    {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let ann = p.metadata.annotations.clone().unwrap_or_default();
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let injected = ann.contains_key(VERSION_ANNOTATION);
        let wanted = match ann.get(INJECT_ANNOTATION).map(String::as_str) {
            Some("disabled") => false,
            Some("enabled") => true,
            _ => enabled.contains(&ns),
        };
        let host_network = p.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        if injected || (wanted && !host_network) {
            out.push((
                format!("{ns}/{}", p.metadata.name.unwrap_or_default()),
                injected,
            ));
        }
    }
    Ok(out)
}

/// `ProxyStatus` of one controller pod, over a port-forward to its 8086.
async fn proxy_status(pods: &Api<Pod>, pod: &str) -> Result<ProxyStatusResponse, String> {
    let mut pf = pods
        .portforward(pod, &[8086])
        .await
        .map_err(|e| format!("port-forward: {e}"))?;
    let stream = pf.take_stream(8086).ok_or("port-forward gave no stream")?;
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
    let channel = tonic::transport::Endpoint::from_static("http://strait-controller")
        .connect_with_connector(tower::service_fn(move |_| {
            let s = slot.lock().ok().and_then(|mut s| s.take());
            async move {
                s.map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("the port-forward stream is used up"))
            }
        }))
        .await
        .map_err(|e| format!("connecting over the port-forward: {e}"))?;
    let mut client = strait_api::wire::config_discovery_client::ConfigDiscoveryClient::new(channel);
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.proxy_status(ProxyStatusRequest {}),
    )
    .await
    .map_err(|_| "no answer within 10 s".to_string())?
    .map_err(|e| format!("ProxyStatus: {}", e.message()))?;
    drop(pf);
    Ok(r.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for (major, minor, ok) in [
            ("1", "29", true),
            ("1", "37", true),
            ("1", "30+", true),
            ("1", "28", false),
            ("2", "0", false),
            ("1", "x", false),
        ] {
            assert_eq!(version_verdict(major, minor, "v").ok, ok, "{major}.{minor}");
        }
    }

    #[test]
    fn certificates() {
        let day = 86_400;
        for (left, ca, want) in [
            (30 * day, true, [true, true]),
            (7 * day, true, [true, true]),
            (7 * day - 1, true, [false, true]),
            (-day, false, [false, false]),
        ] {
            let got: Vec<bool> = cert_verdict(left, 0, ca, "mesh")
                .iter()
                .map(|c| c.ok)
                .collect();
            assert_eq!(got, want, "{left}s left, ca matches {ca}");
        }
    }

    #[test]
    fn crds_at_this_versions_schema() {
        for (crd, yaml) in CRD_FILES {
            let current: CustomResourceDefinition = serde_saphyr::from_str(yaml).unwrap();
            assert!(crd_verdict("c", &current, crd).ok, "{crd} as shipped");
            // An older schema: one property fewer.
            let mut older = current.clone();
            let schema = older.spec.versions[0].schema.as_mut().unwrap();
            let spec = schema
                .open_api_v3_schema
                .as_mut()
                .unwrap()
                .properties
                .as_mut()
                .unwrap();
            let spec = spec.get_mut("spec").unwrap().properties.as_mut().unwrap();
            let first = spec.keys().next().unwrap().clone();
            spec.remove(&first);
            let v = crd_verdict("c", &older, crd);
            assert!(
                !v.ok && v.hint.contains("kubectl apply"),
                "{crd} without {first}: {v:?}"
            );
            // Only a description reworded: the same schema.
            let mut reworded = current.clone();
            let schema = reworded.spec.versions[0].schema.as_mut().unwrap();
            schema.open_api_v3_schema.as_mut().unwrap().description =
                Some("said another way".into());
            assert!(crd_verdict("c", &reworded, crd).ok, "{crd} reworded");
            // Not served.
            let mut unserved = current.clone();
            unserved.spec.versions[0].served = false;
            assert!(!crd_verdict("c", &unserved, crd).ok, "{crd} not served");
        }
    }

    #[test]
    fn leaders() {
        let ready = vec!["c-1".to_owned(), "c-2".to_owned()];
        assert!(leader_verdict(Some("c-1"), Some(3), 15, &ready, "mesh").ok);
        assert!(
            !leader_verdict(Some("c-1"), Some(30), 15, &ready, "mesh").ok,
            "stale renewal"
        );
        assert!(
            !leader_verdict(Some("gone"), Some(1), 15, &ready, "mesh").ok,
            "holder not ready"
        );
        let none = leader_verdict(None, None, 15, &ready, "mesh");
        assert!(!none.ok);
        assert!(
            none.hint.contains("kubectl -n mesh "),
            "hints name the namespace given: {none:?}"
        );
    }

    #[test]
    fn proxies() {
        let info = |pod: &str, acked: u64| ProxyInfo {
            namespace: "shop".into(),
            pod: pod.into(),
            acked_version: acked,
            sent_version: acked,
            ..Default::default()
        };
        let statuses = [ProxyStatusResponse {
            proxies: vec![info("a", 5), info("b", 4)],
            latest_version: 5,
            replica: "c-1".into(),
        }];
        let meshed = [
            ("shop/a".to_owned(), true),
            ("shop/b".to_owned(), true),
            ("shop/c".to_owned(), true),
            ("shop/d".to_owned(), false),
        ];
        let v = proxy_verdicts(&meshed, &statuses);
        assert_eq!(
            v.iter().map(|c| c.ok).collect::<Vec<_>>(),
            [true, false, false, false]
        );
        assert!(v[2].detail.contains("not connected"));
        assert!(v[3].detail.contains("no proxy") && v[3].hint.contains("delete pod d"));
        let text = render(&v, false);
        assert!(
            text.contains("✔ proxy of shop/a")
                && text.contains("✘ proxy of shop/d")
                && text.contains("3 check(s) failed")
        );
        let j: serde_json::Value = serde_json::from_str(&render(&v, true)).unwrap();
        assert_eq!(j["ok"], false);
        assert_eq!(j["checks"].as_array().unwrap().len(), 4);
    }
}
