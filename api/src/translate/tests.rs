use super::*;
use crate::manifest::parse_file;
use crate::model::{Affinity, LoadBalancer, PathMatch};
use std::time::Duration;

pub(super) const BASE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec:
  clusterIP: 10.96.0.11
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec:
  clusterIP: 10.96.0.12
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: shop
  annotations: {config.strait.dev/opaque-ports: "5432"}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: pg, port: 5432}, {name: metrics, port: 9100, appProtocol: http}, {name: redis, port: 6379, appProtocol: redis}]
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: shop}
spec:
  clusterIP: 10.96.0.53
  ports: [{name: dns, port: 53, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v1-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web-v1}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: [10.0.0.2]
    targetRef: {kind: Pod, name: web-v1-0}
  - addresses: [10.0.0.1]
    conditions: {ready: true}
  - addresses: [10.0.0.9]
    conditions: {ready: false}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v2-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web-v2}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: [10.0.1.1]
"#;

const ROUTE: &str = r#"
apiVersion: strait.dev/v1alpha1
kind: TrafficRoute
metadata: {name: web, namespace: shop}
spec:
  parentRef: {name: web, port: 80}
  rules:
    - name: canary
      matches:
        - path: {type: PathPrefix, value: /api/}
          headers: [{name: x-canary, value: "true"}]
      backends: [{name: web-v2, port: 80}]
    - name: ab
      backends:
        - {name: web-v1, port: 80, weight: 90}
        - {name: web-v2, weight: 10}
      sessionAffinity: {header: x-user-id}
      timeout: 2s
      retry: {attempts: 3, perTryTimeout: 500ms}
      requestHeaders: {set: {x-route: ab}, remove: [x-debug]}
---
apiVersion: strait.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: web-v1, namespace: shop}
spec:
  targetRef: {name: web-v1}
  loadBalancer: RoundRobin
  timeouts: {connect: 250ms}
"#;

pub(super) fn translate_str(text: &str) -> Translation {
    let (objects, errors) = parse_file("t.yaml", text);
    assert!(errors.is_empty(), "{errors:?}");
    translate(&objects)
}

#[test]
fn full_translation() {
    let t = translate_str(&format!("{BASE}---{ROUTE}"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let s = &t.snapshot;
    let web = s
        .service_by_addr("10.96.0.10:80".parse().expect("addr"))
        .expect("web by clusterIP");
    let routes = web.routes.as_ref().expect("web has routes");
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].name, "web/canary");
    assert!(matches!(&routes[0].matches[0].path, Some(PathMatch::Prefix(p)) if p == "/api"));
    assert_eq!(
        routes[1].backends[1].backend,
        ServicePortKey::new("shop", "web-v2", 80)
    );
    assert_eq!(routes[1].backends[1].weight, 10);
    assert!(matches!(&routes[1].affinity, Some(Affinity::Header(h)) if h == "x-user-id"));
    assert_eq!(routes[1].timeout, Some(Duration::from_secs(2)));
    assert_eq!(routes[1].retry.as_ref().map(|r| r.attempts), Some(3));

    let v1 = s
        .backend(&ServicePortKey::new("shop", "web-v1", 80))
        .expect("v1 backend");
    let addrs: Vec<String> = v1.endpoints.iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(
        addrs,
        ["10.0.0.1:8080", "10.0.0.2:8080"],
        "sorted, not-ready left out"
    );
    assert_eq!(v1.endpoints[1].pod.as_deref(), Some("shop/web-v1-0"));
    assert_eq!(v1.policy.load_balancer, LoadBalancer::RoundRobin);
    assert_eq!(v1.policy.connect_timeout, Some(Duration::from_millis(250)));
    assert_eq!(v1.policy.idle_timeout, None);
    let v2 = s
        .backend(&ServicePortKey::new("shop", "web-v2", 80))
        .expect("v2 backend");
    assert_eq!(v2.policy.load_balancer, LoadBalancer::PeakEwma);
    assert!(
        s.service(&ServicePortKey::new("shop", "web-v1", 80))
            .expect("v1")
            .routes
            .is_none()
    );

    let db = |port| {
        s.service(&ServicePortKey::new("shop", "db", port))
            .expect("db port")
            .opaque
    };
    assert!(db(5432), "annotation makes 5432 opaque");
    assert!(!db(9100), "appProtocol http is not opaque");
    assert!(db(6379), "appProtocol redis is opaque");
    // /config renders.
    let json = serde_json::to_string(s).expect("snapshot serialises");
    assert!(json.contains("\"shop/web:80\""), "{json}");
}

#[test]
fn rejections_name_the_field() {
    // (route rules yaml, expected message fragment)
    let table = [
        (
            "    - backends: []\n",
            "rules[0].backends: at least one backend",
        ),
        (
            "    - backends: [{name: nope, port: 80}]\n",
            "rules[0].backends[0]: Service shop/nope not found",
        ),
        (
            "    - backends: [{name: web-v1, port: 81}]\n",
            "has no port 81",
        ),
        (
            "    - backends: [{name: web-v1, weight: 0}]\n",
            "weight above 0",
        ),
        (
            "    - matches: [{path: {type: RegularExpression, value: \"([a-z\"}}]\n      backends: [{name: web-v1}]\n",
            "does not compile",
        ),
        // Found by fuzzing: an unbalanced source used to escape the anchors.
        (
            "    - matches: [{path: {type: RegularExpression, value: \"/a)|(/b\"}}]\n      backends: [{name: web-v1}]\n",
            "does not compile",
        ),
        // Found by fuzzing: a UDP port cannot be a backend.
        (
            "    - backends: [{name: dns, port: 53}]\n",
            "has no port 53 (TCP ports: [])",
        ),
        (
            "    - matches: [{path: {type: Prefix, value: /a}}]\n      backends: [{name: web-v1}]\n",
            "is not one of Exact, PathPrefix",
        ),
        (
            "    - matches: [{path: {value: api}}]\n      backends: [{name: web-v1}]\n",
            "must start with '/'",
        ),
        (
            "    - matches: [{headers: [{name: \"bad header\", value: x}]}]\n      backends: [{name: web-v1}]\n",
            "not a valid header name",
        ),
        (
            "    - matches: [{headers: [{name: x-a}]}]\n      backends: [{name: web-v1}]\n",
            "value is required",
        ),
        (
            "    - matches: [{method: get}]\n      backends: [{name: web-v1}]\n",
            "upper-case HTTP method",
        ),
        (
            "    - backends: [{name: web-v1}]\n      timeout: 2 seconds\n",
            "rules[0].timeout: invalid duration",
        ),
        (
            "    - backends: [{name: web-v1}]\n      timeout: 1s\n      retry: {perTryTimeout: 2s}\n",
            "perTryTimeout: must not be longer",
        ),
        (
            "    - backends: [{name: web-v1}]\n      retry: {on: [sometimes]}\n",
            "unknown class",
        ),
        (
            "    - backends: [{name: web-v1}]\n      sessionAffinity: {header: a, cookie: b}\n",
            "exactly one of header or cookie",
        ),
        (
            "    - backends: [{name: web-v1}]\n      sessionAffinity: {}\n",
            "exactly one of header or cookie",
        ),
        (
            "    - backends: [{name: web-v1}]\n      fault: {abort: {percent: 101, status: 503}}\n",
            "not a percentage",
        ),
        (
            "    - backends: [{name: web-v1}]\n      fault: {abort: {percent: 1, status: 42}}\n",
            "must be an HTTP status",
        ),
        (
            "    - backends: [{name: web-v1}]\n      requestHeaders: {set: {x-a: \"line\\nbreak\"}}\n",
            "not a valid header value",
        ),
        (
            "    - backends: [{name: web-v1}]\n      mirror: {name: ghost}\n",
            "mirror: Service shop/ghost not found",
        ),
    ];
    for (rules, fragment) in table {
        let route = format!(
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: bad, namespace: shop}}\nspec:\n  parentRef: {{name: web}}\n  rules:\n{rules}"
        );
        let t = translate_str(&format!("{BASE}---\n{route}"));
        assert_eq!(t.errors.len(), 1, "{rules}: {:?}", t.errors);
        let msg = t.errors[0].to_string();
        assert!(
            msg.contains("TrafficRoute shop/bad") && msg.contains(fragment),
            "{rules}: {msg}"
        );
        // The invalid route never reaches the snapshot.
        let web = t
            .snapshot
            .service(&ServicePortKey::new("shop", "web", 80))
            .expect("web");
        assert!(web.routes.is_none(), "{rules}");
    }
}

#[test]
fn route_and_policy_reference_errors() {
    let table = [
        (
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  parentRef: {name: ghost}\n  rules: [{backends: [{name: web}]}]\n",
            "parentRef: Service shop/ghost not found",
        ),
        (
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  parentRef: {name: web, port: 8080}\n  rules: [{backends: [{name: web}]}]\n",
            "parentRef: Service shop/web has no port 8080",
        ),
        (
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  parentRef: {name: web}\n  rules: []\n",
            "at least one rule",
        ),
        (
            "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  targetRef: {name: ghost}\n",
            "targetRef: Service shop/ghost not found",
        ),
        (
            "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  targetRef: {name: web}\n  loadBalancer: Random\n",
            "loadBalancer",
        ),
        (
            "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  targetRef: {name: web}\n  retryBudget: {ratio: \"lots\"}\n",
            "retryBudget.ratio",
        ),
        (
            "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  targetRef: {name: web}\n  circuitBreaker: {baseEjectionTime: 10s, maxEjectionTime: 1s}\n",
            "maxEjectionTime",
        ),
        (
            "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  targetRef: {name: web}\n  tls: {mode: Sometimes}\n",
            "tls.mode",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
            "defined more than once",
        ),
    ];
    for (yaml, fragment) in table {
        let t = translate_str(&format!("{BASE}---\n{yaml}"));
        assert_eq!(t.errors.len(), 1, "{yaml}: {:?}", t.errors);
        assert!(
            t.errors[0].message.contains(fragment),
            "{yaml}: {}",
            t.errors[0]
        );
    }
}

#[test]
fn every_count_ratio_and_duration_has_an_upper_bound() {
    let route = |rule: &str| {
        format!(
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: r, namespace: shop}}\nspec:\n  parentRef: {{name: web}}\n  rules:\n    - {rule}\n"
        )
    };
    let policy = |spec: &str| {
        format!(
            "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {{name: p, namespace: shop}}\nspec:\n  targetRef: {{name: web}}\n  {spec}\n"
        )
    };
    let b = "backends: [{name: web}]";
    // (manifest at the bound: accepted; past it: refused naming the field)
    let table = [
        (
            route(&format!("{{{b}, retry: {{attempts: 10}}}}")),
            route(&format!("{{{b}, retry: {{attempts: 1000000000}}}}")),
            ".retry.attempts: 1000000000 is above the maximum, 10",
        ),
        (
            route(&format!("{{{b}, retry: {{attempts: 1}}}}")),
            route(&format!("{{{b}, retry: {{attempts: 0}}}}")),
            ".retry.attempts: must be at least 1",
        ),
        (
            route("{backends: [{name: web, weight: 1000000}]}"),
            route("{backends: [{name: web, weight: 1000001}]}"),
            ".backends[0].weight: 1000001 is above the maximum",
        ),
        (
            route(&format!("{{{b}, timeout: 1h}}")),
            route(&format!("{{{b}, timeout: 1h1ms}}")),
            ".timeout: 3600.001s is above the maximum, 3600s",
        ),
        (
            route(&format!("{{{b}, retry: {{backoff: 1m}}}}")),
            route(&format!("{{{b}, retry: {{backoff: 61s}}}}")),
            ".retry.backoff: 61s is above the maximum",
        ),
        (
            route(&format!(
                "{{{b}, fault: {{delay: {{percent: 1, duration: 1h}}}}}}"
            )),
            route(&format!(
                "{{{b}, fault: {{delay: {{percent: 1, duration: 2h}}}}}}"
            )),
            ".fault.delay.duration: 7200s is above the maximum",
        ),
        (
            policy("circuitBreaker: {baseEjectionTime: 24h, maxEjectionTime: 24h}"),
            policy("circuitBreaker: {baseEjectionTime: 99999h}"),
            "circuitBreaker.baseEjectionTime: 359996400s is above the maximum",
        ),
        (
            policy("circuitBreaker: {consecutiveFailures: 10000}"),
            policy("circuitBreaker: {consecutiveFailures: 10001}"),
            "circuitBreaker.consecutiveFailures: 10001 is above the maximum",
        ),
        (
            policy("circuitBreaker: {successRate: {threshold: \"0.5\", minRequests: 1000000}}"),
            policy("circuitBreaker: {successRate: {threshold: \"0.5\", minRequests: 1000001}}"),
            "circuitBreaker.successRate.minRequests: 1000001 is above the maximum",
        ),
        (
            policy("retryBudget: {ratio: \"1\"}"),
            policy("retryBudget: {ratio: \"1000\"}"),
            "retryBudget.ratio",
        ),
        (
            policy("retryBudget: {minPerSecond: 10000, window: 1h}"),
            policy("retryBudget: {minPerSecond: 10001}"),
            "retryBudget.minPerSecond: 10001 is above the maximum",
        ),
        (
            policy("retryBudget: {window: 1h}"),
            policy("retryBudget: {window: 2h}"),
            "retryBudget.window: 7200s is above the maximum",
        ),
        (
            policy(
                "limits: {maxConnections: 1000000, maxRequests: 1000000, maxPendingRequests: 1000000}",
            ),
            policy("limits: {maxPendingRequests: 4294967295}"),
            "limits.maxPendingRequests: 4294967295 is above the maximum",
        ),
        (
            policy("timeouts: {connect: 1h, idle: 24h}"),
            policy("timeouts: {idle: 25h}"),
            "timeouts.idle: 90000s is above the maximum",
        ),
    ];
    for (at, past, fragment) in table {
        let ok = translate_str(&format!("{BASE}---\n{at}"));
        assert!(ok.errors.is_empty(), "{at}: {:?}", ok.errors);
        let t = translate_str(&format!("{BASE}---\n{past}"));
        assert_eq!(t.errors.len(), 1, "{past}: {:?}", t.errors);
        assert!(
            t.errors[0].message.contains(fragment),
            "{past}: {}",
            t.errors[0]
        );
    }
}

#[test]
fn routes_merge_in_name_order_and_portless_parent_covers_all_ports() {
    let yaml = format!(
        "{BASE}---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: zzz, namespace: shop}}\nspec:\n  parentRef: {{name: db}}\n  rules: [{{name: last, matches: [{{path: {{value: /z}}}}], backends: [{{name: web}}]}}]\n---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: aaa, namespace: shop}}\nspec:\n  parentRef: {{name: db}}\n  rules: [{{name: first, backends: [{{name: web}}]}}]\n"
    );
    let t = translate_str(&yaml);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    for port in [5432, 9100, 6379] {
        let names: Vec<_> = t
            .snapshot
            .service(&ServicePortKey::new("shop", "db", port))
            .expect("db")
            .routes
            .as_ref()
            .expect("routes")
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(names, ["aaa/first", "zzz/last"]);
    }
}

#[test]
fn two_routes_claiming_the_same_match_on_a_parent_conflict() {
    let route = |name: &str, matches: &str| {
        format!(
            "---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  parentRef: {{name: web}}\n  rules:\n    - name: r\n      matches: {matches}\n      backends: [{{name: web-v1}}]\n"
        )
    };
    let same = "[{path: {type: PathPrefix, value: /api}, headers: [{name: x-a, value: \"1\"}]}]";
    let t = translate_str(&format!(
        "{BASE}{}{}",
        route("b-second", same),
        route("a-first", same)
    ));
    assert_eq!(t.errors.len(), 1, "{:?}", t.errors);
    let msg = t.errors[0].to_string();
    assert!(
        msg.contains("TrafficRoute shop/b-second")
            && msg.contains("claims the same matches as rule a-first/r on shop/web:80"),
        "{msg}"
    );
    let web = t
        .snapshot
        .service(&ServicePortKey::new("shop", "web", 80))
        .expect("web");
    assert_eq!(
        web.routes.as_ref().map(|r| r.len()),
        Some(1),
        "the earlier route is in force"
    );
    // Different matches on the same parent merge fine.
    let t = translate_str(&format!(
        "{BASE}{}{}",
        route("a", same),
        route("b", "[{path: {value: /other}}]")
    ));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    // Two catch-all rules conflict too.
    let t = translate_str(&format!("{BASE}{}{}", route("a", "[]"), route("b", "[]")));
    assert_eq!(t.errors.len(), 1);
}

#[test]
fn a_set_with_more_services_than_one_proxy_may_hold_is_refused_whole() {
    let (objects, errors) = parse_file(
        "t.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    );
    assert!(errors.is_empty());
    let one = &objects[0];
    let many = |n: usize| -> Vec<Located<Object>> {
        (0..n)
            .map(|i| {
                let mut o = one.clone();
                if let Object::Service(s) = &mut o.object {
                    s.metadata.name = format!("s-{i}");
                }
                o
            })
            .collect()
    };
    let at = translate_view(&many(crate::bounds::SERVICES));
    assert!(at.errors.is_empty(), "{:?}", at.errors.first());
    assert_eq!(at.snapshot.services.len(), crate::bounds::SERVICES);
    let past = translate_view(&many(crate::bounds::SERVICES + 1));
    assert_eq!(past.errors.len(), 1);
    assert!(
        past.errors[0]
            .message
            .contains("100001 Services, more than the 100000"),
        "{}",
        past.errors[0]
    );
    assert!(past.snapshot.services.is_empty());
    // The controller validates the whole cluster, where it does not apply.
    assert!(
        translate(&many(crate::bounds::SERVICES + 1))
            .errors
            .is_empty()
    );
}

/// An endpoint carries the identity of the meshed Pod its `targetRef`
/// names; an unmeshed Pod, an unnamed endpoint or a Pod of another
/// namespace leaves it plaintext.
#[test]
fn endpoints_of_meshed_pods_carry_their_identity() {
    let pods = r#"
---
apiVersion: v1
kind: Pod
metadata:
  name: web-v1-0
  namespace: shop
  annotations: {strait.dev/proxy-version: "0.1.0"}
spec: {serviceAccountName: web}
---
apiVersion: v1
kind: Pod
metadata: {name: web-v1-0, namespace: other, annotations: {strait.dev/proxy-version: "0.1.0"}}
spec: {serviceAccountName: intruder}
---
apiVersion: v1
kind: Pod
metadata: {name: web-v2-0, namespace: shop}
spec: {serviceAccountName: web}
"#;
    let t = translate_str(&format!("{BASE}{pods}"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let eps = &t.snapshot.backends[&ServicePortKey::new("shop", "web-v1", 80)].endpoints;
    let got: Vec<(String, Option<String>)> = eps
        .iter()
        .map(|e| {
            (
                e.addr.to_string(),
                e.identity
                    .as_ref()
                    .map(|sa| sa.spiffe("cluster.local").to_string()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("10.0.0.1:8080".to_string(), None),
            (
                "10.0.0.2:8080".to_string(),
                Some("spiffe://cluster.local/ns/shop/sa/web".to_string())
            ),
        ]
    );
    // Without the Pod, the same endpoint is plaintext.
    let t = translate_str(BASE);
    let eps = &t.snapshot.backends[&ServicePortKey::new("shop", "web-v1", 80)].endpoints;
    assert!(eps.iter().all(|e| e.identity.is_none()));
}
