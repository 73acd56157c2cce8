//! `strait check`, like `linkerd check`: is the mesh healthy? A list of
//! checks, each ✔ or ✘ with a hint that says what to run. `--pre` checks a
//! cluster before install; `--proxies` also checks every meshed pod's proxy.
//! Exit code 1 when a check fails; `-o json` for scripts.
//!
//! The verdicts are pure functions of what was read (`verdicts.rs`,
//! table-tested in `tests.rs`); `run` only reads the cluster (through the
//! API server, and the config stream through a port-forward, as kubectl
//! would).

#[cfg(test)]
mod tests;
mod verdicts;

pub use verdicts::{Check, render};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;
use strait_api::inject::{INJECT_ANNOTATION, VERSION_ANNOTATION};
use strait_api::wire::{ProxyStatusRequest, ProxyStatusResponse};
use verdicts::{
    CRDS, cert_verdict, crd_verdict, fail, leader_verdict, pass, proxy_verdicts, version_verdict,
};

/// What to check.
pub struct Options {
    /// The control plane's namespace.
    pub namespace: String,
    /// Before install: only the cluster's prerequisites.
    pub pre: bool,
    /// Also every meshed pod's proxy.
    pub proxies: bool,
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
