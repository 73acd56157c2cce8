//! HTTP/1.1 carried as HTTP/2 between two proxies.
//!
//! Between a client proxy and a meshed endpoint's proxy, an HTTP/1.1
//! request travels as one stream of the one mesh TLS connection the two
//! share (Linkerd does the same): no pool of HTTP/1.1 connections, each
//! with its own TLS state and buffers, and no head-of-line wait for a free
//! connection. The client proxy marks such a request with
//! [`ORIG_PROTO`]; the endpoint's proxy, and only on mesh TLS (where the
//! peer is a proxy that proved its identity), takes the mark off and sends
//! the request to the app as the HTTP/1.1 it was.
//!
//! The endpoint's proxy says it does this by selecting [`ALPN`] in the TLS
//! handshake. It does not on a port it carries as opaque bytes (the pod's
//! `config.strait.dev/opaque-ports`, which client proxies do not see): an
//! HTTP/2 stream copied as bytes to an HTTP/1 app would fail, so there the
//! client keeps HTTP/1.1 ([`super::h2pool`] hands the request back unsent).
//!
//! Upgrades (WebSocket) and `CONNECT` stay HTTP/1.1: HTTP/2 spells them
//! differently, and after a `101` the connection is the app's own.

use http::header::HeaderValue;
use http::{Method, Request, Response, Version};

/// The request header that marks an HTTP/1.1 request carried as HTTP/2.
pub const ORIG_PROTO: &str = "strait-orig-proto";

/// The ALPN protocol a proxy's mesh TLS server selects where it restores
/// carried requests.
pub const ALPN: &[u8] = b"strait.dev/h2-orig-proto";

const HTTP_11: &str = "HTTP/1.1";

/// Whether `req` (HTTP/1.x from the client, not an upgrade) may be carried.
pub fn can_carry<B>(req: &Request<B>, upgrade: bool) -> bool {
    req.version() != Version::HTTP_2 && !upgrade && req.method() != Method::CONNECT
}

/// Marks `req` as carried and makes it HTTP/2.
pub fn carry<B>(req: &mut Request<B>) {
    req.headers_mut()
        .insert(ORIG_PROTO, HeaderValue::from_static(HTTP_11));
    *req.version_mut() = Version::HTTP_2;
}

/// Undoes [`carry`]: the endpoint's proxy does not restore.
pub fn uncarry<B>(req: &mut Request<B>) {
    req.headers_mut().remove(ORIG_PROTO);
    *req.version_mut() = Version::HTTP_11;
}

/// The response to a carried request, as the HTTP/1.1 client expects it.
pub fn carried_response<B>(resp: &mut Response<B>) {
    *resp.version_mut() = Version::HTTP_11;
}

/// On the endpoint's side: takes the mark off `req`, and when it arrived
/// over mesh TLS (`mesh`) as HTTP/2 makes it HTTP/1.1 again. A mark from
/// anyone else (a plaintext client) is dropped and changes nothing.
pub fn restore<B>(req: &mut Request<B>, mesh: bool) {
    let Some(mark) = req.headers_mut().remove(ORIG_PROTO) else {
        return;
    };
    if mesh && req.version() == Version::HTTP_2 && mark == HTTP_11 {
        *req.version_mut() = Version::HTTP_11;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, method: Method, mark: Option<&'static str>) -> Request<()> {
        let mut r = Request::builder()
            .version(version)
            .method(method)
            .uri("http://web.shop/x")
            .body(())
            .unwrap();
        if let Some(m) = mark {
            r.headers_mut()
                .insert(ORIG_PROTO, HeaderValue::from_static(m));
        }
        r
    }

    #[test]
    fn which_requests_are_carried() {
        for (version, method, upgrade, want) in [
            (Version::HTTP_11, Method::GET, false, true),
            (Version::HTTP_11, Method::POST, false, true),
            (Version::HTTP_10, Method::GET, false, true),
            (Version::HTTP_11, Method::GET, true, false),
            (Version::HTTP_11, Method::CONNECT, false, false),
            (Version::HTTP_2, Method::GET, false, false),
        ] {
            assert_eq!(
                can_carry(&req(version, method.clone(), None), upgrade),
                want,
                "{version:?} {method} upgrade={upgrade}"
            );
        }
    }

    #[test]
    fn carry_then_uncarry_is_the_request_again() {
        let mut r = req(Version::HTTP_11, Method::GET, None);
        carry(&mut r);
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.headers()[ORIG_PROTO], "HTTP/1.1");
        uncarry(&mut r);
        assert_eq!(r.version(), Version::HTTP_11);
        assert!(r.headers().get(ORIG_PROTO).is_none());
    }

    #[test]
    fn restore_table() {
        // (arrived as, mark, over mesh TLS) → (version to the app)
        for (version, mark, mesh, want) in [
            (Version::HTTP_2, Some("HTTP/1.1"), true, Version::HTTP_11),
            // Only a proxy that proved its identity is believed.
            (Version::HTTP_2, Some("HTTP/1.1"), false, Version::HTTP_2),
            // An unknown value, or a mark on HTTP/1, changes nothing.
            (Version::HTTP_2, Some("HTTP/3"), true, Version::HTTP_2),
            (Version::HTTP_11, Some("HTTP/1.1"), true, Version::HTTP_11),
            (Version::HTTP_2, None, true, Version::HTTP_2),
        ] {
            let mut r = req(version, Method::GET, mark);
            restore(&mut r, mesh);
            assert_eq!(r.version(), want, "{version:?} {mark:?} mesh={mesh}");
            assert!(
                r.headers().get(ORIG_PROTO).is_none(),
                "the mark never reaches the app"
            );
        }
    }
}
