//! Mesh TLS between two "pods" (network namespaces joined by a veth pair,
//! each with `strait-proxy init`'s real iptables rules and a proxy running
//! as uid 2102), with certificates from a real `strait-controller --local`
//! (its development CA). Checked where a user would look: on the wire
//! (a raw packet capture on B's interface), in both proxies' metrics, and
//! in the answers real clients get.

mod support;

use std::time::{Duration, Instant};
use support::metric_value;
use support::netns::{Pair, exec, metrics, require_root, sh};

/// Pod B's app, HTTP/1 only: 8080 (Permissive), 8081 (Strict), 8082
/// (opaque on B's proxy). It answers with what it was asked, and how.
const APP: &str = r#"
import threading, time, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/slow"): time.sleep(0.5)
        b = ("pod-b %s %s host=%s mark=%s\n" % (self.path, self.request_version, self.headers.get("host"), self.headers.get("strait-orig-proto", "-"))).encode()
        self.send_response(200); self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 64  # socketserver's 5 drops SYNs of 10 concurrent connects
for port in (8081, 8082):
    threading.Thread(target=S(("0.0.0.0", port), H).serve_forever, daemon=True).start()
S(("0.0.0.0", 8080), H).serve_forever()
"#;

/// Captures the TCP payload sent to one port on an interface for a while
/// (AF_PACKET: what crosses the veth, as tcpdump would see it).
const SNIFF: &str = r#"
import socket, struct, sys, time
iface, port, secs, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind((iface, 0)); s.settimeout(0.2)
open(out + ".ready", "w").write("1")
end, payload = time.time() + secs, bytearray()
while time.time() < end:
    try: f = s.recv(65535)
    except socket.timeout: continue
    if f[12:14] != b"\x08\x00": continue
    ip = f[14:]; ihl = (ip[0] & 15) * 4
    if ip[9] != 6: continue
    tcp = ip[ihl:]; dport = struct.unpack("!H", tcp[2:4])[0]; off = (tcp[12] >> 4) * 4
    if dport == port: payload += tcp[off:]
open(out, "wb").write(payload)
"#;

const CONFIG: u16 = 18086;
const IDENTITY: u16 = 18080;

fn manifests(p: &Pair) -> String {
    let ip_b = p.ip_b();
    // A Service whose one endpoint is `pod` (port `target` on B).
    let svc = |name: &str, host: u8, target: u16, pod: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{clusterIP: {cip}, ports: [{{name: p, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: p, port: {target}}}]\nendpoints: [{{addresses: [\"{ip_b}\"], targetRef: {{kind: Pod, name: {pod}}}}}]\n---\n",
            cip = p.cluster_ip(host)
        )
    };
    let pod = |name: &str, sa: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, annotations: {{strait.dev/proxy-version: test}}}}\nspec: {{serviceAccountName: {sa}}}\n---\n"
        )
    };
    [
        svc("web", 10, 8080, "pod-b"),
        svc("strict", 20, 8081, "pod-b"),
        // The control plane says this endpoint is `db`; B's proxy is `web`.
        svc("impostor", 30, 8080, "pod-b-as-db"),
        // Opaque on B's proxy only (its `--opaque-ports`): A sees HTTP.
        svc("opaque", 40, 8082, "pod-b"),
        pod("pod-b", "web"),
        pod("pod-b-as-db", "db"),
        "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: strict, namespace: default}\nspec: {targetRef: {name: strict}, tls: {mode: Strict}}\n".into(),
    ]
    .concat()
}

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: {}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts pod `ns`'s proxy as `service_account`, following the controller.
fn start_proxy(
    p: &mut Pair,
    ns: &str,
    tmp: &std::path::Path,
    service_account: &str,
    extra: &[&str],
) {
    let bin = env!("CARGO_BIN_EXE_strait-proxy");
    let skip = format!("4191,22,{CONFIG},{IDENTITY}");
    let (ok, out) = exec(ns, &[bin, "init", "--skip-inbound-ports", &skip]);
    assert!(ok, "strait-proxy init: {out}");
    let controller = p.ip_a();
    let (config, identity) = (
        format!("{controller}:{CONFIG}"),
        format!("{controller}:{IDENTITY}"),
    );
    let roots = tmp.join("roots.pem");
    let pod = format!("pod-{service_account}");
    let mut args = vec![
        "setpriv",
        "--reuid=2102",
        "--regid=2102",
        "--clear-groups",
        bin,
        "--control-plane",
        &config,
        "--identity-addr",
        &identity,
        "--trust-roots",
        roots.to_str().unwrap(),
        "--namespace",
        "default",
        "--pod",
        &pod,
        "--service-account",
        service_account,
        "--log",
        "info,strait_proxy=debug",
    ];
    args.extend(extra);
    let log = tmp.join(format!("{ns}.log"));
    p.spawn(ns, &args, &log);
    wait(
        &format!("proxy in {ns} ready with a certificate"),
        Duration::from_secs(20),
        || {
            metric_value(
                &metrics(ns),
                "strait_identity_renewals_total{result=\"success\"}",
            ) >= 1.0
                && exec(
                    ns,
                    &["curl", "-sf", "-m", "1", "http://127.0.0.1:4191/ready"],
                )
                .0
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
}

/// `curl -s` in `ns` (as `uid` when given, which skips the outbound
/// redirect): `(status, headers and body)`.
fn curl(ns: &str, uid: Option<&str>, url: &str) -> (String, String) {
    let mut args: Vec<&str> = Vec::new();
    let reuid = uid.map(|u| format!("--reuid={u}"));
    if let Some(r) = &reuid {
        args.extend(["setpriv", r.as_str(), "--clear-groups"]);
    }
    args.extend(["curl", "-s", "-i", "-m", "5", "-w", "\n%{http_code}", url]);
    let (_, out) = exec(ns, &args);
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (code.to_string(), body.to_string())
}

#[test]
fn mesh_tls_between_two_pods() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    sh(&["chmod", "755", tmp.path().to_str().unwrap()]);
    let mut p = Pair::new("m");
    let (a, b) = (p.a.clone(), p.b.clone());

    // The controller runs in A (its ports are skipped by A's redirect) and
    // writes its development CA's root where the proxies read it.
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir(&cfg).unwrap();
    std::fs::write(cfg.join("mesh.yaml"), manifests(&p)).unwrap();
    let controller = std::path::Path::new(env!("CARGO_BIN_EXE_strait-proxy"))
        .with_file_name("strait-controller");
    assert!(
        controller.exists(),
        "{} missing: build the workspace",
        controller.display()
    );
    let roots = tmp.path().join("roots.pem");
    let cp_log = tmp.path().join("controller.log");
    p.spawn(
        &a,
        &[
            controller.to_str().unwrap(),
            "--local",
            cfg.to_str().unwrap(),
            "--config-addr",
            &format!("0.0.0.0:{CONFIG}"),
            "--identity-addr",
            &format!("0.0.0.0:{IDENTITY}"),
            "--health-addr",
            "127.0.0.1:19990",
            "--dev-ca-roots",
            roots.to_str().unwrap(),
        ],
        &cp_log,
    );
    wait(
        "the controller's root",
        Duration::from_secs(20),
        || roots.exists(),
        || std::fs::read_to_string(&cp_log).unwrap_or_default(),
    );
    sh(&["chmod", "644", roots.to_str().unwrap()]);

    let app = tmp.path().join("app.py");
    std::fs::write(&app, APP).unwrap();
    p.spawn(
        &b,
        &["/usr/bin/python3", app.to_str().unwrap()],
        &tmp.path().join("app.log"),
    );
    start_proxy(&mut p, &a, tmp.path(), "client", &[]);
    // B's app has a kubelet probe on its Strict port (the injector lists
    // probes the same way).
    start_proxy(
        &mut p,
        &b,
        tmp.path(),
        "web",
        &[
            "--inbound-probes",
            "8081:/healthz",
            "--opaque-ports",
            "8082",
        ],
    );
    wait(
        "B's app",
        Duration::from_secs(10),
        || exec(&b, &["curl", "-sf", "-m", "1", "http://127.0.0.1:8080/up"]).0,
        || std::fs::read_to_string(tmp.path().join("app.log")).unwrap_or_default(),
    );

    // 1. On the wire: A's request to `web` crosses the veth as TLS records
    //    only; a plaintext request (curl as the proxy's uid, which the
    //    redirect skips) shows what the capture would see otherwise.
    let sniff = tmp.path().join("sniff.py");
    std::fs::write(&sniff, SNIFF).unwrap();
    let capture = tmp.path().join("capture.bin");
    p.spawn(
        &b,
        &[
            "/usr/bin/python3",
            sniff.to_str().unwrap(),
            &p.veth_b(),
            "8080",
            "4",
            capture.to_str().unwrap(),
        ],
        &tmp.path().join("sniff.log"),
    );
    let ready = tmp.path().join("capture.bin.ready");
    wait(
        "the capture",
        Duration::from_secs(5),
        || ready.exists(),
        || std::fs::read_to_string(tmp.path().join("sniff.log")).unwrap_or_default(),
    );
    let web = format!("http://{}/over-the-mesh", p.cluster_ip(10));
    let (code, out_mesh) = curl(&a, None, &web);
    assert_eq!(code, "200", "{out_mesh}");
    assert!(out_mesh.contains("pod-b /over-the-mesh"), "{out_mesh}");
    let direct = format!("http://{}:8080/in-plaintext", p.ip_b());
    let (code, out) = curl(&a, Some("2102"), &direct);
    assert_eq!(code, "200", "Permissive serves plaintext: {out}");
    wait(
        "the capture to end",
        Duration::from_secs(10),
        || std::fs::metadata(&capture).is_ok_and(|m| m.len() > 0),
        || std::fs::read_to_string(tmp.path().join("sniff.log")).unwrap_or_default(),
    );
    let wire = std::fs::read(&capture).unwrap();
    let has = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"GET /in-plaintext"),
        "the capture sees plaintext when there is some ({} bytes)",
        wire.len()
    );
    assert!(
        !has(b"over-the-mesh"),
        "the meshed request is not readable on the wire"
    );
    assert!(
        has(&[0x16, 0x03, 0x01]) && has(&[0x17, 0x03, 0x03]),
        "a TLS handshake and TLS application data records crossed the wire"
    );
    // Carried as HTTP/2 between the proxies, the request reached the
    // HTTP/1-only app as the HTTP/1.1 curl sent, Host and all, unmarked.
    let host = p.cluster_ip(10);
    assert!(
        out_mesh.contains(&format!("HTTP/1.1 host={host} mark=-")),
        "{out_mesh}"
    );

    // 2. Both sides name the other's identity.
    let id = |sa: &str| format!("spiffe://cluster.local/ns/default/sa/{sa}");
    let ma = metrics(&a);
    let outbound = format!(
        "strait_mesh_requests_total{{direction=\"outbound\",tls=\"true\",peer_identity=\"{}\"}}",
        id("web")
    );
    assert!(metric_value(&ma, &outbound) >= 1.0, "{ma}");
    let mb = metrics(&b);
    let inbound = format!(
        "strait_mesh_requests_total{{direction=\"inbound\",tls=\"true\",peer_identity=\"{}\"}}",
        id("client")
    );
    assert!(metric_value(&mb, &inbound) >= 1.0, "{mb}");
    assert!(
        metric_value(
            &mb,
            "strait_mesh_requests_total{direction=\"inbound\",tls=\"false\",peer_identity=\"\"}"
        ) >= 1.0,
        "the plaintext request is counted as such: {mb}"
    );

    // 2b. Ten concurrent HTTP/1.1 requests (each held 0.5 s by the app)
    //     share one mesh connection as HTTP/2 streams; a pool of HTTP/1.1
    //     connections would have opened one each.
    let conns = |m: &str| {
        metric_value(
            m,
            &format!(
                "strait_mesh_connections_total{{direction=\"inbound\",tls=\"true\",peer_identity=\"{}\"}}",
                id("client")
            ),
        )
    };
    let before = conns(&metrics(&b));
    let urls: Vec<String> = (0..10)
        .map(|i| format!("http://{}/slow/{i}", p.cluster_ip(10)))
        .collect();
    let mut args = vec![
        "curl",
        "-s",
        "--parallel",
        "--parallel-max",
        "10",
        "-m",
        "5",
        "-w",
        "%{http_code} %header{strait-proxy-error}\n",
    ];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let (ok, out) = exec(&a, &args);
    assert!(
        ok && out.matches("200").count() == 10,
        "{out}\n{}",
        std::fs::read_to_string(tmp.path().join(format!("{a}.log"))).unwrap_or_default()
    );
    let opened = conns(&metrics(&b)) - before;
    assert!(
        opened <= 1.0,
        "10 concurrent requests opened {opened} mesh connections"
    );

    // 2c. A port B's proxy carries as opaque bytes (its own
    //     `--opaque-ports`, which A does not know): B's proxy does not
    //     offer to restore carried requests there, so A sends HTTP/1.1,
    //     which the app understands.
    let (code, out) = curl(&a, None, &format!("http://{}/opaque", p.cluster_ip(40)));
    assert_eq!(code, "200", "{out}");
    assert!(out.contains("pod-b /opaque HTTP/1.1"), "{out}");

    // 3. Strict: the meshed client is served, a plaintext one refused,
    //    except for the kubelet's probe.
    let (code, out) = curl(&a, None, &format!("http://{}/strict", p.cluster_ip(20)));
    assert_eq!(code, "200", "{out}");
    let (code, out) = curl(&a, Some("2102"), &format!("http://{}:8081/plain", p.ip_b()));
    assert_eq!(code, "403", "plaintext to a Strict port is refused: {out}");
    assert!(
        out.contains("strait-proxy-error: plaintext-to-strict"),
        "{out}"
    );
    let (code, out) = curl(
        &a,
        Some("2102"),
        &format!("http://{}:8081/healthz", p.ip_b()),
    );
    assert_eq!(
        code, "200",
        "the probe path is answered in plaintext: {out}"
    );
    assert!(
        metric_value(
            &metrics(&b),
            "strait_inbound_refused_total{reason=\"plaintext-to-strict\"}"
        ) >= 1.0
    );

    // 4. An endpoint that proves another identity than expected is refused
    //    by the client, with the reason.
    let (code, out) = curl(&a, None, &format!("http://{}/x", p.cluster_ip(30)));
    assert_eq!(code, "502", "{out}");
    assert!(
        out.contains("strait-proxy-error: tls-identity-mismatch")
            && out.contains(&id("db"))
            && out.contains("web.default.serviceaccount.identity.cluster.local"),
        "{out}"
    );

    // 5. Straight to the pod's address (no Service: a headless Service or
    //    a StatefulSet member is reached this way) is mesh TLS too.
    let accepted = |m: &str| {
        metric_value(
            m,
            &format!(
                "strait_mesh_connections_total{{direction=\"inbound\",tls=\"true\",peer_identity=\"{}\"}}",
                id("client")
            ),
        )
    };
    let before = accepted(&metrics(&b));
    // (8081: 8080 is also `impostor`'s endpoint, which claims another
    // identity for the same address, so it is left to plaintext.)
    let (code, out) = curl(&a, None, &format!("http://{}:8081/to-the-pod", p.ip_b()));
    assert_eq!(code, "200", "{out}");
    assert!(
        accepted(&metrics(&b)) > before,
        "the connection to the pod's address arrived as mesh TLS"
    );

    // 6. The config streams are mTLS: the controller knows both proxies by
    //    their certificates.
    let status = std::path::Path::new(env!("CARGO_BIN_EXE_strait-proxy")).with_file_name("strait");
    let (ok, out) = exec(
        &a,
        &[
            status.to_str().unwrap(),
            "proxy-status",
            "--control-plane",
            &format!("127.0.0.1:{CONFIG}"),
        ],
    );
    assert!(ok, "{out}");
    for pod in ["default/pod-client", "default/pod-web"] {
        let line = out.lines().find(|l| l.starts_with(pod)).unwrap_or("");
        assert!(line.contains(" mtls "), "{pod}: {out}");
    }
}
