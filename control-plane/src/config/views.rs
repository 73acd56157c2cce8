//! Each namespace's view of the published set, built once and shared.
//!
//! What a proxy receives depends only on its namespace (see
//! [`super::scope`]), so the server never filters per stream: a version's
//! delta is narrowed once per namespace, on first use, and the parts are
//! shared by every stream in that namespace ([`Version::parts_for`]); the
//! full set is likewise built once per (version, namespace)
//! ([`FullSets::get`]). With 1,000 streams in a handful of namespaces that
//! is a handful of encodings per version, and no per-stream copy; when a
//! namespace's view of a version is the whole of it (the common case: no
//! annotation limits anything), the one unnarrowed encoding is shared.

use super::delta::Delta;
use super::parts::{Parts, to_parts};
use super::scope::{OTHERS, Transition, narrow};
use super::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One published version, as broadcast to every stream.
#[derive(Debug)]
pub struct Version {
    delta: Delta,
    transition: Transition,
    /// The whole delta's parts, for every namespace that sees all of it.
    whole: OnceLock<Parts>,
    /// The parts, per namespace, built on first use.
    by_namespace: Mutex<HashMap<String, Parts>>,
}

impl Version {
    /// A version from its global delta and how visibility moved with it.
    pub fn new(delta: Delta, transition: Transition) -> Arc<Self> {
        Arc::new(Self {
            delta,
            transition,
            whole: OnceLock::new(),
            by_namespace: Mutex::new(HashMap::new()),
        })
    }

    /// The version number.
    pub fn number(&self) -> u64 {
        self.delta.version
    }

    /// The global delta (every object that changed).
    pub fn delta(&self) -> &Delta {
        &self.delta
    }

    /// The parts a proxy in `namespace` is sent for this version: what it
    /// sees changed, what it now sees for the first time, and removals of
    /// what it no longer sees. Possibly empty, still sent, so that the
    /// proxy's ACK shows it runs this version.
    pub fn parts_for(&self, namespace: &str) -> Parts {
        let build = || {
            if self.sees_all(namespace) {
                let whole = || Arc::new(to_parts(&self.delta, false));
                return self.whole.get_or_init(whole).clone();
            }
            Arc::new(to_parts(
                &narrow(&self.delta, &self.transition, namespace),
                false,
            ))
        };
        let Ok(mut cache) = self.by_namespace.lock() else {
            return build();
        };
        // Namespaces that neither scope names all see the same delta: one
        // entry for them all, so made-up namespaces cannot grow the cache.
        let t = &self.transition;
        let key = match t.before.view_key(namespace) {
            OTHERS => t.after.view_key(namespace),
            named => named,
        };
        cache.entry(key.to_string()).or_insert_with(build).clone()
    }

    /// Whether `namespace`'s delta is the whole delta: no visibility moved,
    /// and it sees every object the delta touches.
    fn sees_all(&self, namespace: &str) -> bool {
        let t = &self.transition;
        t.changed.is_empty()
            && self
                .delta
                .upserts
                .iter()
                .all(|(k, _)| t.after.visible(k, namespace))
            && self
                .delta
                .removals
                .iter()
                .all(|k| t.before.visible(k, namespace))
    }
}

/// Publishes what changed in the store (see [`Store::publish`]) as a
/// [`Version`], with the objects whose visibility moved.
pub fn publish(store: &mut Store) -> Option<Arc<Version>> {
    let before = store.scope();
    let delta = store.publish()?;
    let after = store.scope();
    // The store keeps the same scope value when no audience changed, which
    // is every endpoint-only change: then there is nothing to compare.
    let changed = if Arc::ptr_eq(&before, &after) {
        Vec::new()
    } else {
        before
            .changed(&after)
            .into_iter()
            .map(|k| {
                let json = store.json(&k).cloned();
                (k, json)
            })
            .collect()
    };
    Some(Version::new(
        delta,
        Transition {
            before,
            after,
            changed,
        },
    ))
}

/// The current version's full set, per namespace.
#[derive(Debug, Default)]
pub struct FullSets {
    version: u64,
    by_namespace: HashMap<String, Parts>,
}

impl FullSets {
    /// The full set for `namespace` at the store's published version,
    /// built once per version and namespace (once in all when every
    /// namespace sees everything); older versions are dropped.
    pub fn get(&mut self, store: &Store, namespace: &str) -> Parts {
        if self.version != store.version() {
            self.version = store.version();
            self.by_namespace.clear();
        }
        // Every namespace no audience names shares one view (all of them
        // when the set is public), so made-up namespaces cannot grow this.
        let slot = store.scope().view_key(namespace);
        self.by_namespace
            .entry(slot.to_string())
            .or_insert_with(|| Arc::new(to_parts(&store.full_for(namespace), true)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::delta::Key;
    use strait_api::manifest::parse_file;

    fn upsert(s: &mut Store, yaml: &str) {
        let (mut o, e) = parse_file("t.yaml", yaml);
        assert!(e.is_empty(), "{e:?}");
        s.upsert(o.remove(0).object, yaml.to_string());
    }

    fn service(name: &str, export_to: Option<&str>) -> String {
        let annotations = export_to
            .map(|e| format!(", annotations: {{strait.dev/export-to: \"{e}\"}}"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop{annotations}}}\nspec: {{ports: [{{port: 80}}]}}\n"
        )
    }

    fn slice(service: &str) -> String {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {service}-1, namespace: shop, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [10.0.0.1]}}]\n"
        )
    }

    fn route(parent: &str, backend: &str) -> String {
        format!(
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: {parent}, namespace: shop}}\nspec:\n  parentRef: {{name: {parent}}}\n  rules: [{{backends: [{{name: {backend}}}]}}]\n"
        )
    }

    fn key(kind: &str, name: &str) -> Key {
        Key::new(kind, "shop", name)
    }

    fn publish(s: &mut Store) -> Arc<Version> {
        super::publish(s).expect("a change")
    }

    /// (upserted keys, removed keys) of one namespace's parts.
    fn seen(parts: &Parts) -> (Vec<Key>, Vec<Key>) {
        let k = |r: &strait_api::wire::ResourceKey| Key::new(&r.kind, &r.namespace, &r.name);
        let mut up: Vec<Key> = parts
            .iter()
            .flat_map(|p| &p.upserts)
            .filter_map(|r| r.key.as_ref().map(k))
            .collect();
        let mut gone: Vec<Key> = parts.iter().flat_map(|p| &p.removals).map(k).collect();
        up.sort();
        gone.sort();
        (up, gone)
    }

    #[test]
    fn one_encoding_when_every_namespace_sees_everything() {
        let mut s = Store::default();
        upsert(&mut s, &service("web", None));
        upsert(&mut s, &slice("web"));
        publish(&mut s);
        let mut full = FullSets::default();
        assert!(Arc::ptr_eq(&full.get(&s, "a"), &full.get(&s, "b")));
        assert_eq!(seen(&full.get(&s, "a")).0.len(), 2);
        upsert(&mut s, &slice("web").replace("10.0.0.1", "10.0.0.2"));
        let v = publish(&mut s);
        assert!(Arc::ptr_eq(&v.parts_for("a"), &v.parts_for("b")));
        assert_eq!(seen(&v.parts_for("a")).0, [key("EndpointSlice", "web-1")]);
        // Once something is limited, namespaces get their own.
        upsert(&mut s, &service("web", Some(".")));
        let v = publish(&mut s);
        assert!(!Arc::ptr_eq(&v.parts_for("a"), &v.parts_for("shop")));
        assert!(!Arc::ptr_eq(&full.get(&s, "a"), &full.get(&s, "shop")));
    }

    #[test]
    fn namespaces_no_audience_names_share_one_view() {
        let mut s = Store::default();
        upsert(&mut s, &service("web", Some(".,billing")));
        upsert(&mut s, &service("db", None));
        publish(&mut s);
        let mut full = FullSets::default();
        let first = full.get(&s, "made-up-0");
        for i in 1..1000 {
            let view = full.get(&s, &format!("made-up-{i}"));
            assert!(Arc::ptr_eq(&first, &view), "one view for them all");
        }
        assert_eq!(
            seen(&first).0,
            [key("Service", "db")],
            "the public objects only"
        );
        assert_eq!(
            seen(&full.get(&s, "billing")).0.len(),
            2,
            "a named namespace"
        );
        assert_eq!(full.by_namespace.len(), 2, "made-up-*, billing");
        // The same for a version's deltas.
        upsert(&mut s, &service("db", Some("*")).replace("80", "81"));
        let v = publish(&mut s);
        for i in 0..1000 {
            v.parts_for(&format!("made-up-{i}"));
        }
        v.parts_for("shop");
        let cached = v.by_namespace.lock().map(|c| c.len()).unwrap_or(0);
        assert_eq!(cached, 2, "made-up-*, shop");
    }

    #[test]
    fn visibility_changes_become_upserts_and_removals_per_namespace() {
        let mut s = Store::default();
        upsert(&mut s, &service("web", Some(".")));
        upsert(&mut s, &slice("web"));
        upsert(&mut s, &service("db", None));
        publish(&mut s);
        let mut full = FullSets::default();
        let (shop, other) = (full.get(&s, "shop"), full.get(&s, "other"));
        assert_eq!(seen(&shop).0.len(), 3);
        assert_eq!(seen(&other).0, [key("Service", "db")]);
        assert!(Arc::ptr_eq(&shop, &full.get(&s, "shop")), "built once");

        // 1. Exported to everyone: `other` gets the Service and its slice as
        //    upserts; `shop` already has them and gets an empty version.
        upsert(&mut s, &service("web", Some("*")));
        let v = publish(&mut s);
        let (up, gone) = seen(&v.parts_for("other"));
        assert_eq!(
            (up, gone),
            (
                vec![key("EndpointSlice", "web-1"), key("Service", "web")],
                vec![]
            )
        );
        assert_eq!(
            seen(&v.parts_for("shop")),
            (vec![key("Service", "web")], vec![]),
            "only the edited Service itself"
        );
        assert!(
            Arc::ptr_eq(&v.parts_for("other"), &v.parts_for("other")),
            "narrowed once per namespace"
        );

        // 2. Back to "." and a slice change in the same version: `other`
        //    loses both (removals), `shop` gets the changes.
        upsert(&mut s, &service("web", Some(".")));
        upsert(&mut s, &slice("web").replace("10.0.0.1", "10.0.0.2"));
        let v = publish(&mut s);
        assert_eq!(
            seen(&v.parts_for("other")),
            (
                vec![],
                vec![key("EndpointSlice", "web-1"), key("Service", "web")]
            )
        );
        assert_eq!(seen(&v.parts_for("shop")).0.len(), 2);

        // 3. Endpoint churn on a hidden Service: nothing for `other`, yet a
        //    version (empty) all the same.
        upsert(&mut s, &slice("web").replace("10.0.0.1", "10.0.0.3"));
        let v = publish(&mut s);
        let other = v.parts_for("other");
        assert_eq!(seen(&other), (vec![], vec![]));
        assert_eq!((other.len(), other[0].version), (1, v.number()));

        // 4. A public route starts using the hidden Service: it is pulled
        //    into `other`'s view with its slice; dropping the route hides it.
        upsert(&mut s, &route("db", "web"));
        let v = publish(&mut s);
        assert_eq!(
            seen(&v.parts_for("other")).0,
            [
                key("EndpointSlice", "web-1"),
                key("Service", "web"),
                key("TrafficRoute", "db")
            ]
        );
        assert_eq!(seen(&v.parts_for("shop")).0, [key("TrafficRoute", "db")]);
        s.remove(&key("TrafficRoute", "db"));
        let v = publish(&mut s);
        assert_eq!(
            seen(&v.parts_for("other")).1,
            [
                key("EndpointSlice", "web-1"),
                key("Service", "web"),
                key("TrafficRoute", "db")
            ]
        );
        assert_eq!(
            seen(&v.parts_for("shop")),
            (vec![], vec![key("TrafficRoute", "db")])
        );

        // 5. The Service is deleted: its slice stays published (orphan) but
        //    nobody sees it any more.
        s.remove(&key("Service", "web"));
        let v = publish(&mut s);
        assert_eq!(
            seen(&v.parts_for("shop")).1,
            [key("EndpointSlice", "web-1"), key("Service", "web")]
        );
        assert_eq!(seen(&v.parts_for("other")), (vec![], vec![]));
    }
}
