//! Accepting connections.
//!
//! One accept loop per listener (outbound, inbound). Each accepted socket
//! becomes an [`Accepted`] (with its original destination, `SO_ORIGINAL_DST`,
//! set by the iptables REDIRECT that `strait-proxy init` installs), holds a
//! drain guard and an open-connection gauge guard for its life, and goes to
//! [`crate::outbound`] or [`crate::inbound`] on its own task, inside a
//! `conn` tracing span so every log line names its connection.

use crate::Proxy;
use crate::conn::{Accepted, Direction};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;

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
        let conn = Accepted::new(stream, peer, local);
        let span = tracing::info_span!(
            "conn",
            dir = %direction,
            peer = %peer,
            dst = conn.orig_dst.map(tracing::field::display),
        );
        let open = proxy.state.metrics.open_connection(direction);
        let drain = proxy.drain.guard();
        let proxy = proxy.clone();
        tokio::spawn(
            async move {
                match direction {
                    Direction::Outbound => crate::outbound::handle(proxy, conn).await,
                    Direction::Inbound => crate::inbound::handle(proxy, conn).await,
                }
                drop((open, drain));
            }
            .instrument(span),
        );
    }
    tracing::info!(?direction, "listener closed");
}
