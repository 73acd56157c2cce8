//! Route matching: `(&[Route], &Request) -> Option<&Route>`, no IO.
//!
//! Rules are tried in order and the first whose any-of matches holds wins.
//! Within one match every condition must hold. A rule without matches takes
//! every request. Header names are case-insensitive, values and query
//! parameters case-sensitive; regexes are anchored to the whole value.

pub mod path;

use crate::model::{PathMatch, Route, RouteMatch, ValueMatch};
use http::{HeaderMap, Method};

/// The parts of a request routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// Path without the query.
    pub path: &'a str,
    /// Raw query string, if any.
    pub query: Option<&'a str>,
    /// The request's headers (header rules match their values).
    pub headers: &'a HeaderMap,
}

impl<'a> RequestInfo<'a> {
    /// Borrows what routing needs from a request head.
    pub fn from_parts(method: &'a Method, uri: &'a http::Uri, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            path: uri.path(),
            query: uri.query(),
            headers,
        }
    }
}

/// The first rule that matches, if any.
pub fn select<'r>(routes: &'r [Route], req: &RequestInfo<'_>) -> Option<&'r Route> {
    routes
        .iter()
        .find(|r| r.matches.is_empty() || r.matches.iter().any(|m| matches(m, req)))
}

/// Whether one match holds for a request.
pub fn matches(m: &RouteMatch, req: &RequestInfo<'_>) -> bool {
    if let Some(method) = &m.method
        && method != req.method
    {
        return false;
    }
    if let Some(path) = &m.path
        && !path_matches(path, req.path)
    {
        return false;
    }
    let headers_ok = m.headers.iter().all(|h| {
        let mut values = req.headers.get_all(&h.name).iter().peekable();
        match &h.value {
            ValueMatch::Present => values.peek().is_some(),
            // A header sent several times matches if any value does.
            v => values.any(|val| val.to_str().is_ok_and(|s| value_matches(v, s))),
        }
    });
    if !headers_ok {
        return false;
    }
    m.query.iter().all(|q| {
        let mut found = query_values(req.query.unwrap_or(""), &q.name).peekable();
        match &q.value {
            ValueMatch::Present => found.peek().is_some(),
            v => found.any(|val| value_matches(v, &val)),
        }
    })
}

fn path_matches(m: &PathMatch, path: &str) -> bool {
    match m {
        PathMatch::Exact(p) => p == path,
        PathMatch::Prefix(p) if p == "/" => true,
        PathMatch::Prefix(p) => {
            path.starts_with(p.as_str())
                && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
        }
        PathMatch::Regex(re) => re.regex.is_match(path),
    }
}

fn value_matches(m: &ValueMatch, value: &str) -> bool {
    match m {
        ValueMatch::Exact(v) => v == value,
        ValueMatch::Regex(re) => re.regex.is_match(value),
        ValueMatch::Present => true,
    }
}

/// The decoded values of query parameter `name`.
fn query_values<'q>(query: &'q str, name: &'q str) -> impl Iterator<Item = String> + 'q {
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` and `+` in a query component; invalid escapes stay as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests;
