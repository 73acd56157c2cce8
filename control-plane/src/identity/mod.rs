//! Workload identity: the certificates proxies prove who they are with.
//!
//! * [`ca`]: the trust anchor (root and issuer) and signing workload
//!   certificates (pure, the time given);
//! * [`anchor`]: keeping the anchor in a Secret, or reading the user's;
//! * `strait_api::identity::csr`: what a proxy's CSR may ask for (pure);
//! * [`review`]: asking the API server who a token belongs to;
//! * [`service`]: the gRPC service proxies call (port 8080);
//! * [`serving`]: the controller's own certificate, which the identity
//!   service and the config stream serve TLS with.

pub mod anchor;
pub mod ca;
pub mod review;
pub mod service;
pub mod serving;

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use strait_api::identity::SpiffeId;
use strait_api::identity_wire::identity_server::IdentityServer;

/// What the identity service is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its listener.
    pub addr: SocketAddr,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// The Secret holding the trust anchor (created when missing, if it
    /// is [`DEFAULT_SECRET`]).
    pub secret: String,
    /// The audience proxies' tokens must carry.
    pub audience: String,
    /// How long workload certificates live (24 h by default).
    pub lifetime: std::time::Duration,
    /// The controller's own identity (its namespace and ServiceAccount),
    /// which its TLS listeners prove to proxies.
    pub controller: SpiffeId,
}

/// The chart's default trust-anchor Secret: the only name the controller
/// creates a Secret under. A Secret the user names (cert-manager's, say) is
/// waited for, never created, so a late cert-manager does not find a root
/// the controller made in its place.
pub const DEFAULT_SECRET: &str = "strait-identity-issuer";

/// How often the anchor Secret is read again (cert-manager renews issuers
/// in place; a user may rotate the roots).
const RELOAD: Duration = Duration::from_secs(60);

/// Concurrent certificate requests (each a TokenReview against the API
/// server) per connection; more wait their turn.
const PER_CONNECTION: usize = 8;

/// Largest request message (a token and a CSR are a few KiB).
const MAX_MESSAGE: usize = 64 * 1024;

async fn signer(
    client: &kube::Client,
    namespace: &str,
    owner: Option<&str>,
    s: &Settings,
) -> Result<(ca::AnchorPem, ca::Signer), String> {
    let create = s.secret == DEFAULT_SECRET;
    let anchor =
        anchor::load_or_create(client, namespace, &s.secret, &s.trust_domain, owner, create)
            .await
            .map_err(|e| e.to_string())?;
    let signer = ca::Signer::new(anchor.clone(), time::OffsetDateTime::now_utc())
        .map_err(|e| e.to_string())?;
    Ok((anchor, signer))
}

/// Loads (or creates) the trust anchor, then serves the identity service
/// until the process ends. Retries while the API server cannot be reached
/// or the anchor does not hold together (a user fixing their Secret does
/// not need to restart the controller), and reads the anchor again every
/// minute, so a renewed issuer or rotated roots are used without a restart.
pub async fn serve(
    client: kube::Client,
    namespace: String,
    owner: Option<String>,
    s: Settings,
    tls: Arc<serving::Serving>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let (mut current, first) = loop {
        match signer(&client, &namespace, owner.as_deref(), &s).await {
            Ok(ok) => break ok,
            Err(e) => {
                tracing::warn!(secret = %s.secret, "identity service waiting for its trust anchor: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let signer = Arc::new(ArcSwap::from_pointee(first));
    {
        let (client, namespace, owner, s, signer) = (
            client.clone(),
            namespace.clone(),
            owner.clone(),
            s.clone(),
            signer.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD).await;
                match signer_if_changed(&client, &namespace, owner.as_deref(), &s, &current).await {
                    Ok(Some((anchor, fresh))) => {
                        tracing::info!(secret = %s.secret, "trust anchor changed; signing with the new one");
                        signer.store(Arc::new(fresh));
                        current = anchor;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(secret = %s.secret, "trust anchor not reloaded, the current one stays in use: {e}")
                    }
                }
            }
        });
    }
    let verify = service::Verify::Token {
        client,
        audience: s.audience.clone(),
    };
    run(s, verify, signer, tls, metrics).await
}

/// A trust anchor from files laid out as the Secret is: `tls.crt`,
/// `tls.key` (the issuer) and `ca.crt` (the roots) in `dir`.
fn read_anchor(dir: &std::path::Path) -> Result<ca::AnchorPem, ca::CaError> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| ca::CaError::Anchor(format!("{}: {e}", dir.join(name).display())))
    };
    Ok(ca::AnchorPem {
        issuer_cert: read("tls.crt")?,
        issuer_key: read("tls.key")?,
        roots: read("ca.crt")?,
    })
}

/// `strait-controller --local`: a development CA made at start (or read
/// from `anchor_dir`) (its root
/// written to `roots_file`, which local proxies trust), signing the
/// identity each proxy declares. Nothing proves who a local proxy is; the
/// point is that local meshes run the same mTLS as a cluster's.
pub async fn serve_local(
    s: Settings,
    roots_file: std::path::PathBuf,
    anchor_dir: Option<std::path::PathBuf>,
    tls: Arc<serving::Serving>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let now = time::OffsetDateTime::now_utc();
    let anchor = match &anchor_dir {
        Some(dir) => read_anchor(dir),
        None => ca::new_anchor(now, &s.trust_domain),
    };
    let signer = match anchor.and_then(|anchor| ca::Signer::new(anchor, now)) {
        Ok(signer) => signer,
        Err(e) => {
            tracing::error!("development CA: {e}");
            return;
        }
    };
    if let Err(e) = std::fs::write(&roots_file, signer.roots()) {
        tracing::error!(file = %roots_file.display(), "cannot write the development CA's root: {e}");
        return;
    }
    tracing::info!(
        roots = %roots_file.display(),
        "development CA: signs the identity each proxy declares (unverified); its root is in this file"
    );
    let signer = Arc::new(ArcSwap::from_pointee(signer));
    run(s, service::Verify::Declared, signer, tls, metrics).await
}

/// Keeps the controller's own certificate fresh and serves the identity
/// service with `verify`, until the process ends.
async fn run(
    s: Settings,
    verify: service::Verify,
    signer: Arc<ArcSwap<ca::Signer>>,
    tls: Arc<serving::Serving>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let lifetime = time::Duration::try_from(s.lifetime).unwrap_or(ca::WORKLOAD_LIFETIME);
    tokio::spawn(serving::keep(
        tls.clone(),
        signer.clone(),
        s.controller.clone(),
        lifetime,
    ));
    let service = service::Service {
        verify,
        signer,
        trust_domain: s.trust_domain,
        lifetime,
        metrics,
    };
    listen(s.addr, service, &tls).await
}

/// Serves the identity service on `addr` until the process ends:
/// plaintext, and TLS once the controller has its certificate.
async fn listen(addr: SocketAddr, service: service::Service, tls: &serving::Serving) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, "identity service cannot listen: {e}");
            return;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, trust_domain = %service.trust_domain, "identity service listening");
    let incoming = crate::config::accept::talking(
        listener,
        crate::config::accept::FIRST_BYTES,
        Some(tls.identity.clone()),
    );
    if let Err(e) = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(PER_CONNECTION)
        .add_service(IdentityServer::new(service).max_decoding_message_size(MAX_MESSAGE))
        .serve_with_incoming(incoming)
        .await
    {
        tracing::error!("identity service stopped: {e}");
    }
}

/// A new signer when the Secret holds another anchor than `current`.
async fn signer_if_changed(
    client: &kube::Client,
    namespace: &str,
    owner: Option<&str>,
    s: &Settings,
    current: &ca::AnchorPem,
) -> Result<Option<(ca::AnchorPem, ca::Signer)>, String> {
    let (anchor, signer) = signer(client, namespace, owner, s).await?;
    Ok((anchor != *current).then_some((anchor, signer)))
}
