//! The injector's decision: given a Pod (or a workload's pod template) and
//! its namespace's annotations, whether to mesh it and the Pod as it should
//! run: the `strait-init` container that writes the iptables rules, the
//! proxy as a native sidecar (an init container with `restartPolicy:
//! Always` and a startup probe on `/ready`, so the app starts after its
//! proxy has config and the proxy stops after the app), the projected
//! ServiceAccount token for identity, and the knobs of
//! `config.strait.dev/*` annotations ([`knobs`]).
//!
//! Pods are plain JSON here, not typed: the admission webhook and `strait
//! inject` must keep every field they do not know (a newer Kubernetes, a
//! CRD's pod template) exactly as it came. The webhook turns the result into
//! a JSON patch; `strait inject` prints it. Nothing here does IO.

pub mod knobs;
#[cfg(test)]
mod tests;
pub mod workload;

use knobs::Knobs;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The switch, on a namespace or a pod: `enabled` or `disabled`.
pub const INJECT_ANNOTATION: &str = "strait.dev/inject";
/// Set on every injected pod: the proxy version it got.
pub const VERSION_ANNOTATION: &str = "strait.dev/proxy-version";
/// The proxy sidecar's container name.
pub const PROXY_CONTAINER: &str = "strait-proxy";
/// The iptables init container's name.
pub const INIT_CONTAINER: &str = "strait-init";
/// The projected token volume.
pub const IDENTITY_VOLUME: &str = "strait-identity";
/// Where the proxy finds its ServiceAccount token.
pub const IDENTITY_DIR: &str = "/var/run/strait/identity";
/// The proxy's user id; iptables leaves its own traffic alone.
pub const PROXY_UID: u32 = 2102;
/// The inbound listener's port.
pub const INBOUND_PORT: u16 = 4143;
/// The outbound listener's port.
pub const OUTBOUND_PORT: u16 = 4140;
/// The admin port (metrics and probes; never redirected).
pub const ADMIN_PORT: u16 = 4191;

/// Mesh-wide settings of the injector (the controller's flags, from the
/// Helm chart's values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The proxy image (it also runs `strait-proxy init`).
    pub image: String,
    /// Its pull policy.
    pub image_pull_policy: String,
    /// The config stream's address, `host:port`.
    pub control_plane: String,
    /// Recorded in [`VERSION_ANNOTATION`].
    pub version: String,
    /// Audience of the projected token (what the identity service expects).
    pub identity_audience: String,
    /// The identity service's address, `host:port`.
    pub identity_addr: String,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// The mesh's trust roots (PEM) the proxy checks the control plane
    /// with; empty: the proxy reaches the control plane in plaintext.
    pub trust_roots: String,
    /// The controller's identity (a SPIFFE ID), which its TLS proves.
    pub control_plane_identity: String,
    /// Knob defaults.
    pub defaults: Knobs,
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The admission webhook: inject only where `strait.dev/inject` says
    /// `enabled` on the pod, or on its namespace and not `disabled` on the pod.
    Admission,
    /// `strait inject`: the user asked for these manifests, so inject unless
    /// the pod template says `disabled`.
    Manual,
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Left as it is, and why.
    Skipped(String),
    /// The pod as it should run, and warnings for the user (bad knobs).
    Injected {
        /// The whole pod (or template), mutated.
        pod: Value,
        /// One line per problem; none block the pod.
        warnings: Vec<String>,
    },
}

fn annotations(pod: &Value) -> BTreeMap<String, String> {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn names(list: Option<&Value>) -> impl Iterator<Item = &str> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name")?.as_str())
}

/// Whether the pod already carries the proxy (by container or annotation).
pub fn is_injected(pod: &Value) -> bool {
    let spec = pod.get("spec");
    annotations(pod).contains_key(VERSION_ANNOTATION)
        || names(spec.and_then(|s| s.get("initContainers")))
            .chain(names(spec.and_then(|s| s.get("containers"))))
            .any(|n| n == PROXY_CONTAINER || n == INIT_CONTAINER)
}

/// Decides and, when meshing, returns the injected pod.
pub fn inject(
    pod: &Value,
    namespace_annotations: &BTreeMap<String, String>,
    settings: &Settings,
    mode: Mode,
) -> Outcome {
    let Some(spec) = pod.get("spec").and_then(Value::as_object) else {
        return Outcome::Skipped("no pod spec".into());
    };
    if !spec.get("containers").is_some_and(Value::is_array) {
        return Outcome::Skipped("the pod spec has no containers".into());
    }
    let pod_annotations = annotations(pod);
    let switch =
        |m: &BTreeMap<String, String>| m.get(INJECT_ANNOTATION).map(|v| v.trim().to_owned());
    match (
        mode,
        switch(&pod_annotations).as_deref(),
        switch(namespace_annotations).as_deref(),
    ) {
        (_, Some("disabled"), _) => {
            return Outcome::Skipped(format!("the pod says {INJECT_ANNOTATION}: disabled"));
        }
        (Mode::Manual, _, _) | (Mode::Admission, Some("enabled"), _) => {}
        (Mode::Admission, None, Some("enabled")) => {}
        (Mode::Admission, _, _) => {
            return Outcome::Skipped(format!(
                "not enabled: set {INJECT_ANNOTATION}: enabled on the namespace or the pod template"
            ));
        }
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Outcome::Skipped(
            "host-network pods share the node's network and are not meshed".into(),
        );
    }
    if is_injected(pod) {
        return Outcome::Skipped("already injected".into());
    }

    let (knobs, mut warnings) =
        knobs::read(&pod_annotations, namespace_annotations, &settings.defaults);
    if let Some(v) = switch(&pod_annotations).or_else(|| switch(namespace_annotations))
        && v != "enabled"
        && v != "disabled"
    {
        warnings.push(format!(
            "annotation {INJECT_ANNOTATION}: {v:?} is neither enabled nor disabled; it is read as enabled"
        ));
    }

    let workload = workload::name(pod);
    let mut pod = pod.clone();
    let spec = pod["spec"].as_object_mut().expect("checked above");
    let probes = probes(spec);
    let inits = spec.entry("initContainers").or_insert_with(|| json!([]));
    if !inits.is_array() {
        *inits = json!([]);
    }
    let inits = inits.as_array_mut().expect("made an array above");
    // First, so the app's own init containers already run meshed.
    let mut proxy = proxy_container(settings, &knobs, &workload);
    if !probes.is_empty()
        && let Some(env) = proxy["env"].as_array_mut()
    {
        env.push(json!({"name": "STRAIT_INBOUND_PROBES", "value": probes.join(",")}));
    }
    inits.insert(0, proxy);
    inits.insert(0, init_container(settings, &knobs));
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if !volumes.is_array() {
        *volumes = json!([]);
    }
    volumes
        .as_array_mut()
        .expect("made an array above")
        .push(json!({
            "name": IDENTITY_VOLUME,
            "projected": {"sources": [{"serviceAccountToken": {
                "audience": settings.identity_audience,
                "expirationSeconds": 3600,
                "path": "token",
            }}]},
        }));
    let meta = pod
        .as_object_mut()
        .expect("a pod with a spec is an object")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let ann = meta
        .as_object_mut()
        .expect("made an object above")
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if !ann.is_object() {
        *ann = json!({});
    }
    let ann = ann.as_object_mut().expect("made an object above");
    ann.insert(VERSION_ANNOTATION.into(), json!(settings.version));
    // Prometheus' usual scrape annotations, unless the app has its own.
    if !ann.contains_key("prometheus.io/scrape") {
        ann.insert("prometheus.io/scrape".into(), json!("true"));
        ann.insert("prometheus.io/port".into(), json!(ADMIN_PORT.to_string()));
        ann.insert("prometheus.io/path".into(), json!("/metrics"));
    }
    Outcome::Injected { pod, warnings }
}

/// The kubelet's HTTP and gRPC probes of the app's containers, as
/// `PORT:PATH`: requests the proxy answers in plaintext even on a port a
/// `Strict` DestinationPolicy covers (the kubelet has no certificate). A
/// named port is resolved against the container's ports; one that is not
/// there is left out.
pub fn probes(spec: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let containers = spec.get("containers").and_then(Value::as_array);
    for c in containers.into_iter().flatten() {
        let named = |name: &str| {
            c["ports"].as_array()?.iter().find_map(|p| {
                (p["name"].as_str() == Some(name))
                    .then(|| p["containerPort"].as_u64())
                    .flatten()
            })
        };
        let port = |v: &Value| v.as_u64().or_else(|| named(v.as_str()?));
        for kind in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let probe = &c[kind];
            let found = if let Some(port) = port(&probe["httpGet"]["port"]) {
                let path = probe["httpGet"]["path"].as_str().unwrap_or("/");
                Some(format!("{port}:{}", path.split('?').next().unwrap_or("/")))
            } else {
                probe["grpc"]["port"]
                    .as_u64()
                    .map(|port| format!("{port}:/grpc.health.v1.Health/Check"))
            };
            if let Some(f) = found.filter(|f| !out.contains(f)) {
                out.push(f);
            }
        }
    }
    out
}

fn resources(cpu_req: &str, cpu_lim: &str, mem_req: &str, mem_lim: &str) -> Value {
    let set = |pairs: [(&str, &str); 2]| -> serde_json::Map<String, Value> {
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect()
    };
    json!({
        "requests": set([("cpu", cpu_req), ("memory", mem_req)]),
        "limits": set([("cpu", cpu_lim), ("memory", mem_lim)]),
    })
}

fn init_container(s: &Settings, k: &Knobs) -> Value {
    let mut skip_in = vec![ADMIN_PORT.to_string()];
    skip_in.extend(knobs::iptables_ports(&k.skip_inbound_ports));
    let mut args = vec![
        "init".to_owned(),
        "--proxy-uid".into(),
        PROXY_UID.to_string(),
        "--inbound-port".into(),
        INBOUND_PORT.to_string(),
        "--outbound-port".into(),
        OUTBOUND_PORT.to_string(),
        "--skip-inbound-ports".into(),
        skip_in.join(","),
    ];
    if !k.skip_outbound_ports.is_empty() {
        args.push("--skip-outbound-ports".into());
        args.push(knobs::iptables_ports(&k.skip_outbound_ports).join(","));
    }
    json!({
        "name": INIT_CONTAINER,
        "image": s.image,
        "imagePullPolicy": s.image_pull_policy,
        "args": args,
        "resources": resources("10m", "", "10Mi", "64Mi"),
        // The only part of the mesh that runs as root, with only the two
        // capabilities iptables needs.
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    })
}

fn proxy_container(s: &Settings, k: &Knobs, workload: &str) -> Value {
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": field("metadata.name")}),
        json!({"name": "STRAIT_NAMESPACE", "valueFrom": field("metadata.namespace")}),
        json!({"name": "STRAIT_SERVICE_ACCOUNT", "valueFrom": field("spec.serviceAccountName")}),
        json!({"name": "STRAIT_CONTROL_PLANE", "value": s.control_plane}),
        json!({"name": "STRAIT_IDENTITY_ADDR", "value": s.identity_addr}),
        json!({"name": "STRAIT_TRUST_DOMAIN", "value": s.trust_domain}),
        json!({"name": "STRAIT_IDENTITY_TOKEN", "value": format!("{IDENTITY_DIR}/token")}),
        json!({"name": "STRAIT_LOG", "value": k.log_level}),
        json!({"name": "STRAIT_WORKLOAD", "value": workload}),
    ];
    if !s.trust_roots.is_empty() {
        env.push(json!({"name": "STRAIT_TRUST_ROOTS", "value": s.trust_roots}));
        env.push(
            json!({"name": "STRAIT_CONTROL_PLANE_IDENTITY", "value": s.control_plane_identity}),
        );
    }
    if !k.opaque_ports.is_empty() {
        let ports: Vec<String> = k.opaque_ports.iter().map(u16::to_string).collect();
        env.push(json!({"name": "STRAIT_OPAQUE_PORTS", "value": ports.join(",")}));
    }
    let probe = |path: &str, period: u32, failures: u32| json!({"httpGet": {"path": path, "port": ADMIN_PORT}, "periodSeconds": period, "failureThreshold": failures});
    json!({
        "name": PROXY_CONTAINER,
        "image": s.image,
        "imagePullPolicy": s.image_pull_policy,
        // A native sidecar: started before the app, stopped after it.
        "restartPolicy": "Always",
        "env": env,
        "ports": [
            {"name": "strait-admin", "containerPort": ADMIN_PORT},
            {"name": "strait-inbound", "containerPort": INBOUND_PORT},
        ],
        // The app's containers start only once this passes: the proxy has config.
        "startupProbe": probe("/ready", 1, 120),
        "readinessProbe": probe("/ready", 5, 3),
        "livenessProbe": probe("/live", 10, 3),
        "resources": resources(&k.cpu_request, &k.cpu_limit, &k.memory_request, &k.memory_limit),
        "securityContext": {
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": IDENTITY_VOLUME, "mountPath": IDENTITY_DIR, "readOnly": true}],
    })
}

/// Removes what [`inject`] added; `None` when the pod was not injected.
pub fn uninject(pod: &Value) -> Option<Value> {
    if !is_injected(pod) {
        return None;
    }
    let mut pod = pod.clone();
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        for (list, ours) in [
            ("initContainers", &[PROXY_CONTAINER, INIT_CONTAINER][..]),
            ("containers", &[PROXY_CONTAINER][..]),
            ("volumes", &[IDENTITY_VOLUME][..]),
        ] {
            if let Some(items) = spec.get_mut(list).and_then(Value::as_array_mut) {
                items.retain(|c| {
                    !c.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| ours.contains(&n))
                });
                if items.is_empty() && list != "containers" {
                    spec.remove(list);
                }
            }
        }
    }
    if let Some(ann) = pod
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        ann.remove(VERSION_ANNOTATION);
        if ann.get("prometheus.io/port").and_then(Value::as_str) == Some(&ADMIN_PORT.to_string()) {
            for k in [
                "prometheus.io/scrape",
                "prometheus.io/port",
                "prometheus.io/path",
            ] {
                ann.remove(k);
            }
        }
        if ann.is_empty()
            && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("annotations");
        }
    }
    // An empty metadata map says nothing; inject may have made it.
    if pod
        .get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty())
        && let Some(p) = pod.as_object_mut()
    {
        p.remove("metadata");
    }
    Some(pod)
}
