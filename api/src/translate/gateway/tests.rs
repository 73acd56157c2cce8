//! Table tests of the Gateway API translation: every supported field, every
//! refused one with its reason, precedence, and the conflict rule.

use crate::model::{Affinity, PathMatch, Route, ServicePortKey, ValueMatch};
use crate::rewrite::PathChange;
use crate::route::{RequestInfo, select};
use crate::translate::tests::{BASE, translate_str};
use std::time::Duration;

fn http_route(name: &str, created: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: shop{created}}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: web, port: 80}}]\n{spec}"
    )
}

fn at(created: &str) -> String {
    format!(", creationTimestamp: \"{created}\"")
}

fn web_routes(text: &str) -> Vec<Route> {
    let t = translate_str(&format!("{BASE}{text}"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    t.snapshot
        .service(&ServicePortKey::new("shop", "web", 80))
        .and_then(|s| s.routes.clone())
        .expect("web:80 has routes")
}

fn refusal(text: &str) -> String {
    let t = translate_str(&format!("{BASE}{text}"));
    assert_eq!(t.errors.len(), 1, "{:?}", t.errors);
    t.errors[0].message.clone()
}

fn pick<'r>(routes: &'r [Route], method: &str, uri: &str, headers: &[(&str, &str)]) -> &'r str {
    let method: http::Method = method.parse().expect("method");
    let uri: http::Uri = uri.parse().expect("uri");
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    let info = RequestInfo::from_parts(&method, &uri, &map);
    select(routes, &info).map_or("none", |r| r.name.as_str())
}

#[test]
fn weighted_backends_default_match_and_source() {
    let routes = web_routes(&http_route(
        "split",
        "",
        "  rules:\n    - backendRefs:\n        - {name: web-v1, port: 80, weight: 90}\n        - {name: web-v2, port: 80, weight: 10}\n        - {name: web, port: 80, weight: 0}\n        - {name: not-deployed-yet, port: 80, weight: 0}\n",
    ));
    assert_eq!(routes.len(), 1);
    let r = &routes[0];
    assert_eq!(r.name, "split/rule-0");
    assert_eq!(r.source, "HTTPRoute shop/split");
    assert!(matches!(&r.matches[0].path, Some(PathMatch::Prefix(p)) if p == "/"));
    let weights: Vec<(String, u32)> = r
        .backends
        .iter()
        .map(|b| (b.backend.name.clone(), b.weight))
        .collect();
    assert_eq!(
        weights,
        [("web-v1".to_string(), 90), ("web-v2".to_string(), 10)],
        "weight 0 sends nothing, and need not exist"
    );
}

#[test]
fn rules_are_tried_in_gateway_api_precedence_not_written_order() {
    let routes = web_routes(&http_route(
        "p",
        "",
        r#"  rules:
    - name: root
      backendRefs: [{name: web-v1, port: 80}]
    - name: api
      matches: [{path: {type: PathPrefix, value: /api}}]
      backendRefs: [{name: web-v1, port: 80}]
    - name: api-canary
      matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-canary, value: "yes"}]}]
      backendRefs: [{name: web-v2, port: 80}]
    - name: api-post
      matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
      backendRefs: [{name: web-v2, port: 80}]
    - name: exact
      matches: [{path: {type: Exact, value: /api/v1}}]
      backendRefs: [{name: web-v2, port: 80}]
    - name: query
      matches: [{path: {type: PathPrefix, value: /api}, queryParams: [{name: beta, value: "1"}]}]
      backendRefs: [{name: web-v2, port: 80}]
"#,
    ));
    let order: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "p/exact",
            "p/api-post",
            "p/api-canary",
            "p/query",
            "p/api",
            "p/root"
        ]
    );
    let table = [
        ("GET", "/api/v1", vec![], "p/exact"),
        ("POST", "/api/v1", vec![], "p/exact"),
        ("POST", "/api/x", vec![("x-canary", "yes")], "p/api-post"),
        ("GET", "/api/x", vec![("x-canary", "yes")], "p/api-canary"),
        ("GET", "/api/x?beta=1", vec![], "p/query"),
        ("GET", "/api/x", vec![], "p/api"),
        ("GET", "/apix", vec![], "p/root"),
        ("GET", "/", vec![], "p/root"),
    ];
    for (method, uri, headers, want) in table {
        assert_eq!(pick(&routes, method, uri, &headers), want, "{method} {uri}");
    }
}

#[test]
fn routes_on_one_port_merge_and_ties_go_to_the_older() {
    let young = http_route(
        "a-young",
        &at("2026-01-02T00:00:00Z"),
        "  rules: [{matches: [{path: {value: /x}}], backendRefs: [{name: web-v2, port: 80}]}]\n",
    );
    let old = http_route(
        "z-old",
        &at("2026-01-01T00:00:00Z"),
        "  rules: [{matches: [{path: {value: /x}}], backendRefs: [{name: web-v1, port: 80}]}, {matches: [{path: {value: /long}}], backendRefs: [{name: web-v1, port: 80}]}]\n",
    );
    let routes = web_routes(&format!("{young}{old}"));
    let order: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["z-old/rule-1", "z-old/rule-0", "a-young/rule-0"]);
    assert_eq!(pick(&routes, "GET", "/x/1", &[]), "z-old/rule-0");
}

#[test]
fn filters_timeouts_retries_and_sessions() {
    let routes = web_routes(&http_route(
        "f",
        "",
        r#"  rules:
    - matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {scheme: https, hostname: example.org, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    - matches: [{path: {type: PathPrefix, value: /v1}}]
      filters:
        - type: URLRewrite
          urlRewrite: {hostname: web-v2.shop, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: X-Env, value: prod}], add: [{name: x-add, value: a}], remove: [x-debug]}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {set: [{name: x-served-by, value: strait}]}
        - type: RequestMirror
          requestMirror: {backendRef: {name: web-v2, port: 80}, fraction: {numerator: 1, denominator: 3}}
      backendRefs: [{name: web-v1, port: 80}]
      timeouts: {request: 10s, backendRequest: 2s}
      retry: {codes: [503], attempts: 2, backoff: 100ms}
      sessionPersistence: {sessionName: x-user, type: Header}
    - matches: [{path: {type: Exact, value: /full}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}}
      backendRefs: [{name: web-v1, port: 80}]
      timeouts: {request: 0s, backendRequest: 3s}
      sessionPersistence: {sessionName: session}
"#,
    ));
    let by = |name: &str| {
        routes
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let redirect = by("f/rule-0").redirect.clone().expect("redirect");
    assert_eq!(
        (
            redirect.scheme.as_deref(),
            redirect.hostname.as_deref(),
            redirect.status
        ),
        (Some("https"), Some("example.org"), 301)
    );
    assert_eq!(
        redirect.path,
        Some(PathChange::Prefix {
            matched: "/old".into(),
            with: "/new".into()
        })
    );
    assert!(by("f/rule-0").backends.is_empty());
    let r = by("f/rule-1");
    let rewrite = r.rewrite.clone().expect("rewrite");
    assert_eq!(rewrite.hostname.as_deref(), Some("web-v2.shop"));
    assert_eq!(
        rewrite.path,
        Some(PathChange::Prefix {
            matched: "/v1".into(),
            with: "/v2".into()
        })
    );
    assert_eq!(
        r.request_headers.set[0].0, "x-env",
        "names are case-insensitive"
    );
    assert_eq!(r.request_headers.add.len(), 1);
    assert_eq!(r.request_headers.remove[0], "x-debug");
    assert_eq!(r.response_headers.set[0].1, "strait");
    let mirror = r.mirror.as_ref().expect("mirror");
    assert_eq!(
        (mirror.backend.name.as_str(), mirror.percent),
        ("web-v2", 33)
    );
    assert_eq!(r.timeout, Some(Duration::from_secs(10)));
    let retry = r.retry.as_ref().expect("retry");
    assert_eq!(retry.attempts, 3, "two retries after the first try");
    assert_eq!(retry.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(retry.retriable_codes, [503]);
    assert_eq!(retry.backoff, Duration::from_millis(100));
    assert!(matches!(&r.affinity, Some(Affinity::Header(h)) if h == "x-user"));
    let full = by("f/rule-2");
    assert_eq!(
        full.rewrite.as_ref().and_then(|w| w.path.clone()),
        Some(PathChange::Full("/elsewhere".into()))
    );
    // No retry: the backend request is the request, and 0s means none.
    assert_eq!(full.timeout, Some(Duration::from_secs(3)));
    assert!(full.retry.is_none());
    assert!(matches!(&full.affinity, Some(Affinity::Cookie(c)) if c == "session"));
}

#[test]
fn what_strait_cannot_honour_is_refused_with_the_field_and_why() {
    let rule = |body: &str| http_route("bad", "", &format!("  rules:\n    - {body}\n"));
    let table = [
        (
            rule("filters: [{type: CORS, cors: {allowOrigins: [\"*\"]}}]\n      backendRefs: [{name: web-v1, port: 80}]"),
            "rules[0].filters[0].cors: not supported by Strait",
        ),
        (
            rule("filters: [{type: ExtensionRef, extensionRef: {group: x, kind: Y, name: z}}]\n      backendRefs: [{name: web-v1, port: 80}]"),
            "rules[0].filters[0].extensionRef: not supported",
        ),
        (
            rule("filters: [{type: RequestHeaderModifier}]\n      backendRefs: [{name: web-v1, port: 80}]"),
            "type RequestHeaderModifier needs its field set",
        ),
        (
            rule("backendRefs: [{name: web-v1, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]}]"),
            "rules[0].backendRefs[0].filters: per-backend filters are not supported",
        ),
        (
            rule("backendRefs: [{group: example.com, kind: Bucket, name: b}]"),
            "kind example.com/Bucket is not supported; Strait routes to Services",
        ),
        (
            rule("backendRefs: [{name: web-v1, namespace: other, port: 80}]"),
            "needs a ReferenceGrant",
        ),
        (
            rule("backendRefs: [{name: ghost, port: 80}]"),
            "rules[0].backendRefs[0]: Service shop/ghost not found",
        ),
        (
            rule("backendRefs: [{name: web-v1, port: 81}]"),
            "Service shop/web-v1 has no port 81",
        ),
        (
            rule("timeouts: {request: 1s, backendRequest: 2s}\n      backendRefs: [{name: web-v1, port: 80}]"),
            "backendRequest: must not be longer than timeouts.request",
        ),
        (
            rule("timeouts: {request: forever}\n      backendRefs: [{name: web-v1, port: 80}]"),
            "rules[0].timeouts.request",
        ),
        (
            rule("retry: {codes: [200]}\n      backendRefs: [{name: web-v1, port: 80}]"),
            "retry.codes: 200 is not an error status",
        ),
        (
            rule("retry: {attempts: 10}\n      backendRefs: [{name: web-v1, port: 80}]"),
            "retry.attempts",
        ),
        (
            rule("sessionPersistence: {sessionName: s, absoluteTimeout: 1h}\n      backendRefs: [{name: web-v1, port: 80}]"),
            "sessionPersistence.absoluteTimeout: not supported by Strait: Strait keeps a session",
        ),
        (
            rule("sessionPersistence: {type: Cookie}\n      backendRefs: [{name: web-v1, port: 80}]"),
            "sessionName: required",
        ),
        (
            rule("matches: [{path: {type: Exact, value: /a}}]\n      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]\n      backendRefs: [{name: web-v1, port: 80}]"),
            "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
        ),
        (
            rule("filters: [{type: RequestRedirect, requestRedirect: {port: 8080}}, {type: URLRewrite, urlRewrite: {hostname: x}}]"),
            "RequestRedirect and URLRewrite cannot be used together",
        ),
        (
            rule("filters: [{type: RequestRedirect, requestRedirect: {statusCode: 200}}]"),
            "statusCode: 200 is not a redirect status",
        ),
        (
            rule("filters: [{type: RequestRedirect, requestRedirect: {scheme: ftp}}]"),
            "scheme: \"ftp\" is not http or https",
        ),
        (
            rule("matches: [{path: {type: RegularExpression, value: \"([\"}}]\n      backendRefs: [{name: web-v1, port: 80}]"),
            "rules[0].matches[0].path: regular expression",
        ),
        (
            rule("matches: [{path: {value: /a}, timeout: 1s}]\n      backendRefs: [{name: web-v1, port: 80}]"),
            "rules[0].matches[0].timeout: not supported",
        ),
        (
            rule("backendRefs: [{name: web-v1, port: 80}]\n      futureField: 1"),
            "rules[0].futureField: not supported",
        ),
        (
            rule("filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web-v1, port: 80}}}, {type: RequestMirror, requestMirror: {backendRef: {name: web-v2, port: 80}}}]\n      backendRefs: [{name: web-v1, port: 80}]"),
            "second RequestMirror",
        ),
        (
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, group: \"\", name: web, namespace: other}]\n  rules: [{backendRefs: [{name: web-v1, port: 80}]}]\n".to_string(),
            "parentRefs[0]: a Service in another namespace (a consumer route) is not supported yet",
        ),
        (
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, group: \"\", name: nope}]\n  rules: [{backendRefs: [{name: web-v1, port: 80}]}]\n".to_string(),
            "parentRefs[0]: Service shop/nope not found",
        ),
        (
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, group: \"\", name: web, sectionName: grpc}]\n  rules: [{backendRefs: [{name: web-v1, port: 80}]}]\n".to_string(),
            "has no port named \"grpc\"",
        ),
    ];
    for (text, want) in table {
        let message = refusal(&text);
        assert!(
            message.contains(want) && message.starts_with("HTTPRoute shop/bad: "),
            "want {want:?} in {message:?}"
        );
    }
}

#[test]
fn routes_of_gateways_only_are_left_to_their_controller() {
    // A Gateway parent, and a `kind: Service` without `group: ""` (an absent
    // group is gateway.networking.k8s.io's, where no Service lives).
    let text = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: north-south, namespace: shop}\nspec:\n  parentRefs: [{name: public-gateway}, {kind: Service, name: web}]\n  rules: [{backendRefs: [{name: ghost, port: 80}]}]\n";
    let t = translate_str(&format!("{BASE}{text}"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let web = t.snapshot.service(&ServicePortKey::new("shop", "web", 80));
    assert!(web.is_some_and(|s| s.routes.is_none()));
}

#[test]
fn a_port_takes_one_family_and_the_older_object_wins() {
    let traffic_route = |created: &str| {
        format!(
            "---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: tr, namespace: shop{}}}\nspec:\n  parentRef: {{name: web, port: 80}}\n  rules: [{{backends: [{{name: web-v1}}]}}]\n",
            at(created)
        )
    };
    let http = |created: &str| {
        http_route(
            "hr",
            &at(created),
            "  rules: [{backendRefs: [{name: web-v2, port: 80}]}]\n",
        )
    };
    // The TrafficRoute is older: the HTTPRoute is refused, naming it.
    let text = format!(
        "{BASE}{}{}",
        http("2026-02-01T00:00:00Z"),
        traffic_route("2026-01-01T00:00:00Z")
    );
    let t = translate_str(&text);
    assert_eq!(t.errors.len(), 1, "{:?}", t.errors);
    assert!(
        t.errors[0].message.starts_with("HTTPRoute shop/hr: shop/web:80 is already routed by TrafficRoute shop/tr, which is older"),
        "{}",
        t.errors[0].message
    );
    let routes = t.snapshot.services[&ServicePortKey::new("shop", "web", 80)]
        .routes
        .clone()
        .expect("routes");
    assert_eq!(routes[0].source, "TrafficRoute shop/tr");
    // An HTTPRoute and a GRPCRoute do not merge either: the older is taken.
    let grpc = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: shop, creationTimestamp: \"2026-03-01T00:00:00Z\"}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: web, port: 80}]\n  rules: [{backendRefs: [{name: web-v1, port: 80}]}]\n";
    let t = translate_str(&format!("{BASE}{}{grpc}", http("2026-01-01T00:00:00Z")));
    assert_eq!(t.errors.len(), 1, "{:?}", t.errors);
    assert!(
        t.errors[0]
            .message
            .starts_with("GRPCRoute shop/g: shop/web:80 is already routed by HTTPRoute shop/hr"),
        "{}",
        t.errors[0].message
    );
    // The other way round.
    let text = format!(
        "{BASE}{}{}",
        http("2026-01-01T00:00:00Z"),
        traffic_route("2026-02-01T00:00:00Z")
    );
    let t = translate_str(&text);
    assert_eq!(t.errors.len(), 1, "{:?}", t.errors);
    assert!(
        t.errors[0].message.starts_with(
            "TrafficRoute shop/tr: shop/web:80 is already routed by HTTPRoute shop/hr"
        ),
        "{}",
        t.errors[0].message
    );
}

#[test]
fn grpc_methods_become_paths_with_grpc_precedence() {
    let text = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
    - name: any
      backendRefs: [{name: web-v1, port: 80}]
    - name: service
      matches: [{method: {service: shop.Cart}}]
      backendRefs: [{name: web-v1, port: 80}]
    - name: exact
      matches: [{method: {service: shop.Cart, method: Add}}]
      backendRefs: [{name: web-v2, port: 80}]
    - name: method
      matches: [{method: {method: Health}}]
      backendRefs: [{name: web-v2, port: 80}]
    - name: regex
      matches: [{method: {type: RegularExpression, service: "shop\\.Pay.*|shop\\.Bill"}, headers: [{name: x-tier, value: gold}]}]
      backendRefs: [{name: web-v2, port: 80}]
"#;
    let routes = web_routes(text);
    assert!(routes.iter().all(|r| r.source == "GRPCRoute shop/g"));
    let table = [
        ("/shop.Cart/Add", vec![], "g/exact"),
        ("/shop.Cart/Remove", vec![], "g/service"),
        ("/grpc.health.v1.Health/Health", vec![], "g/method"),
        ("/shop.Payments/Charge", vec![("x-tier", "gold")], "g/regex"),
        // An alternation stays inside the service part of the path.
        ("/shop.Bill/Charge", vec![("x-tier", "gold")], "g/regex"),
        ("/shop.Payments/Charge", vec![], "g/any"),
    ];
    for (path, headers, want) in table {
        assert_eq!(pick(&routes, "POST", path, &headers), want, "{path}");
    }
    let header = &routes
        .iter()
        .find(|r| r.name == "g/regex")
        .expect("regex")
        .matches[0]
        .headers[0];
    assert!(matches!(&header.value, ValueMatch::Exact(v) if v == "gold"));
    let refused = refusal(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: bad, namespace: shop}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: web}]\n  rules: [{filters: [{type: URLRewrite, urlRewrite: {hostname: x}}], backendRefs: [{name: web-v1, port: 80}]}]\n",
    );
    assert!(
        refused.contains("filter type URLRewrite is not supported by Strait on a GRPCRoute"),
        "{refused}"
    );
    let refused = refusal(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: bad, namespace: shop}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: web}]\n  rules: [{matches: [{method: {type: Exact}}], backendRefs: [{name: web-v1, port: 80}]}]\n",
    );
    assert!(refused.contains("set service, method or both"), "{refused}");
}
