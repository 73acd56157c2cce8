//! `strait-controller` against a real kube-apiserver: TrafficRoutes applied
//! with kubectl reach a running proxy over the config stream; status
//! conditions are written back; a missing Service is reported and changes
//! nothing on the proxy; a restarted controller is followed; two replicas
//! both serve, one leads; a Service exported to its own namespace is hidden
//! from proxies elsewhere until it is exported to all; a proxy that names a
//! Pod with another service account is refused.

mod mesh;
mod support;

use mesh::{PodNet, Proc, admin_json, bin, free_port, get, proxy, wait_for};
use std::process::{Command, Stdio};
use std::time::Duration;
use strait_api::wire::config_discovery_client::ConfigDiscoveryClient;
use strait_api::wire::{Hello, ProxyMessage, ProxyStatusRequest, proxy_message};
use support::ApiServer;

fn start_controller(server: &ApiServer, replica: &str, port: u16, log: &std::path::Path) -> Proc {
    start_controller_with_health(server, replica, port, free_port(), log)
}

fn start_controller_with_health(
    server: &ApiServer,
    replica: &str,
    port: u16,
    health: u16,
    log: &std::path::Path,
) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_strait-controller"))
            .env("KUBECONFIG", server.kubeconfig())
            .args([
                "--config-addr",
                &format!("127.0.0.1:{port}"),
                "--replica",
                replica,
                "--lease-namespace",
                "strait-system",
                // Replicas run side by side here.
                "--health-addr",
                &format!("127.0.0.1:{health}"),
            ])
            .stderr(std::fs::File::create(log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Opens a config stream with this identity; the first part of the full
/// set, or the refusal. The stream stays open while the client lives.
async fn hello(
    client: &mut ConfigDiscoveryClient<tonic::transport::Channel>,
    namespace: &str,
    pod: &str,
    service_account: &str,
) -> Result<tonic::Streaming<strait_api::wire::ConfigUpdate>, tonic::Status> {
    let hello = ProxyMessage {
        kind: Some(proxy_message::Kind::Hello(Hello {
            namespace: namespace.into(),
            pod: pod.into(),
            service_account: service_account.into(),
            running_version: 0,
        })),
    };
    // Pending after the Hello, so the stream stays open.
    let outbound = futures_util::StreamExt::chain(
        futures_util::stream::iter([hello]),
        futures_util::stream::pending(),
    );
    let mut updates = client.stream(outbound).await?.into_inner();
    updates.message().await?;
    Ok(updates)
}

fn route(v1: u32, v2: u32, second: &str) -> String {
    format!(
        "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: web, namespace: shop}}\nspec:\n  parentRef: {{name: web, port: 80}}\n  rules:\n    - name: split\n      backends: [{{name: web-v1, port: 80, weight: {v1}}}, {{name: {second}, port: 80, weight: {v2}}}]\n"
    )
}

/// Which replica holds the leader-election Lease.
fn lease_holder(server: &ApiServer) -> String {
    server
        .kubectl(
            &[
                "get",
                "lease",
                "strait-controller",
                "-n",
                "strait-system",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
        .ok()
}

fn condition(server: &ApiServer, name: &str, type_: &str) -> (String, String, i64, i64) {
    let out = server
        .kubectl(
            &["get", "trafficroute", name, "-n", "shop", "-o", "json"],
            None,
        )
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let generation = v["metadata"]["generation"].as_i64().unwrap_or(-1);
    let c = v["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_default();
    (
        c["status"].as_str().unwrap_or("").into(),
        format!(
            "{} {}",
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        ),
        c["observedGeneration"].as_i64().unwrap_or(-2),
        generation,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_against_a_real_apiserver() {
    let server = ApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    server.install_crds();
    let mut pods = PodNet::shop();
    let ip = pods.ip.clone();
    server.shop(&ip);

    let (cp_port, cp_health) = (free_port(), free_port());
    let cp = start_controller_with_health(
        &server,
        "cp-a",
        cp_port,
        cp_health,
        &tmp.path().join("cp-a.log"),
    );
    let (_proxy, out, admin) = proxy(cp_port, "shop", "client-0", &tmp.path().join("proxy.log"));
    let logs = || {
        format!(
            "controller:\n{}\nproxy:\n{}",
            std::fs::read_to_string(tmp.path().join("cp-a.log")).unwrap_or_default(),
            std::fs::read_to_string(tmp.path().join("proxy.log")).unwrap_or_default()
        )
    };

    // No TrafficRoute yet: the Service's own endpoints.
    wait_for("default routing", || {
        get(out, "web").as_deref() == Some("web")
    });

    // 1. kubectl apply → the proxy routes by it.
    server
        .kubectl(&["apply", "-f", "-"], Some(&route(100, 0, "web-v2")))
        .ok();
    wait_for("the route", || get(out, "web").as_deref() == Some("v1"));

    // 2. Status written back, for the current generation.
    wait_for("Accepted=True", || {
        condition(&server, "web", "Accepted").0 == "True"
    });
    let (status, _, observed, generation) = condition(&server, "web", "ResolvedRefs");
    assert_eq!(
        (status.as_str(), observed),
        ("True", generation),
        "{}",
        logs()
    );
    // The leader counts its status writes (`:9990/metrics`).
    let metrics = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{cp_health}/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let written = metrics
        .lines()
        .find_map(|l| l.strip_prefix("strait_controller_status_writes_total{result=\"ok\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(written >= 1.0, "{metrics}");
    let table = server
        .kubectl(&["get", "trafficroutes", "-n", "shop"], None)
        .ok();
    assert!(
        table.lines().nth(1).is_some_and(
            |l| l.split_whitespace().collect::<Vec<_>>()[..4] == ["web", "web", "True", "True"]
        ),
        "{table}"
    );

    // 3. New weights → new split.
    server
        .kubectl(&["apply", "-f", "-"], Some(&route(0, 100, "web-v2")))
        .ok();
    wait_for("the new weights", || {
        get(out, "web").as_deref() == Some("v2")
    });
    let version = admin_json(admin, "/config")["version"].as_u64().unwrap();

    // 4. A missing Service: ResolvedRefs=False with the reason; proxy unchanged.
    server
        .kubectl(&["apply", "-f", "-"], Some(&route(0, 100, "web-v3")))
        .ok();
    wait_for("ResolvedRefs=False", || {
        condition(&server, "web", "ResolvedRefs").0 == "False"
    });
    let (_, message, observed, generation) = condition(&server, "web", "ResolvedRefs");
    assert!(
        message.starts_with("BackendNotFound") && message.contains("Service shop/web-v3 not found"),
        "{message}"
    );
    assert_eq!(observed, generation);
    let (accepted, message, _, _) = condition(&server, "web", "Accepted");
    assert_eq!(accepted, "False");
    assert!(
        message.contains("previous version of this object stays in force"),
        "{message}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        admin_json(admin, "/config")["version"].as_u64().unwrap(),
        version,
        "nothing was sent"
    );
    assert_eq!(
        get(out, "web").as_deref(),
        Some("v2"),
        "the last good route stays in force"
    );

    // 5. Delete → default routing.
    server
        .kubectl(&["delete", "trafficroute", "web", "-n", "shop"], None)
        .ok();
    wait_for("default routing again", || {
        get(out, "web").as_deref() == Some("web")
    });

    // 6. A second replica: both serve streams, exactly one holds the Lease.
    let cp_b_port = free_port();
    let cp_b = start_controller(&server, "cp-b", cp_b_port, &tmp.path().join("cp-b.log"));
    let (_proxy_b, out_b, _) = proxy(
        cp_b_port,
        "shop",
        "client-1",
        &tmp.path().join("proxy-b.log"),
    );
    wait_for("the second replica serves", || {
        get(out_b, "web").as_deref() == Some("web")
    });
    let holder = lease_holder(&server);
    assert_eq!(holder, "cp-a", "the first replica leads");

    // 7. The leader stops (SIGTERM, a planned restart): it releases the
    //    Lease on its way out, so the other takes it at its next look
    //    instead of 15 s later, and writes status; the proxy of the stopped
    //    one reconnects when it is back.
    let mut cp = cp;
    let pid = cp.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exited = cp.0.wait().unwrap();
    assert!(exited.success(), "cp-a exits cleanly on SIGTERM: {exited}");
    let after = lease_holder(&server);
    assert!(
        after.is_empty() || after == "cp-b",
        "cp-a released the Lease on SIGTERM (holder now {after:?})"
    );
    drop(cp);
    server
        .kubectl(&["apply", "-f", "-"], Some(&route(100, 0, "web-v2")))
        .ok();
    wait_for("proxy b follows its replica", || {
        get(out_b, "web").as_deref() == Some("v1")
    });
    assert_eq!(
        get(out, "web").as_deref(),
        Some("web"),
        "proxy a serves its last config while its controller is down"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while lease_holder(&server) != "cp-b" {
        assert!(
            std::time::Instant::now() < deadline,
            "cp-b never took over the Lease"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_for("status from the new leader", || {
        condition(&server, "web", "Accepted").0 == "True"
    });
    let _cp_again = start_controller(&server, "cp-a", cp_port, &tmp.path().join("cp-a2.log"));
    wait_for("proxy a reconnects and converges", || {
        get(out, "web").as_deref() == Some("v1")
    });
    let status = Command::new(bin("strait"))
        .args([
            "proxy-status",
            "--control-plane",
            &format!("127.0.0.1:{cp_b_port}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("shop/client-1") && text.contains("SYNCED") && text.contains("cp-b"),
        "{text}"
    );

    // 8. Scoping: a Service exported to its own namespace only is routed by
    //    the proxy in shop and unknown to a proxy in another namespace,
    //    until it is exported to everyone.
    pods.upstream("private", 8083);
    server.kubectl(&["create", "namespace", "other"], None).ok();
    let private = support::service_and_slice("private", &ip, 8083).replacen(
        "namespace: shop}",
        "namespace: shop, annotations: {strait.dev/export-to: \".\"}}",
        1,
    );
    server.kubectl(&["apply", "-f", "-"], Some(&private)).ok();
    wait_for("the private Service in its own namespace", || {
        get(out_b, "private").as_deref() == Some("private")
    });
    let (_proxy_c, out_c, admin_c) = proxy(
        cp_b_port,
        "other",
        "client-2",
        &tmp.path().join("proxy-c.log"),
    );
    wait_for("the proxy in another namespace", || {
        get(out_c, "web.shop").as_deref() == Some("v1")
    });
    let config = admin_json(admin_c, "/config").to_string();
    assert!(
        config.contains("shop/web:80") && !config.contains("shop/private"),
        "{config}"
    );
    assert_ne!(get(out_c, "private.shop").as_deref(), Some("private"));
    server
        .kubectl(
            &[
                "annotate",
                "service",
                "private",
                "-n",
                "shop",
                "strait.dev/export-to=*",
                "--overwrite",
            ],
            None,
        )
        .ok();
    wait_for("the exported Service elsewhere", || {
        get(out_c, "private.shop").as_deref() == Some("private")
    });

    // 9. Identity: a Hello naming a known Pod with another service account
    //    is refused with a reason; the right one is accepted as verified.
    server
        .kubectl(&["create", "serviceaccount", "web", "-n", "shop"], None)
        .ok();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\nspec: {serviceAccountName: web, containers: [{name: app, image: app}]}\n";
    server.kubectl(&["apply", "-f", "-"], Some(pod)).ok();
    let mut client = ConfigDiscoveryClient::connect(format!("http://127.0.0.1:{cp_b_port}"))
        .await
        .unwrap();
    // The controller sees the Pod shortly after the API server has it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let refused = loop {
        match hello(&mut client, "shop", "web-1", "api").await {
            Err(status) => break status,
            Ok(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the wrong service account was never refused"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("pod shop/web-1 runs as service account web, the proxy said api"),
        "{refused:?}"
    );
    let _stream = hello(&mut client, "shop", "web-1", "web").await.unwrap();
    let status = client
        .proxy_status(ProxyStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let web_1 = status.proxies.iter().find(|p| p.pod == "web-1").unwrap();
    assert!(web_1.verified, "{web_1:?}");
    assert!(
        status
            .proxies
            .iter()
            .any(|p| p.pod == "client-2" && !p.verified),
        "a pod the controller does not know is let in, unverified"
    );
    drop(cp_b);
}
