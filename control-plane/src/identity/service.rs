//! The identity service (gRPC `strait.identity.v1.Identity`, port 8080): a
//! proxy sends its projected ServiceAccount token and a CSR; the token is
//! reviewed by the API server ([`super::review`]), the CSR checked against
//! the identity the token grants (`strait_api::identity::csr`), and a 24-hour
//! certificate signed ([`super::ca`]). Every refusal says why, to the proxy
//! and in the controller's log.
//!
//! `strait-controller --local` has no API server: it signs the identity
//! the CSR declares, and says so (`verified: false`).

use super::ca::Signer;
use super::review::{self, TokenError};
use arc_swap::ArcSwap;
use std::sync::Arc;
use strait_api::identity::SpiffeId;
use strait_api::identity::csr;
use strait_api::identity_wire::identity_server::Identity;
use strait_api::identity_wire::{CertifyRequest, CertifyResponse};
use tonic::{Request, Response, Status};

/// How the service learns who is asking.
pub enum Verify {
    /// TokenReview of the projected token, for this audience.
    Token {
        /// The API server.
        client: kube::Client,
        /// The audience tokens must carry.
        audience: String,
    },
    /// Nobody checks: the CSR's own identity is signed (local development).
    Declared,
}

/// What the service needs.
pub struct Service {
    /// How a caller's identity is known.
    pub verify: Verify,
    /// Signs the certificates (swapped when the anchor changes).
    pub signer: Arc<ArcSwap<Signer>>,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// How long certificates live.
    pub lifetime: time::Duration,
    /// `strait_controller_certificates_total`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A refusal's `result` and `reason` labels.
type Refusal = (&'static str, &'static str);

fn refused_csr(peer: &str, e: csr::CsrError) -> (Status, Refusal) {
    tracing::info!(%peer, "identity refused: {e}");
    match e {
        csr::CsrError::Identity { .. } => (
            Status::permission_denied(e.to_string()),
            ("refused", "csr-identity"),
        ),
        csr::CsrError::KeyType => (
            Status::invalid_argument(e.to_string()),
            ("refused", "csr-key-type"),
        ),
        csr::CsrError::Malformed(_) => (
            Status::invalid_argument(e.to_string()),
            ("refused", "csr-malformed"),
        ),
    }
}

impl Service {
    /// The identity to sign and the key to sign it over, or why not.
    async fn who(
        &self,
        peer: &str,
        req: &CertifyRequest,
    ) -> Result<(SpiffeId, rcgen::PublicKey, bool), (Status, Refusal)> {
        let (client, audience) = match &self.verify {
            Verify::Declared => {
                let (id, key) = csr::declared(&req.csr_pem, &self.trust_domain)
                    .map_err(|e| refused_csr(peer, e))?;
                return Ok((id, key, false));
            }
            Verify::Token { client, audience } => (client, audience),
        };
        let id = match review::review(client, &req.token, audience, &self.trust_domain).await {
            Ok(id) => id,
            Err(e @ TokenError::Unavailable(_)) => {
                tracing::warn!(%peer, "identity: {e}");
                return Err((
                    Status::unavailable(e.to_string()),
                    ("error", "token-review-unavailable"),
                ));
            }
            Err(e) => {
                tracing::info!(%peer, "identity refused: {e}");
                let reason = match e {
                    TokenError::NotServiceAccount(_) => "not-a-service-account",
                    _ => "token",
                };
                return Err((
                    Status::permission_denied(e.to_string()),
                    ("refused", reason),
                ));
            }
        };
        let key = csr::check(&req.csr_pem, &id).map_err(|e| refused_csr(peer, e))?;
        Ok((id, key, true))
    }
}

#[tonic::async_trait]
impl Identity for Service {
    async fn certify(
        &self,
        req: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let peer = req
            .extensions()
            .get::<crate::config::accept::PeerInfo>()
            .map(|p| p.addr())
            .unwrap_or_default();
        let req = req.into_inner();
        let (id, key, verified) = self.who(&peer, &req).await.map_err(|(status, why)| {
            self.metrics.certificate(Err(why));
            status
        })?;
        let issued = self
            .signer
            .load()
            .sign(&key, &id, time::OffsetDateTime::now_utc(), self.lifetime)
            .map_err(|e| {
                tracing::error!(identity = %id, "identity: cannot sign: {e}");
                self.metrics.certificate(Err(("error", "signing")));
                Status::internal(e.to_string())
            })?;
        self.metrics.certificate(Ok(()));
        tracing::debug!(%peer, identity = %id, verified, not_after = issued.not_after, "certificate issued");
        Ok(Response::new(CertifyResponse {
            certificate_chain_pem: issued.chain,
            trust_bundle_pem: issued.roots,
            not_after: issued.not_after,
            identity: id.to_string(),
            verified,
        }))
    }
}
