//! What an accepted connection is: its socket, its peer, where it was going
//! and which listener took it.
//!
//! A leaf module: [`crate::listen`] makes an [`Accepted`] and hands it to
//! [`crate::outbound`] or [`crate::inbound`], and the metrics label series
//! by [`Direction`], so neither needs the accept loop to name them.

use socket2::SockRef;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the app, to the mesh.
    Outbound,
    /// From the mesh, to the app.
    Inbound,
}

impl Direction {
    /// The value of the `direction` metric label and log field.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
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
    /// Wraps a socket just accepted on the listener at `local`, reading its
    /// original destination.
    pub fn new(stream: TcpStream, peer: SocketAddr, local: Option<SocketAddr>) -> Self {
        let orig_dst = original_dst(&stream);
        Accepted {
            stream,
            peer,
            local,
            orig_dst,
        }
    }

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
