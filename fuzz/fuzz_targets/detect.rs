//! Protocol detection on a connection's first bytes.
//!
//! `classify` must never panic and must be monotonic: once a prefix is
//! decided (`Is(p)`), every longer prefix is decided the same way. We check
//! that for every prefix of the input (which covers any split point), plus a
//! split point taken from the input's first byte, and that a verdict agrees
//! with what each protocol looks like on the wire.
//!
//! The IO half, `detect`, is then run over the same bytes delivered in chunks
//! whose sizes come from the input: whatever the chunking, it must return the
//! protocol `classify` gives the whole stream (opaque when the stream ends
//! undecided) and only bytes the client sent, in order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;
use strait_proxy::detect::{H2_PREFACE, Protocol, Verdict, classify, detect};
use tokio::io::{AsyncRead, ReadBuf};

/// Longest prefix `classify` may still answer `NeedMore` for.
const LONGEST_UNDECIDED: usize = H2_PREFACE.len() - 1;

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

/// What the wire bytes say, written independently of `classify`.
fn expected(buf: &[u8]) -> Option<Protocol> {
    if buf.len() >= 2 && buf[0] == 0x16 {
        return Some(if buf[1] == 3 {
            Protocol::Tls
        } else {
            Protocol::Opaque
        });
    }
    if buf.starts_with(H2_PREFACE) {
        return Some(Protocol::Http2);
    }
    if METHODS.iter().any(|m| buf.starts_with(m)) {
        return Some(Protocol::Http1);
    }
    None
}

/// A client that sends `data` in chunks of the given sizes, then closes.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let want = match self.sizes.split_first() {
            Some((&s, rest)) => {
                self.sizes = rest;
                usize::from(s).max(1)
            }
            None => usize::MAX,
        };
        let n = want.min(self.data.len()).min(buf.remaining());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    // Every prefix, which is every split point.
    let mut decided: Option<(usize, Protocol)> = None;
    for k in 0..=data.len() {
        let v = classify(&data[..k]);
        match (decided, v) {
            (Some((at, p)), v) => assert_eq!(
                v,
                Verdict::Is(p),
                "prefix of {at} bytes was {p:?}, prefix of {k} bytes is {v:?}"
            ),
            (None, Verdict::Is(p)) => decided = Some((k, p)),
            (None, Verdict::NeedMore) => {
                assert!(k <= LONGEST_UNDECIDED, "still undecided after {k} bytes")
            }
        }
        if let Verdict::Is(p) = v
            && let Some(want) = expected(&data[..k])
        {
            assert_eq!(p, want, "{:?}", &data[..k]);
        }
        if let Verdict::Is(p @ (Protocol::Http1 | Protocol::Http2 | Protocol::Tls)) = v {
            assert_eq!(expected(&data[..k]), Some(p), "{:?}", &data[..k]);
        }
        if k > LONGEST_UNDECIDED {
            break; // monotonic from here on: nothing new to learn
        }
    }
    let whole = classify(data);
    if let Some((_, p)) = decided {
        assert_eq!(whole, Verdict::Is(p));
    }

    // The split point the brief asks for, from the input itself.
    if let Some((&s, rest)) = data.split_first() {
        let at = usize::from(s) % (rest.len() + 1);
        if let Verdict::Is(p) = classify(&rest[..at]) {
            assert_eq!(classify(rest), Verdict::Is(p), "split at {at}");
        }
    }

    // The IO half: the first up-to-8 bytes choose chunk sizes for the rest.
    let (sizes, stream) = data.split_at(data.len().min(8));
    let mut client = Chunked {
        data: stream,
        sizes,
    };
    let got = runtime().block_on(detect(&mut client, Duration::from_secs(3600)));
    match got {
        Err(e) => assert!(stream.is_empty(), "{e} with {} bytes sent", stream.len()),
        Ok((p, bytes)) => {
            assert!(!bytes.is_empty());
            assert!(
                stream.starts_with(&bytes),
                "returned bytes the client did not send"
            );
            let want = match classify(stream) {
                Verdict::Is(p) => p,
                Verdict::NeedMore => Protocol::Opaque,
            };
            assert_eq!(p, want, "chunks {sizes:?}");
            match classify(&bytes) {
                Verdict::Is(q) => assert_eq!(q, p),
                // Undecided bytes only when the client closed early.
                Verdict::NeedMore => {
                    assert_eq!(p, Protocol::Opaque);
                    assert_eq!(&bytes[..], stream);
                }
            }
        }
    }
});
