//! Opaque TCP: bytes copied both ways, untouched (also how TLS that is not
//! the mesh's own passes through). To a meshed endpoint the bytes go
//! inside mesh TLS ([`crate::connect`]), like HTTP does.

use crate::connect::Peer;
use crate::tls::Current;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Connects to `dst` and copies until either side closes.
pub async fn forward<C>(mut client: C, dst: &Peer, connect_timeout: Duration, mesh: &Current)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let addr = dst.addr;
    let mut server =
        match crate::connect::connect(addr, dst.identity.as_deref(), connect_timeout, mesh).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(dst = %addr, error = %e, "opaque connect failed");
                return;
            }
        };
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
        tracing::debug!(dst = %addr, error = %e, "opaque stream ended with an error");
    }
}
