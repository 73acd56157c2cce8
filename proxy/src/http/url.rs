//! A rule's URL changes at the edge of the request: answering with a
//! redirect, or rewriting the path and host before forwarding. The
//! decisions (the `Location`, the new path) are `strait_api::rewrite`'s pure
//! functions; this module only reads and writes the request.

use super::errors::ProxyError;
use super::{Body, full};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use strait_api::rewrite::{self, Redirect, Rewrite};

/// The host a request was sent to: its `:authority`, else `Host`, else the
/// Service's name; without the port.
fn request_host<B>(req: &Request<B>, service: &str) -> String {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    match authority {
        Some(a) if !a.is_empty() => rewrite::host_without_port(&a).to_owned(),
        _ => service.to_owned(),
    }
}

/// The redirect answer for a request. Apps talk plain HTTP to their proxy,
/// so the request's scheme is `http`; its port is the Service port called.
pub fn redirect<B>(
    r: &Redirect,
    req: &Request<B>,
    service: &str,
    port: u16,
) -> Result<Response<Body>, ProxyError> {
    let location = rewrite::location(
        r,
        "http",
        &request_host(req, service),
        port,
        req.uri().path(),
        req.uri().query(),
    );
    let value = HeaderValue::from_str(&location).map_err(|_| ProxyError::BadPath {
        path: location.clone(),
        reason: "not a valid Location after the redirect".into(),
    })?;
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
    resp.headers_mut().insert(http::header::LOCATION, value);
    Ok(resp)
}

/// Rewrites the request's path (keeping the query) and host in place.
pub fn apply<B>(w: &Rewrite, req: &mut Request<B>) -> Result<(), ProxyError> {
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    if let Some(change) = &w.path {
        let (path, query) = parts
            .path_and_query
            .as_ref()
            .map(|pq| (pq.path().to_owned(), pq.query().map(str::to_owned)))
            .unwrap_or_else(|| ("/".into(), None));
        let new = rewrite::rewrite_path(change, &path);
        let pq = match query {
            Some(q) => format!("{new}?{q}"),
            None => new,
        };
        parts.path_and_query = Some(pq.parse().map_err(|_| ProxyError::BadPath {
            path: pq.clone(),
            reason: "not a valid path after the rewrite".into(),
        })?);
    }
    if let Some(host) = &w.hostname {
        if parts.authority.is_some() {
            parts.authority = Some(
                host.parse()
                    .map_err(|_| ProxyError::BadAuthority(host.clone()))?,
            );
        }
        let value =
            HeaderValue::from_str(host).map_err(|_| ProxyError::BadAuthority(host.clone()))?;
        if req.version() != http::Version::HTTP_2 || req.headers().contains_key(http::header::HOST)
        {
            req.headers_mut().insert(http::header::HOST, value);
        }
    }
    *req.uri_mut() = Uri::from_parts(parts).map_err(|e| ProxyError::BadPath {
        path: String::new(),
        reason: e.to_string(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_api::rewrite::PathChange;

    fn req(uri: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn redirect_uses_the_host_the_client_asked_for() {
        let r = Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: Some(PathChange::Full("/moved".into())),
            status: 301,
        };
        let resp = redirect(&r, &req("/a?q=1", Some("web.shop:8080")), "web", 80).expect("resp");
        assert_eq!(resp.status(), 301);
        assert_eq!(resp.headers()["location"], "http://web.shop/moved?q=1");
        let resp = redirect(&r, &req("/a", None), "web", 8080).expect("resp");
        assert_eq!(resp.headers()["location"], "http://web:8080/moved");
    }

    #[test]
    fn rewrite_changes_path_and_host_and_keeps_the_query() {
        let w = Rewrite {
            hostname: Some("other.shop".into()),
            path: Some(PathChange::Prefix {
                matched: "/v1".into(),
                with: "/v2".into(),
            }),
        };
        let mut r = req("/v1/items?page=2", Some("web"));
        apply(&w, &mut r).expect("rewrite");
        assert_eq!(r.uri().to_string(), "/v2/items?page=2");
        assert_eq!(r.headers()["host"], "other.shop");
        let mut r = req("http://web:80/v1", None);
        apply(&w, &mut r).expect("rewrite");
        assert_eq!(r.uri().to_string(), "http://other.shop/v2");
    }
}
