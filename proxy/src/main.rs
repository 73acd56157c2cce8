//! `strait-proxy` binary: flags, logging, runtime, and wiring the parts.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strait_proxy::{
    ClientLimits, Proxy, Settings, admin, drain::Drain, http::body_rate::MinRate,
    http::forward::Forwarders, listen, local, metrics, state,
};
use tokio::net::TcpListener;

/// Strait's data-plane proxy.
#[derive(Parser, Debug)]
#[command(
    name = "strait-proxy",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Read config from a directory of Kubernetes/Strait manifests and watch
    /// it (repeatable, or comma-separated: every directory's files together).
    #[arg(
        long,
        env = "STRAIT_LOCAL",
        conflicts_with = "control_plane",
        value_delimiter = ','
    )]
    local: Vec<PathBuf>,
    /// Follow the control plane's config stream at HOST:PORT.
    #[arg(long, env = "STRAIT_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// This pod's name (sent to the control plane).
    #[arg(long, env = "POD_NAME", default_value = "")]
    pod: String,
    /// This pod's service account (sent to the control plane).
    #[arg(long, env = "STRAIT_SERVICE_ACCOUNT", default_value = "default")]
    service_account: String,
    /// Outbound listener (iptables REDIRECT target for the app's outgoing TCP).
    #[arg(long, env = "STRAIT_OUTBOUND_ADDR", default_value = "127.0.0.1:4140")]
    outbound_addr: SocketAddr,
    /// Inbound listener (iptables REDIRECT target for incoming TCP).
    #[arg(long, env = "STRAIT_INBOUND_ADDR", default_value = "0.0.0.0:4143")]
    inbound_addr: SocketAddr,
    /// Admin listener: /metrics, /ready, /live, /config, /shutdown.
    #[arg(long, env = "STRAIT_ADMIN_ADDR", default_value = "0.0.0.0:4191")]
    admin_addr: SocketAddr,
    /// The pod's namespace; bare Service names in Host headers resolve here.
    #[arg(long, env = "STRAIT_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Ports carried as opaque TCP without protocol detection (comma-separated).
    #[arg(long, env = "STRAIT_OPAQUE_PORTS", value_delimiter = ',')]
    opaque_ports: Vec<u16>,
    /// How long to wait for a client's first bytes (e.g. 1s, 500ms).
    #[arg(long, env = "STRAIT_DETECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    detect_timeout: Duration,
    /// TCP connect timeout to endpoints.
    #[arg(long, env = "STRAIT_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Idle timeout of pooled upstream connections.
    #[arg(long, env = "STRAIT_IDLE_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Time for a complete HTTP/1 request head, including the wait for the
    /// next request on a kept-alive client connection.
    #[arg(long, env = "STRAIT_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// An HTTP/2 client connection with no request in flight this long is
    /// closed (near nginx's keepalive_timeout).
    #[arg(long, env = "STRAIT_CLIENT_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    client_idle_timeout: Duration,
    /// Minimum rate of request bodies in bytes/s after --body-grace (as
    /// Apache's mod_reqtimeout MinRate); gRPC streams exempt; 0 turns it off.
    #[arg(long, env = "STRAIT_BODY_MIN_RATE", default_value_t = 500)]
    body_min_rate: u64,
    /// How long a request body may keep the proxy waiting before the
    /// minimum rate counts.
    #[arg(long, env = "STRAIT_BODY_GRACE", default_value = "10s", value_parser = parse_duration)]
    body_grace: Duration,
    /// A client that reads nothing of what the proxy sends it for this long
    /// is disconnected (nginx's send_timeout).
    #[arg(long, env = "STRAIT_SEND_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    send_timeout: Duration,
    /// Grace period for in-flight work on SIGTERM or /shutdown.
    #[arg(long, env = "STRAIT_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Worker threads (default: one per core).
    #[arg(long, env = "STRAIT_WORKERS")]
    workers: Option<usize>,
    /// Log filter, e.g. `info` or `strait_proxy=debug`.
    #[arg(long, env = "STRAIT_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, env = "STRAIT_LOG_JSON")]
    log_json: bool,
    /// Write a JSON access-log line per HTTP request to stdout.
    #[arg(long, env = "STRAIT_ACCESS_LOG")]
    access_log: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Install the iptables rules that redirect the pod's TCP through the proxy.
    Init(InitArgs),
}

#[derive(clap::Args, Debug)]
struct InitArgs {
    /// The proxy's user id (its own traffic is not redirected).
    #[arg(long, default_value_t = 2102)]
    proxy_uid: u32,
    /// Inbound listener port.
    #[arg(long, default_value_t = 4143)]
    inbound_port: u16,
    /// Outbound listener port.
    #[arg(long, default_value_t = 4140)]
    outbound_port: u16,
    /// Incoming ports not redirected (comma-separated ports or a:b ranges).
    #[arg(long, value_delimiter = ',', default_value = "4191")]
    skip_inbound_ports: Vec<String>,
    /// Outgoing ports not redirected.
    #[arg(long, value_delimiter = ',')]
    skip_outbound_ports: Vec<String>,
    /// The iptables binary.
    #[arg(long, default_value = "iptables")]
    iptables: String,
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    strait_api::duration::parse(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    if let Some(Cmd::Init(a)) = &args.command {
        let cfg = strait_proxy::init::InitConfig {
            proxy_uid: a.proxy_uid,
            inbound_port: a.inbound_port,
            outbound_port: a.outbound_port,
            skip_inbound_ports: a.skip_inbound_ports.clone(),
            skip_outbound_ports: a.skip_outbound_ports.clone(),
        };
        return Ok(strait_proxy::init::apply(&cfg, &a.iptables, a.dry_run)?);
    }
    // One worker: the current-thread scheduler does the same job without the
    // work-stealing machinery (no cross-thread queues, atomics or wakeups),
    // which is measurably cheaper per request (docs/benchmarks.md).
    let mut rt = match args.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    rt.enable_all()
        .build()
        .context("building the runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.local.is_empty() && args.control_plane.is_none() {
        anyhow::bail!(
            "no config source: pass --local DIR (a directory of manifests) or --control-plane HOST:PORT"
        );
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let state = Arc::new(state::State::new(
        metrics,
        Forwarders::new(args.connect_timeout, args.idle_timeout),
    ));
    let proxy = Arc::new(Proxy {
        state: state.clone(),
        mirrors: Default::default(),
        drain: Drain::new(),
        settings: Settings {
            namespace: args.namespace.clone(),
            detect_timeout: args.detect_timeout,
            connect_timeout: args.connect_timeout,
            opaque_ports: args.opaque_ports.clone(),
            access_log: args.access_log,
            client: ClientLimits {
                header_read_timeout: args.header_read_timeout,
                idle_timeout: args.client_idle_timeout,
                body: MinRate {
                    rate: args.body_min_rate,
                    grace: args.body_grace,
                },
                send_timeout: args.send_timeout,
            },
            proxy_ports: vec![
                args.outbound_addr.port(),
                args.inbound_addr.port(),
                args.admin_addr.port(),
            ],
        },
    });
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {what} listener on {addr}"))
    };
    let outbound = bind(args.outbound_addr, "outbound").await?;
    let inbound = bind(args.inbound_addr, "inbound").await?;
    let admin_listener = bind(args.admin_addr, "admin").await?;
    tracing::info!(
        outbound = %outbound.local_addr()?,
        inbound = %inbound.local_addr()?,
        admin = %admin_listener.local_addr()?,
        source = %args.control_plane.clone().unwrap_or_else(|| local::source(&args.local)),
        "strait-proxy listening"
    );

    match (args.local.is_empty(), &args.control_plane) {
        (false, _) => drop(tokio::spawn(local::watch(
            args.local.clone(),
            state.clone(),
        ))),
        (true, Some(addr)) => {
            let id = strait_proxy::remote::Identity {
                namespace: args.namespace.clone(),
                pod: args.pod.clone(),
                service_account: args.service_account.clone(),
            };
            drop(tokio::spawn(strait_proxy::remote::run(
                addr.clone(),
                id,
                state.clone(),
            )));
        }
        (true, None) => {}
    }
    tokio::spawn(admin::serve(admin_listener, proxy.clone()));
    let accept_out = tokio::spawn(listen::accept_loop(
        outbound,
        listen::Direction::Outbound,
        proxy.clone(),
    ));
    let accept_in = tokio::spawn(listen::accept_loop(
        inbound,
        listen::Direction::Inbound,
        proxy.clone(),
    ));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
        _ = proxy.drain.signaled() => {}
    }
    state.set_draining();
    proxy.drain.start();
    let _ = tokio::join!(accept_out, accept_in);
    let left = proxy.drain.wait_idle(args.drain_timeout).await;
    if left > 0 {
        tracing::warn!(open = left, grace = ?args.drain_timeout, "grace period over; closing remaining connections");
    } else {
        tracing::info!("drained; exiting");
    }
    Ok(())
}
