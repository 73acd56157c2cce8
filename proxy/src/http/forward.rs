//! Forwarding a request to one endpoint over pooled connections.
//!
//! Two clients share the work: HTTP/1.1 (our keep-alive pool per endpoint,
//! [`super::pool`]) and HTTP/2 prior knowledge (one multiplexed connection per endpoint),
//! chosen by the version the client spoke, so gRPC stays HTTP/2 end to end
//! with its trailers. Hop-by-hop headers are dropped as RFC 9110 §7.6.1 says,
//! except on an `Upgrade` (WebSocket), where the proxy forwards the
//! handshake and, on `101`, splices the two upgraded connections together.

use super::Body;
use super::body_rate::BodyFate;
use super::errors::ProxyError;
use super::h2pool::{H2Pool, Sent};
use super::orig_proto;
use super::pool::H1Pool;
use crate::connect::Peer;
use crate::tls::Current;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Forwarders per (connect, idle) timeout pair, so each DestinationPolicy's
/// timeouts apply; Services without one share the proxy-wide defaults.
pub struct Forwarders {
    default: Forwarder,
    defaults: (Duration, Duration),
    mesh: Arc<Current>,
    by_timeouts: std::sync::Mutex<std::collections::HashMap<(Duration, Duration), Forwarder>>,
}

impl Forwarders {
    /// With the proxy-wide default timeouts, and this proxy's certificate
    /// for meshed endpoints.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration, mesh: Arc<Current>) -> Self {
        Self {
            default: Forwarder::new(connect_timeout, idle_timeout, mesh.clone()),
            defaults: (connect_timeout, idle_timeout),
            mesh,
            by_timeouts: Default::default(),
        }
    }

    /// The proxy-wide default (inbound traffic, Services without a policy).
    pub fn default_forwarder(&self) -> &Forwarder {
        &self.default
    }

    /// The forwarder for a backend's policy timeouts.
    pub fn get(&self, connect: Option<Duration>, idle: Option<Duration>) -> Forwarder {
        let key = (
            connect.unwrap_or(self.defaults.0),
            idle.unwrap_or(self.defaults.1),
        );
        if key == self.defaults {
            return self.default.clone();
        }
        match self.by_timeouts.lock() {
            Ok(mut m) => m
                .entry(key)
                .or_insert_with(|| Forwarder::new(key.0, key.1, self.mesh.clone()))
                .clone(),
            Err(_) => self.default.clone(),
        }
    }
}

/// `ip:port` (IPv6 bracketed) as a URI authority, formatted on the stack.
fn endpoint_authority(addr: SocketAddr) -> Result<Authority, ProxyError> {
    use std::io::Write;
    let mut buf = [0u8; 64];
    let mut w = std::io::Cursor::new(&mut buf[..]);
    let formatted = write!(w, "{addr}").is_ok();
    let n = w.position() as usize;
    formatted
        .then(|| Authority::try_from(&buf[..n]).ok())
        .flatten()
        .ok_or_else(|| ProxyError::Upstream {
            addr,
            reason: "cannot build upstream URI".into(),
        })
}

/// Pooled clients: HTTP/1.1 ([`super::pool`]) and HTTP/2
/// ([`super::h2pool`]), both keyed by endpoint address.
#[derive(Clone)]
pub struct Forwarder {
    h1: H1Pool,
    h2: H2Pool,
    mesh: Arc<Current>,
}

impl Forwarder {
    /// Builds the clients.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration, mesh: Arc<Current>) -> Self {
        Self {
            h1: H1Pool::new(connect_timeout, idle_timeout, mesh.clone()),
            h2: H2Pool::new(connect_timeout, idle_timeout, mesh.clone()),
            mesh,
        }
    }

    /// Sends `req` to `addr` and returns the response head with its body
    /// streaming. A failure the client's own body caused (too slow,
    /// malformed; see [`BodyFate`]) is reported as the client's, whatever
    /// the upstream client made of it: HTTP/2 sees only a reset stream.
    pub async fn forward(
        &self,
        req: Request<Body>,
        peer: &Peer,
    ) -> Result<Response<Body>, ProxyError> {
        let fate = req.extensions().get::<BodyFate>().cloned();
        // A meshed endpoint is reached in plaintext while this proxy has no
        // certificate: say so in the key, so that such a connection is
        // never reused as if it were mesh TLS once the certificate comes.
        let plain;
        let peer = if peer.identity.is_some() && self.mesh.load().is_none() {
            plain = Peer::plain(peer.addr);
            &plain
        } else {
            peer
        };
        self.send(req, peer)
            .await
            .map_err(|e| fate.as_ref().and_then(BodyFate::error).unwrap_or(e))
    }

    async fn send(
        &self,
        mut req: Request<Body>,
        peer: &Peer,
    ) -> Result<Response<Body>, ProxyError> {
        let addr = peer.addr;
        let upgrade = req.version() != Version::HTTP_2 && is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        if !upgrade {
            strip_hop_by_hop(req.headers_mut());
        }
        // To another proxy over mesh TLS, HTTP/1.1 rides the one HTTP/2
        // connection the two share.
        let carried = peer.identity.is_some() && orig_proto::can_carry(&req, upgrade);
        if carried {
            orig_proto::carry(&mut req);
        }
        let mut resp = if req.version() == Version::HTTP_2 {
            // The client's authority goes upstream as `:authority`; the
            // pool picks the connection by endpoint address.
            let mut parts = std::mem::take(req.uri_mut()).into_parts();
            if parts.scheme.is_none() {
                parts.scheme = Some(Scheme::HTTP);
            }
            if parts.authority.is_none() {
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| Authority::try_from(h.as_bytes()).ok());
                parts.authority = Some(match host {
                    Some(a) => a,
                    None => endpoint_authority(addr)?,
                });
            }
            if parts.path_and_query.is_none() {
                parts.path_and_query = Some(PathAndQuery::from_static("/"));
            }
            *req.uri_mut() = Uri::from_parts(parts).map_err(|e| ProxyError::Upstream {
                addr,
                reason: format!("cannot build upstream URI: {e}"),
            })?;
            match self.h2.send(peer, req, carried).await? {
                Sent::Response(resp) => resp,
                Sent::NotCarried(mut req) => {
                    orig_proto::uncarry(&mut req);
                    self.send_h1(req, peer).await?
                }
            }
        } else {
            self.send_h1(req, peer).await?
        };
        if carried {
            orig_proto::carried_response(&mut resp);
        }
        if let Some(client_upgrade) = client_upgrade
            && resp.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            let server_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                let (Ok(c), Ok(s)) = (client_upgrade.await, server_upgrade.await) else {
                    tracing::debug!(%addr, "upgrade did not complete");
                    return;
                };
                let (mut c, mut s) = (TokioIo::new(c), TokioIo::new(s));
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut s).await {
                    tracing::debug!(%addr, error = %e, "upgraded connection ended");
                }
            });
            return Ok(resp);
        }
        strip_hop_by_hop(resp.headers_mut());
        Ok(resp)
    }

    /// HTTP/1.1 to `peer` over the keep-alive pool.
    async fn send_h1(
        &self,
        mut req: Request<Body>,
        peer: &Peer,
    ) -> Result<Response<Body>, ProxyError> {
        let addr = peer.addr;
        *req.version_mut() = Version::HTTP_11;
        if !req.headers().contains_key(header::HOST) {
            // HTTP/1.0 clients may omit Host; keep the authority they
            // asked for, or name the endpoint.
            let host = match req.uri().authority() {
                Some(a) => a.clone(),
                None => endpoint_authority(addr)?,
            };
            if let Ok(v) = host.as_str().parse() {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        // Origin-form (`/path?query`) on the wire, whatever form the
        // client used.
        if req.uri().scheme().is_some() || req.uri().path_and_query().is_none() {
            let pq = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            *req.uri_mut() = Uri::from(pq);
        }
        self.h1.send(peer, req).await
    }
}

/// Protocols an `Upgrade` may switch a connection to. After a `101` the
/// connection is spliced raw, so every later byte on it skips routing and
/// header rules: only protocols meant to become opaque are allowed.
/// `h2c` (which would carry further requests past the route rules) and
/// made-up tokens are not: their `Upgrade` is stripped and the request goes
/// on as a plain one.
const UPGRADES: [&str; 1] = ["websocket"];

fn is_upgrade(headers: &HeaderMap) -> bool {
    let mut protocols = headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(|t| t.trim().split('/').next().unwrap_or(""))
        .peekable();
    protocols.peek().is_some()
        && protocols.all(|p| UPGRADES.iter().any(|u| p.eq_ignore_ascii_case(u)))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, including any the `Connection` header names.
/// `te: trailers` survives: gRPC servers require it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few headers a request has is much cheaper than
    // hashing every hop-by-hop name to remove it; most requests have none.
    let hop = |k: &HeaderName| {
        k == header::CONNECTION
            || k == header::UPGRADE
            || k == header::PROXY_AUTHORIZATION
            || k == header::TRANSFER_ENCODING
            || k == header::TE
            || k.as_str() == "keep-alive"
            || k.as_str() == "proxy-connection"
    };
    if !headers.keys().any(hop) {
        return;
    }
    // `Connection: keep-alive` / `close` (what nearly every HTTP/1.1
    // response carries) names nothing beyond the fixed list below.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        // `Connection: host` must not make the request lose its Host.
        .filter(|n| n != header::HOST)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::TRANSFER_ENCODING,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if headers.get(header::TE).is_some_and(|v| v != "trailers") {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_table() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "yes"),
            ("te", "trailers"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["te", "x-kept"]);
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn only_websocket_upgrades_are_spliced() {
        let h = |upgrade: &str, connection: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::UPGRADE, HeaderValue::from_str(upgrade).unwrap());
            h.insert(
                header::CONNECTION,
                HeaderValue::from_str(connection).unwrap(),
            );
            h
        };
        for (upgrade, connection, want) in [
            ("websocket", "Upgrade", true),
            ("WebSocket", "keep-alive, upgrade", true),
            ("websocket/13", "upgrade", true),
            ("h2c", "Upgrade, HTTP2-Settings", false),
            ("websocket, h2c", "upgrade", false),
            ("made-up", "upgrade", false),
            ("websocket", "keep-alive", false),
        ] {
            assert_eq!(
                is_upgrade(&h(upgrade, connection)),
                want,
                "{upgrade} / {connection}"
            );
        }
        // What is not spliced loses its Upgrade on the way: a plain request.
        let mut r = h("h2c", "Upgrade, HTTP2-Settings");
        r.insert(
            "http2-settings",
            HeaderValue::from_static("AAMAAABkAAQCAAAAAAIAAAAA"),
        );
        strip_hop_by_hop(&mut r);
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn connection_cannot_strip_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("web.shop"));
        h.insert(header::CONNECTION, HeaderValue::from_static("host, x-a"));
        h.insert("x-a", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get(header::HOST).unwrap(), "web.shop");
        assert!(h.get("x-a").is_none());
    }

    #[test]
    fn upgrade_detection() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade(&h));
    }
}
