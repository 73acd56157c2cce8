//! Outbound connections: the app calling something.
//!
//! | original destination                 | what happens                                   |
//! |--------------------------------------|------------------------------------------------|
//! | a Service `clusterIP:port`, opaque   | TCP to one of the Service's endpoints          |
//! | a Service `clusterIP:port`           | detect; HTTP → routed; TLS/other → TCP to an endpoint |
//! | the listener itself (explicit mode)  | detect; HTTP → routed by `Host`; other → closed |
//! | a meshed endpoint's own address      | TCP to it, inside mesh TLS                     |
//! | anything else                        | TCP to the original destination, unchanged     |

use crate::Proxy;
use crate::conn::{Accepted, Direction};
use crate::detect::{self, Protocol};
use crate::http::pipeline::{self, Target};
use crate::io::Prefixed;
use bytes::BytesMut;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Handles one outbound connection to its end.
pub async fn handle(proxy: Arc<Proxy>, conn: Accepted) {
    let applied = proxy.state.load();
    let Some(dst) = conn.redirected_to() else {
        return explicit(proxy, conn.stream).await;
    };
    let Some(service) = applied.snapshot.service_by_addr(dst) else {
        let io = wrap(&proxy, BytesMut::new(), conn.stream);
        // Not a Service: a pod's own address, say. A meshed one is still
        // reached over mesh TLS.
        let dst = crate::connect::Peer {
            addr: dst,
            identity: applied.meshed.get(&dst).cloned(),
        };
        return crate::tcp::forward(io, &dst, proxy.settings.connect_timeout, &proxy.identity)
            .await;
    };
    let key = service.key.clone();
    let opaque = service.opaque || proxy.settings.opaque_ports.contains(&dst.port());
    let (protocol, prefix, stream) = if opaque {
        (Protocol::Opaque, BytesMut::new(), conn.stream)
    } else {
        let mut stream = conn.stream;
        match detect::detect(&mut stream, proxy.settings.detect_timeout).await {
            Ok((p, prefix)) => (p, prefix, stream),
            Err(e) => {
                tracing::debug!(error = %e, "closing connection: protocol detection failed");
                return;
            }
        }
    };
    let io = wrap(&proxy, prefix, stream);
    match protocol {
        Protocol::Http1 | Protocol::Http2 => {
            let target = Arc::new(Target::Service(key));
            let p = proxy.clone();
            crate::http::server::serve(
                io,
                protocol == Protocol::Http2,
                proxy.drain.clone(),
                proxy.settings.client,
                move |req| pipeline::outbound(p.clone(), target.clone(), req),
            )
            .await;
        }
        Protocol::Tls | Protocol::Opaque => {
            // Balance the connection across the Service's endpoints.
            let Some(endpoint) = applied
                .backends
                .get(&key)
                .and_then(|b| b.balancer.pick().ok())
                .cloned()
            else {
                tracing::info!(service = %key, "closing opaque connection: no ready endpoints");
                return;
            };
            let _in_flight = endpoint.start();
            let timeout = proxy.settings.connect_timeout;
            crate::tcp::forward(io, &endpoint.peer(), timeout, &proxy.identity).await;
        }
    }
}

/// Explicit mode: only HTTP can say where it is going.
async fn explicit(proxy: Arc<Proxy>, mut stream: TcpStream) {
    match detect::detect(&mut stream, proxy.settings.detect_timeout).await {
        Ok((p @ (Protocol::Http1 | Protocol::Http2), prefix)) => {
            let io = wrap(&proxy, prefix, stream);
            let target = Arc::new(Target::Explicit);
            let px = proxy.clone();
            let limits = proxy.settings.client;
            crate::http::server::serve(
                io,
                p == Protocol::Http2,
                proxy.drain.clone(),
                limits,
                move |req| pipeline::outbound(px.clone(), target.clone(), req),
            )
            .await;
        }
        Ok((p, _)) => {
            tracing::info!(protocol = ?p, "closing explicit connection: only HTTP names its destination")
        }
        Err(e) => {
            tracing::debug!(error = %e, "closing explicit connection: protocol detection failed")
        }
    }
}

/// Wraps an outbound stream with its byte counters.
fn wrap(proxy: &Proxy, prefix: BytesMut, stream: TcpStream) -> Prefixed<TcpStream> {
    proxy.client_io(Direction::Outbound, prefix, stream)
}
