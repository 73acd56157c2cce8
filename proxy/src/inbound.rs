//! Inbound connections: the mesh calling this pod's app.
//!
//! The proxy forwards to the original destination itself, the pod's own
//! address and the app's port, as Istio does since 1.10: an app that bound
//! a port to loopback only is not reachable from the network through the
//! proxy, as it would not be without one. A connection aimed at one of the
//! proxy's own ports (its outbound listener would otherwise be an open
//! proxy for the pod network), or at an address that is not the pod's
//! (traffic routed through the pod to elsewhere), is refused. HTTP is
//! proxied (and measured),
//! anything else, including TLS the app terminates itself, is copied as
//! bytes.

use crate::Proxy;
use crate::conn::{Accepted, Direction};
use crate::detect::{self, Protocol};
use crate::http::pipeline;
use bytes::BytesMut;
use std::sync::Arc;

/// Handles one inbound connection to its end.
pub async fn handle(proxy: Arc<Proxy>, conn: Accepted) {
    let Some(dst) = conn.redirected_to() else {
        tracing::info!(
            "closing inbound connection without an original destination (is the iptables redirect installed?)"
        );
        return;
    };
    if proxy.settings.proxy_ports.contains(&dst.port()) {
        tracing::info!("refusing inbound connection to one of the proxy's own ports");
        return;
    }
    // REDIRECT gives the socket the receiving interface's own address; a
    // destination that is not it was routed through this pod to somewhere
    // else, and the proxy (exempt from the outbound redirect) must not
    // relay it there.
    if let Ok(local) = conn.stream.local_addr()
        && local.ip() != dst.ip()
    {
        tracing::info!("refusing inbound connection to an address that is not this pod's");
        return;
    }
    let app = dst;
    let mut stream = conn.stream;
    let (protocol, prefix) = if proxy.settings.opaque_ports.contains(&dst.port()) {
        (Protocol::Opaque, BytesMut::new())
    } else {
        match detect::detect(&mut stream, proxy.settings.detect_timeout).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "closing inbound connection: protocol detection failed");
                return;
            }
        }
    };
    let io = proxy.client_io(Direction::Inbound, prefix, stream);
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
