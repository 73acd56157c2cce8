//! `strait-controller`: flags, logging, and wiring the config server to its
//! source of objects.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

/// mimalloc rather than glibc's malloc: with a thousand long-lived streams
/// the controller's memory is many small buffers that come and go, and
/// glibc's per-thread arenas kept far more of it resident
/// (docs/benchmarks.md, "Control plane at scale").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use strait_api::wire::config_discovery_server::ConfigDiscoveryServer;
use strait_control_plane::config::{local, server};
use strait_control_plane::{health, k8s, webhook};

/// Strait's control plane.
#[derive(Parser, Debug)]
#[command(name = "strait-controller", version, about)]
struct Args {
    /// Serve the objects in a directory of manifests (no Kubernetes;
    /// repeatable, or comma-separated: every directory's files together).
    #[arg(long, env = "STRAIT_LOCAL", value_delimiter = ',')]
    local: Vec<PathBuf>,
    /// Config stream listener (gRPC).
    #[arg(long, env = "STRAIT_CONFIG_ADDR", default_value = "0.0.0.0:8086")]
    config_addr: SocketAddr,
    /// This replica's name (shown by `strait proxy-status`; the Lease holder).
    #[arg(long, env = "POD_NAME", default_value = "strait-controller")]
    replica: String,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "strait-system")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "strait-controller")]
    lease_name: String,
    /// Log filter.
    #[arg(long, env = "STRAIT_LOG", default_value = "info")]
    log: String,
    /// Health and metrics listener: /live, /ready, /metrics.
    #[arg(long, env = "STRAIT_HEALTH_ADDR", default_value = "0.0.0.0:9990")]
    health_addr: SocketAddr,
    /// Injection webhook listener (HTTPS; Kubernetes mode only).
    #[arg(long, env = "STRAIT_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    /// The MutatingWebhookConfiguration whose caBundle the controller keeps.
    #[arg(
        long,
        env = "STRAIT_WEBHOOK_CONFIGURATION",
        default_value = "strait-webhook"
    )]
    webhook_configuration: String,
    /// The webhook's Service (its DNS names go into the serving certificate).
    #[arg(long, env = "STRAIT_WEBHOOK_SERVICE", default_value = "strait-webhook")]
    webhook_service: String,
    /// The Secret that keeps the webhook's CA and serving certificate.
    #[arg(
        long,
        env = "STRAIT_WEBHOOK_SECRET",
        default_value = "strait-webhook-tls"
    )]
    webhook_secret: String,
    /// The proxy image injected pods run.
    #[arg(long, env = "STRAIT_PROXY_IMAGE", default_value = concat!("docker.io/strait/strait-proxy:", env!("CARGO_PKG_VERSION")))]
    proxy_image: String,
    /// Pull policy of the proxy image.
    #[arg(
        long,
        env = "STRAIT_PROXY_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    proxy_image_pull_policy: String,
    /// The config stream address injected proxies follow (default: this
    /// controller's Service, strait-controller.<namespace>.svc.cluster.local:8086).
    #[arg(long, env = "STRAIT_INJECT_CONTROL_PLANE")]
    inject_control_plane: Option<String>,
    /// The controller's own Deployment: the Lease and the webhook's Secret
    /// are made its dependents, so deleting it (helm uninstall) removes them.
    #[arg(long, env = "STRAIT_OWNER_DEPLOYMENT")]
    owner_deployment: Option<String>,
    /// Audience of the ServiceAccount token projected into injected pods.
    #[arg(
        long,
        env = "STRAIT_IDENTITY_AUDIENCE",
        default_value = "strait.dev/identity"
    )]
    identity_audience: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let shared = server::Shared::new(&args.replica);
    // Fires on SIGTERM or SIGINT: the leader releases its Lease, the
    // config stream stops.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut leader_task = None;
    let resolver = Arc::new(webhook::tls::Resolver::default());
    let local_mode = !args.local.is_empty();
    if local_mode {
        drop(tokio::spawn(local::watch(
            args.local.clone(),
            shared.clone(),
        )));
    } else {
        // One crypto provider for every TLS user in the process.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = kube::Client::try_default().await.context(
            "connecting to Kubernetes (set KUBECONFIG, run in a cluster, or pass --local DIR)",
        )?;
        let leading = Arc::new(AtomicBool::new(false));
        tokio::spawn(k8s::watch::run(client.clone(), shared.clone()));
        leader_task = Some(tokio::spawn(k8s::leader::run(
            client.clone(),
            args.lease_namespace.clone(),
            args.lease_name.clone(),
            args.replica.clone(),
            leading.clone(),
            stop_rx.clone(),
        )));
        tokio::spawn(k8s::status::run(
            client.clone(),
            shared.clone(),
            leading.clone(),
        ));
        let target = webhook::reconcile::Target {
            namespace: args.lease_namespace.clone(),
            secret: args.webhook_secret.clone(),
            service: args.webhook_service.clone(),
            configuration: args.webhook_configuration.clone(),
        };
        tokio::spawn(webhook::reconcile::run(
            client.clone(),
            target,
            resolver.clone(),
            leading,
        ));
        let settings = strait_api::inject::Settings {
            image: args.proxy_image.clone(),
            image_pull_policy: args.proxy_image_pull_policy.clone(),
            control_plane: args.inject_control_plane.clone().unwrap_or_else(|| {
                format!(
                    "strait-controller.{}.svc.cluster.local:8086",
                    args.lease_namespace
                )
            }),
            version: env!("CARGO_PKG_VERSION").into(),
            identity_audience: args.identity_audience.clone(),
            defaults: strait_api::inject::knobs::Knobs::default(),
        };
        if let Some(d) = args.owner_deployment.clone() {
            tokio::spawn(k8s::owner::run(
                client.clone(),
                args.lease_namespace.clone(),
                d,
                args.lease_name.clone(),
                args.webhook_secret.clone(),
            ));
        }
        let admit = Arc::new(webhook::server::Admit {
            client: Some(client),
            settings,
        });
        let (addr, resolver) = (args.webhook_addr, resolver.clone());
        tokio::spawn(async move {
            if let Err(e) = webhook::server::serve(addr, resolver, admit).await {
                tracing::error!(%addr, "injection webhook stopped: {e}");
            }
        });
    }
    let ready: health::Readiness = {
        let (shared, resolver) = (shared.clone(), resolver.clone());
        Arc::new(move || {
            if !shared.synced() {
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
            format!(
                "# HELP strait_controller_proxies_connected Proxies holding a config stream to this replica.\n\
                 # TYPE strait_controller_proxies_connected gauge\n\
                 strait_controller_proxies_connected {}\n\
                 # HELP strait_controller_config_version The newest config version this replica published.\n\
                 # TYPE strait_controller_config_version gauge\n\
                 strait_controller_config_version {}\n",
                s.proxies.len(),
                s.latest_version
            )
        })
    };
    let health_addr = args.health_addr;
    tokio::spawn(async move {
        if let Err(e) = health::serve(health_addr, ready, gauges).await {
            tracing::error!(addr = %health_addr, "health listener stopped: {e}");
        }
    });
    tokio::spawn(shared.clone().publish_loop());
    let listener = tokio::net::TcpListener::bind(args.config_addr)
        .await
        .with_context(|| format!("binding the config stream on {}", args.config_addr))?;
    tracing::info!(addr = %listener.local_addr()?, replica = %args.replica, "config stream listening");
    let incoming = strait_control_plane::config::accept::talking(
        listener,
        strait_control_plane::config::accept::FIRST_BYTES,
    );
    let mut stopping = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
        .add_service(ConfigDiscoveryServer::new(server::Server(shared)))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
    // Streams are long-lived and a graceful stop waits for them all: give
    // them a moment, then close them (proxies reconnect to another replica
    // and serve their last config meanwhile).
    tokio::select! {
        result = server => result.context("config stream server")?,
        _ = async {
            let _ = stopping.changed().await;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        } => tracing::info!("closing the config streams still open"),
    }
    // Let the leader hand its Lease over before the process ends.
    if let Some(task) = leader_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    Ok(())
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
