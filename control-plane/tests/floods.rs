//! Bounded floods against the controller's config stream: what it keeps
//! stays bounded, and what it gives stays right.

mod mesh;

use strait_test_support::rss_kib;

use mesh::{controller, free_port};
use strait_api::wire::{
    Hello, ProxyMessage, config_discovery_client::ConfigDiscoveryClient, proxy_message,
};

/// One flood at a time: the connections of one must not take the port the
/// other's controller is about to bind, nor its RSS measurement.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The names of the Services in the full set a proxy in `namespace` gets.
async fn full_set(addr: &str, namespace: &str) -> Vec<String> {
    let mut client = ConfigDiscoveryClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let hello = ProxyMessage {
        kind: Some(proxy_message::Kind::Hello(Hello {
            namespace: namespace.into(),
            pod: "flood".into(),
            ..Hello::default()
        })),
    };
    let mut stream = client
        .stream(futures_util::stream::iter([hello]))
        .await
        .unwrap()
        .into_inner();
    let mut pending = None;
    let full = loop {
        let part = stream.message().await.unwrap().expect("a part");
        if let Some(whole) = strait_api::parts::assemble(&mut pending, part) {
            break whole;
        }
    };
    full.upserts
        .into_iter()
        .filter_map(|r| r.key)
        .filter(|k| k.kind == "Service")
        .map(|k| format!("{}/{}", k.namespace, k.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_namespaces_get_the_public_view_and_are_not_kept() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    // One Service only its own namespace sees, and 300 public ones with
    // some weight, so that a view per namespace would show in RSS.
    let mut yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: private, namespace: shop, annotations: {strait.dev/export-to: \".\"}}\nspec: {ports: [{port: 80}]}\n".to_string();
    for i in 0..300 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: public-{i}, namespace: shop, annotations: {{pad: \"{}\"}}}}\nspec: {{ports: [{{port: 80}}]}}\n",
            "x".repeat(200)
        ));
    }
    std::fs::write(dir.join("mesh.yaml"), yaml).unwrap();
    let port = free_port();
    let cp = controller(&dir, port, &tmp.path().join("cp.log"));
    let addr = format!("127.0.0.1:{port}");
    // Ready: the owner namespace sees the private Service.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let up = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            ConfigDiscoveryClient::connect(format!("http://{addr}")),
        )
        .await;
        if matches!(up, Ok(Ok(_))) && full_set(&addr, "shop").await.len() == 301 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "controller not ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Warm up the allocator and the one shared view.
    for i in 0..50 {
        full_set(&addr, &format!("warm-{i}")).await;
    }
    let before = rss_kib(cp.0.id());
    for i in 0..1000 {
        let services = full_set(&addr, &format!("made-up-{i}")).await;
        assert_eq!(services.len(), 300, "the public view");
        assert!(!services.contains(&"shop/private".to_string()));
    }
    let after = rss_kib(cp.0.id());
    assert!(
        after < before + 16 * 1024,
        "1,000 made-up namespaces grew the controller from {before} KiB to {after} KiB"
    );
    assert_eq!(full_set(&addr, "shop").await.len(), 301, "the owner's view");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_to_the_config_stream_are_closed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    use tokio::io::AsyncReadExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("m.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let port = free_port();
    let _cp = controller(&dir, port, &tmp.path().join("cp.log"));
    let addr = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "controller not up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    let mut silent = Vec::new();
    for i in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 1 {
            // Half send the first byte of the preface and stop there.
            use tokio::io::AsyncWriteExt;
            s.write_all(b"P").await.unwrap();
        }
        silent.push(tokio::spawn(async move {
            // Until EOF or a reset: closed by the controller.
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
            sink.len()
        }));
    }
    // A proxy that talks is served meanwhile.
    assert_eq!(full_set(&addr, "shop").await, ["shop/web"]);
    for s in silent {
        let got = tokio::time::timeout(std::time::Duration::from_secs(20), s)
            .await
            .expect("a silent connection is closed")
            .unwrap();
        assert_eq!(
            got, 0,
            "a silent connection never reaches the HTTP/2 server"
        );
    }
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(9) && took < std::time::Duration::from_secs(15),
        "closed after {took:?} (first bytes due within 10 s)"
    );
}
