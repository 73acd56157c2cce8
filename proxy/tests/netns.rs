//! Transparent interception between two "pods" (network namespaces the test
//! creates): `strait-proxy init` installs real iptables rules in each, each
//! runs `strait-proxy` as uid 2102, and real clients (curl, a raw socket)
//! talk to real servers (Python HTTP, a server-speaks-first banner,
//! `openssl s_server`). This exercises `SO_ORIGINAL_DST`, routing by Service
//! clusterIP, outbound passthrough, opaque ports, TLS passthrough and the
//! inbound path to the app at the pod's own address (never to what the app
//! bound to loopback only, never to the proxy's own ports).

mod support;

use std::time::{Duration, Instant};
use support::metric_value;
use support::netns::{Pair, exec, metrics, require_root, sh};

const APP: &str = r#"
import socket, sys, threading, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        b = ("pod-b " + self.path + "\n").encode()
        self.send_response(200); self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
def banner():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 9000)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"HELLO strait\n"); c.close()
def private():
    # Bound to loopback only: not for the network.
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 7070)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"PRIVATE\n"); c.close()
threading.Thread(target=banner, daemon=True).start()
threading.Thread(target=private, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

const BANNER_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.recv(64).decode().strip())
"#;

fn manifests(p: &Pair) -> String {
    let ip_b = p.ip_b();
    let svc = |name: &str, cip: String, port: u16, target: u16, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default{extra}}}\nspec: {{clusterIP: {cip}, ports: [{{name: p, port: {port}}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: p, port: {target}}}]\nendpoints: [{{addresses: [\"{ip_b}\"]}}]\n---\n"
        )
    };
    [
        svc("web", p.cluster_ip(10), 80, 8080, ""),
        svc(
            "db",
            p.cluster_ip(20),
            5432,
            9000,
            ", annotations: {config.strait.dev/opaque-ports: \"5432\"}",
        ),
        svc("secure", p.cluster_ip(30), 443, 8443, ""),
    ]
    .concat()
}

fn start_proxy(p: &mut Pair, ns: &str, dir: &std::path::Path, extra: &[&str]) {
    let bin = env!("CARGO_BIN_EXE_strait-proxy");
    let (ok, out) = exec(ns, &[bin, "init", "--skip-inbound-ports", "4191,22"]);
    assert!(ok, "strait-proxy init: {out}");
    let mut args = vec![
        "setpriv",
        "--reuid=2102",
        "--regid=2102",
        "--clear-groups",
        bin,
        "--local",
    ];
    let d = dir.to_str().unwrap().to_string();
    args.push(&d);
    args.extend(["--log", "info,strait_proxy=debug"]);
    args.extend(extra);
    let log = dir.parent().unwrap().join(format!("{ns}.log"));
    p.spawn(ns, &args, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exec(
        ns,
        &["curl", "-sf", "-m", "1", "http://127.0.0.1:4191/ready"],
    )
    .0
    {
        assert!(
            Instant::now() < deadline,
            "proxy in {ns} not ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn interception_between_two_pods() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    // The proxies run as uid 2102 and must read their manifests.
    sh(&["chmod", "755", tmp.path().to_str().unwrap()]);
    let mut p = Pair::new("i");
    let (a, b) = (p.a.clone(), p.b.clone());

    // Pod B: the app (HTTP on 8080, a banner on 9000, TLS on 8443).
    let app = tmp.path().join("app.py");
    std::fs::write(&app, APP).unwrap();
    p.spawn(
        &b,
        &["/usr/bin/python3", app.to_str().unwrap()],
        &tmp.path().join("app.log"),
    );
    let (key, cert) = (tmp.path().join("k.pem"), tmp.path().join("c.pem"));
    sh(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-subj",
        "/CN=secure",
        "-days",
        "1",
    ]);
    p.spawn(
        &b,
        &[
            "openssl",
            "s_server",
            "-accept",
            "8443",
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
            "-www",
            "-quiet",
        ],
        &tmp.path().join("tls.log"),
    );

    // Each pod gets the redirect and a proxy; B's knows 9000 is server-first.
    let dir_a = tmp.path().join("a");
    let dir_b = tmp.path().join("b");
    for d in [&dir_a, &dir_b] {
        std::fs::create_dir(d).unwrap();
        sh(&["chmod", "755", d.to_str().unwrap()]);
    }
    std::fs::write(dir_a.join("mesh.yaml"), manifests(&p)).unwrap();
    start_proxy(&mut p, &a, &dir_a, &[]);
    start_proxy(&mut p, &b, &dir_b, &["--opaque-ports", "9000"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exec(&b, &["curl", "-sf", "-m", "1", "http://127.0.0.1:8080/up"]).0 {
        assert!(
            Instant::now() < deadline,
            "app did not start: {}",
            std::fs::read_to_string(tmp.path().join("app.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. HTTP to a Service clusterIP: A's outbound routes it by the original
    //    destination, B's inbound hands it to the app on loopback.
    let web = format!("http://{}/hello", p.cluster_ip(10));
    let (ok, out) = exec(&a, &["curl", "-s", "-m", "5", &web]);
    assert!(ok && out.contains("pod-b /hello"), "{out}");
    let ma = metrics(&a);
    assert_eq!(
        metric_value(
            &ma,
            "strait_requests_total{direction=\"outbound\",service=\"default/web:80\",route=\"default\",backend=\"default/web:80\",code=\"200\"}"
        ),
        1.0,
        "{ma}"
    );
    let mb = metrics(&b);
    assert_eq!(
        metric_value(
            &mb,
            &format!(
                "strait_requests_total{{direction=\"inbound\",service=\"\",route=\"\",backend=\"{}:8080\",code=\"200\"}}",
                p.ip_b()
            )
        ),
        1.0,
        "{mb}"
    );
    // A neighbour on the pod network reads B's metrics and probes, not its
    // config; B itself (loopback) does.
    let admin_b = format!("http://{}:4191", p.ip_b());
    let code = |ns: &str, url: &str| {
        exec(
            ns,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "2",
                url,
            ],
        )
        .1
    };
    assert_eq!(code(&a, &format!("{admin_b}/metrics")), "200");
    assert_eq!(code(&a, &format!("{admin_b}/ready")), "200");
    assert_eq!(
        code(&a, &format!("{admin_b}/config")),
        "403",
        "config from the pod network"
    );
    assert_eq!(
        code(&b, "http://127.0.0.1:4191/config"),
        "200",
        "config on loopback"
    );

    // 2. A destination that is no Service passes through unchanged (no HTTP
    //    metrics on A), and still arrives through B's inbound proxy.
    let (ok, out) = exec(
        &a,
        &[
            "curl",
            "-s",
            "-m",
            "5",
            &format!("http://{}:8080/direct", p.ip_b()),
        ],
    );
    assert!(ok && out.contains("pod-b /direct"), "{out}");
    let ma = metrics(&a);
    assert!(
        !ma.contains("/direct")
            && metric_value(
                &ma,
                "strait_requests_total{direction=\"outbound\",service=\"default/web:80\",route=\"default\",backend=\"default/web:80\",code=\"200\"}"
            ) == 1.0
    );
    assert_eq!(
        metric_value(
            &metrics(&b),
            &format!(
                "strait_requests_total{{direction=\"inbound\",service=\"\",route=\"\",backend=\"{}:8080\",code=\"200\"}}",
                p.ip_b()
            )
        ),
        2.0
    );

    // 2b. What B's app bound to loopback only, and B's proxy's own ports,
    //     are not reachable from the pod network through B's inbound proxy.
    let (_, out) = exec(
        &b,
        &[
            "/usr/bin/python3",
            "-c",
            "import socket; print(socket.create_connection(('127.0.0.1', 7070), timeout=2).recv(16).decode().strip())",
        ],
    );
    assert_eq!(out.trim(), "PRIVATE", "the private server runs");
    let client_py = tmp.path().join("banner-client.py");
    std::fs::write(&client_py, BANNER_CLIENT).unwrap();
    let (ok, out) = exec(
        &a,
        &[
            "/usr/bin/python3",
            client_py.to_str().unwrap(),
            &p.ip_b(),
            "7070",
        ],
    );
    assert!(
        !(ok && out.contains("PRIVATE")),
        "a loopback-only server was reached from the network: {out}"
    );
    let (_, out) = exec(
        &a,
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "-H",
            "Host: web",
            &format!("http://{}:4140/via-b-outbound", p.ip_b()),
        ],
    );
    assert!(
        !out.contains("pod-b"),
        "B's outbound listener was used as an open proxy from the network: {out}"
    );

    // 3. A server-speaks-first protocol on an opaque port does not stall.
    let client = tmp.path().join("banner.py");
    std::fs::write(&client, BANNER_CLIENT).unwrap();
    let started = Instant::now();
    let (ok, out) = exec(
        &a,
        &[
            "/usr/bin/python3",
            client.to_str().unwrap(),
            &p.cluster_ip(20),
            "5432",
        ],
    );
    assert!(ok && out.trim() == "HELLO strait", "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "opaque port waited for detection"
    );

    // 4. TLS the app terminates itself passes through both proxies untouched.
    let (ok, out) = exec(
        &a,
        &[
            "curl",
            "-sk",
            "-m",
            "5",
            &format!("https://{}/", p.cluster_ip(30)),
        ],
    );
    assert!(ok && out.contains("s_server"), "TLS passthrough: {out}");
    assert!(
        metric_value(
            &metrics(&a),
            "strait_tcp_bytes_total{direction=\"outbound\",peer=\"dst\"}"
        ) > 0.0
    );

    // 5. Loopback is never redirected: the admin port answers directly.
    assert!(
        exec(
            &a,
            &["curl", "-sf", "-m", "2", "http://127.0.0.1:4191/live"]
        )
        .0
    );
    // The rules are the ones `init` prints.
    let (_, rules) = exec(&a, &["iptables", "-t", "nat", "-S", "STRAIT_OUTPUT"]);
    assert!(
        rules.contains("--uid-owner 2102 -j RETURN") && rules.contains("--to-ports 4140"),
        "{rules}"
    );
}
