//! `strait-proxy`: the data plane.
//!
//! A connection's life, file by file:
//! [`listen`] accepts it and reads `SO_ORIGINAL_DST` →
//! [`outbound`] or [`inbound`] decides what it is headed for →
//! [`detect`] reads the first bytes (HTTP/1, HTTP/2, TLS, opaque) →
//! HTTP goes to [`http::server`], and each request runs the
//! [`http::pipeline`] (route → split → policy → [`balance`] →
//! [`http::forward`]); everything else goes to [`tcp`].
//! Config arrives through [`local`] (a watched directory) or [`remote`] (the
//! control plane's stream) into [`state`], swapped whole. [`admin`] serves metrics, probes and `/config`;
//! [`drain`] handles graceful shutdown; [`init`] installs the iptables
//! redirect (`strait-proxy init`).

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod balance;
pub mod detect;
pub mod drain;
pub mod http;
pub mod inbound;
pub mod init;
pub mod io;
pub mod listen;
pub mod local;
pub mod metrics;
pub mod outbound;
pub mod remote;
pub mod resilience;
pub mod state;
pub mod tcp;

use std::sync::Arc;
use std::time::Duration;

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
    /// be forwarded to.
    pub proxy_ports: Vec<u16>,
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
    pub body: http::body_rate::MinRate,
    /// A write to the client that makes no progress this long fails, and
    /// the connection closes.
    pub send_timeout: Duration,
}

/// Everything a connection handler needs.
pub struct Proxy {
    /// Applied config, metrics and pooled clients.
    pub state: Arc<state::State>,
    /// Bounds mirrored requests in flight.
    pub mirrors: resilience::mirror::Limiter,
    /// Graceful shutdown.
    pub drain: drain::Drain,
    /// Start-up settings.
    pub settings: Settings,
}
