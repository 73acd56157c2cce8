//! Accepting connections to the config stream and the identity service: a
//! client has a moment to start talking, only so many may be waiting to,
//! and a connection is either plaintext gRPC or TLS (told apart by its
//! first byte), whose client certificate, if any, names the proxy.
//!
//! tonic (through hyper's HTTP/2 server) waits for a connection's preface
//! for as long as the peer keeps the socket open, so a silent TCP
//! connection was held indefinitely. Here every accepted connection must
//! have finished its TLS handshake (if any) and sent its whole 24-byte
//! HTTP/2 preface within [`FIRST_BYTES`] (one byte and then silence is no
//! better), and at most [`WAITING_MAX`] connections wait at once (beyond
//! that a new one is closed at once), so a flood of silent connections
//! costs a bounded number of sockets for a bounded time. After the
//! preface, HTTP/2 keepalive PINGs (set on the server) drop peers that stop
//! answering.

use arc_swap::ArcSwapOption;
use futures_util::Stream;
use rustls::ServerConfig;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use strait_api::identity::SpiffeId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;

/// Time a new connection has to send its first bytes.
pub const FIRST_BYTES: Duration = Duration::from_secs(10);

/// Connections waiting for their first bytes at once.
pub const WAITING_MAX: usize = 1024;

/// Who is on the other end of a connection (a request extension).
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The identity its client certificate proves, if it sent one.
    pub identity: Option<SpiffeId>,
}

impl PeerInfo {
    /// The remote address as text (empty when unknown).
    pub fn addr(&self) -> String {
        self.remote.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// An accepted connection.
pub enum Conn {
    /// Plaintext gRPC.
    Plain(TcpStream, PeerInfo),
    /// TLS, with the preface bytes already read out of it in front.
    Tls(Box<TlsStream<TcpStream>>, Vec<u8>, PeerInfo),
}

/// The connections of `listener` that start talking within `first_bytes`,
/// as the incoming stream tonic serves. With `tls` (once it holds a
/// configuration) a connection may also be TLS.
pub fn talking(
    listener: TcpListener,
    first_bytes: Duration,
    tls: Option<Arc<ArcSwapOption<ServerConfig>>>,
) -> impl Stream<Item = io::Result<Conn>> {
    let (tx, mut rx) = mpsc::channel::<Conn>(64);
    let waiting = Arc::new(Semaphore::new(WAITING_MAX));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return; // the server is gone: stop accepting
            }
            let Ok(permit) = waiting.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "closing connection: too many waiting for their first bytes");
                continue;
            };
            let tx = tx.clone();
            let tls = tls.as_ref().and_then(|t| t.load_full());
            tokio::spawn(async move {
                let _permit = permit;
                let _ = stream.set_nodelay(true);
                match tokio::time::timeout(first_bytes, start(stream, peer, tls)).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(conn).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "closing connection: {e}"),
                    Err(_) => {
                        tracing::debug!(%peer, "closing connection: nothing sent in {first_bytes:?}")
                    }
                }
            });
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|s| s.map(Ok)))
}

/// The HTTP/2 client preface every gRPC connection starts with.
const PREFACE_LEN: usize = 24;

/// Waits for a connection's preface, after a TLS handshake if it starts one.
async fn start(
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
) -> io::Result<Conn> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    let mut info = PeerInfo {
        remote: Some(remote),
        ..PeerInfo::default()
    };
    match (n, first[0], tls) {
        (0, _, _) => Err(io::ErrorKind::UnexpectedEof.into()),
        (_, 0x16, Some(config)) => {
            let mut tls = tokio_rustls::TlsAcceptor::from(config)
                .accept(stream)
                .await?;
            info.tls = true;
            info.identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| strait_api::identity::of_certificate(c));
            // Inside TLS the preface cannot be peeked: read it, and put it
            // back in front of the stream.
            let mut preface = vec![0u8; PREFACE_LEN];
            tls.read_exact(&mut preface).await?;
            Ok(Conn::Tls(Box::new(tls), preface, info))
        }
        // TLS before the controller has its certificate: the client
        // retries (gRPC over a TLS handshake would only confuse it).
        (_, 0x16, None) => Err(io::Error::other(
            "a TLS handshake before this listener has a certificate",
        )),
        _ if whole_preface(&stream).await => Ok(Conn::Plain(stream, info)),
        _ => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Waits until the whole preface has arrived (not consumed: tonic reads
/// it); false if the peer closes first. One byte is not enough: a peer
/// could send one and leave hyper waiting for the rest with no limit.
async fn whole_preface(stream: &TcpStream) -> bool {
    let mut buf = [0u8; PREFACE_LEN];
    loop {
        // `peek`, not `readable()`: readiness may be reported before any
        // byte has arrived. A partial preface leaves the socket readable,
        // so wait a little before looking again instead of spinning.
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n >= PREFACE_LEN => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            Conn::Plain(_, info) | Conn::Tls(_, _, info) => info.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, prefix, _) => {
                if !prefix.is_empty() {
                    let n = prefix.len().min(buf.remaining());
                    buf.put_slice(&prefix[..n]);
                    prefix.drain(..n);
                    return Poll::Ready(Ok(()));
                }
                Pin::new(s.as_mut()).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
