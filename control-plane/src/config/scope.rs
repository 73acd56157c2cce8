//! Which published objects each proxy receives: per-proxy scoping. Pure.
//!
//! The rule (after Istio's `networking.istio.io/exportTo`, in our words):
//!
//! * a Service annotated `strait.dev/export-to: "ns-a,ns-b"` is visible only
//!   to proxies in those namespaces; `.` names the Service's own namespace;
//!   `*`, an empty value or no annotation means every namespace;
//! * a Service's EndpointSlices (label `kubernetes.io/service-name`),
//!   TrafficRoutes (`spec.parentRef`) and DestinationPolicies
//!   (`spec.targetRef`) are visible wherever the Service is;
//! * a Service that a visible route uses as a backend or mirror is visible
//!   too, with everything that follows it (its own routes included, and so
//!   on): the proxy translates what it receives with the same code that
//!   validated it, and a route whose backend is missing would be refused and
//!   the whole version NACKed. Any set built this way translates cleanly.
//!
//! Objects whose Service is not published (an orphan EndpointSlice, say)
//! are visible to nobody: they could not be used anyway.
//!
//! Visibility depends only on the proxy's namespace (not its pod or service
//! account), which is what lets the server build each view once per
//! namespace. [`Scope::new`] computes every object's [`Audience`] once per
//! published version; [`Scope::visible`] is a lookup; [`narrow`] turns the
//! global delta of a version into one namespace's delta, including objects
//! that became visible or invisible.

use super::store::{Delta, Key};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use strait_api::manifest::{Object, SERVICE_NAME_LABEL};

/// The annotation on a Service that limits who sees it.
pub const EXPORT_TO_ANNOTATION: &str = "strait.dev/export-to";

/// The namespaces a published object is visible in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every namespace.
    Everyone,
    /// Only these (possibly none).
    Namespaces(Arc<BTreeSet<String>>),
}

impl Audience {
    /// Whether a proxy in `namespace` sees it.
    pub fn includes(&self, namespace: &str) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Namespaces(n) => n.contains(namespace),
        }
    }

    /// Adds `other`'s namespaces; true if anything was added.
    fn absorb(&mut self, other: &Audience) -> bool {
        match (&mut *self, other) {
            (Audience::Everyone, _) => false,
            (_, Audience::Everyone) => {
                *self = Audience::Everyone;
                true
            }
            (Audience::Namespaces(mine), Audience::Namespaces(theirs)) => {
                if theirs.is_subset(mine) {
                    return false;
                }
                Arc::make_mut(mine).extend(theirs.iter().cloned());
                true
            }
        }
    }
}

/// The audience a Service asks for with its annotation (pure).
pub fn export_to(namespace: &str, annotation: Option<&str>) -> Audience {
    let Some(value) = annotation else {
        return Audience::Everyone;
    };
    let mut set = BTreeSet::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry {
            "*" => return Audience::Everyone,
            "." => set.insert(namespace.to_string()),
            ns => set.insert(ns.to_string()),
        };
    }
    // `""` or `" , "` says nothing: treat it as no annotation, rather than
    // silently hiding the Service from everyone.
    if set.is_empty() {
        return Audience::Everyone;
    }
    Audience::Namespaces(Arc::new(set))
}

/// `(namespace, name)` of a Service.
type ServiceName = (String, String);

impl Default for Scope {
    /// The scope of an empty set: nothing to hide.
    fn default() -> Self {
        Scope {
            audience: BTreeMap::new(),
            public: true,
        }
    }
}

/// The audience of every published object, for one version.
#[derive(Debug, PartialEq, Eq)]
pub struct Scope {
    audience: BTreeMap<Key, Audience>,
    /// Every published object is visible everywhere (no annotation limits
    /// anything, no orphans): every namespace's view is the same.
    public: bool,
}

impl Scope {
    /// Computes every object's audience from the published objects.
    pub fn new<'a>(objects: impl IntoIterator<Item = (&'a Key, &'a Object)>) -> Scope {
        // Each Service's own audience; then, for every object, the Service
        // it follows; and, for every route, the Services it sends to.
        let mut services: HashMap<ServiceName, Audience> = HashMap::new();
        let mut follows: Vec<(&Key, ServiceName)> = Vec::new();
        let mut uses: HashMap<ServiceName, Vec<ServiceName>> = HashMap::new();
        let mut count = 0;
        for (key, object) in objects {
            count += 1;
            let ns = key.1.clone();
            let service = match object {
                Object::Service(s) => {
                    let annotation = s.metadata.annotations.get(EXPORT_TO_ANNOTATION);
                    services.insert(
                        (ns.clone(), key.2.clone()),
                        export_to(&ns, annotation.map(String::as_str)),
                    );
                    Some(key.2.clone())
                }
                Object::EndpointSlice(s) => s.metadata.labels.get(SERVICE_NAME_LABEL).cloned(),
                Object::DestinationPolicy(p) => Some(p.spec.target_ref.name.clone()),
                Object::TrafficRoute(r) => {
                    let parent = (ns.clone(), r.spec.parent_ref.name.clone());
                    let targets = uses.entry(parent).or_default();
                    for rule in &r.spec.rules {
                        let backends = rule.backends.iter().map(|b| &b.name);
                        for name in backends.chain(rule.mirror.iter().map(|m| &m.name)) {
                            targets.push((ns.clone(), name.clone()));
                        }
                    }
                    Some(r.spec.parent_ref.name.clone())
                }
            };
            if let Some(name) = service {
                follows.push((key, (ns, name)));
            }
        }
        // Whoever sees a route's parent sees its backends: spread audiences
        // along "parent → backend" until nothing grows (cycles end because
        // audiences only grow).
        let mut work: Vec<ServiceName> = uses.keys().cloned().collect();
        while let Some(parent) = work.pop() {
            let Some(from) = services.get(&parent).cloned() else {
                continue;
            };
            for target in uses.get(&parent).into_iter().flatten() {
                if let Some(to) = services.get_mut(target)
                    && to.absorb(&from)
                    && uses.contains_key(target)
                {
                    work.push(target.clone());
                }
            }
        }
        let audience: BTreeMap<Key, Audience> = follows
            .into_iter()
            .filter_map(|(key, service)| Some((key.clone(), services.get(&service)?.clone())))
            .collect();
        let public = audience.len() == count && audience.values().all(|a| *a == Audience::Everyone);
        Scope { audience, public }
    }

    /// Whether every namespace sees every published object, so that one
    /// view serves all.
    pub fn public(&self) -> bool {
        self.public
    }

    /// Whether a proxy in `namespace` receives the object `key`.
    pub fn visible(&self, key: &Key, namespace: &str) -> bool {
        self.audience
            .get(key)
            .is_some_and(|a| a.includes(namespace))
    }

    /// The objects whose audience differs between `self` and `next`
    /// (added and removed objects included).
    pub fn changed(&self, next: &Scope) -> Vec<Key> {
        let mut keys: Vec<Key> = Vec::new();
        for (k, a) in &next.audience {
            if self.audience.get(k) != Some(a) {
                keys.push(k.clone());
            }
        }
        for k in self.audience.keys() {
            if !next.audience.contains_key(k) {
                keys.push(k.clone());
            }
        }
        keys
    }
}

/// How visibility moved from one version to the next: computed once per
/// version, shared by every namespace's [`narrow`].
#[derive(Debug, Default)]
pub struct Transition {
    /// The previous version's scope.
    pub before: Arc<Scope>,
    /// This version's scope.
    pub after: Arc<Scope>,
    /// Every object whose audience changed, with its JSON at this version
    /// when it is still published.
    pub changed: Vec<(Key, Option<String>)>,
}

/// One namespace's delta for a version (pure).
///
/// `delta` is the version's global delta. The result brings a proxy in
/// `namespace` from its view of the previous version to its view of this
/// one: the changed objects it sees, the objects it sees for the first time
/// (as upserts), and removals of what it no longer sees.
pub fn narrow(delta: &Delta, t: &Transition, namespace: &str) -> Delta {
    let mut upserts: BTreeMap<&Key, &String> = delta
        .upserts
        .iter()
        .filter(|(k, _)| t.after.visible(k, namespace))
        .map(|(k, j)| (k, j))
        .collect();
    let mut removals: BTreeSet<&Key> = delta
        .removals
        .iter()
        .filter(|k| t.before.visible(k, namespace))
        .collect();
    for (k, json) in &t.changed {
        match (
            t.before.visible(k, namespace),
            t.after.visible(k, namespace),
        ) {
            (false, true) => {
                if let Some(json) = json {
                    upserts.entry(k).or_insert(json);
                }
            }
            (true, false) => {
                removals.insert(k);
            }
            _ => {}
        }
    }
    Delta {
        version: delta.version,
        upserts: upserts
            .into_iter()
            .map(|(k, j)| (k.clone(), j.clone()))
            .collect(),
        removals: removals.into_iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_api::manifest::parse_file;

    fn objects(yaml: &str) -> Vec<(Key, Object)> {
        let (objects, errors) = parse_file("t.yaml", yaml);
        assert!(errors.is_empty(), "{errors:?}");
        objects
            .into_iter()
            .map(|o| {
                let (k, ns, n) = o.object.key();
                ((k.to_string(), ns.to_string(), n.to_string()), o.object)
            })
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
            .map(|(k, _)| format!("{}/{}/{}", k.0, k.1, k.2))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn annotation_forms() {
        let everyone = Audience::Everyone;
        let only = |ns: &[&str]| {
            Audience::Namespaces(Arc::new(ns.iter().map(|s| s.to_string()).collect()))
        };
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
        let mut changed: Vec<String> = before.changed(&after).into_iter().map(|k| k.2).collect();
        changed.sort();
        assert_eq!(changed, ["new", "old", "web"]);
        assert!(after.changed(&after).is_empty());
    }

    #[test]
    fn narrow_one_delta() {
        let key = |n: &str| ("Service".to_string(), "shop".to_string(), n.to_string());
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
                    let json = (k.2 != "old").then(|| format!("{}'", k.2));
                    (k, json)
                })
                .collect(),
            before,
            after,
        };
        let names = |d: &Delta| {
            (
                d.upserts.iter().map(|u| u.0.2.clone()).collect::<Vec<_>>(),
                d.removals.iter().map(|k| k.2.clone()).collect::<Vec<_>>(),
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
}
