//! Building and running the controller from its [`Config`]: `main` parses
//! flags into one and calls [`run`].
//!
//! In Kubernetes mode the controller watches the API server into the
//! config store, takes part in leader election (only the Lease holder
//! writes status and keeps the webhook's certificate), and serves the
//! injection webhook and the identity service; in local mode a directory is the only source. Both
//! serve the config stream and the health port.

use crate::config::shared::Shared;
use crate::config::{accept, local, server};
use crate::{health, k8s, webhook};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use strait_api::wire::config_discovery_server::ConfigDiscoveryServer;

/// How long the webhook and identity service keep answering after SIGTERM
/// (readiness fails meanwhile), so that no call reaches a closed socket
/// while the pod's endpoints are being removed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything the controller needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica's name (shown by `strait proxy-status`; the Lease holder).
    pub replica: String,
    /// The config stream listener.
    pub config_addr: SocketAddr,
    /// The health and metrics listener.
    pub health_addr: SocketAddr,
    /// Where objects come from.
    pub source: Source,
    /// What every proxy is told besides its objects.
    pub mesh: strait_api::wire::MeshSettings,
}

/// Where the controller's objects come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Directories of manifests (no Kubernetes), and the development CA.
    Local {
        /// The directories.
        dirs: Vec<PathBuf>,
        /// The identity service's development CA.
        dev_ca: Box<DevCa>,
    },
    /// The Kubernetes API server (from the kubeconfig or the pod's account).
    Kubernetes(Box<Kubernetes>),
}

/// Local mode's identity service: a CA made at start that signs what
/// proxies declare ([`crate::identity::serve_local`]).
#[derive(Debug, Clone)]
pub struct DevCa {
    /// Its listener, trust domain and certificate lifetime.
    pub identity: crate::identity::Settings,
    /// Where its root is written.
    pub roots_file: PathBuf,
    /// An anchor to sign with instead of a new one (`tls.crt`, `tls.key`,
    /// `ca.crt` in this directory).
    pub anchor_dir: Option<PathBuf>,
}

/// What Kubernetes mode adds.
#[derive(Debug, Clone)]
pub struct Kubernetes {
    /// The leader-election Lease's name (in the webhook target's namespace).
    pub lease_name: String,
    /// The injection webhook's listener.
    pub webhook_addr: SocketAddr,
    /// The webhook's Secret, Service and configuration.
    pub webhook: webhook::reconcile::Target,
    /// What injected pods get.
    pub inject: strait_api::inject::Settings,
    /// The controller's own Deployment, owner of its Lease and Secrets.
    pub owner_deployment: Option<String>,
    /// The identity service.
    pub identity: crate::identity::Settings,
}

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Kubernetes client could be built.
    #[error(
        "connecting to Kubernetes (set KUBECONFIG, run in a cluster, or pass --local DIR): {0}"
    )]
    Kube(#[from] kube::Error),
    /// The config stream's address could not be bound.
    #[error("binding the config stream on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config stream server failed.
    #[error("config stream server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), Error> {
    let trust_domain = match &config.source {
        Source::Local { dev_ca, .. } => dev_ca.identity.trust_domain.clone(),
        Source::Kubernetes(k) => k.identity.trust_domain.clone(),
    };
    let shared = Shared::new(&config.replica, &trust_domain, config.mesh);
    // Fires on SIGTERM or SIGINT: the leader releases its Lease, the
    // config stream stops.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let resolver = Arc::new(webhook::tls::Resolver::default());
    let local_mode = matches!(config.source, Source::Local { .. });
    // One crypto provider for every TLS user in the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let serving = Arc::new(crate::identity::serving::Serving::default());
    let leader_task = match config.source {
        Source::Local { dirs, dev_ca } => {
            drop(tokio::spawn(local::watch(dirs, shared.clone())));
            tokio::spawn(crate::identity::serve_local(
                dev_ca.identity,
                dev_ca.roots_file,
                dev_ca.anchor_dir,
                serving.clone(),
                shared.metrics.clone(),
            ));
            None
        }
        Source::Kubernetes(k) => Some(
            start_kubernetes(
                *k,
                &config.replica,
                &shared,
                (&resolver, &serving),
                stop_rx.clone(),
            )
            .await?,
        ),
    };
    let stopping_since: Arc<std::sync::OnceLock<tokio::time::Instant>> = Arc::default();
    serve_health(
        config.health_addr,
        &shared,
        &resolver,
        local_mode,
        stopping_since.clone(),
    );
    tokio::spawn(shared.clone().publish_loop());
    let listener = tokio::net::TcpListener::bind(config.config_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.config_addr,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(config.config_addr);
    tracing::info!(addr = %bound, replica = %config.replica, "config stream listening");
    let incoming = accept::talking(listener, accept::FIRST_BYTES, Some(serving.config.clone()));
    let mut stopping = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .add_service(ConfigDiscoveryServer::new(server::Server(shared)))
        .serve_with_incoming_shutdown(incoming, {
            let stopping_since = stopping_since.clone();
            async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                let _ = stopping_since.set(tokio::time::Instant::now());
                let _ = stop_tx.send(true);
            }
        });
    // Streams are long-lived and a graceful stop waits for them all: give
    // them a moment, then close them (proxies reconnect to another replica
    // and serve their last config meanwhile).
    tokio::select! {
        result = server => result?,
        _ = async {
            let _ = stopping.changed().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        } => tracing::info!("closing the config streams still open"),
    }
    // Let the leader hand its Lease over before the process ends.
    if let Some(task) = leader_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // The webhook and identity service keep serving a while after SIGTERM:
    // the pod leaves its Services' endpoints when it starts terminating,
    // but kube-proxy and the API server take a moment to stop sending, and
    // a webhook call that finds nobody admits the pod without the proxy.
    if let Some(since) = stopping_since.get() {
        tokio::time::sleep_until(*since + STOP_GRACE).await;
    }
    Ok(())
}

/// Starts the watchers, leader election, status writer, webhook
/// certificate keeper and the webhook; returns the leader task, which
/// releases the Lease when `stop` fires.
async fn start_kubernetes(
    k: Kubernetes,
    replica: &str,
    shared: &Arc<Shared>,
    (resolver, serving): (
        &Arc<webhook::tls::Resolver>,
        &Arc<crate::identity::serving::Serving>,
    ),
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let client = kube::Client::try_default().await?;
    let namespace = k.webhook.namespace.clone();
    let leading = Arc::new(AtomicBool::new(false));
    tokio::spawn(k8s::watch::run(client.clone(), shared.clone()));
    let leader = tokio::spawn(k8s::leader::run(
        client.clone(),
        namespace.clone(),
        k.lease_name.clone(),
        replica.to_string(),
        leading.clone(),
        stop,
    ));
    tokio::spawn(k8s::status::run(
        client.clone(),
        shared.clone(),
        leading.clone(),
    ));
    tokio::spawn(crate::identity::serve(
        client.clone(),
        namespace.clone(),
        k.owner_deployment.clone(),
        k.identity,
        serving.clone(),
        shared.metrics.clone(),
    ));
    let secret = k.webhook.secret.clone();
    tokio::spawn(webhook::reconcile::run(
        client.clone(),
        k.webhook,
        resolver.clone(),
        leading,
    ));
    if let Some(d) = k.owner_deployment {
        tokio::spawn(k8s::owner::run(
            client.clone(),
            namespace,
            d,
            k.lease_name,
            secret,
        ));
    }
    let admit = Arc::new(webhook::server::Admit {
        client: Some(client),
        settings: k.inject,
        roots: Some(serving.clone()),
    });
    let (addr, resolver) = (k.webhook_addr, resolver.clone());
    tokio::spawn(async move {
        if let Err(e) = webhook::server::serve(addr, resolver, admit).await {
            tracing::error!(%addr, "injection webhook stopped: {e}");
        }
    });
    Ok(leader)
}

/// `/live`, `/ready` (initial lists loaded; in Kubernetes mode also a
/// webhook certificate) and `/metrics` on the health port.
fn serve_health(
    addr: SocketAddr,
    shared: &Arc<Shared>,
    resolver: &Arc<webhook::tls::Resolver>,
    local_mode: bool,
    stopping_since: Arc<std::sync::OnceLock<tokio::time::Instant>>,
) {
    let ready: health::Readiness = {
        let (shared, resolver) = (shared.clone(), resolver.clone());
        Arc::new(move || {
            if stopping_since.get().is_some() {
                Some("shutting down".into())
            } else if !shared.synced() {
                Some("the initial lists are still loading".into())
            } else if !local_mode && !resolver.ready() {
                Some("the webhook has no certificate yet".into())
            } else {
                None
            }
        })
    };
    let gauges: health::Gauges = {
        let shared = shared.clone();
        Arc::new(move || {
            let s = shared.status();
            let counters = shared.metrics.encode();
            format!(
                "# HELP strait_controller_proxies_connected Proxies holding a config stream to this replica.\n\
                 # TYPE strait_controller_proxies_connected gauge\n\
                 strait_controller_proxies_connected {}\n\
                 # HELP strait_controller_config_version The newest config version this replica published.\n\
                 # TYPE strait_controller_config_version gauge\n\
                 strait_controller_config_version {}\n{counters}",
                s.proxies.len(),
                s.latest_version
            )
        })
    };
    tokio::spawn(async move {
        if let Err(e) = health::serve(addr, ready, gauges).await {
            tracing::error!(%addr, "health listener stopped: {e}");
        }
    });
}

/// SIGTERM (what Kubernetes sends) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
