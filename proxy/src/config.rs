//! The proxy's configuration as typed data: what `main` parses flags into
//! and [`crate::app::run`] builds the proxy from, so the binary stays a thin
//! shell and tests can start a whole proxy in-process.
//!
//! The well-known ports and the proxy's user id are declared once, in
//! `strait_api::inject` (the injector writes them into pods); the listener
//! defaults and `strait-proxy init`'s defaults both read them.

use crate::http::body_rate::MinRate;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The well-known ports and the proxy's user id, shared with the injector,
/// which writes the same numbers into every meshed pod.
pub use strait_api::inject::{ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT, PROXY_UID};

/// Where config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Directories of manifests, read together and watched.
    Local(Vec<PathBuf>),
    /// The control plane's config stream.
    ControlPlane {
        /// `HOST:PORT` of the stream.
        addr: String,
        /// Who this proxy says it is.
        identity: crate::remote::Identity,
    },
}

/// Everything the proxy needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where config comes from.
    pub source: Source,
    /// Outbound listener address.
    pub outbound_addr: SocketAddr,
    /// Inbound listener address.
    pub inbound_addr: SocketAddr,
    /// Admin listener address.
    pub admin_addr: SocketAddr,
    /// Idle timeout of pooled upstream connections.
    pub upstream_idle_timeout: Duration,
    /// Grace period for in-flight work when draining.
    pub drain_timeout: Duration,
    /// What every connection handler reads.
    pub settings: Settings,
    /// The identity service to get this proxy's certificate from (none:
    /// no certificate).
    pub identity: Option<crate::identity::Settings>,
    /// How to check the control plane (none: plaintext to it).
    pub control_plane_tls: Option<crate::control::ControlPlaneTls>,
    /// `--trace-collector`: export spans there whatever the control plane
    /// says (none: as the control plane says; in local mode, no spans).
    pub tracing: Option<crate::spans::Settings>,
    /// Who the spans say reported them.
    pub workload: crate::spans::Workload,
}

impl Config {
    /// The defaults of every flag, with config from `source`.
    pub fn new(source: Source) -> Self {
        Config {
            source,
            outbound_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, OUTBOUND_PORT)),
            inbound_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, INBOUND_PORT)),
            admin_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, ADMIN_PORT)),
            upstream_idle_timeout: Duration::from_secs(90),
            drain_timeout: Duration::from_secs(10),
            settings: Settings::default(),
            identity: None,
            control_plane_tls: None,
            tracing: None,
            workload: crate::spans::Workload {
                service: "strait-proxy".into(),
                namespace: "default".into(),
                pod: String::new(),
            },
        }
    }
}

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The pod's namespace (bare Service names resolve in it).
    pub namespace: String,
    /// How long detection waits for a client's first bytes.
    pub detect_timeout: Duration,
    /// TCP connect timeout to endpoints.
    pub connect_timeout: Duration,
    /// Ports carried as TCP without detection.
    pub opaque_ports: Vec<u16>,
    /// Write a JSON access-log line per request to stdout.
    pub access_log: bool,
    /// Timeouts that bound what a slow or idle client can hold.
    pub client: ClientLimits,
    /// The proxy's own listening ports, which inbound connections may not
    /// be forwarded to (filled in from the listeners by [`crate::app`]).
    pub proxy_ports: Vec<u16>,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// The kubelet's probes of the app (`PORT`, path): answered in
    /// plaintext even on a port a `Strict` policy covers.
    pub inbound_probes: Vec<(u16, String)>,
    /// Where inbound connections go that no iptables rule redirected (a
    /// proxy in front of a local app, without interception); `None`: such
    /// connections are closed.
    pub inbound_forward: Option<SocketAddr>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: "default".into(),
            detect_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            opaque_ports: Vec::new(),
            access_log: false,
            client: ClientLimits::default(),
            proxy_ports: vec![OUTBOUND_PORT, INBOUND_PORT, ADMIN_PORT],
            trust_domain: strait_api::identity::DEFAULT_TRUST_DOMAIN.into(),
            inbound_forward: None,
            inbound_probes: Vec::new(),
        }
    }
}

/// What a client connection may hold, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Time for a complete HTTP/1 request head, including the wait for the
    /// next request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no request in flight for this long is
    /// closed (GOAWAY).
    pub idle_timeout: Duration,
    /// The minimum rate of request bodies (gRPC streams exempt).
    pub body: MinRate,
    /// A write to the client that makes no progress this long fails, and
    /// the connection closes.
    pub send_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body: MinRate {
                rate: 500,
                grace: Duration::from_secs(10),
            },
            send_timeout: Duration::from_secs(60),
        }
    }
}
