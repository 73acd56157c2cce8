//! Certificates renewed and the trust anchor rotated under continuous load,
//! between two real `strait-proxy` processes (a client and a server in
//! front of an app) getting 6-second certificates from the identity
//! service, run in-process so the test can swap its anchor: renewals every
//! ~4 s, then the roots become a two-root bundle, then the issuer moves to
//! the new root, then the old root goes; not one request may fail. Then a
//! certificate that has expired, or that chains to a root the mesh no
//! longer trusts, is refused by the server proxy.

mod support;

use arc_swap::ArcSwap;
use rcgen::KeyPair;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use strait_api::identity::SpiffeId;
use strait_api::identity_wire::identity_server::IdentityServer;
use strait_control_plane::identity::ca::{AnchorPem, Signer, new_anchor};
use strait_control_plane::identity::service::{Service, Verify};
use support::proxy::{ProxySpec, RunningProxy, tokio_stream_from, wait};

/// The client proxy's and the server proxy's manifests: Service `web`,
/// its one endpoint the server proxy's inbound listener, in meshed Pod
/// `web-0` (ServiceAccount `web`).
fn manifests(server_inbound: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nports: [{{name: http, port: {server_inbound}}}]\nendpoints: [{{addresses: [\"127.0.0.1\"], targetRef: {{kind: Pod, name: web-0}}}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web-0, namespace: shop, annotations: {{strait.dev/proxy-version: test}}}}\nspec: {{serviceAccountName: web}}\n"
    )
}

/// One request through the client proxy on a new connection: whether it
/// came back `200` with the app's body.
fn request(outbound: u16) -> Result<(), String> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", outbound)).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    c.write_all(b"GET /rotation HTTP/1.1\r\nhost: web.shop\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    c.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    (resp.starts_with("HTTP/1.1 200") && resp.ends_with("app"))
        .then_some(())
        .ok_or(resp)
}

/// Load on 4 threads until `stop`: each sends a request, then waits up to
/// 300 ms (so the proxies' pooled connections also time out and new mTLS
/// handshakes happen along the way).
fn load(outbound: u16, stop: Arc<AtomicBool>, ok: Arc<AtomicU64>, failed: Arc<AtomicU64>) {
    for t in 0..4u64 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut n = t;
            while !stop.load(Ordering::Relaxed) {
                match request(outbound) {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                std::thread::sleep(Duration::from_millis((n >> 33) % 300));
            }
        });
    }
}

/// A TLS client with `chain`/`key` (PEM) trusting `roots`, handshaking
/// with the server proxy's inbound listener as a mesh peer would.
fn handshake(inbound: u16, chain: &str, key: &str, roots: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut store = rustls::RootCertStore::empty();
    for r in CertificateDer::pem_slice_iter(roots.as_bytes()) {
        store.add(r.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(store)
        .with_client_auth_cert(certs, key)
        .unwrap();
    let name = "web.shop.serviceaccount.identity.cluster.local"
        .try_into()
        .unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", inbound)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    // TLS 1.3: the server checks the client's certificate after the client
    // finished; its verdict arrives with the first read.
    tls.write_all(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    tls.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    resp.starts_with(b"HTTP/1.1 200")
        .then_some(())
        .ok_or_else(|| String::from_utf8_lossy(&resp).into_owned())
}

/// A certificate for `id` from `signer`, issued at `at` for `life`.
fn issue(
    signer: &Signer,
    id: &SpiffeId,
    at: time::OffsetDateTime,
    life: time::Duration,
) -> (String, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issued = signer.sign(&key, id, at, life).unwrap();
    (issued.chain, key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_and_anchor_rotation_under_load_fail_no_request() {
    let now = time::OffsetDateTime::now_utc;
    let a = new_anchor(now(), "cluster.local").unwrap();
    let b = new_anchor(now(), "cluster.local").unwrap();
    let signer = Arc::new(ArcSwap::from_pointee(
        Signer::new(a.clone(), now()).unwrap(),
    ));
    let service = Service {
        verify: Verify::Declared,
        signer: signer.clone(),
        trust_domain: "cluster.local".into(),
        lifetime: time::Duration::seconds(6),
        metrics: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let identity = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(service))
            .serve_with_incoming(tokio_stream_from(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("no-token");
    let app = strait_test_support::upstream::keep_alive("app");
    let forward = format!("127.0.0.1:{app}");
    // The server first (its inbound port goes into the manifests), then
    // the client, both reading the same directory.
    let config = dir.path().join("mesh");
    std::fs::create_dir(&config).unwrap();
    let server = RunningProxy::start(
        dir.path(),
        ProxySpec {
            name: "server",
            identity,
            token: &token,
            service_account: "web",
            config: Some(&config),
            extra: &["--inbound-forward", &forward],
        },
    );
    std::fs::write(config.join("mesh.yaml"), manifests(server.inbound)).unwrap();
    let client = RunningProxy::start(
        dir.path(),
        ProxySpec {
            name: "client",
            identity,
            token: &token,
            service_account: "client",
            config: Some(&config),
            extra: &["--idle-timeout", "200ms"],
        },
    );
    let renewals =
        |p: &RunningProxy| p.metric("strait_identity_renewals_total{result=\"success\"}");
    let both_renewed =
        |at_least: [f64; 2]| renewals(&client) >= at_least[0] && renewals(&server) >= at_least[1];
    wait(Duration::from_secs(20), "both certificates", || {
        both_renewed([1.0, 1.0]) && request(client.outbound).is_ok()
    });

    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    load(client.outbound, stop.clone(), ok.clone(), failed.clone());
    let handshakes = || {
        server.metric("strait_mesh_connections_total{direction=\"inbound\",tls=\"true\",peer_identity=\"spiffe://cluster.local/ns/shop/sa/client\"}")
    };
    let phase = |what: &str, renewed: usize| {
        let at = [renewals(&client), renewals(&server)];
        let before = handshakes();
        let want = at.map(|n| n + renewed as f64);
        wait(Duration::from_secs(30), what, || both_renewed(want));
        let new = handshakes() - before;
        eprintln!(
            "{what}: renewed {renewed}×, {new} new mTLS connections, {} ok, {} failed",
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed)
        );
        assert!(
            new >= 1.0,
            "{what}: new mTLS connections were made meanwhile"
        );
    };
    // 1. Renewals under load, on root A.
    phase("renewals on root A", 2);
    // 2. The bundle gains root B (issuer still A's).
    let both_roots = |issuer: &AnchorPem| AnchorPem {
        roots: format!("{}{}", a.roots, b.roots),
        ..issuer.clone()
    };
    signer.store(Arc::new(Signer::new(both_roots(&a), now()).unwrap()));
    phase("roots A and B, issuer A", 2);
    // 3. The issuer moves to root B.
    signer.store(Arc::new(Signer::new(both_roots(&b), now()).unwrap()));
    phase("roots A and B, issuer B", 2);
    // 4. Root A goes.
    signer.store(Arc::new(Signer::new(b.clone(), now()).unwrap()));
    phase("root B only", 2);
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(400));
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 50, "{ok} requests");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);

    // 5. The server proxy refuses what it must: a certificate of root B
    //    that expired, and a valid one of root A (no longer trusted); a
    //    valid one of root B is served (the check itself works).
    let client_id = SpiffeId::new("cluster.local", "shop", "client");
    let on_b = Signer::new(b.clone(), now()).unwrap();
    let on_a = Signer::new(a.clone(), now()).unwrap();
    let (chain, key) = issue(&on_b, &client_id, now(), time::Duration::hours(1));
    handshake(server.inbound, &chain, &key, &b.roots).expect("a valid certificate of root B");
    let (chain, key) = issue(
        &on_b,
        &client_id,
        now() - time::Duration::hours(3),
        time::Duration::hours(1),
    );
    let expired = handshake(server.inbound, &chain, &key, &b.roots);
    assert!(
        expired.is_err(),
        "an expired certificate was served: {expired:?}"
    );
    let (chain, key) = issue(&on_a, &client_id, now(), time::Duration::hours(1));
    let untrusted = handshake(server.inbound, &chain, &key, &b.roots);
    assert!(
        untrusted.is_err(),
        "root A is trusted no more: {untrusted:?}"
    );
    assert!(
        server.metric("strait_inbound_refused_total{reason=\"tls-handshake\"}") >= 2.0,
        "{}",
        server.log()
    );
}
