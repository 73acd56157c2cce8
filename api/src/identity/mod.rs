//! Workload identity names: `spiffe://<trust-domain>/ns/<namespace>/sa/<sa>`,
//! one per ServiceAccount, as Linkerd and Istio name them. Pure: parsing,
//! printing, and the identity a Kubernetes ServiceAccount username grants;
//! [`csr`] checks what a certificate signing request may ask for.

pub mod csr;

use std::fmt;

/// The trust domain when none is configured.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The audience of the ServiceAccount token a proxy presents for its
/// certificate (the injector projects a token with it).
pub const TOKEN_AUDIENCE: &str = "strait.dev/identity";

/// A workload's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The mesh's trust domain, e.g. `cluster.local`.
    pub trust_domain: String,
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
}

/// Why a string is not a workload identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not `spiffe://DOMAIN/ns/NS/sa/SA`.
    #[error("{0:?} is not spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>")]
    NotSpiffe(String),
    /// Not a DNS-like name.
    #[error("trust domain {0:?} is not a lowercase DNS-like name such as cluster.local")]
    TrustDomain(String),
    /// Not `system:serviceaccount:NS:SA`.
    #[error("{0:?} is not a ServiceAccount (system:serviceaccount:<namespace>:<name>)")]
    NotServiceAccount(String),
}

/// A DNS-1123 label (what namespaces and ServiceAccount names are) or, for a
/// trust domain, dot-separated labels.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

/// A namespace name: one DNS-1123 label (no dots, unlike a ServiceAccount
/// name), which is what keeps the DNS form of an identity unambiguous.
fn is_namespace(s: &str) -> bool {
    is_label(s) && !s.contains('.') && s.len() <= 63
}

/// Checks a trust domain: lowercase DNS-like labels (`cluster.local`).
pub fn check_trust_domain(trust_domain: &str) -> Result<(), IdentityError> {
    if is_label(trust_domain) {
        Ok(())
    } else {
        Err(IdentityError::TrustDomain(
            trust_domain.chars().take(300).collect(),
        ))
    }
}

impl SpiffeId {
    /// The identity of ServiceAccount `namespace/service_account`.
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
    }

    /// Parses `spiffe://DOMAIN/ns/NS/sa/SA` exactly (no query, fragment,
    /// port, user info, trailing slash or extra segments).
    pub fn parse(uri: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::NotSpiffe(uri.chars().take(300).collect());
        let rest = uri.strip_prefix("spiffe://").ok_or_else(bad)?;
        let mut parts = rest.split('/');
        let (Some(domain), Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        if ![domain, sa].iter().all(|p| is_label(p)) || !is_namespace(ns) {
            return Err(bad());
        }
        Ok(SpiffeId::new(domain, ns, sa))
    }

    /// The identity a ServiceAccount's username grants:
    /// `system:serviceaccount:NS:SA` (what TokenReview returns).
    pub fn from_username(trust_domain: &str, username: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::NotServiceAccount(username.chars().take(300).collect());
        let rest = username
            .strip_prefix("system:serviceaccount:")
            .ok_or_else(bad)?;
        let (ns, sa) = rest.split_once(':').ok_or_else(bad)?;
        if !is_namespace(ns) || !is_label(sa) || !is_label(trust_domain) {
            return Err(bad());
        }
        Ok(SpiffeId::new(trust_domain, ns, sa))
    }
}

impl SpiffeId {
    /// The identity as a DNS name,
    /// `<sa>.<ns>.serviceaccount.identity.<trust-domain>`: certificates
    /// carry it beside the SPIFFE URI, and a proxy sends it as the TLS
    /// server name, so a standard verifier checks the chain and the name
    /// in one step and the inbound side tells mesh TLS from the app's own.
    pub fn dns_name(&self) -> String {
        format!(
            "{}.{}.{MESH_DNS_INFIX}.{}",
            self.service_account, self.namespace, self.trust_domain
        )
    }

    /// The identity a [`SpiffeId::dns_name`] names, in `trust_domain`.
    pub fn from_dns_name(trust_domain: &str, name: &str) -> Option<Self> {
        let rest = name.strip_suffix(trust_domain)?.strip_suffix('.')?;
        let rest = rest.strip_suffix(MESH_DNS_INFIX)?.strip_suffix('.')?;
        // A namespace is one label; a ServiceAccount name may have dots
        // (a DNS subdomain), so the namespace is the last label.
        let (sa, ns) = rest.rsplit_once('.')?;
        (is_label(sa) && is_namespace(ns)).then(|| SpiffeId::new(trust_domain, ns, sa))
    }
}

/// The identity a certificate (DER) names in its URI SAN, if it is a
/// workload identity: what the peer of a mesh TLS connection proved (the
/// chain was checked by the TLS handshake, not here).
pub fn of_certificate(der: &[u8]) -> Option<SpiffeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    sans.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => SpiffeId::parse(uri).ok(),
        _ => None,
    })
}

/// The part of a mesh DNS name between the workload and the trust domain.
pub const MESH_DNS_INFIX: &str = "serviceaccount.identity";

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = SpiffeId::new("cluster.local", "shop", "web");
        let cases: &[(&str, Option<&SpiffeId>)] = &[
            ("spiffe://cluster.local/ns/shop/sa/web", Some(&ok)),
            ("spiffe://cluster.local/ns/shop/sa/web/", None),
            ("spiffe://cluster.local/ns/shop/sa/web/x", None),
            ("spiffe://cluster.local/ns/shop/sa/", None),
            ("spiffe://cluster.local/ns//sa/web", None),
            ("spiffe://cluster.local/sa/web/ns/shop", None),
            ("spiffe://Cluster.local/ns/shop/sa/web", None),
            ("spiffe://cluster.local:443/ns/shop/sa/web", None),
            ("spiffe://u@cluster.local/ns/shop/sa/web", None),
            ("spiffe://cluster.local/ns/shop/sa/web?x", None),
            ("spiffe://cluster.local/ns/-shop/sa/web", None),
            ("https://cluster.local/ns/shop/sa/web", None),
            ("spiffe://", None),
            ("", None),
        ];
        for (uri, want) in cases {
            assert_eq!(SpiffeId::parse(uri).ok().as_ref(), *want, "{uri}");
        }
        assert_eq!(ok.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        assert_eq!(SpiffeId::parse(&ok.to_string()), Ok(ok));
    }

    #[test]
    fn dns_names_round_trip() {
        let id = SpiffeId::new("cluster.local", "shop", "web");
        assert_eq!(
            id.dns_name(),
            "web.shop.serviceaccount.identity.cluster.local"
        );
        assert_eq!(
            SpiffeId::from_dns_name("cluster.local", &id.dns_name()),
            Some(id)
        );
        for name in [
            "web.shop.serviceaccount.identity.other.local",
            "shop.serviceaccount.identity.cluster.local",
            "web.shop.identity.cluster.local",
            "example.com",
            "",
        ] {
            assert_eq!(
                SpiffeId::from_dns_name("cluster.local", name),
                None,
                "{name}"
            );
        }
        // A ServiceAccount name may have dots; a namespace may not, so the
        // DNS form still reads back (found by fuzz/fuzz_targets/identity.rs).
        let dotted = SpiffeId::new("cluster.local", "shop", "web.v2");
        assert_eq!(
            SpiffeId::from_dns_name("cluster.local", &dotted.dns_name()),
            Some(dotted.clone())
        );
        assert_eq!(SpiffeId::parse(&dotted.to_string()), Ok(dotted));
        assert!(SpiffeId::parse("spiffe://cluster.local/ns/a.b/sa/web").is_err());
    }

    #[test]
    fn usernames_table() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("system:serviceaccount:shop:web", Some(("shop", "web"))),
            ("system:serviceaccount:shop", None),
            ("system:serviceaccount::web", None),
            ("system:serviceaccount:shop:web:x", None),
            ("system:node:n1", None),
            ("admin", None),
            ("system:serviceaccount:Shop:web", None),
        ];
        for (user, want) in cases {
            let got = SpiffeId::from_username("cluster.local", user).ok();
            let want = want.map(|(ns, sa)| SpiffeId::new("cluster.local", ns, sa));
            assert_eq!(got, want, "{user}");
        }
        for (domain, ok) in [
            ("cluster.local", true),
            ("mesh", true),
            ("Cluster.local", false),
            ("a/b", false),
            ("", false),
        ] {
            assert_eq!(check_trust_domain(domain).is_ok(), ok, "{domain}");
        }
    }
}
