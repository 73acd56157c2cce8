//! The node works as a Kubernetes node should, for everything Strait's
//! cluster tests stand on: the node is Ready; a Deployment's pods run with
//! addresses from the CNI; a client pod reaches them by ClusterIP, by DNS
//! name and over gRPC; `kubectl exec`, `logs` and `port-forward` work; a
//! deleted pod's address leaves the Service's EndpointSlice.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use strait_cluster_tests::{Cluster, Namespace, image, wait_until};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: "@NS@"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: "@IMAGE@"
          env:
            - {name: VERSION, value: v1}
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: "@NS@"}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: "@NS@"}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: "@IMAGE@"
      readinessProbe:
        httpGet: {path: /healthz, port: 8080}
        periodSeconds: 1
"#;

/// Deploys the app and the client, waits for both; returns the web pods' (name, IP).
fn deploy(ns: &Namespace) -> Vec<(String, String)> {
    ns.apply(&APP.replace("@IMAGE@", &image("strait-testapp")));
    ns.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    ns.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=120s",
    ]);
    web_pods(ns)
}

fn web_pods(ns: &Namespace) -> Vec<(String, String)> {
    let pods = ns.get_json(&["pods", "-l", "app=web"]);
    pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["status"]["podIP"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The addresses in a Service's EndpointSlices: the ready ones, or every
/// one listed (a terminating pod stays listed, not ready, until it is gone).
fn endpoints(ns: &Namespace, service: &str, ready_only: bool) -> BTreeSet<String> {
    let label = format!("kubernetes.io/service-name={service}");
    let slices = ns.get_json(&["endpointslices", "-l", &label]);
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| !ready_only || e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

fn ready_endpoints(ns: &Namespace, service: &str) -> BTreeSet<String> {
    endpoints(ns, service, true)
}

#[test]
fn the_node_is_ready() {
    let c = Cluster::get();
    let node = c.get_json(&["node", "strait-node"]);
    let ready = node["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("a Ready condition");
    assert_eq!(ready["status"], "True", "node not Ready: {ready}");
    assert_eq!(node["status"]["addresses"][0]["address"], "10.244.0.1");
}

#[test]
fn pods_run_with_cni_addresses_and_are_reached_by_cluster_ip_dns_and_grpc() {
    let ns = Cluster::get().namespace("node-reach");
    let pods = deploy(&ns);
    assert_eq!(pods.len(), 2, "two web pods: {pods:?}");
    let ips: BTreeSet<_> = pods.iter().map(|(_, ip)| ip.clone()).collect();
    assert_eq!(ips.len(), 2, "distinct pod IPs: {pods:?}");
    for ip in &ips {
        assert!(
            ip.starts_with("10.244.0."),
            "pod IP {ip} is not from the CNI range 10.244.0.0/24"
        );
    }
    let svc = ns.get_json(&["service", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_owned();
    assert!(cluster_ip.starts_with("10.96."), "ClusterIP {cluster_ip}");

    let names: BTreeSet<_> = pods.iter().map(|(n, _)| n.clone()).collect();
    // Ready pods are not yet a programmed Service: the EndpointSlice
    // controller and then kube-proxy (minSyncPeriod 1 s) follow, and a
    // connection before that is refused. Wait for both, as a client would.
    wait_until(
        "both web pods ready in the Service's EndpointSlice",
        Duration::from_secs(30),
        || (ready_endpoints(&ns, "web") == ips).then_some(()),
    );
    wait_until(
        "kube-proxy to program the ClusterIP",
        Duration::from_secs(30),
        || {
            let url = format!("http://{cluster_ip}/healthz");
            ns.exec("client", &["strait-testapp", "get", &url])
                .0
                .then_some(())
        },
    );
    let urls = [
        format!("http://{cluster_ip}/by-ip"),
        "http://web/by-short-name".to_owned(),
        format!("http://web.{}.svc.cluster.local/by-fqdn", ns.name),
    ];
    for url in &urls {
        let (ok, out) = ns.exec("client", &["strait-testapp", "get", url]);
        assert!(ok && out.starts_with("200 OK"), "{url}: {out}");
        let body: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap_or(""))
            .unwrap_or_else(|e| panic!("{url}: {e}: {out}"));
        assert!(
            names.contains(body["pod"].as_str().unwrap_or("")),
            "{url} answered by {body}"
        );
        assert_eq!(body["version"], "v1");
    }
    // kube-proxy spreads new connections over both pods.
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let (ok, out) = ns.exec("client", &["strait-testapp", "get", &urls[0]]);
        assert!(ok, "{out}");
        let body: serde_json::Value =
            serde_json::from_str(out.lines().nth(1).unwrap_or("")).expect("JSON");
        seen.insert(body["pod"].as_str().unwrap_or("").to_owned());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, names, "both pods answer through the Service");
    // gRPC (HTTP/2) through the Service.
    let (ok, out) = ns.exec(
        "client",
        &["strait-testapp", "grpc", "http://web:80", "ping"],
    );
    assert!(ok, "gRPC through the Service: {out}");
    let reply: serde_json::Value = serde_json::from_str(out.trim()).expect("gRPC reply as JSON");
    assert_eq!(reply["message"], "ping");
    assert!(names.contains(reply["pod"].as_str().unwrap_or("")));
    // A name outside the cluster does not resolve (nothing leaves the machine).
    let (ok, out) = ns.exec(
        "client",
        &["strait-testapp", "get", "http://example.invalid/"],
    );
    assert!(!ok, "an outside name must not resolve: {out}");
}

#[test]
fn exec_logs_and_port_forward_work() {
    let ns = Cluster::get().namespace("node-tools");
    let pods = deploy(&ns);
    let (pod, _) = &pods[0];
    let logs = ns.kubectl_ok(&["logs", pod]);
    assert!(
        logs.contains(&format!("serving on 0.0.0.0:8080 as pod {pod} version v1")),
        "kubectl logs {pod}: {logs}"
    );
    let (ok, out) = ns.exec(pod, &["strait-testapp", "--version"]);
    assert!(ok && out.contains("strait-testapp"), "kubectl exec: {out}");

    let mut pf = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&ns.cluster.kubeconfig)
        .args([
            "-n",
            &ns.name,
            "port-forward",
            &format!("pod/{pod}"),
            ":8080",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl port-forward");
    let mut line = String::new();
    let mut out = BufReader::new(pf.stdout.take().expect("stdout"));
    out.read_line(&mut line)
        .expect("read port-forward's first line");
    // kubectl writes a line per connection: keep reading, or it dies of EPIPE.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    // "Forwarding from 127.0.0.1:40123 -> 8080"
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no local port in {line:?}"));
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(b"GET /through-port-forward HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "through port-forward: {resp}"
    );
    assert!(
        resp.contains(&format!("\"pod\":\"{pod}\"")),
        "answered by {pod}: {resp}"
    );
}

#[test]
fn a_deleted_pods_address_leaves_the_endpointslice() {
    let ns = Cluster::get().namespace("node-endpoints");
    let pods = deploy(&ns);
    let addresses = |ns: &Namespace| ready_endpoints(ns, "web");
    let all: BTreeSet<_> = pods.iter().map(|(_, ip)| ip.clone()).collect();
    wait_until(
        "both pods in the EndpointSlice",
        Duration::from_secs(60),
        || (addresses(&ns) == all).then_some(()),
    );
    let (gone, gone_ip) = &pods[0];
    ns.kubectl_ok(&["delete", "pod", gone, "--wait=false"]);
    // First out of the ready set (traffic stops), then out of the slice
    // altogether once the pod is gone.
    wait_until(
        &format!("{gone_ip} to leave the ready endpoints"),
        Duration::from_secs(60),
        || (!addresses(&ns).contains(gone_ip)).then_some(()),
    );
    wait_until(
        &format!("{gone_ip} to leave the EndpointSlice"),
        Duration::from_secs(60),
        || (!endpoints(&ns, "web", false).contains(gone_ip)).then_some(()),
    );
    // The Deployment replaces it, and the replacement's address comes in.
    wait_until(
        "a replacement pod in the EndpointSlice",
        Duration::from_secs(120),
        || {
            let now = addresses(&ns);
            (now.len() == 2 && !now.contains(gone_ip)).then_some(())
        },
    );
}
