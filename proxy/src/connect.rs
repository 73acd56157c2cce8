//! Opening a connection to an endpoint: TCP within the connect timeout,
//! without Nagle, with keep-alive probes; then, when the endpoint is
//! meshed and this proxy has a certificate, mesh TLS demanding the
//! endpoint's identity ([`crate::tls`]). The HTTP pools and the opaque TCP
//! forwarder both connect here, so every byte to a meshed endpoint is
//! encrypted whatever protocol it carries.
//!
//! A meshed endpoint is reached in plaintext while this proxy has no
//! certificate yet (no identity service configured, or the first one not
//! issued): a `Permissive` server accepts it, a `Strict` one refuses it.

use crate::tls::ConnectError as TlsConnectError;
use crate::tls::Current;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use strait_api::identity::SpiffeId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Keep-alive probes on upstream sockets start after this much silence.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// An endpoint as the pools key their connections: its address, and the
/// identity it must prove (`None`: plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Address and port.
    pub addr: SocketAddr,
    /// The identity demanded over mesh TLS.
    pub identity: Option<std::sync::Arc<SpiffeId>>,
}

impl Peer {
    /// A plaintext endpoint (the app behind the inbound side, an
    /// unmeshed Service's Pod).
    pub fn plain(addr: SocketAddr) -> Self {
        Peer {
            addr,
            identity: None,
        }
    }
}

/// A connection to an endpoint.
pub enum Upstream {
    /// Plaintext.
    Plain(TcpStream),
    /// Mesh TLS (boxed: the TLS state is large and most connections in a
    /// plaintext mesh never have it).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Upstream {
    /// Whether it is mesh TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Upstream::Tls(_))
    }

    /// Whether the endpoint's proxy restores HTTP/1.1 carried as HTTP/2
    /// on this connection ([`crate::http::orig_proto`]): it selected that
    /// protocol in the mesh TLS handshake.
    pub fn carries_h1(&self) -> bool {
        match self {
            Upstream::Plain(_) => false,
            Upstream::Tls(s) => {
                s.get_ref().1.alpn_protocol() == Some(crate::http::orig_proto::ALPN)
            }
        }
    }
}

/// Why an endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP failed or timed out.
    #[error("{0}")]
    Tcp(String),
    /// Mesh TLS failed.
    #[error(transparent)]
    Tls(#[from] TlsConnectError),
}

/// Connects to `addr`; over mesh TLS when `identity` is given and this
/// proxy has a certificate in `mesh`. The timeout covers both.
pub async fn connect(
    addr: SocketAddr,
    identity: Option<&SpiffeId>,
    timeout: Duration,
    mesh: &Current,
) -> Result<Upstream, ConnectError> {
    let tls = identity.and_then(|id| Some((id, mesh.load_full()?)));
    let open = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ConnectError::Tcp(e.to_string()))?;
        // Small requests and responses must not wait for Nagle.
        tcp.set_nodelay(true)
            .map_err(|e| ConnectError::Tcp(e.to_string()))?;
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
            tracing::debug!(%addr, error = %e, "cannot set TCP keep-alive");
        }
        match tls {
            None => Ok(Upstream::Plain(tcp)),
            Some((id, cert)) => Ok(Upstream::Tls(Box::new(cert.tls.connect(tcp, id).await?))),
        }
    };
    tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| ConnectError::Tcp(format!("connect timed out after {timeout:?}")))?
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Plain(s) => s.is_write_vectored(),
            Upstream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
