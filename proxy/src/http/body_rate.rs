//! A minimum rate for request bodies, against clients that hold a request
//! open by sending its body a byte at a time.
//!
//! The rule is Apache's `mod_reqtimeout` (`body=10,MinRate=500`): a body
//! may keep the proxy waiting for a grace period, plus one second for every
//! `rate` bytes it has delivered. Only time spent waiting for the client
//! counts: while the upstream is slow to take the body, the proxy does not
//! poll it, and the client is not to blame. Past the allowance the body
//! fails with [`BodyTooSlow`], which the client gets as `408`.
//!
//! gRPC streams are not held to it (the pipeline gives them no rate): a
//! client-streaming call may legitimately pause between messages for as
//! long as the application likes. Every body is wrapped all the same, so
//! that an error reading it (a malformed chunk) is marked as the client's
//! (its [`BodyFate`], answered `400`) and not taken for the upstream's.

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The request body arrived slower than the minimum rate.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {rate} bytes/s after a {grace:?} grace period")]
pub struct BodyTooSlow {
    /// Bytes per second required.
    pub rate: u64,
    /// The grace period.
    pub grace: Duration,
}

/// Reading the client's request body failed (a malformed chunk, a reset):
/// the client's fault, answered `400` rather than blamed on the upstream
/// (its [`BodyFate`] says so to the forwarder).
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body: {0}")]
pub struct ClientBodyError(#[source] pub super::BoxError);

/// What became of a request body, shared by its wrapper and the forwarder
/// that sends it: an HTTP/2 upstream client reports a failed request body
/// only as a reset stream, with the cause gone from the error chain, so
/// the attempt asks here whose fault it was. Travels in the request's
/// extensions.
#[derive(Clone, Debug, Default)]
pub struct BodyFate(std::sync::Arc<std::sync::atomic::AtomicU8>);

// 0 (the default): nothing went wrong.
const BODY_TOO_SLOW: u8 = 1;
const BODY_MALFORMED: u8 = 2;

impl BodyFate {
    fn set(&self, fate: u8) {
        self.0.store(fate, std::sync::atomic::Ordering::Relaxed);
    }

    /// The client's fault, if its body failed.
    pub fn error(&self) -> Option<super::errors::ProxyError> {
        use super::errors::ProxyError;
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            BODY_TOO_SLOW => Some(ProxyError::BodyTooSlow(
                "the request body arrived slower than the minimum rate".into(),
            )),
            BODY_MALFORMED => Some(ProxyError::BadRequestBody(
                "reading the client's request body failed".into(),
            )),
            _ => None,
        }
    }
}

/// The minimum rate and its grace period; `rate == 0` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct MinRate {
    /// Bytes per second.
    pub rate: u64,
    /// Waiting allowed before any byte counts.
    pub grace: Duration,
}

impl MinRate {
    /// How long a body that delivered `bytes` may have kept the proxy
    /// waiting in all. Pure.
    pub fn allowance(&self, bytes: u64) -> Duration {
        if self.rate == 0 {
            return Duration::MAX;
        }
        self.grace
            .saturating_add(Duration::from_secs_f64(bytes as f64 / self.rate as f64))
    }
}

/// `inner`, failing with [`BodyTooSlow`] when it keeps the proxy waiting
/// longer than its [`MinRate`] allows.
pub struct RateLimited<B> {
    inner: B,
    limit: MinRate,
    bytes: u64,
    /// Time spent waiting on the client, across polls.
    waited: Duration,
    /// When the current wait began.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    fate: BodyFate,
}

impl<B> RateLimited<B> {
    /// Wraps `inner`; what becomes of it is recorded in `fate`.
    pub fn new(inner: B, limit: MinRate, fate: BodyFate) -> Self {
        Self {
            inner,
            limit,
            bytes: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            fate,
        }
    }
}

impl<B> Body for RateLimited<B>
where
    B: Body + Unpin,
    B::Error: Into<super::BoxError>,
{
    type Data = B::Data;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                this.timer = None;
                if let Some(Ok(f)) = &frame
                    && let Some(d) = f.data_ref()
                {
                    this.bytes += d.remaining() as u64;
                }
                Poll::Ready(frame.map(|r| {
                    r.map_err(|e| -> super::BoxError {
                        this.fate.set(BODY_MALFORMED);
                        Box::new(ClientBodyError(e.into()))
                    })
                }))
            }
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let allowed = this.limit.allowance(this.bytes);
                let Some(left) = allowed.checked_sub(this.waited) else {
                    return Poll::Ready(Some(Err(this.too_slow())));
                };
                let Some(deadline) = since.checked_add(left) else {
                    return Poll::Pending; // no limit
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(this.too_slow())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> RateLimited<B> {
    fn too_slow(&self) -> super::BoxError {
        self.fate.set(BODY_TOO_SLOW);
        Box::new(BodyTooSlow {
            rate: self.limit.rate,
            grace: self.limit.grace,
        })
    }
}

/// Whether `e`, or any error under it, is [`BodyTooSlow`].
pub fn is_too_slow(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTooSlow>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};

    #[test]
    fn allowance_grows_with_what_arrived() {
        let limit = MinRate {
            rate: 500,
            grace: Duration::from_secs(10),
        };
        for (bytes, secs) in [(0, 10.0), (500, 11.0), (5_000, 20.0), (1_000_000, 2010.0)] {
            assert_eq!(
                limit.allowance(bytes),
                Duration::from_secs_f64(secs),
                "{bytes}"
            );
        }
        let off = MinRate {
            rate: 0,
            grace: Duration::ZERO,
        };
        assert_eq!(off.allowance(0), Duration::MAX);
    }

    type Chunks = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

    fn body(
        limit: MinRate,
    ) -> (
        Chunks,
        RateLimited<impl Body<Data = Bytes, Error = std::io::Error> + Unpin>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let s = tokio_stream_from(rx);
        (
            tx,
            RateLimited::new(StreamBody::new(s), limit, BodyFate::default()),
        )
    }

    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    const LIMIT: MinRate = MinRate {
        rate: 500,
        grace: Duration::from_secs(10),
    };

    #[tokio::test(start_paused = true)]
    async fn a_byte_every_two_seconds_fails_after_the_grace_period() {
        let (tx, mut b) = body(LIMIT);
        let started = Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if tx
                    .send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let err = loop {
            match b.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the body ended"),
            }
        };
        assert!(is_too_slow(err.as_ref()), "{err}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(10) && took < Duration::from_secs(11),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_slow_upload_above_the_rate_completes() {
        let (tx, mut b) = body(LIMIT);
        tokio::spawn(async move {
            // 1 KiB/s for 60 s: twice the minimum rate.
            for _ in 0..60 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; 1024]))))
                    .await
                    .unwrap();
            }
        });
        let mut total = 0;
        while let Some(f) = b.frame().await {
            total += f.unwrap().into_data().unwrap().len();
        }
        assert_eq!(total, 60 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_proxy_does_not_poll_is_not_counted() {
        let (tx, mut b) = body(LIMIT);
        tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
            .await
            .unwrap();
        b.frame().await.unwrap().unwrap();
        // The upstream takes a minute to ask for more: not the client's fault.
        tokio::time::sleep(Duration::from_secs(60)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"y"))))
            .await
            .unwrap();
        assert!(b.frame().await.unwrap().is_ok());
        drop(tx);
        assert!(b.frame().await.is_none());
    }
}
