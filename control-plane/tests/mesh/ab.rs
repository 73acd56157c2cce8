//! A local mesh over mTLS for tests that look at it from outside
//! (Prometheus, Jaeger): a `strait-controller --local` with its development
//! CA, a client proxy (`web-client`) whose TrafficRoute `ab` splits Service
//! `web` between two server proxies (`web-v1`, `web-v2`, all in namespace
//! `shop`), each in front of its own upstream answering `v1` or `v2`.

use super::{Proc, bin, free_port, upstream, wait_for};
use std::path::Path;
use std::process::Command;

/// One proxy's listeners.
pub struct Ports {
    pub outbound: u16,
    pub inbound: u16,
    pub admin: u16,
}

impl Ports {
    fn new() -> Self {
        Ports {
            outbound: free_port(),
            inbound: free_port(),
            admin: free_port(),
        }
    }
}

/// The running mesh; dropping it stops every process.
pub struct AbMesh {
    /// Logs (`cp.log`, `<pod>.log`), the manifests, the CA's root.
    pub dir: tempfile::TempDir,
    pub client: Ports,
    pub s1: Ports,
    pub s2: Ports,
    /// The controller's health and metrics port.
    pub health: u16,
    // Proxies first: they stop before the controller.
    procs: Vec<Proc>,
}

/// The manifests with `w1` % of `web` going to `web-v1`.
fn manifests(s1: u16, s2: u16, w1: u32) -> String {
    let svc = |name: &str, port: u16, pod: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1], targetRef: {{kind: Pod, name: {pod}}}}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: shop, annotations: {{strait.dev/proxy-version: test}}}}\nspec: {{serviceAccountName: {name}}}\n---\n"
        )
    };
    format!(
        "{}{}apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: web, namespace: shop}}\nspec:\n  parentRef: {{name: web, port: 80}}\n  rules:\n    - name: ab\n      backends: [{{name: web-v1, port: 80, weight: {w1}}}, {{name: web-v2, port: 80, weight: {}}}]\n",
        svc("web-v1", s1, "web-v1-0"),
        svc("web-v2", s2, "web-v2-0"),
        100 - w1
    )
}

impl AbMesh {
    /// Starts the mesh (the controller with `controller_args` added, each
    /// proxy with `proxy_args(pod)`), and waits until the split answers
    /// over mTLS.
    pub fn start(controller_args: &[&str], proxy_args: impl Fn(&str) -> Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mesh")).unwrap();
        let (up1, up2) = (upstream("v1"), upstream("v2"));
        let (client, s1, s2) = (Ports::new(), Ports::new(), Ports::new());
        let (cp, identity, health) = (free_port(), free_port(), free_port());
        let mut mesh = AbMesh {
            dir,
            client,
            s1,
            s2,
            health,
            procs: Vec::new(),
        };
        mesh.set_weight(50);
        let tmp = mesh.dir.path();
        let controller = Proc(
            Command::new(bin("strait-controller"))
                .arg("--local")
                .arg(tmp.join("mesh"))
                .args(["--config-addr", &format!("127.0.0.1:{cp}")])
                .args(["--identity-addr", &format!("127.0.0.1:{identity}")])
                .args(["--health-addr", &format!("127.0.0.1:{health}")])
                .arg("--dev-ca-roots")
                .arg(tmp.join("roots.pem"))
                .args(controller_args)
                .stderr(std::fs::File::create(tmp.join("cp.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        wait_for("the development CA's root", || {
            tmp.join("roots.pem").exists()
        });
        let cps = (cp, identity);
        let servers = [
            ("web-v1-0", "web-v1", &mesh.s1, up1),
            ("web-v2-0", "web-v2", &mesh.s2, up2),
        ];
        let mut procs = Vec::new();
        for (pod, sa, ports, up) in servers {
            let mut extra = vec!["--inbound-forward".to_string(), format!("127.0.0.1:{up}")];
            extra.extend(proxy_args(pod));
            procs.push(proxy(tmp, cps, pod, sa, ports, &extra));
        }
        procs.push(proxy(
            tmp,
            cps,
            "web-client-0",
            "web-client",
            &mesh.client,
            &proxy_args("web-client-0"),
        ));
        procs.push(controller);
        mesh.procs = procs;
        let url = mesh.url();
        let admin = mesh.client.admin;
        wait_for("the split over mTLS", || {
            matches!(
                curl(&["-m", "2", "-H", "Host: web", &url]).as_str(),
                "v1" | "v2"
            ) && curl(&[&format!("http://127.0.0.1:{admin}/metrics")]).contains("tls=\"true\"")
        });
        mesh
    }

    /// The client proxy's outbound URL (send `Host: web`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.client.outbound)
    }

    /// Rewrites the route with `w1` % to `web-v1` (every proxy gets a new
    /// version).
    pub fn set_weight(&self, w1: u32) {
        std::fs::write(
            self.dir.path().join("mesh/mesh.yaml"),
            manifests(self.s1.inbound, self.s2.inbound, w1),
        )
        .unwrap();
    }

    /// A process's log (`cp`, or a pod's name).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// A proxy following the controller, with a certificate from its CA.
fn proxy(tmp: &Path, cp: (u16, u16), pod: &str, sa: &str, p: &Ports, extra: &[String]) -> Proc {
    Proc(
        Command::new(bin("strait-proxy"))
            .args(["--control-plane", &format!("127.0.0.1:{}", cp.0)])
            .args(["--identity-addr", &format!("127.0.0.1:{}", cp.1)])
            .arg("--trust-roots")
            .arg(tmp.join("roots.pem"))
            .args(["--namespace", "shop", "--pod", pod, "--service-account", sa])
            .args(["--outbound-addr", &format!("127.0.0.1:{}", p.outbound)])
            .args(["--inbound-addr", &format!("127.0.0.1:{}", p.inbound)])
            .args(["--admin-addr", &format!("127.0.0.1:{}", p.admin)])
            .args(["--workers", "1"])
            .args(extra)
            .stderr(std::fs::File::create(tmp.join(format!("{pod}.log"))).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// curl's body (`-s` added).
pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").arg("-s").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
