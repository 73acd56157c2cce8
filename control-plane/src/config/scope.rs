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
//! * a meshed Pod (its identity) is visible wherever a Service is whose
//!   EndpointSlices name it as an endpoint's `targetRef`.
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

use super::delta::{Delta, Json, Key};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use strait_api::manifest::{Object, SERVICE_NAME_LABEL, ServiceRefs};

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
            named: BTreeSet::new(),
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
    /// Every namespace some audience names. Any other namespace sees
    /// exactly the objects visible to everyone: one shared view, however
    /// many made-up namespaces clients claim.
    named: BTreeSet<String>,
}

/// The view key of every namespace no audience names (not a valid
/// namespace name, so it cannot collide with one).
pub const OTHERS: &str = "*";

impl Scope {
    /// Computes every object's audience from the published objects.
    pub fn new<'a>(objects: impl IntoIterator<Item = (&'a Key, &'a Object)>) -> Scope {
        // Each Service's own audience; then, for every object, the Service
        // it follows; and, for every route, the Services it sends to.
        let mut services: HashMap<ServiceName, Audience> = HashMap::new();
        let mut follows: Vec<(&Key, ServiceName)> = Vec::new();
        let mut uses: HashMap<ServiceName, Vec<ServiceName>> = HashMap::new();
        // A Pod follows every Service whose slices name it.
        let mut pods: Vec<&Key> = Vec::new();
        let mut pod_services: HashMap<(String, String), Vec<ServiceName>> = HashMap::new();
        let mut count = 0;
        for (key, object) in objects {
            count += 1;
            let ns = key.namespace.clone();
            let service = match object {
                Object::Service(s) => {
                    let annotation = s.metadata.annotations.get(EXPORT_TO_ANNOTATION);
                    services.insert(
                        (ns.clone(), key.name.clone()),
                        export_to(&ns, annotation.map(String::as_str)),
                    );
                    Some(key.name.clone())
                }
                Object::EndpointSlice(s) => {
                    let service = s.metadata.labels.get(SERVICE_NAME_LABEL).cloned();
                    for r in s.endpoints.iter().filter_map(|e| e.target_ref.as_ref()) {
                        if let (Some(svc), Some(name)) = (&service, &r.name) {
                            let pod_ns = r.namespace.clone().unwrap_or_else(|| ns.clone());
                            pod_services
                                .entry((pod_ns, name.clone()))
                                .or_default()
                                .push((ns.clone(), svc.clone()));
                        }
                    }
                    service
                }
                Object::Pod(_) => {
                    pods.push(key);
                    None
                }
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
                Object::HttpRoute(r) => gateway_uses(&ns, r, &mut uses),
                Object::GrpcRoute(r) => gateway_uses(&ns, r, &mut uses),
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
        let mut audience: BTreeMap<Key, Audience> = follows
            .into_iter()
            .filter_map(|(key, service)| Some((key.clone(), services.get(&service)?.clone())))
            .collect();
        for key in pods {
            let mut seen: Option<Audience> = None;
            let named = pod_services.get(&(key.namespace.clone(), key.name.clone()));
            for a in named.into_iter().flatten().filter_map(|s| services.get(s)) {
                match &mut seen {
                    Some(union) => {
                        union.absorb(a);
                    }
                    None => seen = Some(a.clone()),
                }
            }
            if let Some(a) = seen {
                audience.insert(key.clone(), a);
            }
        }
        let public = audience.len() == count && audience.values().all(|a| *a == Audience::Everyone);
        let mut named = BTreeSet::new();
        for a in audience.values() {
            if let Audience::Namespaces(set) = a
                && !set.is_subset(&named)
            {
                named.extend(set.iter().cloned());
            }
        }
        Scope {
            audience,
            public,
            named,
        }
    }

    /// The key of `namespace`'s view: itself when an audience names it,
    /// else [`OTHERS`], shared by every namespace no audience names.
    pub fn view_key<'a>(&self, namespace: &'a str) -> &'a str {
        if self.named.contains(namespace) {
            namespace
        } else {
            OTHERS
        }
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
    pub changed: Vec<(Key, Option<Json>)>,
}

/// One namespace's delta for a version (pure).
///
/// `delta` is the version's global delta. The result brings a proxy in
/// `namespace` from its view of the previous version to its view of this
/// one: the changed objects it sees, the objects it sees for the first time
/// (as upserts), and removals of what it no longer sees.
pub fn narrow(delta: &Delta, t: &Transition, namespace: &str) -> Delta {
    let mut upserts: BTreeMap<&Key, &Json> = delta
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

/// A Gateway route follows its first Service parent. Every parent uses the
/// route's backends, like a TrafficRoute's, and the route's other parents:
/// so whoever sees one parent sees them all (the route is translated as a
/// whole, and a parent missing from a proxy's view would refuse its update),
/// and the first parent's audience, which the route follows, is everyone's.
fn gateway_uses(
    ns: &str,
    r: &impl ServiceRefs,
    uses: &mut HashMap<ServiceName, Vec<ServiceName>>,
) -> Option<String> {
    let parents = r.service_parents();
    let backends = r.backend_services();
    for parent in &parents {
        let targets = uses
            .entry((ns.to_string(), parent.to_string()))
            .or_default();
        targets.extend(backends.iter().map(|b| (ns.to_string(), b.to_string())));
        targets.extend(
            parents
                .iter()
                .filter(|other| *other != parent)
                .map(|other| (ns.to_string(), other.to_string())),
        );
    }
    parents.first().map(|p| p.to_string())
}

#[cfg(test)]
mod tests;
