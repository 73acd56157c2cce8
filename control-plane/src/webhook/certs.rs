//! The webhook's certificates: a CA that lives ten years (its certificate
//! is the `caBundle` the API server trusts) and a serving certificate for
//! the webhook Service's DNS names that lives one year and is re-issued by
//! the same CA when less than a third of its life is left, so the
//! `caBundle` does not change when it is renewed. ECDSA P-256 throughout.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// How long the CA lives.
pub const CA_LIFETIME: Duration = Duration::days(3650);
/// How long a serving certificate lives.
pub const SERVING_LIFETIME: Duration = Duration::days(365);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused.
    #[error("cannot make a certificate: {0}")]
    Make(#[from] rcgen::Error),
    /// A PEM block did not parse.
    #[error("cannot read the certificate: {0}")]
    Parse(String),
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
}

/// A new self-signed CA, valid from a minute before `now`.
pub fn new_ca(now: OffsetDateTime) -> Result<Pem, CertError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "strait-webhook-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::minutes(1);
    p.not_after = now + CA_LIFETIME;
    let cert = p.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A serving certificate for `dns_names`, signed by `ca`.
pub fn issue(ca: &Pem, dns_names: &[String], now: OffsetDateTime) -> Result<Pem, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(dns_names.to_vec())?;
    p.distinguished_name.push(
        DnType::CommonName,
        dns_names
            .first()
            .map(String::as_str)
            .unwrap_or("strait-webhook"),
    );
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = now - Duration::minutes(1);
    p.not_after = now + SERVING_LIFETIME;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The validity window of the first certificate in `pem`, as Unix seconds.
pub fn validity(pem: &str) -> Result<(i64, i64), CertError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = block
        .parse_x509()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// Whether a certificate valid over `(not_before, not_after)` should be
/// replaced at `now`: when less than a third of its life is left.
pub fn renewal_due((not_before, not_after): (i64, i64), now: i64) -> bool {
    let life = (not_after - not_before).max(0);
    now >= not_after - life / 3
}

/// The DNS names the API server uses for the webhook Service.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_certificate_chains_to_its_ca_and_renewal_keeps_the_ca() {
        let now = OffsetDateTime::now_utc();
        let ca = new_ca(now).unwrap();
        let names = dns_names("strait-webhook", "strait-system");
        let a = issue(&ca, &names, now).unwrap();
        let b = issue(&ca, &names, now + Duration::days(300)).unwrap();
        let (nb, na) = validity(&a.cert).unwrap();
        assert_eq!(
            na - nb,
            (SERVING_LIFETIME + Duration::minutes(1)).whole_seconds()
        );
        assert!(validity(&ca.cert).unwrap().1 > na);
        // Both verify against the same CA with a real TLS verifier.
        for leaf in [&a, &b] {
            let mut roots = rustls::RootCertStore::empty();
            let ca_der = rustls_pki_types::CertificateDer::from(
                x509_parser::pem::parse_x509_pem(ca.cert.as_bytes())
                    .unwrap()
                    .1
                    .contents,
            );
            roots.add(ca_der).unwrap();
            let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let verifier =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            let leaf_der = rustls_pki_types::CertificateDer::from(
                x509_parser::pem::parse_x509_pem(leaf.cert.as_bytes())
                    .unwrap()
                    .1
                    .contents,
            );
            let name =
                rustls_pki_types::ServerName::try_from("strait-webhook.strait-system.svc").unwrap();
            let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                (validity(&leaf.cert).unwrap().0 + 120) as u64,
            ));
            use rustls::client::danger::ServerCertVerifier;
            verifier
                .verify_server_cert(&leaf_der, &[], &name, &[], at)
                .unwrap();
        }
    }

    #[test]
    fn renewal_is_due_in_the_last_third_of_life() {
        let cases = [
            ((0, 300), 0, false),
            ((0, 300), 199, false),
            ((0, 300), 200, true),
            ((0, 300), 400, true),
            ((100, 100), 50, false),
            ((100, 100), 100, true),
        ];
        for (window, now, want) in cases {
            assert_eq!(renewal_due(window, now), want, "{window:?} at {now}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(validity("not a certificate").is_err());
        let ca = Pem {
            cert: "x".into(),
            key: "y".into(),
        };
        assert!(issue(&ca, &["a".into()], OffsetDateTime::now_utc()).is_err());
    }
}
