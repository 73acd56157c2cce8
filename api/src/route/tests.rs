use super::*;
use crate::model::{HeaderMatch, QueryMatch, ServicePortKey, WeightedBackend};
use crate::translate::pattern_for_tests as pattern;
use http::{HeaderName, HeaderValue, Uri};

fn req_headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
            HeaderValue::from_str(v).expect("test header value"),
        );
    }
    h
}

fn check(m: &RouteMatch, method: &str, uri: &str, headers: &[(&str, &str)]) -> bool {
    let method = Method::from_bytes(method.as_bytes()).expect("test method");
    let uri: Uri = uri.parse().expect("test uri");
    let headers = req_headers(headers);
    matches(m, &RequestInfo::from_parts(&method, &uri, &headers))
}

fn path(p: PathMatch) -> RouteMatch {
    RouteMatch {
        path: Some(p),
        ..Default::default()
    }
}

#[test]
fn path_table() {
    let prefix = |s: &str| path(PathMatch::Prefix(s.into()));
    let exact = |s: &str| path(PathMatch::Exact(s.into()));
    let regex = |s: &str| path(PathMatch::Regex(pattern(s).expect("test regex")));
    let table: Vec<(RouteMatch, &str, bool)> = vec![
        (prefix("/api"), "/api", true),
        (prefix("/api"), "/api/", true),
        (prefix("/api"), "/api/v1/users", true),
        (prefix("/api"), "/apix", false),
        (prefix("/api"), "/ap", false),
        (prefix("/api"), "/", false),
        (prefix("/api"), "/api?x=1", true),
        (prefix("/"), "/anything", true),
        (prefix("/"), "/", true),
        (exact("/health"), "/health", true),
        (exact("/health"), "/health/", false),
        (exact("/health"), "/health?verbose=1", true),
        (exact("/health"), "/healthz", false),
        (regex("/users/[0-9]+"), "/users/42", true),
        (regex("/users/[0-9]+"), "/users/42/edit", false),
        (regex("/users/[0-9]+"), "/x/users/42", false),
        (regex(".*\\.png"), "/img/a.png", true),
    ];
    for (m, uri, want) in table {
        assert_eq!(check(&m, "GET", uri, &[]), want, "{m:?} vs {uri}");
    }
}

#[test]
fn header_table() {
    let h = |name: &str, value: ValueMatch| RouteMatch {
        headers: vec![HeaderMatch {
            name: HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value,
        }],
        ..Default::default()
    };
    let exact = |n: &str, v: &str| h(n, ValueMatch::Exact(v.into()));
    let re = |n: &str, v: &str| h(n, ValueMatch::Regex(pattern(v).expect("regex")));
    let present = |n: &str| h(n, ValueMatch::Present);
    type Case<'a> = (RouteMatch, Vec<(&'a str, &'a str)>, bool);
    let table: Vec<Case> = vec![
        (exact("x-canary", "true"), vec![("x-canary", "true")], true),
        (exact("x-canary", "true"), vec![("X-Canary", "true")], true),
        (exact("x-canary", "true"), vec![("x-canary", "TRUE")], false),
        (
            exact("x-canary", "true"),
            vec![("x-canary", "false")],
            false,
        ),
        (exact("x-canary", "true"), vec![], false),
        (
            exact("x-canary", "true"),
            vec![("x-canary", "no"), ("x-canary", "true")],
            true,
        ),
        (re("x-user", "u[0-9]+"), vec![("x-user", "u12")], true),
        (re("x-user", "u[0-9]+"), vec![("x-user", "u12x")], false),
        (present("x-debug"), vec![("x-debug", "")], true),
        (present("x-debug"), vec![("x-other", "1")], false),
    ];
    for (m, headers, want) in table {
        assert_eq!(
            check(&m, "GET", "/", &headers),
            want,
            "{m:?} vs {headers:?}"
        );
    }
}

#[test]
fn method_and_query_table() {
    let method = RouteMatch {
        method: Some(Method::POST),
        ..Default::default()
    };
    assert!(check(&method, "POST", "/", &[]));
    assert!(!check(&method, "GET", "/", &[]));
    let q = |name: &str, value: ValueMatch| RouteMatch {
        query: vec![QueryMatch {
            name: name.into(),
            value,
        }],
        ..Default::default()
    };
    let table: Vec<(RouteMatch, &str, bool)> = vec![
        (q("beta", ValueMatch::Exact("1".into())), "/?beta=1", true),
        (
            q("beta", ValueMatch::Exact("1".into())),
            "/?a=2&beta=1&c",
            true,
        ),
        (q("beta", ValueMatch::Exact("1".into())), "/?beta=2", false),
        (q("beta", ValueMatch::Exact("1".into())), "/", false),
        (
            q("beta", ValueMatch::Exact("a b".into())),
            "/?beta=a+b",
            true,
        ),
        (
            q("beta", ValueMatch::Exact("a/b".into())),
            "/?beta=a%2Fb",
            true,
        ),
        (q("beta", ValueMatch::Present), "/?beta", true),
        (q("beta", ValueMatch::Present), "/?betax=1", false),
        (
            q("v", ValueMatch::Regex(pattern("[0-9]+").expect("regex"))),
            "/?v=123",
            true,
        ),
        (
            q("v", ValueMatch::Regex(pattern("[0-9]+").expect("regex"))),
            "/?v=12a",
            false,
        ),
    ];
    for (m, uri, want) in table {
        assert_eq!(check(&m, "GET", uri, &[]), want, "{m:?} vs {uri}");
    }
}

#[test]
fn all_conditions_of_a_match_must_hold() {
    let m = RouteMatch {
        path: Some(PathMatch::Prefix("/api".into())),
        headers: vec![HeaderMatch {
            name: HeaderName::from_static("x-canary"),
            value: ValueMatch::Exact("true".into()),
        }],
        method: Some(Method::GET),
        query: vec![QueryMatch {
            name: "beta".into(),
            value: ValueMatch::Exact("1".into()),
        }],
    };
    assert!(check(&m, "GET", "/api/x?beta=1", &[("x-canary", "true")]));
    assert!(!check(&m, "POST", "/api/x?beta=1", &[("x-canary", "true")]));
    assert!(!check(&m, "GET", "/web?beta=1", &[("x-canary", "true")]));
    assert!(!check(&m, "GET", "/api/x", &[("x-canary", "true")]));
    assert!(!check(&m, "GET", "/api/x?beta=1", &[]));
}

fn route(name: &str, matches: Vec<RouteMatch>) -> Route {
    Route {
        name: name.into(),
        matches,
        backends: vec![WeightedBackend {
            backend: ServicePortKey::new("ns", "b", 80),
            weight: 1,
        }],
        affinity: None,
        timeout: None,
        retry: None,
        fault: None,
        request_headers: Default::default(),
        response_headers: Default::default(),
        mirror: None,
        redirect: None,
        rewrite: None,
        source: "TrafficRoute ns/r".into(),
    }
}

#[test]
fn first_matching_rule_wins_and_empty_matches_take_all() {
    let routes = vec![
        route(
            "canary",
            vec![RouteMatch {
                headers: vec![HeaderMatch {
                    name: HeaderName::from_static("x-canary"),
                    value: ValueMatch::Exact("true".into()),
                }],
                ..Default::default()
            }],
        ),
        route(
            "api",
            vec![
                path(PathMatch::Prefix("/api".into())),
                path(PathMatch::Exact("/v1".into())),
            ],
        ),
        route("rest", vec![]),
    ];
    let pick = |uri: &str, headers: &[(&str, &str)]| {
        let uri: Uri = uri.parse().expect("uri");
        let headers = req_headers(headers);
        select(
            &routes,
            &RequestInfo::from_parts(&Method::GET, &uri, &headers),
        )
        .map(|r| r.name.clone())
    };
    assert_eq!(
        pick("/api/x", &[("x-canary", "true")]).as_deref(),
        Some("canary")
    );
    assert_eq!(pick("/api/x", &[]).as_deref(), Some("api"));
    assert_eq!(pick("/v1", &[]).as_deref(), Some("api"));
    assert_eq!(pick("/other", &[]).as_deref(), Some("rest"));
    assert_eq!(
        select(
            &routes[..2],
            &RequestInfo::from_parts(
                &Method::GET,
                &"/other".parse().expect("uri"),
                &HeaderMap::new()
            )
        )
        .map(|r| r.name.as_str()),
        None
    );
}

#[test]
fn percent_decode_table() {
    for (input, want) in [
        ("a+b", "a b"),
        ("a%2Fb", "a/b"),
        ("%", "%"),
        ("%zz", "%zz"),
        ("%4", "%4"),
        ("%41", "A"),
        ("", ""),
    ] {
        assert_eq!(percent_decode(input), want, "{input:?}");
    }
}
