//! What the control plane publishes: the set of valid objects, versioned,
//! as deltas.
//!
//! The store holds the latest version of every object its source (Kubernetes
//! reflectors or a directory) has seen, and the set published to proxies.
//! [`Store::publish`] validates the latest set with the shared pure
//! `translate`: an invalid object is not published, and if an earlier version
//! of it was valid, that version stays in force. The difference to what was
//! published before becomes one versioned [`Delta`]; the [`Scope`] of the
//! published set (who sees what) is computed with it. No IO here.

pub use super::delta::{Delta, Json, Key};
use super::scope::Scope;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use strait_api::manifest::{Located, ManifestError, Object};
use strait_api::translate::translate;

#[derive(Debug, Clone)]
struct Entry {
    object: Object,
    json: Json,
}

/// Why an object is not (or not in its latest form) published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What is wrong.
    pub message: String,
    /// An earlier valid version is still in force.
    pub previous_in_force: bool,
}

/// The store.
#[derive(Debug, Default)]
pub struct Store {
    latest: BTreeMap<Key, Entry>,
    published: BTreeMap<Key, Entry>,
    version: u64,
    rejections: BTreeMap<Key, Rejection>,
    scope: Arc<Scope>,
}

fn key_of(o: &Object) -> Key {
    o.object_key()
}

/// The label errors carry back to their object (`kind ns/name`).
fn label(k: &Key) -> String {
    k.to_string()
}

fn errors_by_object(entries: &BTreeMap<Key, Entry>) -> BTreeMap<String, Vec<ManifestError>> {
    let located: Vec<Located<Object>> = entries
        .iter()
        .map(|(k, e)| Located {
            file: label(k),
            line: 0,
            object: e.object.clone(),
        })
        .collect();
    let mut out: BTreeMap<String, Vec<ManifestError>> = BTreeMap::new();
    for e in translate(&located).errors {
        out.entry(e.file.clone()).or_default().push(e);
    }
    out
}

impl Store {
    /// Records the latest version of an object; whether it differs from
    /// the one recorded before.
    pub fn upsert(&mut self, object: Object, json: String) -> bool {
        let key = key_of(&object);
        if self
            .latest
            .get(&key)
            .is_some_and(|e| e.json.as_ref() == json.as_bytes())
        {
            return false;
        }
        self.latest.insert(
            key,
            Entry {
                object,
                json: json.into(),
            },
        );
        true
    }

    /// Records that an object is gone; whether it was there.
    pub fn remove(&mut self, key: &Key) -> bool {
        self.latest.remove(key).is_some()
    }

    /// Replaces everything the source holds (after a relist or a reload).
    pub fn replace_all(&mut self, objects: Vec<(Object, String)>) {
        self.latest = objects
            .into_iter()
            .map(|(o, j)| {
                (
                    key_of(&o),
                    Entry {
                        object: o,
                        json: j.into(),
                    },
                )
            })
            .collect();
    }

    /// Replaces every object of one kind (after a watcher's initial list).
    pub fn replace_kind(&mut self, kind: &str, objects: Vec<(Object, String)>) {
        self.latest.retain(|k, _| k.kind != kind);
        for (o, j) in objects {
            self.latest.insert(
                key_of(&o),
                Entry {
                    object: o,
                    json: j.into(),
                },
            );
        }
    }

    /// The latest objects from the source (valid or not).
    pub fn latest(&self) -> impl Iterator<Item = (&Key, &Object)> {
        self.latest.iter().map(|(k, e)| (k, &e.object))
    }

    /// The published version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Objects refused at the last publish, with why.
    pub fn rejections(&self) -> &BTreeMap<Key, Rejection> {
        &self.rejections
    }

    /// The whole published set (a full update).
    pub fn full(&self) -> Delta {
        Delta {
            version: self.version,
            upserts: self
                .published
                .iter()
                .map(|(k, e)| (k.clone(), e.json.clone()))
                .collect(),
            removals: Vec::new(),
        }
    }

    /// Who sees which published object (shared; replaced when it changes).
    pub fn scope(&self) -> Arc<Scope> {
        self.scope.clone()
    }

    /// The published JSON of one object.
    pub fn json(&self, key: &Key) -> Option<&Json> {
        self.published.get(key).map(|e| &e.json)
    }

    /// The published set a proxy in `namespace` sees (a full update).
    pub fn full_for(&self, namespace: &str) -> Delta {
        Delta {
            version: self.version,
            upserts: self
                .published
                .iter()
                .filter(|(k, _)| self.scope.visible(k, namespace))
                .map(|(k, e)| (k.clone(), e.json.clone()))
                .collect(),
            removals: Vec::new(),
        }
    }

    /// Validates the latest objects and publishes the difference, if any.
    pub fn publish(&mut self) -> Option<Delta> {
        let mut candidate = self.latest.clone();
        let mut rejections = BTreeMap::new();
        // A few rounds: putting back a last-good version can itself clash
        // with the rest, in which case it is dropped too.
        for _ in 0..4 {
            let errors = errors_by_object(&candidate);
            if errors.is_empty() {
                break;
            }
            for (k, errs) in errors {
                let Some(key) = candidate.keys().find(|key| label(key) == k).cloned() else {
                    continue;
                };
                let message = errs
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                let previous = self
                    .published
                    .get(&key)
                    .filter(|p| candidate.get(&key).is_some_and(|c| c.json != p.json))
                    .cloned();
                let previous_in_force = previous.is_some();
                match previous {
                    Some(p) => {
                        candidate.insert(key.clone(), p);
                    }
                    None => {
                        candidate.remove(&key);
                    }
                }
                rejections.entry(key).or_insert(Rejection {
                    message,
                    previous_in_force,
                });
            }
        }
        self.rejections = rejections;
        let mut delta = Delta::default();
        for (k, e) in &candidate {
            if self.published.get(k).is_none_or(|p| p.json != e.json) {
                delta.upserts.push((k.clone(), e.json.clone()));
            }
        }
        let gone: BTreeSet<&Key> = self
            .published
            .keys()
            .filter(|k| !candidate.contains_key(*k))
            .collect();
        delta.removals = gone.into_iter().cloned().collect();
        if delta.upserts.is_empty() && delta.removals.is_empty() {
            return None;
        }
        self.version += 1;
        delta.version = self.version;
        self.published = candidate;
        let scope = Scope::new(self.published.iter().map(|(k, e)| (k, &e.object)));
        // Keep the old value when nothing moved, so the server can tell
        // cheaply (pointer equality) that no view changed shape.
        if scope != *self.scope {
            self.scope = Arc::new(scope);
        }
        Some(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_api::manifest::parse_file;

    fn obj(yaml: &str) -> (Object, String) {
        let (mut o, e) = parse_file("t.yaml", yaml);
        assert!(e.is_empty(), "{e:?}");
        let o = o.remove(0).object;
        (o, yaml.to_string())
    }

    fn svc(name: &str) -> (Object, String) {
        obj(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\nspec: {{ports: [{{port: 80}}]}}\n"
        ))
    }

    fn route(backend: &str) -> (Object, String) {
        obj(&format!(
            "apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: r, namespace: ns}}\nspec:\n  parentRef: {{name: web}}\n  rules: [{{backends: [{{name: {backend}}}]}}]\n"
        ))
    }

    fn key(kind: &str, name: &str) -> Key {
        Key::new(kind, "ns", name)
    }

    #[test]
    fn publishes_versioned_deltas() {
        let mut s = Store::default();
        for (o, j) in [svc("web"), svc("v1"), route("v1")] {
            s.upsert(o, j);
        }
        let d = s.publish().unwrap();
        assert_eq!((d.version, d.upserts.len(), d.removals.len()), (1, 3, 0));
        assert_eq!(s.publish(), None, "nothing changed, no new version");
        let (o, j) = svc("v2");
        s.upsert(o, j);
        let d = s.publish().unwrap();
        assert_eq!(d.version, 2);
        assert_eq!(
            d.upserts.iter().map(|u| u.0.clone()).collect::<Vec<_>>(),
            [key("Service", "v2")],
            "only what changed"
        );
        s.remove(&key("Service", "v2"));
        assert_eq!(s.publish().unwrap().removals, [key("Service", "v2")]);
        assert_eq!(s.full().upserts.len(), 3);
    }

    #[test]
    fn an_invalid_object_never_reaches_proxies_and_the_last_good_stays() {
        let mut s = Store::default();
        for (o, j) in [svc("web"), svc("v1"), route("v1")] {
            s.upsert(o, j);
        }
        s.publish().unwrap();
        let good = s.full();
        // The route now points at a Service that does not exist.
        let (o, j) = route("ghost");
        s.upsert(o, j);
        assert_eq!(s.publish(), None, "the bad version is not published");
        let r = &s.rejections()[&key("TrafficRoute", "r")];
        assert!(r.message.contains("Service ns/ghost not found"), "{r:?}");
        assert!(r.previous_in_force);
        assert_eq!(s.full(), good);
        // Fixed: published.
        let (o, j) = route("web");
        s.upsert(o, j);
        assert_eq!(s.publish().unwrap().upserts.len(), 1);
        assert!(s.rejections().is_empty());
    }

    #[test]
    fn a_new_invalid_object_is_simply_left_out() {
        let mut s = Store::default();
        let (o, j) = svc("web");
        s.upsert(o, j);
        let (o, j) = route("ghost");
        s.upsert(o, j);
        let d = s.publish().unwrap();
        assert_eq!(
            d.upserts.iter().map(|u| u.0.clone()).collect::<Vec<_>>(),
            [key("Service", "web")]
        );
        assert!(!s.rejections()[&key("TrafficRoute", "r")].previous_in_force);
    }

    #[test]
    fn last_good_that_no_longer_fits_is_dropped() {
        let mut s = Store::default();
        for (o, j) in [svc("web"), svc("v1"), route("v1")] {
            s.upsert(o, j);
        }
        s.publish().unwrap();
        // v1 is deleted and the route is changed to something invalid: the old
        // route (pointing at v1) cannot stay either.
        s.remove(&key("Service", "v1"));
        let (o, j) = route("ghost");
        s.upsert(o, j);
        let d = s.publish().unwrap();
        let mut removed = d.removals.clone();
        removed.sort();
        assert_eq!(removed, [key("Service", "v1"), key("TrafficRoute", "r")]);
    }
}
