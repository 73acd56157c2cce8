//! Which Service an explicitly addressed request names.
//!
//! In explicit mode (an app pointed at the proxy with no iptables) the proxy
//! routes by `Host` / `:authority`: `svc.ns.svc.cluster.local`, `svc.ns.svc`,
//! `svc.ns`, or a bare `svc` in the proxy's own namespace, with the port from
//! the authority or 80. IP literals name no Service.

use crate::model::ServicePortKey;

/// The cluster DNS suffix Strait assumes (`cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Parses an authority into a Service port key. `None` when it cannot name a
/// Service (empty, IP literal, bad port, too many labels).
pub fn parse(authority: &str, default_namespace: &str) -> Option<ServicePortKey> {
    let authority = authority.trim();
    if authority.is_empty() || authority.starts_with('[') || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (authority, 80),
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.iter().any(|l| !valid_label(l)) {
        return None;
    }
    let cluster: Vec<&str> = CLUSTER_DOMAIN.split('.').collect();
    let (name, ns) = match labels.as_slice() {
        [name] => (*name, default_namespace),
        [name, ns] => (*name, *ns),
        [name, ns, "svc"] => (*name, *ns),
        [name, ns, "svc", rest @ ..] if rest == cluster.as_slice() => (*name, *ns),
        _ => return None,
    };
    Some(ServicePortKey::new(ns, name, port))
}

/// An RFC 1123 label, as Kubernetes names Services and namespaces.
fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let k = |ns: &str, n: &str, p| Some(ServicePortKey::new(ns, n, p));
        let table = [
            ("web", k("default", "web", 80)),
            ("web:8080", k("default", "web", 8080)),
            ("web.shop", k("shop", "web", 80)),
            ("web.shop:81", k("shop", "web", 81)),
            ("web.shop.svc", k("shop", "web", 80)),
            ("web.shop.svc.cluster.local", k("shop", "web", 80)),
            ("web.shop.svc.cluster.local.", k("shop", "web", 80)),
            ("web.shop.svc.cluster.local:9000", k("shop", "web", 9000)),
            ("WEB.Shop", k("shop", "web", 80)),
            ("web.shop.svc.other.domain", None),
            ("web.shop.pod", None),
            ("a.b.c.d", None),
            ("", None),
            ("10.0.0.1", None),
            ("10.0.0.1:80", None),
            ("[::1]:80", None),
            ("web:", None),
            ("web:0", None),
            ("web:99999", None),
            ("web:http", None),
            ("user@web", None),
            ("-web", None),
            ("we_b", None),
            ("web..shop", None),
        ];
        for (input, want) in table {
            assert_eq!(parse(input, "default"), want, "{input:?}");
        }
        assert_eq!(parse("web", "shop"), k("shop", "web", 80));
    }
}
