//! The controller's own certificate, for the identity service (8080) and
//! the config stream (8086): issued by the controller's signer for its own
//! workload identity, renewed at half its life and whenever the anchor
//! changes, and swapped into the two TLS configurations in place.
//!
//! * 8080 has no client authentication: a proxy asks for its first
//!   certificate there, and checks the controller against the roots it was
//!   given.
//! * 8086 asks for a client certificate chained to the mesh's roots but
//!   does not require one: a proxy presents its own, which proves who it
//!   is; tools (`strait proxy-status`, `strait explain`) have none.

use super::ca::Signer;
use arc_swap::{ArcSwap, ArcSwapOption};
use rcgen::KeyPair;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use strait_api::identity::SpiffeId;

/// The TLS configurations the two listeners serve (none until the first
/// certificate is issued: until then they serve plaintext only).
#[derive(Debug, Default)]
pub struct Serving {
    /// The identity service's.
    pub identity: Arc<ArcSwapOption<ServerConfig>>,
    /// The config stream's.
    pub config: Arc<ArcSwapOption<ServerConfig>>,
    /// The roots the controller's certificate chains to (PEM): what the
    /// injector gives proxies to check the controller with.
    pub roots: ArcSwapOption<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Both configurations for a chain, its key and the roots (PEM).
pub fn configs(
    chain: &str,
    key: &str,
    roots_pem: &str,
) -> Result<(ServerConfig, ServerConfig), String> {
    let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("key: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for r in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots
            .add(r.map_err(|e| format!("roots: {e}"))?)
            .map_err(|e| format!("roots: {e}"))?;
    }
    let tls13 = &[&rustls::version::TLS13];
    let identity = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(tls13)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| e.to_string())?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| e.to_string())?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(tls13)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    // The config stream is gRPC: HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    let mut identity = identity;
    identity.alpn_protocols = vec![b"h2".to_vec()];
    Ok((identity, config))
}

/// Issues the controller a certificate for `id` from `signer`, and serves
/// it; returns its expiry (Unix seconds).
pub fn issue(
    serving: &Serving,
    signer: &Signer,
    id: &SpiffeId,
    lifetime: time::Duration,
) -> Result<i64, String> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let issued = signer
        .sign(&key, id, time::OffsetDateTime::now_utc(), lifetime)
        .map_err(|e| e.to_string())?;
    let (identity, config) = configs(&issued.chain, &key.serialize_pem(), &issued.roots)?;
    serving.identity.store(Some(Arc::new(identity)));
    serving.config.store(Some(Arc::new(config)));
    serving.roots.store(Some(Arc::new(issued.roots)));
    Ok(issued.not_after)
}

/// Keeps the controller's certificate fresh for as long as the process
/// runs: issued now, again at half its life, and at once when the signer
/// (the anchor) changes.
pub async fn keep(
    serving: Arc<Serving>,
    signer: Arc<ArcSwap<Signer>>,
    id: SpiffeId,
    lifetime: time::Duration,
) {
    let mut issued_by: Option<Arc<Signer>> = None;
    let mut renew_at = tokio::time::Instant::now();
    loop {
        let current = signer.load_full();
        let changed = issued_by.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &current));
        if changed || tokio::time::Instant::now() >= renew_at {
            match issue(&serving, &current, &id, lifetime) {
                Ok(not_after) => {
                    let life =
                        (not_after - time::OffsetDateTime::now_utc().unix_timestamp()).max(2);
                    renew_at = tokio::time::Instant::now() + Duration::from_secs(life as u64 / 2);
                    issued_by = Some(current);
                    tracing::info!(identity = %id, not_after, "controller certificate issued (identity service and config stream serve TLS)");
                }
                Err(e) => tracing::warn!(identity = %id, "controller certificate not issued: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
