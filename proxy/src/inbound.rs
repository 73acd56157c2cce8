//! Inbound connections: the mesh calling this pod's app.
//!
//! The original destination's port is the app's port; the proxy forwards to
//! the app on loopback at that port. HTTP is proxied (and measured), anything
//! else — including TLS the app terminates itself — is copied as bytes.

use crate::Proxy;
use crate::detect::{self, Protocol};
use crate::http::pipeline;
use crate::listen::Accepted;
use crate::outbound::bytes_wrap;
use bytes::BytesMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Handles one inbound connection to its end.
pub async fn handle(proxy: Arc<Proxy>, conn: Accepted) {
    let Some(dst) = conn.redirected_to() else {
        tracing::info!(peer = %conn.peer, "closing inbound connection without an original destination (is the iptables redirect installed?)");
        return;
    };
    let loopback = match dst.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let app = SocketAddr::new(loopback, dst.port());
    let mut stream = conn.stream;
    let (protocol, prefix) = if proxy.settings.opaque_ports.contains(&dst.port()) {
        (Protocol::Opaque, BytesMut::new())
    } else {
        match detect::detect(&mut stream, proxy.settings.detect_timeout).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(peer = %conn.peer, error = %e, "closing inbound connection: protocol detection failed");
                return;
            }
        }
    };
    let io = bytes_wrap(&proxy, "inbound", prefix, stream);
    match protocol {
        Protocol::Http1 | Protocol::Http2 => {
            let p = proxy.clone();
            crate::http::server::serve(
                io,
                protocol == Protocol::Http2,
                proxy.drain.clone(),
                proxy.settings.client,
                move |req| pipeline::inbound(p.clone(), app, req),
            )
            .await;
        }
        Protocol::Tls | Protocol::Opaque => {
            crate::tcp::forward(io, app, proxy.settings.connect_timeout).await
        }
    }
}
