//! `strait-controller`: flags into an [`app::Config`], logging;
//! `strait_control_plane::app::run` does the rest.

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
use strait_control_plane::app::{self, Config, Kubernetes, Source};
use strait_control_plane::webhook;

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
    /// Identity service listener (gRPC). With --local it serves a
    /// development CA that signs the identity each proxy declares.
    #[arg(long, env = "STRAIT_IDENTITY_ADDR", default_value = "0.0.0.0:8080")]
    identity_addr: SocketAddr,
    /// The mesh's trust domain: identities are
    /// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
    #[arg(long, env = "STRAIT_TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// The Secret holding the trust anchor (tls.crt and tls.key: the issuer;
    /// ca.crt: the roots); created with a new root when missing.
    #[arg(
        long,
        env = "STRAIT_IDENTITY_SECRET",
        default_value = "strait-identity-issuer"
    )]
    identity_secret: String,
    /// How long the workload certificates the identity service signs live
    /// (proxies renew them at 70 % of it).
    #[arg(long, env = "STRAIT_CERTIFICATE_LIFETIME", default_value = "24h", value_parser = certificate_lifetime)]
    certificate_lifetime: std::time::Duration,
    /// Audience of the ServiceAccount token projected into injected pods.
    #[arg(
        long,
        env = "STRAIT_IDENTITY_AUDIENCE",
        default_value = strait_api::identity::TOKEN_AUDIENCE
    )]
    identity_audience: String,
    /// The controller's ServiceAccount: its TLS listeners (identity service,
    /// config stream) prove spiffe://<trust-domain>/ns/<namespace>/sa/<this>.
    #[arg(
        long,
        env = "STRAIT_SERVICE_ACCOUNT",
        default_value = "strait-controller"
    )]
    service_account: String,
    /// With --local: where the development CA's root is written, for local
    /// proxies to trust (default: strait-dev-ca-<pid>.pem in the temporary
    /// directory; the path is logged at start).
    #[arg(long, env = "STRAIT_DEV_CA_ROOTS")]
    dev_ca_roots: Option<PathBuf>,
    /// With --local: sign with this anchor instead of a new one (a
    /// directory with tls.crt and tls.key, the issuer, and ca.crt, the
    /// roots: the trust-anchor Secret's layout).
    #[arg(long, env = "STRAIT_DEV_CA_ANCHOR")]
    dev_ca_anchor: Option<PathBuf>,
    /// The OpenTelemetry collector every proxy exports spans to (OTLP/HTTP,
    /// `host:4318` or `http://host:4318`); none: proxies report no spans.
    #[arg(long, env = "STRAIT_TRACE_COLLECTOR")]
    trace_collector: Option<String>,
    /// The share of the traces a proxy starts that are recorded (0 to 1;
    /// a caller's sampled flag always wins).
    #[arg(long, env = "STRAIT_TRACE_SAMPLING", default_value_t = strait_api::collector::DEFAULT_SAMPLING, value_parser = strait_api::collector::parse_sampling)]
    trace_sampling: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    app::run(args.into_config()?).await?;
    Ok(())
}

/// A certificate lifetime: a duration from one minute to 30 days.
fn certificate_lifetime(s: &str) -> Result<std::time::Duration, String> {
    let d = strait_api::duration::parse(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(60) || d > std::time::Duration::from_secs(30 * 86_400) {
        return Err(format!("{s}: a certificate lifetime is from 1m to 720h"));
    }
    Ok(d)
}

impl Args {
    /// The typed config these flags describe.
    fn into_config(self) -> anyhow::Result<Config> {
        strait_api::identity::check_trust_domain(&self.trust_domain).context("--trust-domain")?;
        let identity = strait_control_plane::identity::Settings {
            addr: self.identity_addr,
            trust_domain: self.trust_domain.clone(),
            secret: self.identity_secret.clone(),
            audience: self.identity_audience.clone(),
            lifetime: self.certificate_lifetime,
            controller: strait_api::identity::SpiffeId::new(
                &self.trust_domain,
                &self.lease_namespace,
                &self.service_account,
            ),
        };
        let source = if !self.local.is_empty() {
            let roots_file = self.dev_ca_roots.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("strait-dev-ca-{}.pem", std::process::id()))
            });
            Source::Local {
                dirs: self.local,
                dev_ca: Box::new(strait_control_plane::app::DevCa {
                    identity,
                    roots_file,
                    anchor_dir: self.dev_ca_anchor,
                }),
            }
        } else {
            // Injected proxies reach the identity service on this
            // controller's Service, beside the config stream.
            let identity_addr = format!(
                "strait-controller.{}.svc.cluster.local:{}",
                self.lease_namespace,
                self.identity_addr.port()
            );
            let control_plane = self.inject_control_plane.unwrap_or_else(|| {
                format!(
                    "strait-controller.{}.svc.cluster.local:8086",
                    self.lease_namespace
                )
            });
            Source::Kubernetes(Box::new(Kubernetes {
                lease_name: self.lease_name,
                webhook_addr: self.webhook_addr,
                webhook: webhook::reconcile::Target {
                    namespace: self.lease_namespace,
                    secret: self.webhook_secret,
                    service: self.webhook_service,
                    configuration: self.webhook_configuration,
                    owner: self.owner_deployment.clone(),
                },
                inject: strait_api::inject::Settings {
                    image: self.proxy_image,
                    image_pull_policy: self.proxy_image_pull_policy,
                    control_plane,
                    version: env!("CARGO_PKG_VERSION").into(),
                    identity_audience: self.identity_audience.clone(),
                    identity_addr,
                    trust_domain: self.trust_domain.clone(),
                    // Filled in with the current roots at each admission.
                    trust_roots: String::new(),
                    control_plane_identity: identity.controller.to_string(),
                    defaults: strait_api::inject::knobs::Knobs::default(),
                },
                owner_deployment: self.owner_deployment,
                identity,
            }))
        };
        let tracing = match self.trace_collector.filter(|c| !c.is_empty()) {
            None => None,
            Some(collector) => {
                strait_api::collector::traces_url(&collector).context("--trace-collector")?;
                Some(strait_api::wire::Tracing {
                    collector,
                    sampling: self.trace_sampling,
                })
            }
        };
        Ok(Config {
            mesh: strait_api::wire::MeshSettings { tracing },
            replica: self.replica,
            config_addr: self.config_addr,
            health_addr: self.health_addr,
            source,
        })
    }
}
