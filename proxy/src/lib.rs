//! `strait-proxy`: the data plane.
//!
//! [`config`] is the typed configuration that [`app`] builds a running
//! proxy from (the binary only parses flags into it).
//! A connection's life, file by file:
//! [`listen`] accepts it as a [`conn::Accepted`] (with its `SO_ORIGINAL_DST`) →
//! [`outbound`] or [`inbound`] decides what it is headed for →
//! [`detect`] reads the first bytes (HTTP/1, HTTP/2, TLS, opaque) →
//! HTTP goes to [`http::server`], and each request runs the
//! [`http::pipeline`] (route → split → policy → [`balance`] →
//! [`http::forward`]); everything else goes to [`tcp`].
//! Config arrives through [`local`] (a watched directory) or [`remote`] (the
//! control plane's stream) into [`state`], swapped whole. [`admin`] serves metrics, probes and `/config`;
//! [`drain`] handles graceful shutdown; [`init`] installs the iptables
//! redirect (`strait-proxy init`); [`identity`] keeps this proxy's
//! certificate from the control plane's identity service; [`spans`]
//! reports a span per request to the trace collector.

// No unwrap on input from the network or users; tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod app;
pub mod balance;
pub mod config;
pub mod conn;
pub mod connect;
pub mod control;
pub mod detect;
pub mod drain;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod init;
pub mod io;
pub mod listen;
pub mod local;
pub mod metrics;
pub mod outbound;
pub mod remote;
pub mod resilience;
pub mod spans;
pub mod state;
pub mod tap;
pub mod tcp;
pub mod tls;

pub use config::{ClientLimits, Settings};

use bytes::BytesMut;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Everything a connection handler needs.
pub struct Proxy {
    /// Applied config, metrics and pooled clients.
    pub state: Arc<state::State>,
    /// Bounds mirrored requests in flight.
    pub mirrors: http::mirror::Limiter,
    /// Graceful shutdown.
    pub drain: drain::Drain,
    /// Start-up settings.
    pub settings: Settings,
    /// This proxy's certificate, once the identity service issued one.
    pub identity: Arc<identity::Current>,
    /// Whether an identity service is configured: then the proxy is not
    /// ready before its first certificate (meshed clients would be refused).
    pub certificate_expected: bool,
    /// Open `strait tap` streams.
    pub taps: Arc<tap::Taps>,
    /// Span export to the trace collector (off until one is configured).
    pub spans: Arc<spans::Spans>,
}

impl Proxy {
    /// Ready: a config applied, not draining, and a certificate if one is
    /// expected.
    pub fn is_ready(&self) -> bool {
        self.state.is_ready() && (!self.certificate_expected || self.identity.load().is_some())
    }
}

impl Proxy {
    /// Wraps a client's stream (after `prefix`, the bytes detection read)
    /// with its listener's byte counters and the send timeout.
    pub fn client_io(
        &self,
        direction: conn::Direction,
        prefix: BytesMut,
        stream: TcpStream,
    ) -> io::Prefixed<TcpStream> {
        let bytes = self.state.metrics.byte_counters(direction);
        io::Prefixed::new(
            prefix,
            stream,
            bytes.from_client,
            bytes.to_client,
            self.settings.client.send_timeout,
        )
    }
}
