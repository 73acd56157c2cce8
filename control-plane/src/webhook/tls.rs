//! The certificate the webhook listener serves. The reconciler swaps it in
//! place when the Secret holds a new one; handshakes in flight keep the one
//! they started with.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, RwLock};

/// Holds the current certificate (none until the reconciler has one).
#[derive(Debug, Default)]
pub struct Resolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    pem: RwLock<String>,
}

impl Resolver {
    /// Serves `cert_pem` with `key_pem` from now on, unless it already does.
    pub fn set(&self, cert_pem: &str, key_pem: &str) -> Result<bool, String> {
        if self.pem.read().map(|p| *p == cert_pem).unwrap_or(false) {
            return Ok(false);
        }
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate: {e}"))?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key: {e}"))?;
        let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
            .map_err(|e| format!("key: {e}"))?;
        let ck = Arc::new(CertifiedKey::new(certs, key));
        if let Ok(mut c) = self.current.write() {
            *c = Some(ck);
        }
        if let Ok(mut p) = self.pem.write() {
            *p = cert_pem.to_owned();
        }
        Ok(true)
    }

    /// Whether a certificate is loaded.
    pub fn ready(&self) -> bool {
        self.current.read().map(|c| c.is_some()).unwrap_or(false)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.clone()
    }
}
