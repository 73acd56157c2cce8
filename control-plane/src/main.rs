//! `strait-controller`: flags, logging, and wiring the config server to its
//! source of objects.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use strait_api::wire::config_discovery_server::ConfigDiscoveryServer;
use strait_control_plane::config::{local, server};

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
    /// This replica's name (shown by `strait proxy-status`).
    #[arg(long, env = "POD_NAME", default_value = "strait-controller")]
    replica: String,
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
    let Some(dir) = args.local.clone() else {
        anyhow::bail!("no source of objects: pass --local DIR");
    };
    tokio::spawn(local::watch(dir, shared.clone()));
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
