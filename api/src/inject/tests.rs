//! Table tests of the injector: the switch on pod and namespace, every
//! knob, bad values, and the cases that leave a pod alone.

use super::knobs::Knobs;
use super::*;
use serde_json::json;

fn settings() -> Settings {
    Settings {
        image: "docker.io/strait/strait-proxy:0.1.0".into(),
        image_pull_policy: "IfNotPresent".into(),
        control_plane: "strait-controller.strait-system.svc.cluster.local:8086".into(),
        version: "0.1.0".into(),
        identity_audience: "strait.dev/identity".into(),
        identity_addr: "strait-controller.strait-system.svc.cluster.local:8080".into(),
        trust_domain: "cluster.local".into(),
        trust_roots: String::new(),
        control_plane_identity: String::new(),
        defaults: Knobs::default(),
    }
}

fn pod(annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut metadata = json!({"name": "web-0", "labels": {"app": "web"}});
    if !ann.is_empty() {
        metadata["annotations"] = Value::Object(ann);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "initContainers": [{"name": "migrate", "image": "app:1"}],
            "containers": [{"name": "app", "image": "app:1", "futureField": {"kept": true}}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }
    })
}

fn ns(annotations: &[(&str, &str)]) -> BTreeMap<String, String> {
    annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn injected(out: Outcome) -> (Value, Vec<String>) {
    match out {
        Outcome::Injected { pod, warnings } => (pod, warnings),
        Outcome::Skipped(why) => panic!("expected injection, skipped: {why}"),
    }
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn env(c: &Value, name: &str) -> Option<String> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn the_switch_on_pod_and_namespace() {
    let e = INJECT_ANNOTATION;
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        Mode,
        bool,
    );
    let cases: &[Case] = &[
        ("nothing set", &[], &[], Mode::Admission, false),
        (
            "namespace enabled",
            &[],
            &[(e, "enabled")],
            Mode::Admission,
            true,
        ),
        ("pod enabled", &[(e, "enabled")], &[], Mode::Admission, true),
        (
            "pod disabled wins over namespace",
            &[(e, "disabled")],
            &[(e, "enabled")],
            Mode::Admission,
            false,
        ),
        (
            "pod enabled wins over namespace disabled",
            &[(e, "enabled")],
            &[(e, "disabled")],
            Mode::Admission,
            true,
        ),
        (
            "namespace disabled",
            &[],
            &[(e, "disabled")],
            Mode::Admission,
            false,
        ),
        ("manual injects by default", &[], &[], Mode::Manual, true),
        (
            "manual honours disabled",
            &[(e, "disabled")],
            &[],
            Mode::Manual,
            false,
        ),
    ];
    for (name, p, n, mode, want) in cases {
        let out = inject(&pod(p), &ns(n), &settings(), *mode);
        assert_eq!(
            matches!(out, Outcome::Injected { .. }),
            *want,
            "{name}: {out:?}"
        );
    }
}

#[test]
fn the_injected_pod() {
    let (p, warnings) = injected(inject(
        &pod(&[]),
        &ns(&[(INJECT_ANNOTATION, "enabled")]),
        &settings(),
        Mode::Admission,
    ));
    assert!(warnings.is_empty(), "{warnings:?}");
    let inits: Vec<&str> = p["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        inits,
        [INIT_CONTAINER, PROXY_CONTAINER, "migrate"],
        "ours first, the app's after"
    );
    let proxy = container(&p, PROXY_CONTAINER);
    assert_eq!(proxy["restartPolicy"], "Always", "a native sidecar");
    assert_eq!(proxy["startupProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(proxy["startupProbe"]["httpGet"]["port"], 4191);
    assert_eq!(proxy["securityContext"]["runAsUser"], 2102);
    assert_eq!(proxy["securityContext"]["runAsNonRoot"], true);
    assert_eq!(proxy["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        proxy["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(
        env(proxy, "STRAIT_CONTROL_PLANE").unwrap(),
        settings().control_plane
    );
    assert_eq!(env(proxy, "STRAIT_LOG").unwrap(), "info");
    assert!(env(proxy, "STRAIT_OPAQUE_PORTS").is_none());
    let downward: Vec<(&str, &str)> = proxy["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?,
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(
        downward,
        [
            ("POD_NAME", "metadata.name"),
            ("STRAIT_NAMESPACE", "metadata.namespace"),
            ("STRAIT_SERVICE_ACCOUNT", "spec.serviceAccountName")
        ]
    );
    assert_eq!(
        proxy["resources"],
        json!({"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "128Mi"}})
    );
    assert_eq!(proxy["volumeMounts"][0]["mountPath"], IDENTITY_DIR);
    let init = container(&p, INIT_CONTAINER);
    assert_eq!(init["args"][0], "init");
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
    assert_eq!(init["securityContext"]["runAsUser"], 0);
    let args: Vec<&str> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "init",
            "--proxy-uid",
            "2102",
            "--inbound-port",
            "4143",
            "--outbound-port",
            "4140",
            "--skip-inbound-ports",
            "4191"
        ]
    );
    let vol = p["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == IDENTITY_VOLUME)
        .unwrap();
    assert_eq!(
        vol["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "strait.dev/identity"
    );
    assert_eq!(p["metadata"]["annotations"][VERSION_ANNOTATION], "0.1.0");
    assert_eq!(p["metadata"]["annotations"]["prometheus.io/port"], "4191");
    // What the injector does not know stays exactly as it was.
    assert_eq!(p["spec"]["containers"], pod(&[])["spec"]["containers"]);
    assert_eq!(p["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn every_knob_from_pod_or_namespace() {
    let k = |n: &str| format!("{}{n}", knobs::PREFIX);
    type Read = dyn Fn(&Value) -> Value;
    let cases: &[(&str, &str, &Read)] = &[
        ("skip-inbound-ports", "8081, 9000-9100", &|p| {
            container(p, INIT_CONTAINER)["args"][8].clone()
        }),
        ("skip-outbound-ports", "5432,6379:6380", &|p| {
            container(p, INIT_CONTAINER)["args"][10].clone()
        }),
        ("opaque-ports", "3306,5432", &|p| {
            json!(env(container(p, PROXY_CONTAINER), "STRAIT_OPAQUE_PORTS"))
        }),
        ("proxy-log-level", "strait_proxy=debug", &|p| {
            json!(env(container(p, PROXY_CONTAINER), "STRAIT_LOG"))
        }),
        ("proxy-cpu-request", "100m", &|p| {
            container(p, PROXY_CONTAINER)["resources"]["requests"]["cpu"].clone()
        }),
        ("proxy-cpu-limit", "1", &|p| {
            container(p, PROXY_CONTAINER)["resources"]["limits"]["cpu"].clone()
        }),
        ("proxy-memory-request", "32Mi", &|p| {
            container(p, PROXY_CONTAINER)["resources"]["requests"]["memory"].clone()
        }),
        ("proxy-memory-limit", "256Mi", &|p| {
            container(p, PROXY_CONTAINER)["resources"]["limits"]["memory"].clone()
        }),
    ];
    let want = |name: &str, value: &str| -> Value {
        match name {
            "skip-inbound-ports" => json!("4191,8081,9000:9100"),
            "skip-outbound-ports" => json!("5432,6379:6380"),
            _ => json!(value),
        }
    };
    for (name, value, read) in cases {
        let key = k(name);
        // On the pod.
        let (p, w) = injected(inject(
            &pod(&[(key.as_str(), value)]),
            &ns(&[]),
            &settings(),
            Mode::Manual,
        ));
        assert!(w.is_empty(), "{name}: {w:?}");
        assert_eq!(read(&p), want(name, value), "{name} on the pod");
        // On the namespace.
        let (p, _) = injected(inject(
            &pod(&[]),
            &ns(&[(key.as_str(), value)]),
            &settings(),
            Mode::Manual,
        ));
        assert_eq!(read(&p), want(name, value), "{name} on the namespace");
        // The pod's wins over the namespace's.
        let (p, _) = injected(inject(
            &pod(&[(key.as_str(), value)]),
            &ns(&[(key.as_str(), "7")]),
            &settings(),
            Mode::Manual,
        ));
        assert_eq!(read(&p), want(name, value), "{name}: the pod wins");
    }
    assert_eq!(knobs::KNOWN.len(), cases.len(), "a table row per knob");
}

/// A manually injected pod with these knobs (annotation suffix, value).
fn with_knobs(knobs: &[(&str, &str)]) -> (Value, Vec<String>) {
    let keys: Vec<(String, &str)> = knobs
        .iter()
        .map(|(n, v)| (format!("{}{n}", knobs::PREFIX), *v))
        .collect();
    let annotations: Vec<(&str, &str)> = keys.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    injected(inject(
        &pod(&annotations),
        &ns(&[]),
        &settings(),
        Mode::Manual,
    ))
}

#[test]
fn a_bad_knob_is_a_warning_and_the_default() {
    let k = |n: &str| format!("{}{n}", knobs::PREFIX);
    let cases: &[(&str, &str)] = &[
        ("skip-inbound-ports", "abc"),
        ("skip-inbound-ports", "0"),
        ("skip-inbound-ports", "70000"),
        ("skip-outbound-ports", "9100:9000"),
        ("opaque-ports", "3306:3310"),
        ("proxy-log-level", "info; rm -rf /"),
        ("proxy-cpu-request", "lots"),
        ("proxy-memory-limit", "1.2.3Gi"),
        ("proxy-memory-limit", "64MB"),
    ];
    for (name, value) in cases {
        let key = k(name);
        let (p, w) = injected(inject(
            &pod(&[(key.as_str(), value)]),
            &ns(&[]),
            &settings(),
            Mode::Manual,
        ));
        assert_eq!(w.len(), 1, "{name}={value}: {w:?}");
        assert!(
            w[0].contains(&key) && w[0].contains(value),
            "{name}={value}: the warning names the annotation: {w:?}"
        );
        let (default, _) = injected(inject(&pod(&[]), &ns(&[]), &settings(), Mode::Manual));
        assert_eq!(
            p["spec"]["initContainers"], default["spec"]["initContainers"],
            "{name}={value}: defaults used"
        );
    }
    // Each quantity valid, the pair not: the request above the limit.
    let pairs: &[(&[(&str, &str)], &str)] = &[
        (&[("proxy-memory-request", "256Mi")], "memory"),
        (&[("proxy-memory-limit", "10Mi")], "memory"),
        (
            &[
                ("proxy-memory-request", "1Gi"),
                ("proxy-memory-limit", "512Mi"),
            ],
            "memory",
        ),
        (
            &[("proxy-cpu-request", "2"), ("proxy-cpu-limit", "500m")],
            "cpu",
        ),
        (
            &[("proxy-cpu-request", "1.5"), ("proxy-cpu-limit", "1")],
            "cpu",
        ),
    ];
    let (default, _) = injected(inject(&pod(&[]), &ns(&[]), &settings(), Mode::Manual));
    for (knobs, what) in pairs {
        let (p, w) = with_knobs(knobs);
        assert!(
            w.len() == 1
                && w[0].contains(&format!("proxy-{what}-request"))
                && w[0].contains("above the limit"),
            "{knobs:?}: {w:?}"
        );
        assert_eq!(
            p["spec"]["initContainers"], default["spec"]["initContainers"],
            "{knobs:?}: defaults used for both"
        );
    }
    // Equal, or a limit above the request, or no limit: accepted as given.
    for knobs in [
        [
            ("proxy-memory-request", "128Mi"),
            ("proxy-memory-limit", "128Mi"),
        ],
        [
            ("proxy-memory-request", "100M"),
            ("proxy-memory-limit", "128Mi"),
        ],
        [("proxy-cpu-request", "900m"), ("proxy-cpu-limit", "1")],
        // The same amount written two ways (floating point would call the
        // first request above its limit).
        [("proxy-cpu-request", "700m"), ("proxy-cpu-limit", "0.7")],
        [("proxy-cpu-request", "0.35"), ("proxy-cpu-limit", "350m")],
        [
            ("proxy-memory-request", "1Ki"),
            ("proxy-memory-limit", "1.024k"),
        ],
    ] {
        let (_, w) = with_knobs(&knobs);
        assert!(w.is_empty(), "{knobs:?}: {w:?}");
    }
    let (_, w) = injected(inject(
        &pod(&[(&k("skip-inbound-port"), "80")]),
        &ns(&[]),
        &settings(),
        Mode::Manual,
    ));
    assert!(
        w.len() == 1 && w[0].contains("not a Strait knob"),
        "a typo in a knob's name: {w:?}"
    );
    let (_, w) = injected(inject(
        &pod(&[(INJECT_ANNOTATION, "yes")]),
        &ns(&[]),
        &settings(),
        Mode::Manual,
    ));
    assert!(
        w.len() == 1 && w[0].contains("neither enabled nor disabled"),
        "{w:?}"
    );
}

#[test]
fn pods_left_alone() {
    let enabled = ns(&[(INJECT_ANNOTATION, "enabled")]);
    let mut host = pod(&[]);
    host["spec"]["hostNetwork"] = json!(true);
    let (once, _) = injected(inject(&pod(&[]), &enabled, &settings(), Mode::Admission));
    let mut by_container = pod(&[]);
    by_container["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": PROXY_CONTAINER}));
    let cases: &[(&str, Value, &str)] = &[
        ("host network", host, "host-network"),
        ("already injected", once, "already injected"),
        (
            "a proxy container by name",
            by_container,
            "already injected",
        ),
        ("no spec", json!({"metadata": {}}), "no pod spec"),
        ("no containers", json!({"spec": {}}), "no containers"),
    ];
    for (name, p, why) in cases {
        match inject(p, &enabled, &settings(), Mode::Admission) {
            Outcome::Skipped(r) => assert!(r.contains(why), "{name}: {r}"),
            o => panic!("{name}: {o:?}"),
        }
    }
}

#[test]
fn uninject_gives_back_the_pod() {
    for annotations in [&[][..], &[("prometheus.io/scrape", "false")][..]] {
        let original = pod(annotations);
        let (p, _) = injected(inject(&original, &ns(&[]), &settings(), Mode::Manual));
        assert_eq!(uninject(&p).unwrap(), original);
    }
    let bare = json!({"spec": {"containers": [{"name": "app"}]}});
    let (p, _) = injected(inject(&bare, &ns(&[]), &settings(), Mode::Manual));
    assert_eq!(uninject(&p).unwrap(), bare);
    assert_eq!(uninject(&pod(&[])), None, "not injected");
}

/// With the mesh's roots the proxy is told to check the controller over
/// TLS, and whom to expect; without, neither is set (plaintext).
#[test]
fn trust_roots_reach_the_proxy_when_known() {
    let enabled = [(INJECT_ANNOTATION, "enabled")];
    let (first, _) = injected(inject(
        &pod(&enabled),
        &BTreeMap::new(),
        &settings(),
        Mode::Admission,
    ));
    let proxy = container(&first, PROXY_CONTAINER);
    assert_eq!(env(proxy, "STRAIT_TRUST_ROOTS"), None);
    assert_eq!(env(proxy, "STRAIT_CONTROL_PLANE_IDENTITY"), None);
    let with_roots = Settings {
        trust_roots: "-----BEGIN CERTIFICATE-----\n…".into(),
        control_plane_identity: "spiffe://cluster.local/ns/strait-system/sa/strait-controller"
            .into(),
        ..settings()
    };
    let (second, _) = injected(inject(
        &pod(&enabled),
        &BTreeMap::new(),
        &with_roots,
        Mode::Admission,
    ));
    let proxy = container(&second, PROXY_CONTAINER);
    assert_eq!(
        env(proxy, "STRAIT_TRUST_ROOTS").as_deref(),
        Some("-----BEGIN CERTIFICATE-----\n…")
    );
    assert_eq!(
        env(proxy, "STRAIT_CONTROL_PLANE_IDENTITY").as_deref(),
        Some("spiffe://cluster.local/ns/strait-system/sa/strait-controller")
    );
}

/// The app's HTTP and gRPC probes reach the proxy as `PORT:PATH`, named
/// ports resolved, so a `Strict` port still answers the kubelet.
#[test]
fn probes_are_listed_for_the_proxy() {
    let spec = json!({"containers": [
        {"name": "app", "ports": [{"name": "http", "containerPort": 8080}],
         "readinessProbe": {"httpGet": {"path": "/ready?full=1", "port": "http"}},
         "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}},
         "startupProbe": {"tcpSocket": {"port": 8080}}},
        {"name": "grpc", "livenessProbe": {"grpc": {"port": 9090}},
         "readinessProbe": {"httpGet": {"path": "/x", "port": "missing"}}},
    ]});
    let got = probes(spec.as_object().unwrap());
    assert_eq!(
        got,
        [
            "8080:/live",
            "8080:/ready",
            "9090:/grpc.health.v1.Health/Check"
        ]
    );
    let mut p = pod(&[(INJECT_ANNOTATION, "enabled")]);
    p["spec"] = spec;
    let (injected_pod, _) = injected(inject(&p, &BTreeMap::new(), &settings(), Mode::Admission));
    let proxy = container(&injected_pod, PROXY_CONTAINER);
    assert_eq!(
        env(proxy, "STRAIT_INBOUND_PROBES").as_deref(),
        Some("8080:/live,8080:/ready,9090:/grpc.health.v1.Health/Check")
    );
}
