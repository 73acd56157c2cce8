//! Which mesh TLS connections may carry HTTP/1.1 as HTTP/2: real
//! handshakes on loopback with certificates from a throwaway CA.

use super::MeshTls;
use crate::connect::Upstream;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use std::sync::Arc;
use strait_api::identity::SpiffeId;
use tokio::net::{TcpListener, TcpStream};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let pem = p.self_signed(&key).unwrap().pem();
    Ca {
        issuer: Issuer::new(p, key),
        pem,
    }
}

fn mesh_tls(ca: &Ca, id: &SpiffeId) -> MeshTls {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![
        SanType::URI(id.to_string().try_into().unwrap()),
        SanType::DnsName(id.dns_name().try_into().unwrap()),
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    MeshTls::new(id.clone(), &cert.pem(), &key.serialize_pem(), &ca.pem).unwrap()
}

/// Accepts one connection on `server` (as an `opaque` port or not).
async fn serve_one(server: Arc<MeshTls>, opaque: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // Held until the client is done with it.
        let tls = server.accept(tcp, opaque).await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        drop(tls);
    });
    addr
}

#[tokio::test]
async fn the_server_says_where_http1_may_be_carried() {
    let ca = ca();
    let (web, client) = (
        SpiffeId::new("cluster.local", "shop", "web"),
        SpiffeId::new("cluster.local", "shop", "client"),
    );
    let server = Arc::new(mesh_tls(&ca, &web));
    let client = mesh_tls(&ca, &client);
    for (opaque, carries) in [(false, true), (true, false)] {
        let addr = serve_one(server.clone(), opaque).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = client.connect(tcp, &web).await.unwrap();
        assert_eq!(
            Upstream::Tls(Box::new(tls)).carries_h1(),
            carries,
            "opaque port: {opaque}"
        );
    }
}

#[tokio::test]
async fn an_http_client_with_a_mesh_certificate_is_still_served() {
    // curl offers h2 and http/1.1 only; rustls would refuse a server whose
    // list shares nothing with that.
    let ca = ca();
    let web = SpiffeId::new("cluster.local", "shop", "web");
    let server = Arc::new(mesh_tls(&ca, &web));
    let client = mesh_tls(&ca, &SpiffeId::new("cluster.local", "shop", "curl"));
    for offer in [
        vec![b"http/1.1".to_vec()],
        vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    ] {
        let mut config = (*client.client).clone();
        config.alpn_protocols = offer.clone();
        let addr = serve_one(server.clone(), false).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(web.dns_name()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            offer.first().map(Vec::as_slice),
            "one of the protocols the client offered is selected"
        );
    }
}
