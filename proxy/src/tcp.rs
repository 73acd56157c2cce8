//! Opaque TCP: bytes copied both ways, untouched (also how TLS that is not
//! the mesh's own passes through).

use crate::io::Prefixed;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Connects to `dst` and copies until either side closes.
pub async fn forward(mut client: Prefixed<TcpStream>, dst: SocketAddr, connect_timeout: Duration) {
    let server = match tokio::time::timeout(connect_timeout, TcpStream::connect(dst)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%dst, error = %e, "opaque connect failed");
            return;
        }
        Err(_) => {
            tracing::info!(%dst, ?connect_timeout, "opaque connect timed out");
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let mut server = server;
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
        tracing::debug!(%dst, error = %e, "opaque stream ended with an error");
    }
}
