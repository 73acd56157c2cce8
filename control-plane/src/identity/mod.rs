//! Workload identity: the certificates proxies prove who they are with.
//!
//! * [`ca`]: the trust anchor (root and issuer) and signing workload
//!   certificates (pure, the time given);
//! * [`anchor`]: keeping the anchor in a Secret, or reading the user's;
//! * [`csr`]: what a proxy's CSR may ask for (pure);
//! * [`review`]: asking the API server who a token belongs to;
//! * [`service`]: the gRPC service proxies call (port 8080).

pub mod anchor;
pub mod ca;
pub mod csr;
pub mod review;
pub mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use strait_api::identity_wire::identity_server::IdentityServer;

/// What the identity service is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its listener.
    pub addr: SocketAddr,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// The Secret holding the trust anchor (created when missing).
    pub secret: String,
    /// The audience proxies' tokens must carry.
    pub audience: String,
}

/// Loads (or creates) the trust anchor, then serves the identity service
/// until the process ends. Retries while the API server cannot be reached;
/// an anchor that does not parse is logged and retried (a user fixing
/// their Secret does not need to restart the controller).
pub async fn serve(client: kube::Client, namespace: String, owner: Option<String>, s: Settings) {
    let signer = loop {
        let anchor = anchor::load_or_create(
            &client,
            &namespace,
            &s.secret,
            &s.trust_domain,
            owner.as_deref(),
        )
        .await;
        match anchor
            .map_err(|e| e.to_string())
            .and_then(|a| ca::Signer::new(a).map_err(|e| e.to_string()))
        {
            Ok(signer) => break Arc::new(signer),
            Err(e) => {
                tracing::warn!(secret = %s.secret, "identity service waiting for its trust anchor: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let listener = match tokio::net::TcpListener::bind(s.addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %s.addr, "identity service cannot listen: {e}");
            return;
        }
    };
    tracing::info!(addr = %s.addr, trust_domain = %s.trust_domain, "identity service listening");
    let service = service::Service {
        client,
        signer,
        audience: s.audience,
        trust_domain: s.trust_domain,
    };
    let incoming = crate::config::accept::talking(listener, crate::config::accept::FIRST_BYTES);
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(service))
        .serve_with_incoming(incoming)
        .await
    {
        tracing::error!("identity service stopped: {e}");
    }
}
