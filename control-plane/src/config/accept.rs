//! Accepting config-stream connections: a client has a moment to start
//! talking, and only so many may be waiting to.
//!
//! tonic (through hyper's HTTP/2 server) waits for a connection's preface
//! for as long as the peer keeps the socket open, so a silent TCP
//! connection was held indefinitely. Here every accepted connection must
//! have sent its whole 24-byte HTTP/2 preface within [`FIRST_BYTES`] (one
//! byte and then silence is no better), and at most [`WAITING_MAX`]
//! connections wait at once (beyond that a new one is closed at once), so a
//! flood of silent connections costs a bounded number of sockets for a
//! bounded time. After the preface, HTTP/2 keepalive PINGs (set on the
//! server) drop peers that stop answering.

use futures_util::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Time a new connection has to send its first bytes.
pub const FIRST_BYTES: Duration = Duration::from_secs(10);

/// Connections waiting for their first bytes at once.
pub const WAITING_MAX: usize = 1024;

/// The connections of `listener` that start talking within `first_bytes`,
/// as the incoming stream tonic serves.
pub fn talking(
    listener: TcpListener,
    first_bytes: Duration,
) -> impl Stream<Item = std::io::Result<TcpStream>> {
    let (tx, mut rx) = mpsc::channel::<TcpStream>(64);
    let waiting = Arc::new(Semaphore::new(WAITING_MAX));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!("config stream accept: {e}");
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
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(first_bytes, whole_preface(&stream)).await {
                    Ok(true) => {
                        let _ = stream.set_nodelay(true);
                        let _ = tx.send(stream).await;
                    }
                    _ => {
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
