//! One proxy span as OpenTelemetry data: what is captured when a request
//! arrives ([`Started`]), what is known when it is answered ([`Outcome`]),
//! and the pure step that makes a `SpanData` of both.
//!
//! Attributes follow the OpenTelemetry HTTP semantic conventions (stable
//! since v1.23), plus Strait's own: where the request was routed
//! (`strait.service`, `strait.route`, `strait.backend`) and who the other
//! proxy proved to be over mesh TLS (`strait.peer.identity`). The query
//! string is left out of `url.full` on purpose: it often carries tokens,
//! and a span store is read by more people than the service's logs.

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::time::SystemTime;
use strait_api::model::DEFAULT_ROUTE;

/// Which side of the proxy a span is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Outbound: the app's request leaving the pod (span kind client).
    Client,
    /// Inbound: a request arriving for the app (span kind server).
    Server,
}

/// What a span records when the request arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// Client or server.
    pub kind: Kind,
    /// The trace.
    pub trace_id: u128,
    /// This span.
    pub span_id: u64,
    /// The caller's span, when the caller's trace was joined.
    pub parent: Option<u64>,
    /// When the request arrived.
    pub start: SystemTime,
    /// The request method as sent.
    pub method: String,
    /// The path (no query).
    pub path: String,
    /// `Host` or `:authority`.
    pub authority: String,
    /// `1.0`, `1.1` or `2`.
    pub protocol: &'static str,
    /// The `User-Agent`, if any.
    pub user_agent: Option<String>,
}

/// What is known when the response is ready.
#[derive(Debug, Clone, Default)]
pub struct Outcome<'a> {
    /// The status answered.
    pub status: u16,
    /// The Service the request was for (outbound).
    pub service: &'a str,
    /// The rule that matched (outbound).
    pub route: &'a str,
    /// The backend the split chose (outbound), or the app (inbound).
    pub backend: &'a str,
    /// The other proxy's identity when the hop was mesh TLS.
    pub peer: Option<&'a str>,
    /// The proxy's own error code when the proxy made the answer.
    pub proxy_error: Option<&'a str>,
}

/// The methods the conventions name; others are reported as `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// The span (pure).
pub fn span_data(
    s: Started,
    o: &Outcome<'_>,
    end: SystemTime,
    scope: &InstrumentationScope,
) -> SpanData {
    let known = KNOWN_METHODS.contains(&s.method.as_str());
    let method = if known {
        s.method.clone()
    } else {
        "_OTHER".into()
    };
    // A rule's name is low-cardinality, as a span name must be; the
    // implicit route of a Service without rules adds nothing.
    let name = match s.kind {
        Kind::Client if !o.route.is_empty() && o.route != DEFAULT_ROUTE => {
            format!("{method} {}", o.route)
        }
        _ => method.clone(),
    };
    let (host, port) = split_authority(&s.authority);
    let mut attrs = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("http.response.status_code", i64::from(o.status)),
        KeyValue::new("network.protocol.version", s.protocol),
        KeyValue::new("server.address", host.to_string()),
        KeyValue::new("server.port", i64::from(port)),
    ];
    if !known {
        attrs.push(KeyValue::new("http.request.method_original", s.method));
    }
    match s.kind {
        Kind::Client => {
            attrs.push(KeyValue::new(
                "url.full",
                format!("http://{}{}", s.authority, s.path),
            ));
            attrs.push(KeyValue::new("strait.direction", "outbound"));
        }
        Kind::Server => {
            attrs.push(KeyValue::new("url.path", s.path));
            attrs.push(KeyValue::new("url.scheme", "http"));
            attrs.push(KeyValue::new("strait.direction", "inbound"));
        }
    }
    if let Some(ua) = s.user_agent {
        attrs.push(KeyValue::new("user_agent.original", ua));
    }
    for (key, value) in [
        ("strait.service", o.service),
        ("strait.route", o.route),
        ("strait.backend", o.backend),
    ] {
        if !value.is_empty() {
            attrs.push(KeyValue::new(key, value.to_string()));
        }
    }
    if let Some(peer) = o.peer {
        attrs.push(KeyValue::new("strait.peer.identity", peer.to_string()));
    }
    // A client span fails on 4xx and 5xx; a server span only on 5xx (a
    // 404 served is the server working).
    let failed = match s.kind {
        Kind::Client => o.status >= 400,
        Kind::Server => o.status >= 500,
    };
    let error = match o.proxy_error {
        Some(code) => Some(code.to_string()),
        None if failed => Some(o.status.to_string()),
        None => None,
    };
    let status = match &error {
        Some(e) => {
            attrs.push(KeyValue::new("error.type", e.clone()));
            Status::error(e.clone())
        }
        None => Status::Unset,
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(s.trace_id),
            SpanId::from(s.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: SpanId::from(s.parent.unwrap_or(0)),
        parent_span_is_remote: s.parent.is_some(),
        span_kind: match s.kind {
            Kind::Client => SpanKind::Client,
            Kind::Server => SpanKind::Server,
        },
        name: Cow::Owned(name),
        start_time: s.start,
        end_time: end,
        attributes: attrs,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// `host[:port]` → host and port (80 when absent or unreadable).
fn split_authority(authority: &str) -> (&str, u16) {
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal without a port has colons but ends with `]`.
        Some((h, p)) if !p.contains(']') => (h, p.parse().unwrap_or(80)),
        _ => (authority, 80),
    };
    (host.trim_start_matches('[').trim_end_matches(']'), port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn started(kind: Kind, method: &str) -> Started {
        Started {
            kind,
            trace_id: 0xabc,
            span_id: 0x12,
            parent: Some(0x34),
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            method: method.into(),
            path: "/cart/items".into(),
            authority: "web.shop:8080".into(),
            protocol: "1.1",
            user_agent: Some("curl/8".into()),
        }
    }

    fn attr(span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    fn scope() -> InstrumentationScope {
        InstrumentationScope::builder("strait-proxy").build()
    }

    #[test]
    fn client_spans_name_the_route_and_where_it_went() {
        let o = Outcome {
            status: 200,
            service: "shop/web:80",
            route: "canary",
            backend: "shop/web-v2:80",
            peer: Some("spiffe://cluster.local/ns/shop/sa/web"),
            proxy_error: None,
        };
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(11);
        let span = span_data(started(Kind::Client, "GET"), &o, end, &scope());
        assert_eq!(span.name, "GET canary");
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(span.span_context.trace_id(), TraceId::from(0xabcu128));
        assert_eq!(span.span_context.span_id(), SpanId::from(0x12u64));
        assert!(span.span_context.is_sampled());
        assert_eq!(span.parent_span_id, SpanId::from(0x34u64));
        assert!(span.parent_span_is_remote);
        assert_eq!((span.start_time, span.end_time), (o_start(), end));
        for (key, want) in [
            ("http.request.method", Some("GET")),
            ("http.response.status_code", Some("200")),
            ("url.full", Some("http://web.shop:8080/cart/items")),
            ("url.path", None),
            ("server.address", Some("web.shop")),
            ("server.port", Some("8080")),
            ("network.protocol.version", Some("1.1")),
            ("strait.direction", Some("outbound")),
            ("strait.service", Some("shop/web:80")),
            ("strait.route", Some("canary")),
            ("strait.backend", Some("shop/web-v2:80")),
            (
                "strait.peer.identity",
                Some("spiffe://cluster.local/ns/shop/sa/web"),
            ),
            ("error.type", None),
            ("http.request.method_original", None),
        ] {
            assert_eq!(attr(&span, key).as_deref(), want, "{key}");
        }
        assert_eq!(span.status, Status::Unset);
    }

    fn o_start() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(10)
    }

    #[test]
    fn server_spans_carry_the_path_and_no_route() {
        let o = Outcome {
            status: 404,
            backend: "127.0.0.1:8080",
            ..Outcome::default()
        };
        let mut s = started(Kind::Server, "GET");
        s.parent = None;
        let span = span_data(s, &o, o_start(), &scope());
        assert_eq!(span.name, "GET");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(span.parent_span_id, SpanId::INVALID);
        assert!(!span.parent_span_is_remote);
        for (key, want) in [
            ("url.path", Some("/cart/items")),
            ("url.scheme", Some("http")),
            ("url.full", None),
            ("user_agent.original", Some("curl/8")),
            ("strait.direction", Some("inbound")),
            ("strait.route", None),
            ("strait.backend", Some("127.0.0.1:8080")),
            // A 404 is not a server error.
            ("error.type", None),
        ] {
            assert_eq!(attr(&span, key).as_deref(), want, "{key}");
        }
    }

    #[test]
    fn errors_are_marked_by_side_and_by_the_proxys_code() {
        // (kind, status, proxy error, error.type)
        let cases = [
            (Kind::Client, 200, None, None),
            (Kind::Client, 404, None, Some("404")),
            (Kind::Server, 404, None, None),
            (Kind::Server, 503, None, Some("503")),
            (Kind::Client, 504, Some("timeout"), Some("timeout")),
            (Kind::Server, 502, Some("connect"), Some("connect")),
        ];
        for (kind, status, proxy_error, want) in cases {
            let o = Outcome {
                status,
                proxy_error,
                ..Outcome::default()
            };
            let span = span_data(started(kind, "POST"), &o, o_start(), &scope());
            assert_eq!(
                attr(&span, "error.type").as_deref(),
                want,
                "{kind:?} {status}"
            );
            match want {
                Some(e) => assert_eq!(span.status, Status::error(e.to_string())),
                None => assert_eq!(span.status, Status::Unset),
            }
        }
    }

    #[test]
    fn unknown_methods_are_other_with_the_original_kept() {
        let span = span_data(
            started(Kind::Server, "PROPFIND"),
            &Outcome::default(),
            o_start(),
            &scope(),
        );
        assert_eq!(span.name, "_OTHER");
        assert_eq!(
            attr(&span, "http.request.method").as_deref(),
            Some("_OTHER")
        );
        assert_eq!(
            attr(&span, "http.request.method_original").as_deref(),
            Some("PROPFIND")
        );
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        for (authority, want) in [
            ("web.shop:8080", ("web.shop", 8080)),
            ("web.shop", ("web.shop", 80)),
            ("10.0.0.1:9", ("10.0.0.1", 9)),
            ("[::1]:8443", ("::1", 8443)),
            ("[::1]", ("::1", 80)),
            ("web:notaport", ("web", 80)),
            ("", ("", 80)),
        ] {
            assert_eq!(split_authority(authority), want, "{authority}");
        }
    }
}
