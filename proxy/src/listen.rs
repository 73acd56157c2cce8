//! Accepting connections.
//!
//! One accept loop per listener (outbound, inbound). Each accepted socket
//! gets its original destination (`SO_ORIGINAL_DST`, set by the iptables
//! REDIRECT that `strait-proxy init` installs), a drain guard and an
//! open-connection gauge, then goes to [`crate::outbound`] or
//! [`crate::inbound`] on its own task.

use crate::Proxy;
use crate::metrics::DirectionLabels;
use socket2::SockRef;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the app, to the mesh.
    Outbound,
    /// From the mesh, to the app.
    Inbound,
}

impl Direction {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Accepts until the proxy drains.
pub async fn accept_loop(listener: TcpListener, direction: Direction, proxy: Arc<Proxy>) {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = proxy.drain.signaled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let orig_dst = original_dst(&stream);
        let proxy = proxy.clone();
        let guard = proxy.drain.guard();
        tokio::spawn(async move {
            let gauge = proxy
                .state
                .metrics
                .connections_open
                .get_or_create(&DirectionLabels {
                    direction: direction.label(),
                })
                .clone();
            gauge.inc();
            let conn = Accepted {
                stream,
                peer,
                local,
                orig_dst,
            };
            match direction {
                Direction::Outbound => crate::outbound::handle(proxy, conn).await,
                Direction::Inbound => crate::inbound::handle(proxy, conn).await,
            }
            gauge.dec();
            drop(guard);
        });
    }
    tracing::info!(?direction, "listener closed");
}

/// An accepted connection.
pub struct Accepted {
    /// The socket.
    pub stream: TcpStream,
    /// The client.
    pub peer: SocketAddr,
    /// The listener's address.
    pub local: Option<SocketAddr>,
    /// Where the client was really going, when iptables redirected it.
    pub orig_dst: Option<SocketAddr>,
}

impl Accepted {
    /// The original destination if it differs from the listener itself
    /// (`None` means explicit mode: the client addressed the proxy).
    pub fn redirected_to(&self) -> Option<SocketAddr> {
        let orig = self.orig_dst?;
        let local = self.stream.local_addr().ok().or(self.local)?;
        (orig != local).then_some(orig)
    }
}

/// `SO_ORIGINAL_DST`: without a NAT entry (no iptables) the kernel reports
/// an error or the socket's own address; both mean "not redirected".
fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    let sock = SockRef::from(stream);
    let addr = match stream.local_addr().ok()? {
        SocketAddr::V4(_) => sock.original_dst_v4(),
        SocketAddr::V6(_) => sock.original_dst_v6(),
    };
    addr.ok()?.as_socket()
}
