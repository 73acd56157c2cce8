//! Table tests for per-proxy scoping.

use super::*;
use strait_api::manifest::parse_file;

fn objects(yaml: &str) -> Vec<(Key, Object)> {
    let (objects, errors) = parse_file("t.yaml", yaml);
    assert!(errors.is_empty(), "{errors:?}");
    objects
        .into_iter()
        .map(|o| (o.object.object_key(), o.object))
        .collect()
}

fn service(ns: &str, name: &str, export_to: Option<&str>) -> String {
    let annotations = export_to
        .map(|e| format!(", annotations: {{strait.dev/export-to: \"{e}\"}}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}{annotations}}}\nspec: {{ports: [{{port: 80}}]}}\n---\n"
    )
}

fn slice(ns: &str, service: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {service}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [10.0.0.1]}}]\n---\n"
    )
}

fn policy(ns: &str, service: &str) -> String {
    format!(
        "apiVersion: strait.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {{name: {service}, namespace: {ns}}}\nspec: {{targetRef: {{name: {service}}}}}\n---\n"
    )
}

fn route(ns: &str, parent: &str, backends: &[&str], mirror: Option<&str>) -> String {
    let backends: Vec<String> = backends.iter().map(|b| format!("{{name: {b}}}")).collect();
    let mirror = mirror
        .map(|m| format!(", mirror: {{name: {m}}}"))
        .unwrap_or_default();
    format!(
        "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: {parent}, namespace: {ns}}}\nspec:\n  parentRef: {{name: {parent}}}\n  rules: [{{backends: [{}]{mirror}}}]\n---\n",
        backends.join(", ")
    )
}

/// `kind/name` of everything a proxy in `namespace` sees, sorted.
fn seen(yaml: &str, namespace: &str) -> Vec<String> {
    let objects = objects(yaml);
    let scope = Scope::new(objects.iter().map(|(k, o)| (k, o)));
    let mut v: Vec<String> = objects
        .iter()
        .filter(|(k, _)| scope.visible(k, namespace))
        .map(|(k, _)| format!("{}/{}/{}", k.kind, k.namespace, k.name))
        .collect();
    v.sort();
    v
}

#[test]
fn annotation_forms() {
    let everyone = Audience::Everyone;
    let only =
        |ns: &[&str]| Audience::Namespaces(Arc::new(ns.iter().map(|s| s.to_string()).collect()));
    let table: &[(Option<&str>, Audience)] = &[
        (None, everyone.clone()),
        (Some("*"), everyone.clone()),
        (Some(""), everyone.clone()),
        (Some(" , "), everyone.clone()),
        (Some("."), only(&["shop"])),
        (Some("shop"), only(&["shop"])),
        (Some("a,b"), only(&["a", "b"])),
        (Some(" a , b ,"), only(&["a", "b"])),
        (Some(".,a"), only(&["a", "shop"])),
        (Some("a,*"), everyone.clone()),
        (Some("a,a"), only(&["a"])),
    ];
    for (annotation, want) in table {
        assert_eq!(&export_to("shop", *annotation), want, "{annotation:?}");
    }
    assert!(everyone.includes("anything"));
    assert!(only(&["a"]).includes("a") && !only(&["a"]).includes("b"));
    assert!(!only(&[]).includes("a"));
}

#[test]
fn a_service_and_what_follows_it() {
    // web: own namespace only; db: a and shop; api: everyone.
    let yaml = [
        service("shop", "web", Some(".")),
        slice("shop", "web"),
        policy("shop", "web"),
        route("shop", "web", &["web"], None),
        service("shop", "db", Some("a,shop")),
        slice("shop", "db"),
        service("shop", "api", None),
        slice("shop", "api"),
        // A slice in another namespace with the same service name
        // follows its own namespace's Service (there is none).
        slice("b", "web"),
    ]
    .concat();
    let table: &[(&str, &[&str])] = &[
        (
            "shop",
            &[
                "DestinationPolicy/shop/web",
                "EndpointSlice/shop/api-1",
                "EndpointSlice/shop/db-1",
                "EndpointSlice/shop/web-1",
                "Service/shop/api",
                "Service/shop/db",
                "Service/shop/web",
                "TrafficRoute/shop/web",
            ],
        ),
        (
            "a",
            &[
                "EndpointSlice/shop/api-1",
                "EndpointSlice/shop/db-1",
                "Service/shop/api",
                "Service/shop/db",
            ],
        ),
        ("b", &["EndpointSlice/shop/api-1", "Service/shop/api"]),
    ];
    for (ns, want) in table {
        assert_eq!(seen(&yaml, ns), *want, "proxy in {ns}");
    }
}

#[test]
fn backends_and_mirrors_of_a_visible_route_are_pulled_in() {
    let yaml = [
        // A public front whose route sends to a private backend and
        // mirrors to another; the backend's own route goes on to a third.
        service("shop", "front", Some("*")),
        route("shop", "front", &["v1"], Some("shadow")),
        service("shop", "v1", Some(".")),
        slice("shop", "v1"),
        policy("shop", "v1"),
        route("shop", "v1", &["v1-deep"], None),
        service("shop", "v1-deep", Some(".")),
        service("shop", "shadow", Some(".")),
        // A private Service nobody routes to stays private.
        service("shop", "secret", Some(".")),
        // A private front's backend is pulled only where the front is.
        service("shop", "inner", Some("a")),
        route("shop", "inner", &["inner-v1"], None),
        service("shop", "inner-v1", Some(".")),
    ]
    .concat();
    let other = seen(&yaml, "b");
    assert_eq!(
        other,
        [
            "DestinationPolicy/shop/v1",
            "EndpointSlice/shop/v1-1",
            "Service/shop/front",
            "Service/shop/shadow",
            "Service/shop/v1",
            "Service/shop/v1-deep",
            "TrafficRoute/shop/front",
            "TrafficRoute/shop/v1",
        ]
    );
    let a = seen(&yaml, "a");
    for k in [
        "Service/shop/inner",
        "Service/shop/inner-v1",
        "TrafficRoute/shop/inner",
    ] {
        assert!(a.contains(&k.to_string()), "{k} in {a:?}");
    }
    assert!(!a.contains(&"Service/shop/secret".to_string()));
    // The Services' own namespace sees all but `inner` (exported to `a`
    // only) and its route; `inner-v1` (".") it sees.
    let shop = seen(&yaml, "shop");
    assert_eq!(shop.len(), 10, "{shop:?}");
    assert!(!shop.contains(&"Service/shop/inner".to_string()));
    // Whatever a namespace sees translates without errors (no NACK).
    let objects = objects(&yaml);
    let scope = Scope::new(objects.iter().map(|(k, o)| (k, o)));
    for ns in ["shop", "a", "b"] {
        let located: Vec<_> = objects
            .iter()
            .filter(|(k, _)| scope.visible(k, ns))
            .map(|(_, o)| strait_api::manifest::Located {
                file: "t".into(),
                line: 0,
                object: o.clone(),
            })
            .collect();
        let t = strait_api::translate::translate(&located);
        assert!(t.errors.is_empty(), "{ns}: {:?}", t.errors);
    }
}

#[test]
fn routing_cycles_end() {
    let yaml = [
        service("shop", "a", Some("x")),
        route("shop", "a", &["b"], None),
        service("shop", "b", Some("y")),
        route("shop", "b", &["a"], None),
    ]
    .concat();
    assert_eq!(seen(&yaml, "x"), seen(&yaml, "y"));
    assert_eq!(seen(&yaml, "x").len(), 4);
    assert!(seen(&yaml, "z").is_empty());
}

#[test]
fn orphans_are_visible_to_nobody() {
    let yaml = [slice("shop", "gone"), policy("shop", "gone")].concat();
    assert!(seen(&yaml, "shop").is_empty());
}

#[test]
fn public_when_nothing_is_limited() {
    let scope = |yaml: &str| {
        let o = objects(yaml);
        Scope::new(o.iter().map(|(k, o)| (k, o)))
    };
    assert!(Scope::default().public());
    assert!(scope(&[service("shop", "web", None), slice("shop", "web")].concat()).public());
    assert!(!scope(&service("shop", "web", Some("."))).public());
    assert!(!scope(&slice("shop", "orphan")).public());
}

#[test]
fn changed_lists_moved_added_and_removed_objects() {
    let scope = |yaml: &str| {
        let o = objects(yaml);
        Scope::new(o.iter().map(|(k, o)| (k, o)))
    };
    let before = scope(&[service("shop", "web", None), service("shop", "old", None)].concat());
    let after = scope(
        &[
            service("shop", "web", Some(".")),
            service("shop", "new", None),
        ]
        .concat(),
    );
    let mut changed: Vec<String> = before.changed(&after).into_iter().map(|k| k.name).collect();
    changed.sort();
    assert_eq!(changed, ["new", "old", "web"]);
    assert!(after.changed(&after).is_empty());
}

#[test]
fn narrow_one_delta() {
    let key = |n: &str| Key::new("Service", "shop", n);
    let scope = |yaml: &str| {
        let o = objects(yaml);
        Arc::new(Scope::new(o.iter().map(|(k, o)| (k, o))))
    };
    // Before: web private, db public. After: web public, db private,
    // api added (private), old removed (was public).
    let before = scope(
        &[
            service("shop", "web", Some(".")),
            service("shop", "db", None),
            service("shop", "old", None),
        ]
        .concat(),
    );
    let after = scope(
        &[
            service("shop", "web", None),
            service("shop", "db", Some(".")),
            service("shop", "api", Some(".")),
        ]
        .concat(),
    );
    let delta = Delta {
        version: 9,
        upserts: vec![
            (key("web"), "web'".into()),
            (key("db"), "db'".into()),
            (key("api"), "api".into()),
        ],
        removals: vec![key("old")],
    };
    let t = Transition {
        changed: before
            .changed(&after)
            .into_iter()
            .map(|k| {
                let json = (k.name != "old").then(|| Json::from(format!("{}'", k.name)));
                (k, json)
            })
            .collect(),
        before,
        after,
    };
    let names = |d: &Delta| {
        (
            d.upserts
                .iter()
                .map(|u| u.0.name.clone())
                .collect::<Vec<_>>(),
            d.removals
                .iter()
                .map(|k| k.name.clone())
                .collect::<Vec<_>>(),
        )
    };
    let other = narrow(&delta, &t, "other");
    assert_eq!(other.version, 9);
    assert_eq!(
        names(&other),
        (vec!["web".into()], vec!["db".into(), "old".into()])
    );
    assert_eq!(other.upserts[0].1, "web'", "the delta's JSON");
    assert_eq!(
        names(&narrow(&delta, &t, "shop")),
        (
            vec!["api".into(), "db".into(), "web".into()],
            vec!["old".into()]
        )
    );
}

/// A meshed Pod's identity goes wherever a Service is whose slices name
/// it: the union when several do, nowhere when none does.
#[test]
fn pods_follow_the_services_whose_endpoints_they_are() {
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, annotations: {{strait.dev/proxy-version: x}}}}\n---\n"
        )
    };
    let named_slice = |service: &str, pod: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {service}-p, namespace: shop, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [10.0.0.2], targetRef: {{kind: Pod, name: {pod}}}}}]\n---\n"
        )
    };
    let yaml = [
        service("shop", "web", Some(".")),
        service("shop", "api", Some("front")),
        named_slice("web", "web-0"),
        named_slice("api", "web-0"),
        pod("web-0"),
        pod("lonely-0"),
    ]
    .concat();
    let pods = |ns: &str| -> Vec<String> {
        seen(&yaml, ns)
            .into_iter()
            .filter(|k| k.starts_with("Pod/"))
            .collect()
    };
    assert_eq!(pods("shop"), ["Pod/shop/web-0"]);
    assert_eq!(pods("front"), ["Pod/shop/web-0"]);
    assert!(pods("elsewhere").is_empty());
}

/// A Gateway route with several Service parents goes wherever any of them
/// is seen, and takes all of them (and its backends) along: a proxy given
/// the route without one of its parents would refuse its whole update.
#[test]
fn a_gateway_route_takes_all_its_parents_along() {
    let http_route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: open}, {group: \"\", kind: Service, name: hidden}]\n  rules: [{backendRefs: [{name: backend, port: 80}]}]\n---\n";
    for order in [["open", "hidden"], ["hidden", "open"]] {
        let yaml = format!(
            "{}{}{}{}",
            service("shop", "open", None),
            service("shop", "hidden", Some("billing")),
            service("shop", "backend", Some("billing")),
            http_route.replacen(
                "name: open}, {group: \"\", kind: Service, name: hidden}",
                &format!(
                    "name: {}}}, {{group: \"\", kind: Service, name: {}}}",
                    order[0], order[1]
                ),
                1
            )
        );
        for ns in ["web", "billing"] {
            assert_eq!(
                seen(&yaml, ns),
                [
                    "HTTPRoute/shop/r",
                    "Service/shop/backend",
                    "Service/shop/hidden",
                    "Service/shop/open"
                ],
                "{order:?} from {ns}"
            );
        }
    }
}
