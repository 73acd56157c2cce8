//! The proxy's current certificate, as [`crate::identity`] obtains it and
//! everything that connects reads it: the HTTP pools, the opaque
//! forwarder, the inbound listener and the control-plane channel.

use super::MeshTls;
use arc_swap::ArcSwapOption;
use std::sync::Arc;

/// The current certificate.
#[derive(Clone)]
pub struct Certified {
    /// The identity it names.
    pub id: String,
    /// The certificate and its issuer's, PEM.
    pub chain: String,
    /// Its private key, PEM (never written anywhere).
    pub key: String,
    /// The roots peers chain to.
    pub roots: String,
    /// Expiry, Unix seconds.
    pub not_after: i64,
    /// Whether the identity service proved the identity (`false`: a
    /// `--local` development CA signed what this proxy declared).
    pub verified: bool,
    /// Mesh TLS with this certificate.
    pub tls: Arc<MeshTls>,
}

impl std::fmt::Debug for Certified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certified")
            .field("id", &self.id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The certificate in use, swapped whole at renewal.
pub type Current = ArcSwapOption<Certified>;
