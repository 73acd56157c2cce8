//! Building and running a proxy from its [`Config`]: the binary's `main`
//! parses flags and calls [`run`]; tests call [`start`] to get a proxy in
//! their own runtime, with its listeners' real addresses.
//!
//! Start-up order matters to a newcomer reading logs: listeners are bound
//! first (a port in use fails start-up with the address named), then the
//! config source starts, then the admin server and the accept loops; a
//! proxy is not ready until a config is applied.

use crate::config::{Config, Source};
use crate::conn::Direction;
use crate::drain::Drain;
use crate::http::forward::Forwarders;
use crate::metrics::Metrics;
use crate::state::State;
use crate::{Proxy, admin, listen, local, remote};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener's address could not be bound.
    #[error("binding the {what} listener on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No config source was given.
    #[error(
        "no config source: pass --local DIR (a directory of manifests) or --control-plane HOST:PORT"
    )]
    NoSource,
}

/// A started proxy: its listeners' addresses and its parts.
pub struct Running {
    /// The outbound listener's address.
    pub outbound: SocketAddr,
    /// The inbound listener's address.
    pub inbound: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// What every handler shares.
    pub proxy: Arc<Proxy>,
    accept: [JoinHandle<()>; 2],
    drain_timeout: Duration,
}

/// Binds the listeners and starts every task of a proxy.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if matches!(&config.source, Source::Local(dirs) if dirs.is_empty()) {
        return Err(StartError::NoSource);
    }
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { what, addr, source })
    };
    let outbound = bind(config.outbound_addr, "outbound").await?;
    let inbound = bind(config.inbound_addr, "inbound").await?;
    let admin_listener = bind(config.admin_addr, "admin").await?;
    let addr = |l: &TcpListener, fallback| l.local_addr().unwrap_or(fallback);
    let outbound_addr = addr(&outbound, config.outbound_addr);
    let inbound_addr = addr(&inbound, config.inbound_addr);
    let admin_addr = addr(&admin_listener, config.admin_addr);

    let identity: Arc<crate::identity::Current> = Arc::default();
    let state = Arc::new(State::new(
        Arc::new(Metrics::new()),
        Forwarders::new(
            config.settings.connect_timeout,
            config.upstream_idle_timeout,
            identity.clone(),
        ),
        &config.settings.trust_domain,
        (!config.workload.pod.is_empty())
            .then(|| format!("{}/{}", config.workload.namespace, config.workload.pod)),
    ));
    let mut settings = config.settings;
    settings.proxy_ports = vec![outbound_addr.port(), inbound_addr.port(), admin_addr.port()];
    let proxy = Arc::new(Proxy {
        state: state.clone(),
        mirrors: Default::default(),
        drain: Drain::new(),
        settings,
        identity,
        certificate_expected: config.identity.is_some(),
        taps: Default::default(),
        spans: Arc::new(crate::spans::Spans::new(
            config.tracing,
            config.workload,
            state.metrics.clone(),
        )),
    });
    if let Some(id) = config.identity.clone() {
        tokio::spawn(crate::identity::run(
            id,
            proxy.identity.clone(),
            state.metrics.clone(),
        ));
    }
    let source = match &config.source {
        Source::Local(dirs) => local::source(dirs),
        Source::ControlPlane { addr, .. } => addr.clone(),
    };
    tracing::info!(
        outbound = %outbound_addr,
        inbound = %inbound_addr,
        admin = %admin_addr,
        %source,
        "strait-proxy listening"
    );
    match config.source {
        Source::Local(dirs) => drop(tokio::spawn(local::watch(dirs, state.clone()))),
        Source::ControlPlane { addr, identity } => {
            let link = remote::Link {
                tls: config.control_plane_tls,
                current: proxy.identity.clone(),
                certificate_expected: config.identity.is_some(),
                spans: proxy.spans.clone(),
            };
            drop(tokio::spawn(remote::run(
                addr,
                identity,
                state.clone(),
                link,
            )))
        }
    }
    tokio::spawn(admin::serve(admin_listener, proxy.clone()));
    let accept = [
        tokio::spawn(listen::accept_loop(
            outbound,
            Direction::Outbound,
            proxy.clone(),
        )),
        tokio::spawn(listen::accept_loop(
            inbound,
            Direction::Inbound,
            proxy.clone(),
        )),
    ];
    Ok(Running {
        outbound: outbound_addr,
        inbound: inbound_addr,
        admin: admin_addr,
        proxy,
        accept,
        drain_timeout: config.drain_timeout,
    })
}

impl Running {
    /// Drains: stops accepting, lets in-flight work finish within the drain
    /// timeout, and returns how many connections were still open after it.
    pub async fn drain(self) -> usize {
        self.proxy.state.set_draining();
        self.proxy.drain.start();
        for task in self.accept {
            let _ = task.await;
        }
        let left = self.proxy.drain.wait_idle(self.drain_timeout).await;
        self.proxy.spans.flush(Duration::from_secs(2)).await;
        if left > 0 {
            tracing::warn!(open = left, grace = ?self.drain_timeout, "grace period over; closing remaining connections");
        } else {
            tracing::info!("drained; exiting");
        }
        left
    }
}

/// Runs a proxy until SIGTERM, SIGINT or `/shutdown`, then drains.
pub async fn run(config: Config) -> Result<(), RunError> {
    let running = start(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RunError::Signal)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
        _ = running.proxy.drain.signaled() => {}
    }
    running.drain().await;
    Ok(())
}

/// Why [`run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The SIGTERM handler could not be installed.
    #[error("installing the SIGTERM handler: {0}")]
    Signal(std::io::Error),
}
