//! Reaching the control plane: the identity service and the config
//! stream are gRPC over one kind of channel. Given trust roots (the
//! injector sets them), the channel is TLS that checks the controller's
//! own identity, and it carries this proxy's certificate once it has one,
//! which proves to the config stream who the proxy is. Without roots
//! (a local proxy started by hand) it is plaintext.
//!
//! The roots in use are the freshest the proxy has: those it was started
//! with until its first certificate, then the bundle each certificate
//! came with, so a trust anchor rotated through a two-root bundle reaches
//! the proxy without a restart.

use crate::tls::Certified;
use crate::tls::{self, anonymous_client};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use strait_api::identity::SpiffeId;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// How to check the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneTls {
    /// The roots to start with, PEM.
    pub roots: String,
    /// The controller's identity (its namespace and ServiceAccount).
    pub identity: SpiffeId,
}

/// Why the control plane could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The address is not `HOST:PORT`.
    #[error("invalid address {0:?}")]
    Address(String),
    /// The roots do not parse.
    #[error("trust roots: {0}")]
    Roots(#[from] tls::TlsError),
    /// TCP, TLS or HTTP/2 failed.
    #[error("{0}")]
    Connect(String),
}

/// A channel to `addr` (`HOST:PORT`): TLS checked against `tls`, with
/// `cert` as the client certificate when there is one; plaintext without
/// `tls`.
pub async fn channel(
    addr: &str,
    tls: Option<&ControlPlaneTls>,
    cert: Option<Arc<Certified>>,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<Channel, ChannelError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| ChannelError::Address(addr.to_string()))?;
    let endpoint = configure(endpoint);
    let Some(tls) = tls else {
        return endpoint
            .connect()
            .await
            .map_err(|e| ChannelError::Connect(crate::http::errors::with_causes(&e)));
    };
    // One connection per channel: the connector is called once (and again
    // if tonic reconnects), always to the same place.
    let roots = match &cert {
        Some(_) => None,
        None => Some(tls::roots(&tls.roots)?),
    };
    let (addr, expected) = (addr.to_string(), tls.identity.clone());
    let connector = tower::service_fn(move |_: http::Uri| {
        let (addr, expected, cert, roots) =
            (addr.clone(), expected.clone(), cert.clone(), roots.clone());
        async move {
            let tcp = TcpStream::connect(&addr).await?;
            let _ = tcp.set_nodelay(true);
            let stream = match (cert, roots) {
                (Some(cert), _) => cert.tls.connect_control(tcp, &expected).await?,
                (None, Some(roots)) => {
                    let config = anonymous_client(roots)?;
                    let name = rustls::pki_types::ServerName::try_from(expected.dns_name())
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await?
                }
                (None, None) => return Err(std::io::Error::other("no roots").into()),
            };
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(TokioIo::new(stream))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| ChannelError::Connect(crate::http::errors::with_causes(&e)))
}

/// The connect timeout for the control plane's listeners.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
