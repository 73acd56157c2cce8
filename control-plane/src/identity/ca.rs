//! The mesh's certificate authority (pure, the time given): a trust anchor
//! (a root that lives ten years), an issuer it signs (one year), and the
//! 24-hour workload certificates the issuer signs for proxies. ECDSA P-256
//! throughout. The anchor is kept in a Secret laid out as cert-manager
//! writes one (`tls.crt`, `tls.key` for the issuer, `ca.crt` for the roots,
//! [`super::anchor`]), so a user can supply their own.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use strait_api::identity::SpiffeId;
use time::{Duration, OffsetDateTime};

/// How long a generated root lives.
pub const ROOT_LIFETIME: Duration = Duration::days(3650);
/// How long a generated issuer lives.
pub const ISSUER_LIFETIME: Duration = Duration::days(365);
/// How long a workload certificate lives.
pub const WORKLOAD_LIFETIME: Duration = Duration::hours(24);
/// Clock skew allowed between the controller and the proxies.
const BACKDATE: Duration = Duration::minutes(1);

/// Why the CA cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen refused.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// The issuer or the roots do not parse, or do not fit together.
    #[error("trust anchor: {0}")]
    Anchor(String),
}

/// The issuer and the roots, as PEM (what the Secret holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorPem {
    /// The issuer's certificate (`tls.crt`).
    pub issuer_cert: String,
    /// The issuer's private key (`tls.key`).
    pub issuer_key: String,
    /// The roots (`ca.crt`): one, or two while the anchor rotates.
    pub roots: String,
}

/// A new root and an issuer signed by it, valid from a minute before `now`.
pub fn new_anchor(now: OffsetDateTime, trust_domain: &str) -> Result<AnchorPem, CaError> {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut root = CertificateParams::default();
    root.distinguished_name
        .push(DnType::CommonName, format!("root.{trust_domain}"));
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = now - BACKDATE;
    root.not_after = now + ROOT_LIFETIME;
    let root_cert = root.self_signed(&root_key)?;
    let root_issuer = Issuer::new(root, root_key);

    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut issuer = CertificateParams::default();
    issuer
        .distinguished_name
        .push(DnType::CommonName, format!("identity.{trust_domain}"));
    issuer.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuer.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    issuer.not_before = now - BACKDATE;
    issuer.not_after = now + ISSUER_LIFETIME;
    let issuer_cert = issuer.signed_by(&issuer_key, &root_issuer)?;
    Ok(AnchorPem {
        issuer_cert: issuer_cert.pem(),
        issuer_key: issuer_key.serialize_pem(),
        roots: root_cert.pem(),
    })
}

/// A workload certificate and what comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, then the issuer's, PEM.
    pub chain: String,
    /// The roots.
    pub roots: String,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

/// Signs workload certificates with the issuer.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    anchor: AnchorPem,
    /// The issuer's own expiry (Unix seconds): no certificate outlives it.
    issuer_not_after: i64,
}

/// The DER of every certificate in a PEM bundle.
fn ders(pem: &str, what: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let ders: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.map(|p| p.contents))
        .collect::<Result<_, _>>()
        .map_err(|e| CaError::Anchor(format!("{what}: {e}")))?;
    if ders.is_empty() {
        return Err(CaError::Anchor(format!("{what} holds no certificate")));
    }
    Ok(ders)
}

impl Signer {
    /// A signer for `anchor`, if it holds together: the issuer is a CA
    /// certificate, valid at `now`, whose public key is `tls.key`'s and
    /// whose signature one of the roots verifies. A user's Secret that
    /// fails any of these is refused at once, rather than signing
    /// certificates no peer will accept.
    pub fn new(anchor: AnchorPem, now: OffsetDateTime) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(&anchor.issuer_key)
            .map_err(|e| CaError::Anchor(format!("tls.key: {e}")))?;
        let issuer_der = ders(&anchor.issuer_cert, "tls.crt")?.remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&issuer_der)
            .map_err(|e| CaError::Anchor(format!("tls.crt: {e}")))?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::Anchor("tls.key is not the key of tls.crt".into()));
        }
        if !cert.is_ca() {
            return Err(CaError::Anchor("tls.crt is not a CA certificate".into()));
        }
        let validity = cert.validity();
        let now_s = now.unix_timestamp();
        if now_s < validity.not_before.timestamp() || now_s >= validity.not_after.timestamp() {
            return Err(CaError::Anchor(format!(
                "tls.crt is not valid now (valid {} to {})",
                validity.not_before, validity.not_after
            )));
        }
        let roots = ders(&anchor.roots, "ca.crt")?;
        let chained = roots.iter().any(|r| {
            x509_parser::parse_x509_certificate(r)
                .is_ok_and(|(_, root)| cert.verify_signature(Some(root.public_key())).is_ok())
        });
        if !chained {
            return Err(CaError::Anchor(
                "tls.crt is not signed by a root in ca.crt".into(),
            ));
        }
        let issuer_not_after = validity.not_after.timestamp();
        let issuer = Issuer::from_ca_cert_pem(&anchor.issuer_cert, key)
            .map_err(|e| CaError::Anchor(format!("tls.crt: {e}")))?;
        Ok(Signer {
            issuer,
            anchor,
            issuer_not_after,
        })
    }

    /// A certificate for `id` over `public_key`, valid for `lifetime` from
    /// a minute before `now` (never past the issuer's own expiry).
    pub fn sign(
        &self,
        public_key: &impl PublicKeyData,
        id: &SpiffeId,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Issued, CaError> {
        let mut p = CertificateParams::default();
        let bad = |e: rcgen::Error| CaError::Anchor(format!("identity {id}: {e:?}"));
        // The SPIFFE URI, and the same identity as a DNS name, which peers
        // send as the TLS server name and verify with a standard verifier.
        p.subject_alt_names = vec![
            SanType::URI(id.to_string().try_into().map_err(bad)?),
            SanType::DnsName(id.dns_name().try_into().map_err(bad)?),
        ];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = now - BACKDATE;
        p.not_after = (now + lifetime).min(
            OffsetDateTime::from_unix_timestamp(self.issuer_not_after)
                .map_err(|e| CaError::Anchor(e.to_string()))?,
        );
        let cert = p.signed_by(public_key, &self.issuer)?;
        Ok(Issued {
            chain: format!("{}{}", cert.pem(), self.anchor.issuer_cert),
            roots: self.anchor.roots.clone(),
            not_after: p.not_after.unix_timestamp(),
        })
    }

    /// The roots peers must chain to.
    pub fn roots(&self) -> &str {
        &self.anchor.roots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate the signer issued verifies, with a real TLS verifier,
    /// against the roots, as a client certificate and as a server's.
    #[test]
    fn issued_certificates_chain_to_the_roots() {
        let now = OffsetDateTime::now_utc();
        let signer = Signer::new(new_anchor(now, "cluster.local").unwrap(), now).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let id = SpiffeId::new("cluster.local", "shop", "web");
        let issued = signer.sign(&key, &id, now, WORKLOAD_LIFETIME).unwrap();
        assert_eq!(issued.not_after, (now + WORKLOAD_LIFETIME).unix_timestamp());
        let ders = |pem: &str| -> Vec<rustls_pki_types::CertificateDer<'static>> {
            x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
                .map(|p| rustls_pki_types::CertificateDer::from(p.unwrap().contents))
                .collect()
        };
        let chain = ders(&issued.chain);
        assert_eq!(chain.len(), 2);
        let mut roots = rustls::RootCertStore::empty();
        for r in ders(&issued.roots) {
            roots.add(r).unwrap();
        }
        let roots = std::sync::Arc::new(roots);
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client_verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
                .build()
                .unwrap();
        client_verifier
            .verify_client_cert(&chain[0], &chain[1..], rustls_pki_types::UnixTime::now())
            .unwrap();
        // The names are the SPIFFE URI and its DNS form, nothing else.
        let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", sans.value.general_names),
            "[URI(\"spiffe://cluster.local/ns/shop/sa/web\"), DNSName(\"web.shop.serviceaccount.identity.cluster.local\")]"
        );
        // Another anchor's certificate does not verify against these roots.
        let other = Signer::new(new_anchor(now, "cluster.local").unwrap(), now).unwrap();
        let foreign = other.sign(&key, &id, now, WORKLOAD_LIFETIME).unwrap();
        let foreign = ders(&foreign.chain);
        assert!(
            client_verifier
                .verify_client_cert(
                    &foreign[0],
                    &foreign[1..],
                    rustls_pki_types::UnixTime::now()
                )
                .is_err()
        );
    }

    #[test]
    fn a_broken_anchor_is_an_error() {
        let now = OffsetDateTime::now_utc();
        let good = new_anchor(now, "cluster.local").unwrap();
        let other = new_anchor(now, "cluster.local").unwrap();
        let with = |f: &dyn Fn(&mut AnchorPem)| {
            let mut a = good.clone();
            f(&mut a);
            a
        };
        let cases = [
            ("not a key", with(&|a| a.issuer_key = "x".into()), "tls.key"),
            (
                "not a certificate",
                with(&|a| a.issuer_cert = "x".into()),
                "tls.crt",
            ),
            ("no roots", with(&|a| a.roots = String::new()), "ca.crt"),
            (
                "another anchor's key",
                with(&|a| a.issuer_key = other.issuer_key.clone()),
                "not the key",
            ),
            (
                "another anchor's roots",
                with(&|a| a.roots = other.roots.clone()),
                "not signed by a root",
            ),
            (
                "the root as the issuer",
                with(&|a| a.issuer_cert = good.roots.clone()),
                "not the key",
            ),
        ];
        for (what, anchor, reason) in cases {
            let err = Signer::new(anchor, now)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(reason), "{what}: {err:?}");
        }
        // Expired, or not yet valid: refused.
        let later = now + ISSUER_LIFETIME + Duration::days(1);
        assert!(Signer::new(good.clone(), later).is_err(), "expired issuer");
        assert!(
            Signer::new(good.clone(), now - Duration::days(1)).is_err(),
            "not yet valid"
        );
        // A certificate never outlives its issuer.
        let signer = Signer::new(good, now).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let id = SpiffeId::new("cluster.local", "shop", "web");
        let near_end = now + ISSUER_LIFETIME - Duration::hours(1);
        let issued = signer.sign(&key, &id, near_end, WORKLOAD_LIFETIME).unwrap();
        assert_eq!(issued.not_after, signer.issuer_not_after);
    }
}
