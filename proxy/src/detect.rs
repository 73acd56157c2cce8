//! Protocol detection from a connection's first bytes.
//!
//! [`classify`] is pure: it looks at a byte prefix and says TLS, HTTP/1,
//! HTTP/2 (prior knowledge, which covers gRPC), opaque, or "need more bytes".
//! [`detect`] does the IO: it reads into a buffer until `classify` decides or
//! the detection timeout passes, and hands back the bytes it read so they can
//! be replayed to whatever handles the connection. A client that sends nothing
//! before the timeout is closed (a silent client on an HTTP port is a
//! slowloris); server-speaks-first protocols such as MySQL or SMTP belong on
//! opaque ports, which skip detection entirely.

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or 1.1.
    Http1,
    /// HTTP/2 with prior knowledge (h2c, gRPC).
    Http2,
    /// A TLS ClientHello: passed through untouched.
    Tls,
    /// Anything else: copied as bytes.
    Opaque,
}

/// The verdict on a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Is(Protocol),
    /// The prefix could still become more than one thing.
    NeedMore,
}

/// The HTTP/2 connection preface.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Classifies a connection prefix. Pure.
pub fn classify(buf: &[u8]) -> Verdict {
    if buf.is_empty() {
        return Verdict::NeedMore;
    }
    // TLS record: handshake (0x16), major version 3.
    if buf[0] == 0x16 {
        return match buf.get(1) {
            None => Verdict::NeedMore,
            Some(3) => Verdict::Is(Protocol::Tls),
            Some(_) => Verdict::Is(Protocol::Opaque),
        };
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        // "PRI " is not an HTTP/1 method we accept, so only h2 remains.
        return if n == H2_PREFACE.len() {
            Verdict::Is(Protocol::Http2)
        } else {
            Verdict::NeedMore
        };
    }
    for m in METHODS {
        let n = buf.len().min(m.len());
        if buf[..n] == m[..n] {
            return if n == m.len() {
                Verdict::Is(Protocol::Http1)
            } else {
                Verdict::NeedMore
            };
        }
    }
    Verdict::Is(Protocol::Opaque)
}

/// Why detection gave up.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The client sent nothing before the timeout.
    #[error("client sent nothing within {0:?}")]
    Silent(Duration),
    /// The client closed before sending anything.
    #[error("client closed before sending anything")]
    Closed,
    /// A read failed.
    #[error("reading the first bytes: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads until the protocol is known. Returns the protocol and the bytes read.
/// Bytes that never decide (a slow, partial first line) count as opaque once
/// the timeout passes.
pub async fn detect<I: AsyncRead + Unpin>(
    io: &mut I,
    timeout: Duration,
) -> Result<(Protocol, BytesMut), DetectError> {
    let mut buf = BytesMut::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Err(_elapsed) if buf.is_empty() => return Err(DetectError::Silent(timeout)),
            Err(_elapsed) => return Ok((Protocol::Opaque, buf)),
            Ok(Ok(0)) if buf.is_empty() => return Err(DetectError::Closed),
            Ok(Ok(0)) => return Ok((Protocol::Opaque, buf)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
        if let Verdict::Is(p) = classify(&buf) {
            return Ok((p, buf));
        }
        if buf.len() >= 64 {
            return Ok((Protocol::Opaque, buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use Protocol::*;
        let table: &[(&[u8], Verdict)] = &[
            (b"", Verdict::NeedMore),
            (b"G", Verdict::NeedMore),
            (b"GET", Verdict::NeedMore),
            (b"GET / HTTP/1.1\r\n", Verdict::Is(Http1)),
            (b"POST /x HTTP/1.1\r\n", Verdict::Is(Http1)),
            (b"OPTIONS * HTTP/1.1\r\n", Verdict::Is(Http1)),
            (b"GETX / HTTP/1.1", Verdict::Is(Opaque)),
            (b"get / HTTP/1.1", Verdict::Is(Opaque)),
            (b"PRI * HTTP/2.0\r\n", Verdict::NeedMore),
            (H2_PREFACE, Verdict::Is(Http2)),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04",
                Verdict::Is(Http2),
            ),
            (b"PRI * HTTP/1.1\r\n", Verdict::Is(Opaque)),
            (b"\x16", Verdict::NeedMore),
            (b"\x16\x03\x01\x02\x00\x01", Verdict::Is(Tls)),
            (b"\x16\x01", Verdict::Is(Opaque)),
            (b"\x00\x00\x00\x0a\x03select", Verdict::Is(Opaque)),
            (b"SSH-2.0-OpenSSH", Verdict::Is(Opaque)),
            (b"*1\r\n$4\r\nPING\r\n", Verdict::Is(Opaque)),
        ];
        for (input, want) in table {
            assert_eq!(
                classify(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[tokio::test]
    async fn silent_client_times_out_and_partial_prefix_is_opaque() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let t = Duration::from_millis(50);
        assert!(matches!(
            detect(&mut server, t).await,
            Err(DetectError::Silent(_))
        ));
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GE")
            .await
            .expect("write");
        let (p, bytes) = detect(&mut server, t).await.expect("partial prefix");
        assert_eq!((p, &bytes[..]), (Protocol::Opaque, &b"GE"[..]));
        drop(client);
        assert!(matches!(
            detect(&mut server, t).await,
            Err(DetectError::Closed)
        ));
    }

    #[tokio::test]
    async fn bytes_split_across_reads_are_kept() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let task = tokio::spawn(async move {
            for chunk in [&b"PRI * HTTP/2.0\r\n"[..], b"\r\nSM\r\n\r\n"] {
                tokio::io::AsyncWriteExt::write_all(&mut client, chunk)
                    .await
                    .expect("write");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            client
        });
        let (p, bytes) = detect(&mut server, Duration::from_secs(1))
            .await
            .expect("detect");
        assert_eq!(p, Protocol::Http2);
        assert_eq!(&bytes[..], H2_PREFACE);
        drop(task.await);
    }
}
