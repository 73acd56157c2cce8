//! The identity service against a real kube-apiserver: tokens are real
//! projected ServiceAccount tokens (`kubectl create token`), reviewed by the
//! real TokenReview API; the service runs in-process on loopback and is
//! called over gRPC as a proxy would. A good token gets a certificate for
//! its identity that chains to the trust anchor; a token of another
//! ServiceAccount, a token for another audience, an expired token, a CSR for
//! another identity and a malformed CSR are each refused with their reason.

mod support;

use arc_swap::ArcSwap;
use rcgen::{CertificateParams, KeyPair, SanType};
use std::sync::Arc;
use std::time::Duration;
use strait_api::identity::{SpiffeId, TOKEN_AUDIENCE};
use strait_api::identity_wire::identity_client::IdentityClient;
use strait_api::identity_wire::identity_server::IdentityServer;
use strait_api::identity_wire::{CertifyRequest, CertifyResponse};
use strait_control_plane::identity::ca::{Signer, new_anchor};
use strait_control_plane::identity::service::{Service, Verify};
use support::ApiServer;
use support::proxy::{ProxySpec, RunningProxy, tokio_stream_from, wait};
use tonic::Code;

fn csr(for_id: &str) -> String {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::URI(for_id.try_into().unwrap())];
    p.serialize_request(&key).unwrap().pem().unwrap()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn unb64url(s: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = B64.iter().position(|b| *b == c).expect("base64url") as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// `token` with its times moved an hour into the past, signed again with
/// the API server's own ServiceAccount key: genuine but expired.
fn expired(server: &ApiServer, token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&unb64url(parts[1])).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["iat"] = (now - 7200).into();
    claims["nbf"] = (now - 7200).into();
    claims["exp"] = (now - 3600).into();
    let signed = format!(
        "{}.{}",
        parts[0],
        b64url(&serde_json::to_vec(&claims).unwrap())
    );
    let mut sign = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(server.pki().join("sa.key"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    use std::io::Write;
    sign.stdin
        .take()
        .unwrap()
        .write_all(signed.as_bytes())
        .unwrap();
    let sig = sign.wait_with_output().unwrap();
    assert!(sig.status.success());
    format!("{signed}.{}", b64url(&sig.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_service_certifies_only_what_a_token_grants() {
    let server = ApiServer::start();
    let client = server.client().await;
    server.kubectl(&["create", "namespace", "shop"], None).ok();
    for sa in ["web", "db"] {
        server
            .kubectl(&["-n", "shop", "create", "serviceaccount", sa], None)
            .ok();
    }
    let token = |sa: &str, audience: &str| {
        server
            .kubectl(
                &["-n", "shop", "create", "token", sa, "--audience", audience],
                None,
            )
            .ok()
            .trim()
            .to_owned()
    };

    let now = time::OffsetDateTime::now_utc();
    let signer = Arc::new(ArcSwap::from_pointee(
        Signer::new(new_anchor(now, "cluster.local").unwrap(), now).unwrap(),
    ));
    let metrics = Arc::new(strait_control_plane::metrics::Metrics::default());
    let service = Service {
        verify: Verify::Token {
            client,
            audience: TOKEN_AUDIENCE.into(),
        },
        signer: signer.clone(),
        trust_domain: "cluster.local".into(),
        lifetime: strait_control_plane::identity::ca::WORKLOAD_LIFETIME,
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(service))
            .serve_with_incoming(tokio_stream_from(listener)),
    );
    let mut identity = IdentityClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let web = SpiffeId::new("cluster.local", "shop", "web").to_string();
    let db = SpiffeId::new("cluster.local", "shop", "db").to_string();

    // A good token and a CSR for its identity: a certificate.
    let good_token = token("web", TOKEN_AUDIENCE);
    let CertifyResponse {
        certificate_chain_pem,
        trust_bundle_pem,
        not_after,
        identity: granted,
        verified,
    } = identity
        .certify(CertifyRequest {
            token: good_token.clone(),
            csr_pem: csr(&web),
        })
        .await
        .expect("a good token is certified")
        .into_inner();
    assert_eq!(granted, web);
    assert!(verified, "TokenReview proved it");
    assert_eq!(trust_bundle_pem, signer.load().roots());
    let day = (not_after - now.unix_timestamp()) as f64 / 3600.0;
    assert!((23.9..24.1).contains(&day), "lives 24 h: {day}");
    let leaf = x509_parser::pem::Pem::iter_from_buffer(certificate_chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let leaf = leaf.parse_x509().unwrap();
    let sans = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        format!("{:?}", sans.value.general_names),
        format!("[URI({web:?}), DNSName(\"web.shop.serviceaccount.identity.cluster.local\")]")
    );

    // Each refusal, with its reason.
    let cases: Vec<(&str, String, String, Code, String)> = vec![
        (
            "a token of another ServiceAccount",
            token("db", TOKEN_AUDIENCE),
            csr(&web),
            Code::PermissionDenied,
            format!("grants only {db}"),
        ),
        (
            "a token for another audience",
            token("web", "https://kubernetes.default.svc.cluster.local"),
            csr(&web),
            Code::PermissionDenied,
            "token refused".into(),
        ),
        (
            "an expired token",
            expired(&server, &good_token),
            csr(&web),
            Code::PermissionDenied,
            "expired".into(),
        ),
        (
            "a CSR for another identity",
            good_token.clone(),
            csr(&db),
            Code::PermissionDenied,
            format!("grants only {web}"),
        ),
        (
            "a malformed CSR",
            good_token.clone(),
            "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n"
                .into(),
            Code::InvalidArgument,
            "malformed CSR".into(),
        ),
        (
            "no token",
            String::new(),
            csr(&web),
            Code::PermissionDenied,
            "token refused".into(),
        ),
    ];
    for (what, token, csr_pem, code, reason) in cases {
        let err = identity
            .certify(CertifyRequest { token, csr_pem })
            .await
            .expect_err(what);
        println!("{what}: {:?} {}", err.code(), err.message());
        assert_eq!(err.code(), code, "{what}: {}", err.message());
        assert!(
            err.message().contains(reason.as_str()),
            "{what}: the reason says {reason:?}: {}",
            err.message()
        );
    }
    // `strait_controller_certificates_total` says the same, by reason.
    let text = metrics.encode();
    for (series, n) in [
        ("{result=\"issued\",reason=\"\"}", 1),
        ("{result=\"refused\",reason=\"csr-identity\"}", 2),
        ("{result=\"refused\",reason=\"token\"}", 3),
        ("{result=\"refused\",reason=\"csr-malformed\"}", 1),
    ] {
        assert!(
            text.contains(&format!("strait_controller_certificates_total{series} {n}")),
            "{series} {n}: {text}"
        );
    }

    // The proxy's side, with the real binary: a fresh key, a certificate
    // for its ServiceAccount, renewed at 70 % of a 10 s life; a failed
    // renewal keeps the current certificate; a token that does not grant
    // the identity gets none, and the proxy serves on.
    let short = Service {
        verify: Verify::Token {
            client: server.client().await,
            audience: TOKEN_AUDIENCE.into(),
        },
        signer: signer.clone(),
        trust_domain: "cluster.local".into(),
        lifetime: time::Duration::seconds(10),
        metrics: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let short_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(short))
            .serve_with_incoming(tokio_stream_from(listener)),
    );
    let dir = tempfile::tempdir().unwrap();
    let web_token = dir.path().join("web-token");
    std::fs::write(&web_token, token("web", TOKEN_AUDIENCE)).unwrap();
    let db_token = dir.path().join("db-token");
    std::fs::write(&db_token, token("db", TOKEN_AUDIENCE)).unwrap();
    let spec = |name, token| ProxySpec {
        name,
        identity: short_addr,
        token,
        service_account: "web",
        config: None,
        extra: &[],
    };
    let good = RunningProxy::start(dir.path(), spec("good", &web_token));
    let impostor = RunningProxy::start(dir.path(), spec("impostor", &db_token));

    let renewed = |p: &RunningProxy, n: f64| {
        p.metric("strait_identity_renewals_total{result=\"success\"}") >= n
    };
    wait(Duration::from_secs(20), "a first certificate", || {
        renewed(&good, 1.0)
    });
    let first_expiry = good.metric("strait_identity_certificate_expiry_seconds");
    wait(Duration::from_secs(30), "two renewals", || {
        renewed(&good, 3.0)
    });
    let later_expiry = good.metric("strait_identity_certificate_expiry_seconds");
    assert!(
        later_expiry >= first_expiry + 10.0,
        "{first_expiry} then {later_expiry}"
    );

    // The token goes bad: renewal fails, the current certificate is kept.
    std::fs::write(&web_token, "not a token").unwrap();
    wait(Duration::from_secs(20), "a failed renewal", || {
        good.metric("strait_identity_renewals_total{result=\"failure\"}") >= 1.0
    });
    let kept = good.metric("strait_identity_certificate_expiry_seconds");
    assert!(kept > 0.0, "the current certificate is kept");
    assert!(
        good.log().contains("keeping the current certificate"),
        "{}",
        good.log()
    );
    // Good again: renewed.
    std::fs::write(&web_token, token("web", TOKEN_AUDIENCE)).unwrap();
    let before = good.metric("strait_identity_renewals_total{result=\"success\"}");
    wait(
        Duration::from_secs(40),
        "renewal after the token is good again",
        || renewed(&good, before + 1.0),
    );

    // db's token does not grant web's identity: refused, reason logged,
    // no certificate, and the proxy is not ready (meshed clients could not
    // reach it), while the one with a certificate is.
    wait(
        Duration::from_secs(20),
        "the impostor refused twice",
        || impostor.metric("strait_identity_renewals_total{result=\"failure\"}") >= 2.0,
    );
    assert_eq!(
        impostor.metric("strait_identity_renewals_total{result=\"success\"}"),
        0.0
    );
    assert_eq!(
        impostor.metric("strait_identity_certificate_expiry_seconds"),
        0.0
    );
    assert!(
        impostor
            .log()
            .contains("grants only spiffe://cluster.local/ns/shop/sa/db"),
        "{}",
        impostor.log()
    );
    assert!(
        impostor.get("/ready").is_none(),
        "not ready without a certificate"
    );
    assert!(good.get("/ready").is_some(), "ready with one");
}
