//! Checking a proxy's certificate signing request (pure): it must parse,
//! carry a valid self-signature over an ECDSA P-256 key, and ask for exactly
//! one name, the SPIFFE identity its token grants. Nothing else in the
//! request is used: the controller builds the certificate from scratch.
//! It parses bytes any pod may send, so it is fuzzed
//! (`fuzz/fuzz_targets/identity.rs`).

use super::SpiffeId;
use rcgen::{CertificateSigningRequestParams, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType};

/// Largest CSR read (a P-256 CSR with one URI is about 500 bytes of PEM).
pub const MAX_CSR_BYTES: usize = 8 * 1024;

/// Why a CSR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not a PEM PKCS#10 request with a valid signature.
    #[error("malformed CSR: {0}")]
    Malformed(String),
    /// The key is not ECDSA P-256.
    #[error("the CSR's key must be ECDSA P-256")]
    KeyType,
    /// The names asked for are not exactly the token's identity.
    #[error("the CSR asks for {asked}, but the token grants only {granted}")]
    Identity {
        /// What the CSR names.
        asked: String,
        /// What the token grants.
        granted: String,
    },
}

/// A CSR's key and the names it asks for, once it parses and is signed
/// over an ECDSA P-256 key.
fn read(csr_pem: &str) -> Result<(rcgen::PublicKey, Vec<String>), CsrError> {
    if csr_pem.len() > MAX_CSR_BYTES {
        return Err(CsrError::Malformed(format!(
            "{} bytes, more than {MAX_CSR_BYTES}",
            csr_pem.len()
        )));
    }
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let key = csr.public_key;
    // An uncompressed P-256 point is 65 bytes; the signature algorithm
    // alone would also admit a P-384 key signed with SHA-256.
    if key.algorithm() != &PKCS_ECDSA_P256_SHA256 || key.der_bytes().len() != 65 {
        return Err(CsrError::KeyType);
    }
    let asked: Vec<String> = csr
        .params
        .subject_alt_names
        .iter()
        .map(|san| match san {
            SanType::URI(uri) => uri.as_str().to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    Ok((key, asked))
}

/// The CSR's public key, if the request may be signed for `granted`.
pub fn check(csr_pem: &str, granted: &SpiffeId) -> Result<rcgen::PublicKey, CsrError> {
    let (key, asked) = read(csr_pem)?;
    let want = granted.to_string();
    if asked != [want.as_str()] {
        return Err(CsrError::Identity {
            asked: if asked.is_empty() {
                "no name".into()
            } else {
                asked.join(", ")
            },
            granted: want,
        });
    }
    Ok(key)
}

/// The identity a CSR declares (one SPIFFE name in `trust_domain`) and its
/// key, for the local development CA, which has no token to check it by.
pub fn declared(
    csr_pem: &str,
    trust_domain: &str,
) -> Result<(SpiffeId, rcgen::PublicKey), CsrError> {
    let (key, asked) = read(csr_pem)?;
    let id = match asked.as_slice() {
        [one] => SpiffeId::parse(one).ok(),
        _ => None,
    }
    .filter(|id| id.trust_domain == trust_domain)
    .ok_or_else(|| CsrError::Identity {
        asked: if asked.is_empty() {
            "no name".into()
        } else {
            asked.join(", ")
        },
        granted: format!("one identity in spiffe://{trust_domain}"),
    })?;
    Ok((id, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn csr(key: &KeyPair, sans: &[SanType]) -> String {
        let mut p = CertificateParams::default();
        p.subject_alt_names = sans.to_vec();
        p.serialize_request(key).unwrap().pem().unwrap()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn check_table() {
        let web = SpiffeId::new("cluster.local", "shop", "web");
        let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let good = csr(&p256, &[uri(&web.to_string())]);
        let mut tampered = good.clone().into_bytes();
        // Flip a byte in the base64 body: the signature no longer holds.
        tampered[100] = if tampered[100] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let cases: Vec<(&str, String, Result<(), &str>)> = vec![
            ("good", good.clone(), Ok(())),
            (
                "another identity",
                csr(&p256, &[uri("spiffe://cluster.local/ns/shop/sa/db")]),
                Err("grants only"),
            ),
            (
                "another trust domain",
                csr(&p256, &[uri("spiffe://evil.example/ns/shop/sa/web")]),
                Err("grants only"),
            ),
            (
                "two names",
                csr(
                    &p256,
                    &[
                        uri(&web.to_string()),
                        uri("spiffe://cluster.local/ns/shop/sa/db"),
                    ],
                ),
                Err("grants only"),
            ),
            (
                "a DNS name too",
                csr(
                    &p256,
                    &[
                        uri(&web.to_string()),
                        SanType::DnsName("web".try_into().unwrap()),
                    ],
                ),
                Err("grants only"),
            ),
            ("no name", csr(&p256, &[]), Err("no name")),
            ("P-384", csr(&p384, &[uri(&web.to_string())]), Err("P-256")),
            ("Ed25519", csr(&ed, &[uri(&web.to_string())]), Err("P-256")),
            ("bad signature", tampered, Err("malformed")),
            ("not PEM", "hello".into(), Err("malformed")),
            ("huge", "A".repeat(MAX_CSR_BYTES + 1), Err("malformed")),
        ];
        for (name, pem, want) in cases {
            let got = check(&pem, &web).map(drop).map_err(|e| e.to_string());
            match (want, got) {
                (Ok(()), Ok(())) => {}
                (Err(needle), Err(e)) => assert!(e.contains(needle), "{name}: {e}"),
                (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
            }
            // The development CA signs what a CSR declares, if it is one
            // identity of its trust domain.
            let declared = declared(&pem, "cluster.local").map(|(id, _)| id.to_string());
            let declares_one = matches!(name, "good" | "another identity");
            assert_eq!(declared.is_ok(), declares_one, "{name}: {declared:?}");
        }
    }
}
