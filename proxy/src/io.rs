//! Connection IO helpers: replaying detected bytes and counting traffic.
//!
//! [`Prefixed`] puts the bytes that detection read back in front of the
//! stream, so the HTTP server or TCP forwarder sees the connection from its
//! first byte. It also counts bytes in each direction into the
//! `strait_tcp_bytes_total` counters, which is why every accepted connection
//! goes through it, and it fails a write that has made no progress for the
//! send timeout (nginx's `send_timeout`): a client that stops reading would
//! otherwise hold its connection, its upstream and their buffers for ever.

use bytes::{Buf, BytesMut};
use prometheus_client::metrics::counter::Counter;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream with some already-read bytes in front, counting traffic.
pub struct Prefixed<T> {
    prefix: BytesMut,
    inner: T,
    read_bytes: Counter,
    written_bytes: Counter,
    send_timeout: Duration,
    /// Armed while a write waits; only then (writes rarely wait).
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> Prefixed<T> {
    /// Wraps `inner`, replaying `prefix` first. `read_bytes` counts bytes
    /// from the peer (the prefix included), `written_bytes` bytes to it; a
    /// write that cannot progress for `send_timeout` fails with `TimedOut`.
    pub fn new(
        prefix: BytesMut,
        inner: T,
        read_bytes: Counter,
        written_bytes: Counter,
        send_timeout: Duration,
    ) -> Self {
        read_bytes.inc_by(prefix.len() as u64);
        Self {
            prefix,
            inner,
            read_bytes,
            written_bytes,
            send_timeout,
            stalled: None,
        }
    }

    /// Counts a finished write, or starts (and checks) the stall timer.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match res {
            Poll::Ready(Ok(n)) => {
                self.stalled = None;
                self.written_bytes.inc_by(n as u64);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                let timeout = self.send_timeout;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer read nothing for {timeout:?}"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
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
        this.written(cx, res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(cx, res)
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
        let mut io = Prefixed::new(
            BytesMut::from(&b"GET "[..]),
            inner,
            r.clone(),
            w.clone(),
            Duration::from_secs(60),
        );
        peer.write_all(b"/ HTTP/1.1").await.expect("write");
        drop(peer.shutdown().await);
        io.write_all(b"ok").await.expect("write back");
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"GET / HTTP/1.1");
        assert_eq!((r.get(), w.get()), (14, 2));
    }

    fn with_send_timeout_60s(inner: tokio::io::DuplexStream) -> Prefixed<tokio::io::DuplexStream> {
        let counter = Counter::default;
        Prefixed::new(
            BytesMut::new(),
            inner,
            counter(),
            counter(),
            Duration::from_secs(60),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_fails_the_write_after_the_send_timeout() {
        let (peer, inner) = tokio::io::duplex(16);
        let mut io = with_send_timeout_60s(inner);
        let started = tokio::time::Instant::now();
        // 16 bytes fit; the rest waits for a reader that never comes.
        let e = io.write_all(&[0u8; 64]).await.expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        drop(peer);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_timed_out() {
        let (mut peer, inner) = tokio::io::duplex(16);
        let mut io = with_send_timeout_60s(inner);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 16];
            while got < 160 {
                // 16 bytes every 50 s: slow, but never 60 s without progress.
                tokio::time::sleep(Duration::from_secs(50)).await;
                got += peer.read(&mut buf).await.expect("read");
            }
        });
        io.write_all(&[0u8; 160])
            .await
            .expect("each write progresses in time");
        reader.await.expect("reader");
    }
}
