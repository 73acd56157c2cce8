//! Install and inject, on the real cluster, as a user would: `strait check
//! --pre`, `helm lint`, `helm template` against the API server, `helm
//! install` with no `--set`, `strait check`; annotate the namespace of
//! running workloads (and, elsewhere, one Deployment's pod template), roll
//! them out and see every new pod run the proxy; a request from one
//! meshed pod to another's Service passes both proxies; a TrafficRoute
//! applied with kubectl changes what the client sees; the controller scaled
//! to 0 and back; `helm upgrade`; `helm uninstall` leaves only the CRDs.
//!
//! One test, in phases: each phase stands on the one before.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;
use strait_cluster_tests::{
    Cluster, Namespace, http_get, image, repo, strait_bin, tools_bin, wait_until,
};

const NS: &str = "strait-system";

struct Tools {
    cluster: &'static Cluster,
    helm: PathBuf,
    strait: PathBuf,
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Tools {
    fn helm(&self, args: &[&str]) -> Output {
        Command::new(&self.helm)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .args(args)
            .output()
            .expect("run helm")
    }
    fn helm_ok(&self, args: &[&str]) -> String {
        let o = self.helm(args);
        assert!(o.status.success(), "helm {}: {}", args.join(" "), text(&o));
        text(&o)
    }
    fn strait(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.strait);
        c.env("KUBECONFIG", &self.cluster.kubeconfig).args(args);
        c
    }
    fn check(&self, args: &[&str]) -> (bool, String) {
        let o = self
            .strait(&["check"])
            .args(args)
            .output()
            .expect("run strait check");
        (o.status.success(), text(&o))
    }
    /// `strait stat ARGS --once` over a 4 s window in which the client pod
    /// sends 200 requests to the web Service.
    fn stat_under_load(&self, ns: &Namespace, client: &str, args: &[&str]) -> String {
        let child = self
            .strait(&["stat", "--once", "--interval", "4s"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run strait stat");
        load(ns, client, 200);
        let o = child.wait_with_output().expect("strait stat");
        assert!(o.status.success(), "strait stat {args:?}: {}", text(&o));
        text(&o)
    }
}

fn app(name: &str, version: &str, template_annotations: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: "@NS@"}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}, service: web, version: "{version}"}}
      annotations: {{{template_annotations}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: "{image}"
          env:
            - {{name: VERSION, value: "{version}"}}
            - name: POD_NAME
              valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /healthz, port: 8080}}
            periodSeconds: 1
"#,
        image = image("strait-testapp")
    )
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: "@NS@"}
spec: {selector: {service: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: "@NS@"}
spec: {selector: {service: web, version: v1}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: "@NS@"}
spec: {selector: {service: web, version: v2}, ports: [{name: http, port: 80, targetPort: 8080}]}
"#;

fn route(w1: u32, w2: u32) -> String {
    format!(
        r#"
apiVersion: strait.dev/v1alpha1
kind: TrafficRoute
metadata: {{name: web, namespace: "@NS@"}}
spec:
  parentRef: {{name: web, port: 80}}
  rules:
    - name: split
      backends: [{{name: web-v1, port: 80, weight: {w1}}}, {{name: web-v2, port: 80, weight: {w2}}}]
"#
    )
}

/// Running pods of a label selector: (name, IP, has the proxy).
fn pods(ns: &Namespace, selector: &str) -> Vec<(String, String, bool)> {
    ns.get_json(&["pods", "-l", selector])["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .map(|p| {
            let proxied = p["spec"]["initContainers"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["name"] == "strait-proxy" && c["restartPolicy"] == "Always")
            });
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["status"]["podIP"].as_str().unwrap_or_default().to_owned(),
                proxied,
            )
        })
        .collect()
}

/// The sum of `strait_requests_total` lines of a proxy that contain every
/// one of `needles`.
fn requests(pod_ip: &str, needles: &[&str]) -> u64 {
    let m = http_get(&format!("{pod_ip}:4191"), "/metrics").unwrap_or_default();
    m.lines()
        .filter(|l| {
            l.starts_with("strait_requests_total{") && needles.iter().all(|n| l.contains(n))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `strait-testapp load` from the client pod: its JSON report.
fn load(ns: &Namespace, client: &str, n: u32) -> serde_json::Value {
    let (ok, out) = ns.exec(
        client,
        &[
            "strait-testapp",
            "load",
            "http://web/",
            "--requests",
            &n.to_string(),
            "--concurrency",
            "2",
        ],
    );
    assert!(ok, "load from {client}: {out}");
    let line = out.lines().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn bare_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: \"@NS@\"}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: app, image: \"{}\"}}]\n",
        image("strait-testapp")
    )
}

/// Waits until the API server's call to the webhook injects a pod in `ns`
/// (a server-side dry run runs the mutating webhooks and stores nothing):
/// controller pods can be Ready a moment before the API server routes to
/// them, and with `failurePolicy: Ignore` a pod created in that moment is
/// admitted without the proxy.
fn wait_for_injection(ns: &Namespace) {
    wait_until(
        "the webhook to inject pods",
        Duration::from_secs(90),
        || injected_dry_run(ns).then_some(()),
    );
}

/// Whether a pod created now in `ns` would be injected (a server-side dry
/// run: the API server calls the webhook and stores nothing).
fn injected_dry_run(ns: &Namespace) -> bool {
    let out = ns.cluster.kubectl_stdin(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        &bare_pod("probe").replace("@NS@", &ns.name),
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"strait-proxy\"")
}

fn injected(ns: &Namespace, pod: &str) -> bool {
    ns.get_json(&["pod", pod])["spec"]["initContainers"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["name"] == "strait-proxy"))
}

#[test]
fn install_inject_route_and_operate() {
    let cluster = Cluster::get();
    let t = Tools {
        cluster,
        helm: tools_bin().join("helm"),
        strait: strait_bin(),
    };
    let chart = repo().join("helm/strait");
    let chart = chart.to_str().expect("path");
    // A clean slate (an earlier run that failed half-way).
    let _ = t.helm(&["uninstall", "strait", "-n", NS, "--wait"]);

    // 0. Before install, `strait check --pre` says the cluster is ready for it.
    let (ok, out) = t.check(&["--pre"]);
    assert!(
        ok && out.contains("✔ no Strait control plane is installed yet")
            && out.contains("✔ can create customresourcedefinitions")
            && out.contains("✔ can create mutatingwebhookconfigurations"),
        "check --pre before install: {out}"
    );

    // 1. The chart lints, and what it renders (CRDs included) is valid for
    // the real API server: every object passes a server-side dry run.
    t.helm_ok(&["lint", chart]);
    let rendered = t.helm_ok(&[
        "template",
        "strait",
        chart,
        "-n",
        NS,
        "--include-crds",
        "--set",
        "grafana.dashboards.enabled=true",
    ]);
    let _ = cluster.kubectl(&["create", "namespace", NS]);
    let dry = cluster.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered);
    let dry_text = text(&dry);
    assert!(dry.status.success(), "{dry_text}");
    let lines: Vec<&str> = dry_text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() >= 12 && lines.iter().all(|l| l.contains("(server dry run)")),
        "kubectl apply --dry-run=server of the rendered chart: {dry_text}"
    );
    // A wrong value is refused by the schema, naming it.
    let bad = t.helm(&[
        "template",
        "strait",
        chart,
        "--set",
        "controller.replicas=0",
    ]);
    assert!(
        !bad.status.success() && text(&bad).contains("replicas"),
        "schema: {}",
        text(&bad)
    );

    // 2. Install with no --set: the controller becomes Ready, strait check passes.
    t.helm_ok(&[
        "install",
        "strait",
        chart,
        "-n",
        NS,
        "--create-namespace",
        "--wait",
        "--timeout",
        "4m",
    ]);
    let (ok, out) = wait_until(
        "strait check to pass after install",
        Duration::from_secs(90),
        || {
            let (ok, out) = t.check(&[]);
            ok.then_some((ok, out))
        },
    );
    assert!(ok && out.contains("Status check results are ✔"), "{out}");
    let (ok, out) = t.check(&["--pre"]);
    assert!(
        !ok && out.contains("✘ no Strait control plane is installed yet"),
        "check --pre once installed: {out}"
    );
    // The identity service made the mesh's trust anchor, laid out as
    // cert-manager writes one, and owned by the controller's Deployment.
    let anchor = wait_until("the trust anchor Secret", Duration::from_secs(60), || {
        let out = cluster.kubectl(&[
            "-n",
            NS,
            "get",
            "secret",
            "strait-identity-issuer",
            "-o",
            "json",
        ]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON"))
    });
    assert_eq!(anchor["type"], "kubernetes.io/tls");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(anchor["data"][key].is_string(), "{key} in {anchor}");
    }
    assert_eq!(
        anchor["metadata"]["ownerReferences"][0]["name"], "strait-controller",
        "{anchor}"
    );

    // 3. Workloads that run unmeshed; then their namespace is annotated
    // for injection and they are rolled out: every new pod runs the proxy.
    let ns = cluster.namespace("mesh-ns");
    ns.apply(SERVICES);
    let deployments = ["web-v1", "web-v2", "client"];
    ns.apply(&app("web-v1", "v1", ""));
    ns.apply(&app("web-v2", "v2", ""));
    ns.apply(&app("client", "client", ""));
    let rolled_out = |ns: &Namespace, deployments: &[&str]| {
        for d in deployments {
            ns.kubectl_ok(&[
                "rollout",
                "status",
                &format!("deploy/{d}"),
                "--timeout=180s",
            ]);
        }
    };
    rolled_out(&ns, &deployments);
    let before = pods(&ns, "app");
    assert!(
        before.len() == 3 && before.iter().all(|(_, _, proxied)| !*proxied),
        "not meshed before the annotation: {before:?}"
    );
    ns.kubectl_ok(&[
        "annotate",
        "namespace",
        &ns.name,
        "strait.dev/inject=enabled",
    ]);
    wait_for_injection(&ns);
    for d in deployments {
        ns.kubectl_ok(&["rollout", "restart", &format!("deploy/{d}")]);
    }
    rolled_out(&ns, &deployments);
    let all = wait_until("only the new pods", Duration::from_secs(60), || {
        let p = pods(&ns, "app");
        (p.len() == 3).then_some(p)
    });
    assert!(
        all.iter().all(|(_, _, proxied)| *proxied),
        "every pod runs the proxy after the rollout: {all:?}"
    );
    // ... and, in a namespace that is not annotated, only the Deployment
    // whose pod template is annotated (a change that rolls it out).
    let tpl = cluster.namespace("mesh-tpl");
    tpl.apply(&app("solo", "v1", ""));
    tpl.apply(&app("plain", "v1", ""));
    rolled_out(&tpl, &["solo", "plain"]);
    tpl.kubectl_ok(&[
        "patch",
        "deploy/solo",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"strait.dev/inject":"enabled"}}}}}"#,
    ]);
    rolled_out(&tpl, &["solo"]);
    wait_until("one solo pod", Duration::from_secs(60), || {
        (pods(&tpl, "app=solo").len() == 1).then_some(())
    });
    assert!(
        pods(&tpl, "app=solo").iter().all(|p| p.2),
        "the annotated template is meshed"
    );
    assert!(
        pods(&tpl, "app=plain").iter().all(|p| !p.2),
        "the other is not"
    );
    let proxies = wait_until("every proxy SYNCED", Duration::from_secs(60), || {
        let (ok, out) = t.check(&["--proxies"]);
        ok.then_some(out)
    });
    assert!(
        proxies.contains("✔ proxy of mesh-ns/") && proxies.contains("✔ proxy of mesh-tpl/solo"),
        "{proxies}"
    );

    // 4. A request from the client pod to the web Service passes the
    // client's outbound proxy and the server's inbound proxy.
    // The web pods have just become Ready: their addresses reach the
    // EndpointSlice, kube-proxy and the controller a moment later (a first
    // request was once reset in that moment), so allow them that moment.
    let client = pods(&ns, "app=client").remove(0);
    let out = wait_until(
        "a request through the mesh",
        Duration::from_secs(30),
        || {
            let (ok, out) = ns.exec(
                &client.0,
                &["strait-testapp", "get", "http://web/through-the-mesh"],
            );
            println!("GET http://web/through-the-mesh: {out}");
            (ok && out.starts_with("200")).then_some(out)
        },
    );
    let body: serde_json::Value =
        serde_json::from_str(out.lines().nth(1).unwrap_or("")).expect("JSON");
    let server = all
        .iter()
        .find(|p| body["pod"] == p.0.as_str())
        .unwrap_or_else(|| panic!("answered by {body}"));
    let service = format!("service=\"{}/web:80\"", ns.name);
    assert!(
        requests(
            &client.1,
            &["direction=\"outbound\"", &service, "code=\"200\""]
        ) >= 1,
        "the client's proxy counted it outbound"
    );
    assert!(
        requests(&server.1, &["direction=\"inbound\"", "code=\"200\""]) >= 1,
        "the server's proxy counted it inbound"
    );

    // 4a. Between the two meshed pods the request was mTLS: each proxy
    // names the other's ServiceAccount identity (certificates may arrive a
    // moment after the pods are ready, so the client asks again until then).
    let id = |sa: &str| format!("spiffe://cluster.local/ns/{}/sa/{sa}", ns.name);
    let mesh = |ip: &str, direction: &str, peer: &str| {
        let m = http_get(&format!("{ip}:4191"), "/metrics").unwrap_or_default();
        let needle = format!(
            "strait_mesh_requests_total{{direction=\"{direction}\",tls=\"true\",peer_identity=\"{peer}\"}} "
        );
        m.lines()
            .find_map(|l| l.strip_prefix(&needle)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    wait_until(
        "an mTLS request between the pods",
        Duration::from_secs(60),
        || {
            let _ = ns.exec(
                &client.0,
                &["strait-testapp", "get", "http://web/over-mtls"],
            );
            (mesh(&client.1, "outbound", &id("default")) >= 1.0).then_some(())
        },
    );
    let servers_saw_client: f64 = all
        .iter()
        .map(|(_, ip, _)| mesh(ip, "inbound", &id("default")))
        .sum();
    assert!(
        servers_saw_client >= 1.0,
        "a web pod's proxy counted an mTLS request from the client's identity"
    );
    // Their config streams are mTLS too: the controller knows each proxy by
    // its certificate.
    let (_, proxies) = t.check(&["--proxies"]);
    assert!(
        proxies.contains("identity mtls") && !proxies.contains("identity unverified"),
        "{proxies}"
    );

    // 4b. Every meshed proxy got a certificate for its ServiceAccount from
    // the controller's identity service (projected token, TokenReview).
    for (pod, ip, _) in &all {
        let m = wait_until(
            &format!("{pod}'s certificate"),
            Duration::from_secs(60),
            || {
                let m = http_get(&format!("{ip}:4191"), "/metrics").unwrap_or_default();
                m.contains("strait_identity_renewals_total{result=\"success\"}")
                    .then_some(m)
            },
        );
        assert!(
            !m.contains("strait_identity_certificate_expiry_seconds 0\n"),
            "{pod}: an expiry is set"
        );
    }

    // 5. A TrafficRoute applied with kubectl changes the split the client sees.
    for (w1, w2, want) in [(0, 100, "v2"), (100, 0, "v1")] {
        ns.apply(&route(w1, w2));
        let report = wait_until(
            &format!("all traffic on {want}"),
            Duration::from_secs(60),
            || {
                let r = load(&ns, &client.0, 40);
                (r["version"]
                    .as_object()
                    .map(|v| v.keys().cloned().collect::<Vec<_>>())
                    == Some(vec![want.to_owned()]))
                .then_some(r)
            },
        );
        assert_eq!(report["status"]["200"], 40, "{report}");
    }
    ns.apply(&route(50, 50));
    let report = wait_until("both versions answering", Duration::from_secs(60), || {
        let r = load(&ns, &client.0, 100);
        (r["version"].as_object().is_some_and(|v| v.len() == 2)).then_some(r)
    });
    assert_eq!(report["status"]["200"], 100, "{report}");

    // 5b. `strait stat` sums every proxy of a workload, read through the
    // API server's pod proxy: the servers' inbound side and the client's
    // outbound side, each row a rate over the window.
    // The summed RPS column of the rows of one direction that mention `needle`.
    let rps = |out: &str, dir: &str, needle: &str| -> f64 {
        out.lines()
            .filter(|l| l.starts_with(dir) && l.contains(needle))
            .filter_map(|l| l.split_whitespace().nth(4)?.parse::<f64>().ok())
            .sum()
    };
    let servers = wait_until("stat over both web pods", Duration::from_secs(60), || {
        let out = t.stat_under_load(
            &ns,
            &client.0,
            &["-n", &ns.name, "-l", "app in (web-v1,web-v2)"],
        );
        println!("strait stat over the web pods:\n{out}");
        (rps(&out, "inbound", "") > 0.0).then_some(out)
    });
    assert!(servers.starts_with("2 proxies ("), "{servers}");
    assert!(
        !servers.lines().any(|l| l.starts_with("outbound")),
        "the servers sent nothing out: {servers}"
    );
    let clients = wait_until("stat over the client", Duration::from_secs(60), || {
        let out = t.stat_under_load(
            &ns,
            &client.0,
            &[
                "-n",
                &ns.name,
                "-l",
                "app=client",
                "--direction",
                "outbound",
            ],
        );
        // Shown if the wait times out.
        println!("strait stat over the client:\n{out}");
        let web = format!("{}/web:80", ns.name);
        (rps(&out, "outbound", &web) > 0.0).then_some(out)
    });
    assert!(clients.starts_with("1 proxy ("), "{clients}");
    assert!(!clients.contains("inbound"), "{clients}");
    let none = t
        .strait(&["stat", "-n", &ns.name, "-l", "app=nothing", "--once"])
        .output()
        .expect("strait stat");
    let (ok, out) = (none.status.success(), text(&none));
    assert!(!ok && out.contains("no proxies found"), "{out}");

    // 6. The controller scaled to 0: traffic keeps flowing on the last
    // config; check fails with a hint; new pods are admitted unmeshed and
    // --proxies lists them. Scaled back: new pods are meshed again.
    cluster.kubectl_ok(&[
        "-n",
        NS,
        "scale",
        "deploy/strait-controller",
        "--replicas=0",
    ]);
    wait_until("no controller pod", Duration::from_secs(60), || {
        cluster.get_json(&[
            "-n",
            NS,
            "pods",
            "-l",
            "app.kubernetes.io/name=strait-controller",
        ])["items"]
            .as_array()
            .is_some_and(|i| i.is_empty())
            .then_some(())
    });
    let report = load(&ns, &client.0, 50);
    assert_eq!(
        report["status"]["200"], 50,
        "traffic without a controller: {report}"
    );
    let (ok, out) = t.check(&[]);
    assert!(
        !ok && out.contains("✘ controller pods are ready")
            && out.contains(&format!("hint: kubectl -n {NS} get deploy,pods; kubectl -n {NS} scale deploy/strait-controller --replicas=2"))
            && out.contains("✘ the config stream answers"),
        "{out}"
    );
    ns.apply(&bare_pod("late"));
    ns.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/late",
        "--timeout=120s",
    ]);
    assert!(
        !injected(&ns, "late"),
        "admitted without the proxy while no controller runs"
    );
    cluster.kubectl_ok(&[
        "-n",
        NS,
        "scale",
        "deploy/strait-controller",
        "--replicas=2",
    ]);
    cluster.kubectl_ok(&[
        "-n",
        NS,
        "rollout",
        "status",
        "deploy/strait-controller",
        "--timeout=180s",
    ]);
    let out = wait_until(
        "check --proxies to see the controller again",
        Duration::from_secs(60),
        || {
            let (_, out) = t.check(&["--proxies"]);
            out.contains("✔ controller pods are ready").then_some(out)
        },
    );
    assert!(
        out.contains(&format!("✘ proxy of {}/late", ns.name)) && out.contains("no proxy"),
        "{out}"
    );
    wait_for_injection(&ns);
    ns.apply(&bare_pod("again"));
    assert!(
        injected(&ns, "again"),
        "meshed again once the controller is back"
    );
    // A bad knob does not block the pod: kubectl prints the webhook's warning.
    let bad = bare_pod("bad-knob")
        .replace(
            "metadata: {name: bad-knob,",
            "metadata: {annotations: {config.strait.dev/skip-inbound-ports: abc}, name: bad-knob,",
        )
        .replace("@NS@", &ns.name);
    let applied = cluster.kubectl_stdin(&["apply", "-f", "-"], &bad);
    let said = text(&applied);
    assert!(applied.status.success(), "{said}");
    assert!(
        said.contains("Warning: annotation config.strait.dev/skip-inbound-ports: \"abc\""),
        "kubectl prints the webhook's warning: {said}"
    );
    assert!(
        injected(&ns, "bad-knob"),
        "admitted, and meshed with the default for that knob"
    );

    // 7. helm upgrade with a changed value keeps admission working: pods
    // created all through the rolling update, and the first one after it,
    // are injected at the first try, and the caBundle is kept.
    let ca_bundle = || {
        cluster.get_json(&["mutatingwebhookconfiguration", "strait-webhook"])["webhooks"][0]
            ["clientConfig"]["caBundle"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let bundle_before = ca_bundle();
    let mut upgrade = Command::new(&t.helm)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args([
            "upgrade",
            "strait",
            chart,
            "-n",
            NS,
            "--set",
            "controller.logLevel=debug",
            "--wait",
            "--timeout",
            "4m",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("helm upgrade");
    let mut during = Vec::new();
    let upgraded = loop {
        during.push(injected_dry_run(&ns));
        if let Some(status) = upgrade.try_wait().expect("helm upgrade") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let out = upgrade.wait_with_output().expect("helm upgrade");
    assert!(upgraded.success(), "helm upgrade: {}", text(&out));
    ns.apply(&bare_pod("after-upgrade"));
    assert!(
        injected(&ns, "after-upgrade"),
        "admission works right after helm upgrade"
    );
    println!("pods created during helm upgrade: {}", during.len());
    assert!(
        during.len() >= 5 && during.iter().all(|i| *i),
        "every pod created during the upgrade was injected: {during:?}"
    );
    assert_eq!(
        ca_bundle(),
        bundle_before,
        "the caBundle survives helm upgrade"
    );
    // The webhook's Secret deleted by mistake: the leader makes a new CA
    // and certificate, patches the caBundle and serves the new certificate.
    cluster.kubectl_ok(&["-n", NS, "delete", "secret", "strait-webhook-tls"]);
    wait_until("a new webhook certificate", Duration::from_secs(90), || {
        let (ok, _) = t.check(&[]);
        (ok && ca_bundle() != bundle_before).then_some(())
    });
    // Both replicas serve the new certificate at once (they watch the
    // Secret): pods created right after are injected, every one.
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<bool> = (0..6).map(|_| injected_dry_run(&ns)).collect();
    assert!(
        after.iter().all(|i| *i),
        "pods created after the new certificate are injected: {after:?}"
    );
    let (ok, out) = wait_until("check after the upgrade", Duration::from_secs(90), || {
        let (ok, out) = t.check(&[]);
        ok.then_some((ok, out))
    });
    assert!(ok && out.contains("✔ webhook caBundle matches"), "{out}");
    drop(ns);
    drop(tpl);

    // 8. helm uninstall removes everything but the CRDs.
    t.helm_ok(&["uninstall", "strait", "-n", NS, "--wait"]);
    let left = wait_until(
        "the controller's objects to go",
        Duration::from_secs(90),
        || {
            let mut left = BTreeSet::new();
            for kind in [
                "deployments",
                "replicasets",
                "pods",
                "services",
                "secrets",
                "leases",
                "serviceaccounts",
                "roles",
                "rolebindings",
                "poddisruptionbudgets",
                "configmaps",
            ] {
                let out = cluster.kubectl_ok(&["-n", NS, "get", kind, "-o", "name"]);
                left.extend(out.lines().map(str::to_owned));
            }
            for kind in [
                "clusterroles",
                "clusterrolebindings",
                "mutatingwebhookconfigurations",
                "crds",
            ] {
                let out = cluster.kubectl_ok(&["get", kind, "-o", "name"]);
                left.extend(
                    out.lines()
                        .filter(|l| l.contains("strait"))
                        .map(str::to_owned),
                );
            }
            // What every namespace has.
            left.remove("serviceaccount/default");
            left.remove("configmap/kube-root-ca.crt");
            let want: BTreeSet<String> = [
                "customresourcedefinition.apiextensions.k8s.io/destinationpolicies.strait.dev",
                "customresourcedefinition.apiextensions.k8s.io/trafficroutes.strait.dev",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect();
            if left != want {
                println!("still there after helm uninstall: {left:?}");
            }
            (left == want).then_some(left)
        },
    );
    eprintln!("left after helm uninstall (Helm keeps CRDs): {left:?}");
}
