//! Route selection on a fixed table with requests from the input.
//!
//! The table is built once, the way the proxy builds it: a YAML manifest
//! through `parse_file` and `translate`. The input is read as a request
//! head, so seeds are readable:
//!
//! ```text
//! POST /login?x=1
//! x-canary: true
//! host: web.shop:80
//! ```
//!
//! Line 1 is `METHOD TARGET`, split at the first space (a method the `http`
//! crate refuses becomes `GET`); TARGET splits at the first `?` into path
//! and query. Each further line is `name: value` (lines whose name or value
//! `http` refuses are dropped). Bytes are used as they are, so header values
//! may be non-UTF-8.
//!
//! `select` must not panic, always finds a rule (the table ends with a
//! catch-all) and agrees with simple oracles for the rules whose conditions
//! are easy to restate. When TARGET also parses as an `http::Uri`, selecting
//! through `RequestInfo::from_parts` is checked too. The `host` header goes
//! through `authority::parse`, as in the proxy's explicit mode.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use strait_api::manifest::parse_file;
use strait_api::model::{Route, ServicePortKey};
use strait_api::route::{RequestInfo, percent_decode, select};
use strait_api::translate::translate;
use strait_api::{authority, duration};

const TABLE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: strait.dev/v1alpha1
kind: TrafficRoute
metadata: {name: web, namespace: shop}
spec:
  parentRef: {name: web, port: 80}
  rules:
    - name: login
      matches: [{path: {type: Exact, value: /login}, method: POST}]
      backends: [{name: web-v1}]
    - name: canary
      matches:
        - path: {type: PathPrefix, value: /api/}
          headers: [{name: X-Canary, value: "true"}]
      backends: [{name: web-v2}]
    - name: beta
      matches: [{queryParams: [{name: beta, type: RegularExpression, value: "[0-9]+"}]}]
      backends: [{name: web-v2}]
    - name: items
      matches: [{path: {type: RegularExpression, value: "/items/[0-9]+"}}]
      backends: [{name: web-v1}]
    - name: user
      matches:
        - headers: [{name: x-user, type: RegularExpression, value: "u-[a-z]+"}]
        - queryParams: [{name: user, value: "a b"}]
      backends: [{name: web-v2}]
    - name: debug
      matches: [{headers: [{name: x-debug, type: Present}], method: DELETE}]
      backends: [{name: web-v1}]
    - name: default
      backends: [{name: web-v1, weight: 90}, {name: web-v2, weight: 10}]
      timeout: 2s
"#;

fn table() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let (objects, errors) = parse_file("table.yaml", TABLE);
        assert!(errors.is_empty(), "{errors:?}");
        let t = translate(&objects);
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        t.snapshot
            .service(&ServicePortKey::new("shop", "web", 80))
            .and_then(|s| s.routes.clone())
            .expect("web:80 has routes")
    })
}

fn rule_name(r: &Route) -> &str {
    r.name.strip_prefix("web/").unwrap_or(&r.name)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn check(routes: &[Route], req: &RequestInfo<'_>) {
    let Some(r) = select(routes, req) else {
        panic!("the catch-all rule did not match {req:?}");
    };
    let name = rule_name(r);
    let path = req.path;
    let is_login = req.method == Method::POST && path == "/login";
    let is_canary = (path == "/api" || path.starts_with("/api/"))
        && req
            .headers
            .get_all("x-canary")
            .iter()
            .any(|v| v.as_bytes() == b"true");
    let is_items = path
        .strip_prefix("/items/")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    // Each rule is chosen only when its conditions hold ...
    match name {
        "login" => assert!(is_login, "{req:?}"),
        "canary" => assert!(is_canary, "{req:?}"),
        "items" => assert!(is_items, "{req:?}"),
        "beta" => assert!(
            req.query.is_some_and(|q| q
                .split('&')
                .any(|kv| percent_decode(kv.split('=').next().unwrap_or_default()) == "beta")),
            "{req:?}"
        ),
        "debug" => assert!(
            req.method == Method::DELETE && req.headers.contains_key("x-debug"),
            "{req:?}"
        ),
        "user" | "default" => {}
        other => panic!("unknown rule {other}"),
    }
    // ... and rules 0 and 1, which nothing precedes, whenever they hold.
    if is_login {
        assert_eq!(name, "login", "{req:?}");
    } else if is_canary {
        assert_eq!(name, "canary", "{req:?}");
    } else if is_items {
        assert!(name == "beta" || name == "items", "{name} for {req:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let routes = table();
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let first = trim(first);
    let (method, target) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], trim(&first[i + 1..])),
        None => (&b"GET"[..], first),
    };
    let method = Method::from_bytes(method).unwrap_or(Method::GET);
    let target = String::from_utf8_lossy(target);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*target, None),
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(trim(&line[..colon])),
            HeaderValue::from_bytes(trim(&line[colon + 1..])),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    let req = RequestInfo {
        method: &method,
        path,
        query,
        headers: &headers,
    };
    check(routes, &req);
    if let Ok(uri) = target.parse::<Uri>() {
        let req = RequestInfo::from_parts(&method, &uri, &headers);
        check(routes, &req);
    }

    // What the proxy does with Host in explicit mode, and a timeout header
    // read as a manifest duration would be.
    for host in headers.get_all(http::header::HOST) {
        if let Ok(h) = host.to_str() {
            let _ = authority::parse(h, "default");
        }
    }
    if let Some(Ok(t)) = headers.get("x-timeout").map(|v| v.to_str()) {
        let _ = duration::parse(t);
    }
});
