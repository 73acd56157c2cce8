//! Inbound connections: the mesh calling this pod's app.
//!
//! The proxy forwards to the original destination itself, the pod's own
//! address and the app's port, as Istio does since 1.10: an app that bound
//! a port to loopback only is not reachable from the network through the
//! proxy, as it would not be without one. A connection aimed at one of the
//! proxy's own ports (its outbound listener would otherwise be an open
//! proxy for the pod network), or at an address that is not the pod's
//! (traffic routed through the pod to elsewhere), is refused. Without
//! iptables (a local proxy in front of an app), connections go to
//! `--inbound-forward`.
//!
//! What arrives, in order of the first bytes:
//!
//! | first bytes                                   | what happens                                  |
//! |-----------------------------------------------|-----------------------------------------------|
//! | a ClientHello naming a mesh identity          | mesh TLS terminated here ([`crate::tls`]); the client's identity is known; then as below |
//! | any other ClientHello (the app's own TLS)      | copied as bytes, untouched                    |
//! | HTTP/1 or HTTP/2                              | proxied and measured                          |
//! | anything else                                 | copied as bytes                               |
//!
//! Plaintext (anything but mesh TLS) to an endpoint a `Strict`
//! DestinationPolicy covers is refused.

use crate::Proxy;
use crate::conn::{Accepted, Direction};
use crate::detect::{self, DetectError, Protocol};
use crate::http::errors::ProxyError;
use crate::http::pipeline;
use crate::tls::hello::{self, Hello};
use crate::tls::is_mesh_name;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use strait_api::identity::SpiffeId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

/// How long a mesh TLS handshake may take once its ClientHello is in.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an opaque port waits for a client proxy's ClientHello before
/// treating the connection as the app's plaintext (a client proxy sends it
/// the moment it connects).
const OPAQUE_MESH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Handles one inbound connection to its end.
pub async fn handle(proxy: Arc<Proxy>, conn: Accepted) {
    let Some((app, served)) = destination(&proxy, &conn) else {
        return;
    };
    let mut stream = conn.stream;
    let opaque = proxy.settings.opaque_ports.contains(&app.port());
    // On an opaque port only mesh TLS is looked for, which a client proxy
    // sends at once: a server-speaks-first client waits no longer than this.
    let wait = if opaque {
        OPAQUE_MESH_WAIT.min(proxy.settings.detect_timeout)
    } else {
        proxy.settings.detect_timeout
    };
    let (protocol, mut prefix) = match detect::detect(&mut stream, wait).await {
        Ok(d) => d,
        // A server-speaks-first protocol on an opaque port: the client
        // waits for the app, and it is not mesh TLS (which a client starts).
        Err(DetectError::Silent(_)) if opaque => (Protocol::Opaque, BytesMut::new()),
        Err(e) => {
            tracing::debug!(error = %e, "closing inbound connection: protocol detection failed");
            return;
        }
    };
    let strict = proxy.state.load().strict.contains(&served);
    if protocol == Protocol::Tls
        && read_hello(&mut stream, &mut prefix, &proxy).await
        && matches!(hello::server_name(&prefix), Hello::ServerName(Some(n)) if is_mesh_name(n, &proxy.settings.trust_domain))
    {
        let Some(cert) = proxy.identity.load_full() else {
            // Mesh TLS before this proxy has its certificate: the client
            // proxy sees a failed connection and tries again (passing it
            // to the app would only confuse both).
            proxy.state.metrics.inbound_refused("no-certificate");
            tracing::info!("closing mesh TLS connection: this proxy has no certificate yet");
            return;
        };
        let io = proxy.client_io(Direction::Inbound, prefix, stream);
        // A peer that starts a handshake and stalls holds nothing for long.
        let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, cert.tls.accept(io, opaque)).await;
        let (tls, peer) = match accepted {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(e)) => {
                proxy.state.metrics.inbound_refused("tls-handshake");
                tracing::info!(error = %e, "closing inbound connection: mesh TLS handshake failed");
                return;
            }
            Err(_) => {
                proxy.state.metrics.inbound_refused("tls-handshake");
                tracing::info!(
                    "closing inbound connection: mesh TLS handshake not done within {HANDSHAKE_TIMEOUT:?}"
                );
                return;
            }
        };
        proxy.state.metrics.inbound_connection(peer.as_ref(), true);
        return serve_mesh(proxy, app, opaque, tls, peer).await;
    }
    let probing = |port| {
        proxy
            .settings
            .inbound_probes
            .iter()
            .any(|(p, _)| *p == port)
    };
    if strict && !(matches!(protocol, Protocol::Http1 | Protocol::Http2) && probing(app.port())) {
        proxy.state.metrics.inbound_refused("plaintext-to-strict");
        tracing::info!(%served, "refusing plaintext inbound connection: the port's DestinationPolicy says tls.mode Strict");
        return;
    }
    proxy.state.metrics.inbound_connection(None, false);
    let io = proxy.client_io(Direction::Inbound, prefix, stream);
    let protocol = if opaque { Protocol::Opaque } else { protocol };
    serve(proxy, app, protocol, io, None, strict).await;
}

/// The app's address, and the address the client meant (what `Strict`
/// policies are keyed by: the endpoint address), or `None` when the
/// connection is refused.
fn destination(proxy: &Proxy, conn: &Accepted) -> Option<(SocketAddr, SocketAddr)> {
    let Some(dst) = conn.redirected_to() else {
        let listener = conn.stream.local_addr().ok().or(conn.local)?;
        return match proxy.settings.inbound_forward {
            Some(app) => Some((app, listener)),
            None => {
                tracing::info!(
                    "closing inbound connection without an original destination (is the iptables redirect installed?)"
                );
                None
            }
        };
    };
    if proxy.settings.proxy_ports.contains(&dst.port()) {
        tracing::info!("refusing inbound connection to one of the proxy's own ports");
        return None;
    }
    // REDIRECT gives the socket the receiving interface's own address; a
    // destination that is not it was routed through this pod to somewhere
    // else, and the proxy (exempt from the outbound redirect) must not
    // relay it there.
    if let Ok(local) = conn.stream.local_addr()
        && local.ip() != dst.ip()
    {
        tracing::info!("refusing inbound connection to an address that is not this pod's");
        return None;
    }
    Some((dst, dst))
}

/// Reads the rest of the first TLS record into `buf` (detection stops at
/// its first bytes); whether a whole ClientHello record is there.
async fn read_hello(stream: &mut TcpStream, buf: &mut BytesMut, proxy: &Proxy) -> bool {
    let deadline = tokio::time::Instant::now() + proxy.settings.detect_timeout;
    loop {
        match hello::server_name(buf) {
            Hello::NeedMore(n) if n <= hello::MAX_RECORD => {
                buf.reserve(n - buf.len());
                match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
                    Ok(Ok(read)) if read > 0 => {}
                    _ => return false,
                }
            }
            Hello::NeedMore(_) | Hello::Malformed => return false,
            Hello::ServerName(_) => return true,
        }
    }
}

/// Serves what arrived inside mesh TLS.
async fn serve_mesh<I>(
    proxy: Arc<Proxy>,
    app: SocketAddr,
    opaque: bool,
    mut tls: I,
    peer: Option<SpiffeId>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (protocol, prefix) = if opaque {
        (Protocol::Opaque, BytesMut::new())
    } else {
        match detect::detect(&mut tls, proxy.settings.detect_timeout).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "closing mesh TLS connection: protocol detection failed");
                return;
            }
        }
    };
    // Bytes are counted once, on the TCP stream under the TLS.
    let io = crate::io::Prefixed::new(
        prefix,
        tls,
        Default::default(),
        Default::default(),
        proxy.settings.client.send_timeout,
    );
    serve(proxy, app, protocol, io, peer.as_ref(), false).await;
}

/// Proxies HTTP to the app, or copies bytes to it.
async fn serve<I>(
    proxy: Arc<Proxy>,
    app: SocketAddr,
    protocol: Protocol,
    io: I,
    peer: Option<&SpiffeId>,
    probes_only: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Http1 | Protocol::Http2 => {
            let p = proxy.clone();
            let mesh = proxy.state.metrics.mesh_requests(Direction::Inbound, peer);
            // Mesh TLS (a proxy that proved who it is): carried HTTP/1.1
            // goes to the app as HTTP/1.1.
            let peer_known = peer.is_some();
            let tls_peer: Option<Arc<str>> = peer.map(|p| Arc::from(p.to_string()));
            crate::http::server::serve(
                io,
                protocol == Protocol::Http2,
                proxy.drain.clone(),
                proxy.settings.client,
                move |mut req| {
                    mesh.inc();
                    crate::http::orig_proto::restore(&mut req, peer_known);
                    let (p, tls_peer) = (p.clone(), tls_peer.clone());
                    // Plaintext to a Strict port: the kubelet's probes only.
                    let allowed = !probes_only
                        || p.settings
                            .inbound_probes
                            .iter()
                            .any(|(port, path)| *port == app.port() && req.uri().path() == path);
                    async move {
                        if !allowed {
                            p.state.metrics.inbound_refused("plaintext-to-strict");
                            return Ok(ProxyError::StrictPlaintext.to_response());
                        }
                        pipeline::inbound(p, app, req, tls_peer).await
                    }
                },
            )
            .await;
        }
        Protocol::Tls | Protocol::Opaque => {
            let app = crate::connect::Peer::plain(app);
            crate::tcp::forward(io, &app, proxy.settings.connect_timeout, &proxy.identity).await
        }
    }
}
