//! The proxy's own certificate: a fresh ECDSA P-256 key, kept only in
//! memory, and a certificate for this pod's ServiceAccount identity from the
//! control plane's identity service (proven with the projected token the
//! injector mounts). Renewed at 70 % of its life; while renewal fails the
//! proxy keeps its current certificate, retries with backoff, logs the
//! reason and counts the failure (`strait_identity_renewals_total`).
//!
//! Each certificate comes with the mesh TLS configuration built from it
//! ([`crate::tls::MeshTls`]), swapped in whole: new connections use the
//! new certificate and roots, open ones keep theirs.

use crate::metrics::Metrics;
use crate::tls::MeshTls;
use rcgen::{CertificateParams, KeyPair, SanType};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strait_api::identity::SpiffeId;
use strait_api::identity_wire::CertifyRequest;
use strait_api::identity_wire::identity_client::IdentityClient;

/// Where the identity service is and who this proxy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The identity service, `HOST:PORT`.
    pub addr: String,
    /// The projected ServiceAccount token (re-read at every request: the
    /// kubelet rotates it).
    pub token_file: PathBuf,
    /// The identity to ask for.
    pub id: SpiffeId,
    /// How to check the identity service (`None`: plaintext).
    pub tls: Option<crate::control::ControlPlaneTls>,
}

// The certificate and the slot it lives in are the TLS layer's
// (`crate::tls`): the pools and the control-plane channel read them
// without depending on how they are obtained here.
pub use crate::tls::{Certified, Current};

/// Why a request for a certificate failed.
#[derive(Debug, thiserror::Error)]
enum CertifyError {
    #[error("reading the token {0}: {1}")]
    Token(PathBuf, std::io::Error),
    #[error("making a key or CSR: {0}")]
    Csr(#[from] rcgen::Error),
    #[error("connecting to the identity service {0}: {1}")]
    Connect(String, String),
    #[error("the identity service refused: {0}")]
    Refused(String),
    #[error("the issued certificate is unusable: {0}")]
    Unusable(#[from] crate::tls::TlsError),
    #[error("the identity service granted {0:?}, not a workload identity")]
    Granted(String),
}

/// When to renew a certificate issued at `issued` that expires at
/// `not_after` (Unix seconds): at 70 % of its life.
pub fn renew_at(issued: i64, not_after: i64) -> i64 {
    issued + (not_after - issued).max(0) * 7 / 10
}

/// The wait before retry `attempt` (1, 2, …) after a failure: doubling from
/// one second up to 30, and never past `deadline` seconds from now, so a
/// certificate about to expire is retried often.
pub fn backoff(attempt: u32, deadline: i64) -> Duration {
    let doubling = 1u64 << attempt.saturating_sub(1).min(5);
    let secs = doubling.min(30).min(deadline.max(1) as u64);
    Duration::from_secs(secs)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn certify(s: &Settings, current: Option<Arc<Certified>>) -> Result<Certified, CertifyError> {
    let token = match tokio::fs::read_to_string(&s.token_file).await {
        Ok(t) => t,
        // No token outside Kubernetes: a `--local` controller's development
        // CA needs none, and a real identity service refuses an empty one
        // with its reason.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(CertifyError::Token(s.token_file.clone(), e)),
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(s.id.to_string().try_into()?)];
    let csr_pem = params.serialize_request(&key)?.pem()?;
    let connect = |e: &dyn std::fmt::Display| CertifyError::Connect(s.addr.clone(), e.to_string());
    // Renewals check the controller with the bundle the last certificate
    // came with (a rotated anchor arrives that way).
    let channel = crate::control::channel(&s.addr, s.tls.as_ref(), current, |e| {
        e.connect_timeout(crate::control::CONNECT_TIMEOUT)
            .timeout(Duration::from_secs(15))
    })
    .await
    .map_err(|e| connect(&e))?;
    let mut client = IdentityClient::new(channel);
    let resp = client
        .certify(CertifyRequest {
            token: token.trim().to_owned(),
            csr_pem,
        })
        .await
        .map_err(|e| CertifyError::Refused(format!("{:?}: {}", e.code(), e.message())))?
        .into_inner();
    let id = SpiffeId::parse(&resp.identity).map_err(|_| CertifyError::Granted(resp.identity))?;
    let key = key.serialize_pem();
    let tls = MeshTls::new(
        id,
        &resp.certificate_chain_pem,
        &key,
        &resp.trust_bundle_pem,
    )?;
    Ok(Certified {
        id: tls.id.to_string(),
        chain: resp.certificate_chain_pem,
        key,
        roots: resp.trust_bundle_pem,
        not_after: resp.not_after,
        verified: resp.verified,
        tls: Arc::new(tls),
    })
}

/// Gets a certificate, then renews it for the life of the process.
pub async fn run(s: Settings, current: Arc<Current>, metrics: Arc<Metrics>) {
    let mut failures = 0u32;
    loop {
        let wait = match certify(&s, current.load_full()).await {
            Ok(c) => {
                failures = 0;
                let issued = now();
                let next = renew_at(issued, c.not_after);
                tracing::info!(identity = %c.id, verified = c.verified, not_after = c.not_after, renew_in_s = next - issued, "certificate issued");
                metrics.certified(c.not_after);
                current.store(Some(Arc::new(c)));
                Duration::from_secs((next - issued).max(1) as u64)
            }
            Err(e) => {
                failures += 1;
                metrics.certification_failed();
                let left = current
                    .load()
                    .as_ref()
                    .map(|c| c.not_after - now())
                    .unwrap_or(0);
                let kept = if left > 0 {
                    format!("keeping the current certificate ({left} s left)")
                } else {
                    "no valid certificate".to_owned()
                };
                tracing::warn!(identity = %s.id, attempt = failures, "certificate renewal failed, {kept}: {e}");
                backoff(failures, left / 2)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_seventy_percent() {
        for (issued, not_after, want) in [
            (0, 86_400, 60_480),
            (1_000, 1_010, 1_007),
            (1_000, 1_000, 1_000),
            (1_000, 900, 1_000),
        ] {
            assert_eq!(renew_at(issued, not_after), want, "{issued}..{not_after}");
        }
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_respects_the_deadline() {
        let secs: Vec<u64> = (1..=8).map(|a| backoff(a, 3600).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(7, 5).as_secs(), 5, "expiring soon: retried sooner");
        assert_eq!(backoff(7, 0).as_secs(), 1, "expired: every second");
    }
}
