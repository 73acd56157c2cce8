//! Mesh TLS: TLS 1.3 between two proxies, each with its workload
//! certificate, each checking the other's against the mesh's roots.
//!
//! * The client (outbound, to a meshed endpoint) sends the identity it
//!   expects as the server name, in its DNS form
//!   (`<sa>.<ns>.serviceaccount.identity.<trust-domain>`, which certificates
//!   carry beside the SPIFFE URI), so rustls' standard verifier checks the
//!   chain and the name in one step; a server with another identity fails
//!   the name check: [`ConnectError::IdentityMismatch`].
//! * The server (inbound) tells mesh TLS from the app's own TLS by that
//!   server name ([`hello`] reads it from the ClientHello without
//!   consuming it): a mesh name is terminated here with a client
//!   certificate required; anything else passes through to the app
//!   untouched.
//!
//! [`MeshTls`] is built from one certificate and swapped whole when the
//! certificate is renewed or the roots change; connections keep the
//! configuration they were made with.

pub mod certified;
pub mod hello;

pub use certified::{Certified, Current};

use crate::http::orig_proto::ALPN;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;
use strait_api::identity::{MESH_DNS_INFIX, SpiffeId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Whether a ClientHello's server name asks for mesh TLS: any identity of
/// `trust_domain` in its DNS form. One that is not this proxy's is still
/// terminated here, so that the client sees the mismatch and says so.
pub fn is_mesh_name(server_name: &str, trust_domain: &str) -> bool {
    server_name
        .strip_suffix(trust_domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .and_then(|rest| rest.strip_suffix(MESH_DNS_INFIX))
        .is_some_and(|rest| rest.ends_with('.'))
}

/// Why a certificate could not be made into a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM block did not parse.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate, key or roots.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// Why a mesh TLS connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server's certificate names another identity.
    #[error("the endpoint is not {expected}: {reason}")]
    IdentityMismatch {
        /// The identity the control plane said the endpoint has.
        expected: String,
        /// What the verifier said.
        reason: String,
    },
    /// Any other handshake failure (untrusted chain, expired, reset).
    #[error("TLS handshake: {0}")]
    Handshake(String),
}

/// This proxy's mesh TLS, for one certificate.
pub struct MeshTls {
    /// Who this proxy is.
    pub id: SpiffeId,
    /// Its DNS form, the server name peers send.
    pub dns_name: String,
    client: Arc<ClientConfig>,
    /// To the control plane (its gRPC listeners select h2).
    control: Arc<ClientConfig>,
    /// For ports the proxy serves HTTP on: selects [`ALPN`].
    server: Arc<ServerConfig>,
    /// For opaque ports: selects no protocol, so clients keep HTTP/1.1.
    server_opaque: Arc<ServerConfig>,
}

impl std::fmt::Debug for MeshTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshTls").field("id", &self.id).finish()
    }
}

fn pem_err(what: &'static str) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError {
    move |e| TlsError::Pem {
        what,
        reason: e.to_string(),
    }
}

/// The certificates of a PEM bundle.
pub fn certificates(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(what))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate".into(),
        });
    }
    Ok(certs)
}

/// A root store of a PEM bundle (two roots while the anchor rotates).
pub fn roots(pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(pem, "trust roots")? {
        store.add(cert)?;
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS 1.3 client that verifies servers against `roots` and has no
/// certificate of its own (the identity service, before the first one).
pub fn anonymous_client(roots: Arc<RootCertStore>) -> Result<Arc<ClientConfig>, TlsError> {
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

impl MeshTls {
    /// Mesh TLS for `id` with its certificate chain, key and the roots, PEM.
    pub fn new(id: SpiffeId, chain: &str, key: &str, roots_pem: &str) -> Result<Self, TlsError> {
        let chain = certificates(chain, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(pem_err("private key"))?;
        let roots = roots(roots_pem)?;
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())?;
        // The control plane's gRPC asks for h2, as it says.
        let mut control = client.clone();
        control.alpn_protocols = vec![b"h2".to_vec()];
        // Offered on every mesh connection; what the server selects tells
        // the client it may carry HTTP/1.1 as HTTP/2 (`http::orig_proto`).
        client.alpn_protocols = vec![ALPN.to_vec()];
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let opaque = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        // rustls refuses a client whose ALPN offer shares nothing with the
        // server's list: besides the proxies' own protocol, the two that an
        // HTTP client with a mesh certificate (curl) offers are selected,
        // and HTTP is detected from the bytes either way.
        let mut http = opaque.clone();
        http.alpn_protocols = vec![ALPN.to_vec(), b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(MeshTls {
            dns_name: id.dns_name(),
            id,
            client: Arc::new(client),
            control: Arc::new(control),
            server: Arc::new(http),
            server_opaque: Arc::new(opaque),
        })
    }

    /// Opens mesh TLS over `tcp` to an endpoint that must be `expected`.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        expected: &SpiffeId,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        Self::open(&self.client, tcp, expected).await
    }

    /// Opens TLS with this certificate over `tcp` to the control plane,
    /// which must be `expected`.
    pub async fn connect_control(
        &self,
        tcp: TcpStream,
        expected: &SpiffeId,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        Self::open(&self.control, tcp, expected).await
    }

    async fn open(
        config: &Arc<ClientConfig>,
        tcp: TcpStream,
        expected: &SpiffeId,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let name = ServerName::try_from(expected.dns_name()).map_err(|e| {
            ConnectError::IdentityMismatch {
                expected: expected.to_string(),
                reason: e.to_string(),
            }
        })?;
        tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| classify(e, expected))
    }

    /// Terminates mesh TLS on `io` (the ClientHello still unread in it);
    /// returns the stream and the client's identity.
    pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: IO,
        opaque: bool,
    ) -> std::io::Result<(tokio_rustls::server::TlsStream<IO>, Option<SpiffeId>)> {
        let config = if opaque {
            &self.server_opaque
        } else {
            &self.server
        };
        let tls = tokio_rustls::TlsAcceptor::from(config.clone())
            .accept(io)
            .await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| strait_api::identity::of_certificate(c));
        Ok((tls, peer))
    }
}

/// A handshake error as the caller should see it: a name mismatch is the
/// wrong identity; anything else is a failed handshake.
fn classify(e: std::io::Error, expected: &SpiffeId) -> ConnectError {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { presented, .. },
        )) => ConnectError::IdentityMismatch {
            expected: expected.to_string(),
            reason: format!("its certificate names {}", presented.join(", ")),
        },
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)) => {
            ConnectError::IdentityMismatch {
                expected: expected.to_string(),
                reason: "its certificate names another identity".into(),
            }
        }
        _ => ConnectError::Handshake(e.to_string()),
    }
}

#[cfg(test)]
mod alpn_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_names_table() {
        for (name, mesh) in [
            ("web.shop.serviceaccount.identity.cluster.local", true),
            ("web.v2.shop.serviceaccount.identity.cluster.local", true),
            ("web.shop.serviceaccount.identity.other.local", false),
            ("serviceaccount.identity.cluster.local", false),
            ("xserviceaccount.identity.cluster.local", false),
            ("web.shop.svc.cluster.local", false),
            ("example.com", false),
        ] {
            assert_eq!(is_mesh_name(name, "cluster.local"), mesh, "{name}");
        }
    }
}
