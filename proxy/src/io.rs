//! Connection IO helpers: replaying detected bytes and counting traffic.
//!
//! [`Prefixed`] puts the bytes that detection read back in front of the
//! stream, so the HTTP server or TCP forwarder sees the connection from its
//! first byte. It also counts bytes in each direction into the
//! `strait_tcp_bytes_total` counters, which is why every accepted connection
//! goes through it.

use bytes::{Buf, BytesMut};
use prometheus_client::metrics::counter::Counter;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream with some already-read bytes in front, counting traffic.
pub struct Prefixed<T> {
    prefix: BytesMut,
    inner: T,
    read_bytes: Counter,
    written_bytes: Counter,
}

impl<T> Prefixed<T> {
    /// Wraps `inner`, replaying `prefix` first. `read_bytes` counts bytes
    /// from the peer (the prefix included), `written_bytes` bytes to it.
    pub fn new(prefix: BytesMut, inner: T, read_bytes: Counter, written_bytes: Counter) -> Self {
        read_bytes.inc_by(prefix.len() as u64);
        Self {
            prefix,
            inner,
            read_bytes,
            written_bytes,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.read_bytes.inc_by(n as u64);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.written_bytes.inc_by(n as u64);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            this.written_bytes.inc_by(n as u64);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_prefix_then_stream_and_counts() {
        let (mut peer, inner) = tokio::io::duplex(64);
        let (r, w) = (Counter::default(), Counter::default());
        let mut io = Prefixed::new(BytesMut::from(&b"GET "[..]), inner, r.clone(), w.clone());
        peer.write_all(b"/ HTTP/1.1").await.expect("write");
        drop(peer.shutdown().await);
        io.write_all(b"ok").await.expect("write back");
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"GET / HTTP/1.1");
        assert_eq!((r.get(), w.get()), (14, 2));
    }
}
