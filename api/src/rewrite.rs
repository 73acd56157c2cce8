//! URL changes a rule can make: answer with a redirect instead of forwarding
//! (HTTPRoute `RequestRedirect`) or change the path and host before
//! forwarding (`URLRewrite`). Plain data and pure functions; the proxy calls
//! [`location`] and [`rewrite_path`] with the request's parts.

use serde::Serialize;

/// How a path is changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathChange {
    /// The whole path becomes this.
    Full(String),
    /// The part the rule's `PathPrefix` matched is replaced.
    Prefix {
        /// The prefix the rule matched (without a trailing `/`).
        matched: String,
        /// What replaces it.
        with: String,
    },
}

/// Answer with a redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redirect {
    /// `http` or `https`; the request's when unset.
    pub scheme: Option<String>,
    /// Host; the request's when unset.
    pub hostname: Option<String>,
    /// Port; derived from the scheme, or the request's, when unset.
    pub port: Option<u16>,
    /// Path change; the path is kept when unset.
    pub path: Option<PathChange>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// Change the URL before forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// New `Host` / `:authority`.
    pub hostname: Option<String>,
    /// Path change.
    pub path: Option<PathChange>,
}

/// The path after a change. `path` is the request's (normalised) path,
/// without the query.
pub fn rewrite_path(change: &PathChange, path: &str) -> String {
    match change {
        PathChange::Full(p) => p.clone(),
        PathChange::Prefix { matched, with } => {
            let matched = matched.trim_end_matches('/');
            // The rule matched this prefix element-wise, so the rest is
            // empty or starts with `/`; anything else keeps the path whole.
            let rest = path.strip_prefix(matched).unwrap_or(path);
            let out = format!("{}{rest}", with.trim_end_matches('/'));
            if out.is_empty() { "/".into() } else { out }
        }
    }
}

/// The `Location` of a redirect, as Gateway API defines it: unset parts come
/// from the request; an unset port is the scheme's well-known one when the
/// redirect sets a scheme, else the port the request was sent to; the port
/// is left out when it is the scheme's default. The query is kept.
pub fn location(
    r: &Redirect,
    request_scheme: &str,
    request_host: &str,
    request_port: u16,
    path: &str,
    query: Option<&str>,
) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(request_scheme);
    let host = r.hostname.as_deref().unwrap_or(request_host);
    let port = r.port.unwrap_or(match r.scheme.as_deref() {
        Some("https") => 443,
        Some("http") => 80,
        _ => request_port,
    });
    let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
    let path = match &r.path {
        Some(change) => rewrite_path(change, path),
        None => path.to_string(),
    };
    let mut out = format!("{scheme}://{host}");
    if !default_port {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(&path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The host part of a `Host` header value (`name:port` → `name`, IPv6
/// literals kept in their brackets).
pub fn host_without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(matched: &str, with: &str) -> PathChange {
        PathChange::Prefix {
            matched: matched.into(),
            with: with.into(),
        }
    }

    #[test]
    fn prefix_replacement_follows_the_gateway_api_table() {
        // (matched prefix, request path, replacement, result): the table in
        // the Gateway API's HTTPPathModifier documentation.
        let table = [
            ("/foo", "/foo/bar", "/xyz", "/xyz/bar"),
            ("/foo", "/foo/bar", "/xyz/", "/xyz/bar"),
            ("/foo/", "/foo/bar", "/xyz", "/xyz/bar"),
            ("/foo/", "/foo/bar", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo", "/foo/", "/xyz", "/xyz/"),
            ("/foo/", "/foo", "/xyz", "/xyz"),
            ("/", "/foo", "/xyz", "/xyz/foo"),
            ("/foo", "/foo/bar", "/", "/bar"),
            ("/foo", "/foo", "/", "/"),
            ("/foo", "/foo", "", "/"),
        ];
        for (matched, path, with, want) in table {
            assert_eq!(
                rewrite_path(&prefix(matched, with), path),
                want,
                "{matched} {path} {with}"
            );
        }
        assert_eq!(
            rewrite_path(&PathChange::Full("/one".into()), "/a/b"),
            "/one"
        );
    }

    #[test]
    fn location_fills_unset_parts_from_the_request() {
        let r = |scheme: Option<&str>, host: Option<&str>, port: Option<u16>| Redirect {
            scheme: scheme.map(Into::into),
            hostname: host.map(Into::into),
            port,
            path: None,
            status: 302,
        };
        let table = [
            // Nothing set: same place (the request's port kept).
            (r(None, None, None), "http://web:8080/a?x=1"),
            (
                r(None, Some("example.org"), None),
                "http://example.org:8080/a?x=1",
            ),
            // A scheme without a port takes the scheme's well-known port.
            (r(Some("https"), None, None), "https://web/a?x=1"),
            (r(Some("http"), None, None), "http://web/a?x=1"),
            (r(None, None, Some(8443)), "http://web:8443/a?x=1"),
            (
                r(Some("https"), Some("x.dev"), Some(443)),
                "https://x.dev/a?x=1",
            ),
            (r(Some("https"), None, Some(8443)), "https://web:8443/a?x=1"),
            (r(None, None, Some(80)), "http://web/a?x=1"),
        ];
        for (redirect, want) in table {
            assert_eq!(
                location(&redirect, "http", "web", 8080, "/a", Some("x=1")),
                want,
                "{redirect:?}"
            );
        }
        let with_path = Redirect {
            path: Some(prefix("/a", "/b")),
            ..r(None, None, None)
        };
        assert_eq!(
            location(&with_path, "http", "web", 80, "/a/c", None),
            "http://web/b/c"
        );
    }

    #[test]
    fn host_without_port_keeps_names_and_ipv6_literals() {
        for (authority, host) in [
            ("web", "web"),
            ("web:8080", "web"),
            ("10.0.0.1:80", "10.0.0.1"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("web:", "web"),
        ] {
            assert_eq!(host_without_port(authority), host, "{authority}");
        }
    }
}
