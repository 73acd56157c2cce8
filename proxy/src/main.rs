//! `strait-proxy` binary: flags into a [`Config`], logging, the runtime;
//! `strait_proxy::app::run` does the rest.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use strait_proxy::config::{ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT, PROXY_UID};
use strait_proxy::config::{ClientLimits, Config, Settings, Source};
use strait_proxy::http::body_rate::MinRate;

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
    #[arg(long, env = "STRAIT_OUTBOUND_ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], OUTBOUND_PORT)))]
    outbound_addr: SocketAddr,
    /// Inbound listener (iptables REDIRECT target for incoming TCP).
    #[arg(long, env = "STRAIT_INBOUND_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], INBOUND_PORT)))]
    inbound_addr: SocketAddr,
    /// Admin listener: /metrics, /ready, /live, /config, /shutdown.
    #[arg(long, env = "STRAIT_ADMIN_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], ADMIN_PORT)))]
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
    /// The identity service (HOST:PORT) this proxy gets its certificate
    /// from (the injector sets it; without it the proxy has none).
    #[arg(long, env = "STRAIT_IDENTITY_ADDR")]
    identity_addr: Option<String>,
    /// The projected ServiceAccount token presented to the identity service.
    #[arg(
        long,
        env = "STRAIT_IDENTITY_TOKEN",
        default_value = "/var/run/strait/identity/token"
    )]
    identity_token: PathBuf,
    /// The mesh's trust domain (this proxy's identity is
    /// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>).
    #[arg(long, env = "STRAIT_TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// The mesh's trust roots (PEM, or the path of a PEM file): with them
    /// the identity service and the config stream are reached over TLS
    /// that checks the controller (the injector sets them); without,
    /// plaintext.
    #[arg(long, env = "STRAIT_TRUST_ROOTS")]
    trust_roots: Option<String>,
    /// The controller's identity, which its TLS must prove.
    #[arg(
        long,
        env = "STRAIT_CONTROL_PLANE_IDENTITY",
        default_value = "spiffe://cluster.local/ns/strait-system/sa/strait-controller"
    )]
    control_plane_identity: String,
    /// The app's kubelet probes, `PORT:PATH,...` (the injector lists them):
    /// answered in plaintext even on a port whose DestinationPolicy says
    /// tls.mode Strict, since the kubelet has no mesh certificate.
    #[arg(long, env = "STRAIT_INBOUND_PROBES", value_delimiter = ',', value_parser = parse_probe)]
    inbound_probes: Vec<(u16, String)>,
    /// Where inbound connections go that no iptables rule redirected
    /// (HOST:PORT of a local app this proxy fronts without interception;
    /// by default such connections are closed).
    #[arg(long, env = "STRAIT_INBOUND_FORWARD")]
    inbound_forward: Option<SocketAddr>,
    /// Log filter, e.g. `info` or `strait_proxy=debug`.
    #[arg(long, env = "STRAIT_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, env = "STRAIT_LOG_JSON")]
    log_json: bool,
    /// Write a JSON access-log line per HTTP request to stdout.
    #[arg(long, env = "STRAIT_ACCESS_LOG")]
    access_log: bool,
    /// Export spans to this OpenTelemetry collector (OTLP/HTTP, `host:4318`
    /// or `http://host:4318`), whatever the control plane says.
    #[arg(long, env = "STRAIT_TRACE_COLLECTOR", value_parser = parse_collector)]
    trace_collector: Option<String>,
    /// With --trace-collector: the share of traces this proxy starts that
    /// are recorded (0 to 1; a caller's sampled flag always wins).
    #[arg(long, env = "STRAIT_TRACE_SAMPLING", default_value_t = strait_api::collector::DEFAULT_SAMPLING, value_parser = strait_api::collector::parse_sampling)]
    trace_sampling: f64,
    /// The workload this pod belongs to (spans' `service.name`; the
    /// injector sets it; default: the pod's name).
    #[arg(long, env = "STRAIT_WORKLOAD")]
    workload: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Install the iptables rules that redirect the pod's TCP through the proxy.
    Init(InitArgs),
}

#[derive(clap::Args, Debug)]
struct InitArgs {
    /// The proxy's user id (its own traffic is not redirected).
    #[arg(long, default_value_t = PROXY_UID)]
    proxy_uid: u32,
    /// Inbound listener port.
    #[arg(long, default_value_t = INBOUND_PORT)]
    inbound_port: u16,
    /// Outbound listener port.
    #[arg(long, default_value_t = OUTBOUND_PORT)]
    outbound_port: u16,
    /// Incoming ports not redirected (comma-separated ports or a:b ranges).
    #[arg(long, value_delimiter = ',', default_values_t = [ADMIN_PORT.to_string()])]
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
        .block_on(async {
            strait_proxy::app::run(args.into_config()?).await?;
            Ok(())
        })
}

fn parse_collector(s: &str) -> Result<String, String> {
    strait_proxy::spans::traces_url(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `PORT:PATH`, a probe the injector listed.
fn parse_probe(s: &str) -> Result<(u16, String), String> {
    let (port, path) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not PORT:PATH"))?;
    let port = port.parse().map_err(|_| format!("{s:?}: bad port"))?;
    if !path.starts_with('/') {
        return Err(format!("{s:?}: the path must start with /"));
    }
    Ok((port, path.to_string()))
}

impl Args {
    /// The typed config these flags describe.
    fn into_config(self) -> anyhow::Result<Config> {
        strait_api::identity::check_trust_domain(&self.trust_domain).context("--trust-domain")?;
        let control_plane_tls = match &self.trust_roots {
            None => None,
            Some(roots) => Some(strait_proxy::control::ControlPlaneTls {
                roots: if roots.trim_start().starts_with("-----BEGIN") {
                    roots.clone()
                } else {
                    std::fs::read_to_string(roots)
                        .with_context(|| format!("--trust-roots: reading {roots}"))?
                },
                identity: strait_api::identity::SpiffeId::parse(&self.control_plane_identity)
                    .context("--control-plane-identity")?,
            }),
        };
        if let Some(tls) = &control_plane_tls {
            strait_proxy::tls::roots(&tls.roots).context("--trust-roots")?;
        }
        let identity = self
            .identity_addr
            .clone()
            .map(|addr| strait_proxy::identity::Settings {
                addr,
                token_file: self.identity_token.clone(),
                id: strait_api::identity::SpiffeId::new(
                    &self.trust_domain,
                    &self.namespace,
                    &self.service_account,
                ),
                tls: control_plane_tls.clone(),
            });
        let workload = strait_proxy::spans::Workload {
            service: [self.workload.as_deref(), Some(self.pod.as_str())]
                .into_iter()
                .flatten()
                .find(|s| !s.is_empty())
                .unwrap_or("strait-proxy")
                .to_string(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
        };
        let tracing = self
            .trace_collector
            .clone()
            .map(|collector| strait_proxy::spans::Settings {
                collector,
                sampling: self.trace_sampling,
            });
        let source = match (self.local.is_empty(), self.control_plane) {
            (false, _) => Source::Local(self.local),
            (true, Some(addr)) => Source::ControlPlane {
                addr,
                identity: strait_proxy::remote::Identity {
                    namespace: self.namespace.clone(),
                    pod: self.pod,
                    service_account: self.service_account,
                },
            },
            (true, None) => Source::Local(Vec::new()),
        };
        Ok(Config {
            outbound_addr: self.outbound_addr,
            inbound_addr: self.inbound_addr,
            admin_addr: self.admin_addr,
            upstream_idle_timeout: self.idle_timeout,
            drain_timeout: self.drain_timeout,
            settings: Settings {
                namespace: self.namespace,
                detect_timeout: self.detect_timeout,
                connect_timeout: self.connect_timeout,
                opaque_ports: self.opaque_ports,
                access_log: self.access_log,
                client: ClientLimits {
                    header_read_timeout: self.header_read_timeout,
                    idle_timeout: self.client_idle_timeout,
                    body: MinRate {
                        rate: self.body_min_rate,
                        grace: self.body_grace,
                    },
                    send_timeout: self.send_timeout,
                },
                trust_domain: self.trust_domain,
                inbound_forward: self.inbound_forward,
                inbound_probes: self.inbound_probes,
                ..Settings::default()
            },
            identity,
            control_plane_tls,
            tracing,
            workload,
            ..Config::new(source)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' defaults and the library's defaults are the same values
    /// (tests build configs with `Config::new`; users get the flags').
    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let args = Args::try_parse_from(["strait-proxy", "--local", "dir"]).unwrap();
        let from_flags = args.into_config().unwrap();
        let library = Config::new(Source::Local(vec![PathBuf::from("dir")]));
        assert_eq!(format!("{from_flags:?}"), format!("{library:?}"));
    }
}
