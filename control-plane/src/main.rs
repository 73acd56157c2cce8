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
use strait_control_plane::k8s;

/// Strait's control plane.
#[derive(Parser, Debug)]
#[command(name = "strait-controller", version, about)]
struct Args {
    /// Serve the objects in a directory of manifests (no Kubernetes).
    #[arg(long, env = "STRAIT_LOCAL")]
    local: Option<PathBuf>,
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
    match args.local.clone() {
        Some(dir) => drop(tokio::spawn(local::watch(dir, shared.clone()))),
        None => {
            // One crypto provider for every TLS user in the process.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let client = kube::Client::try_default().await.context(
                "connecting to Kubernetes (set KUBECONFIG, run in a cluster, or pass --local DIR)",
            )?;
            let leading = Arc::new(AtomicBool::new(false));
            tokio::spawn(k8s::watch::run(client.clone(), shared.clone()));
            tokio::spawn(k8s::leader::run(
                client.clone(),
                args.lease_namespace.clone(),
                args.lease_name.clone(),
                args.replica.clone(),
                leading.clone(),
            ));
            tokio::spawn(k8s::status::run(client, shared.clone(), leading));
        }
    }
    tokio::spawn(shared.clone().publish_loop());
    let listener = tokio::net::TcpListener::bind(args.config_addr)
        .await
        .with_context(|| format!("binding the config stream on {}", args.config_addr))?;
    tracing::info!(addr = %listener.local_addr()?, replica = %args.replica, "config stream listening");
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
        .add_service(ConfigDiscoveryServer::new(server::Server(shared)))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("config stream server")?;
    Ok(())
}
