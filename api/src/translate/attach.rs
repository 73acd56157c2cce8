//! Attaching route objects to Service ports: which objects a port takes,
//! and in what order their rules are tried.
//!
//! Routes are considered oldest first (creation time, then namespace/name;
//! files read by `--local` have no creation time, so there it is the name).
//! A Service port takes rules from one *kind* of route: TrafficRoutes,
//! HTTPRoutes or GRPCRoutes. The first object to claim a port sets its
//! kind, and a later object of another kind on that port is refused whole,
//! with the older object named; that is the conflict rule GAMMA asks for
//! (and Gateway API's between HTTPRoute and GRPCRoute), and it keeps a
//! port's behaviour from depending on how two rule languages would
//! interleave.
//!
//! Within a kind: TrafficRoute rules keep their written order, route after
//! route, and a later route whose rule claims exactly the matches of an
//! earlier one is refused. HTTPRoute (or GRPCRoute) rules of all routes on
//! the port are sorted by Gateway API precedence ([`super::gateway`]).

use super::gateway::{self, Precedence};
use super::index::ServiceIndex;
use super::rule;
use crate::manifest::{Located, ManifestError, Object};
use crate::model::{Route, ServicePortKey, Snapshot};
use std::collections::HashMap;

/// Which kind of route a Service port takes. HTTPRoutes and GRPCRoutes are
/// apart too: Gateway API says they must not be merged (their precedences
/// do not compare), and the older one is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Strait,
    Http,
    Grpc,
}

/// Attaches every route object's rules to the snapshot's Service ports;
/// refused objects go to `errors` through `err`.
pub(super) fn attach_routes(
    routes: &[&Located<Object>],
    index: &ServiceIndex<'_>,
    snapshot: &mut Snapshot,
    errors: &mut Vec<ManifestError>,
    err: &dyn Fn(&Located<Object>, String) -> ManifestError,
) {
    let mut ordered: Vec<&Located<Object>> = routes.to_vec();
    ordered.sort_by_key(|o| age_key(&o.object));
    let mut family: HashMap<ServicePortKey, (Family, String)> = HashMap::new();
    // Which TrafficRoute already claims a set of matches on a parent.
    let mut claims: HashMap<(ServicePortKey, String), String> = HashMap::new();
    let mut gateway_rules: HashMap<ServicePortKey, Vec<(Precedence, Route)>> = HashMap::new();
    for o in ordered {
        let converted = match &o.object {
            Object::TrafficRoute(r) => rule::convert_route(r, index)
                .map(|(parents, rules)| (Family::Strait, parents, Rules::Ordered(rules))),
            Object::HttpRoute(r) => gateway::convert_http(r, index)
                .map(|(parents, rules)| (Family::Http, parents, Rules::Ranked(rules))),
            Object::GrpcRoute(r) => gateway::convert_grpc(r, index)
                .map(|(parents, rules)| (Family::Grpc, parents, Rules::Ranked(rules))),
            _ => continue,
        };
        let (fam, parents, rules) = match converted {
            Ok(c) => c,
            Err(e) => {
                errors.push(err(o, e));
                continue;
            }
        };
        let me = o.object.describe();
        let clash = parents.iter().find_map(|p| match family.get(p) {
            Some((f, owner)) if *f != fam => Some(format!(
                "{p} is already routed by {owner}, which is older; a Service port takes one kind of route: TrafficRoutes, HTTPRoutes or GRPCRoutes"
            )),
            _ => None,
        });
        if let Some(message) = clash {
            errors.push(err(o, message));
            continue;
        }
        match rules {
            Rules::Ordered(rules) => {
                let conflict = parents.iter().find_map(|parent| {
                    rules.iter().enumerate().find_map(|(i, r)| {
                        claims.get(&(parent.clone(), match_signature(r))).map(|owner| {
                            format!(
                                "rules[{i}] claims the same matches as {owner} on {parent}; the older route keeps them"
                            )
                        })
                    })
                });
                if let Some(message) = conflict {
                    errors.push(err(o, message));
                    continue;
                }
                for parent in parents {
                    for r in &rules {
                        claims
                            .entry((parent.clone(), match_signature(r)))
                            .or_insert_with(|| format!("rule {}", r.name));
                    }
                    family.entry(parent.clone()).or_insert((fam, me.clone()));
                    if let Some(sp) = snapshot.services.get_mut(&parent) {
                        sp.routes
                            .get_or_insert_with(Vec::new)
                            .extend(rules.iter().cloned());
                    }
                }
            }
            Rules::Ranked(rules) => {
                for parent in parents {
                    family.entry(parent.clone()).or_insert((fam, me.clone()));
                    gateway_rules
                        .entry(parent)
                        .or_default()
                        .extend(rules.iter().cloned());
                }
            }
        }
    }
    for (parent, mut rules) in gateway_rules {
        rules.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(sp) = snapshot.services.get_mut(&parent) {
            sp.routes = Some(rules.into_iter().map(|(_, r)| r).collect());
        }
    }
}

enum Rules {
    /// TrafficRoute: tried in the written order.
    Ordered(Vec<Route>),
    /// Gateway API: sorted by precedence across all routes of a port.
    Ranked(Vec<(Precedence, Route)>),
}

/// Oldest first: creation time (absent first), namespace, name, kind.
fn age_key(o: &Object) -> (String, String, String, &'static str) {
    let (kind, meta) = o.kind_and_meta();
    (
        meta.creation_timestamp.clone().unwrap_or_default(),
        meta.namespace().to_string(),
        meta.name.clone(),
        kind,
    )
}

/// Two rules with equal signatures match exactly the same requests.
fn match_signature(r: &Route) -> String {
    serde_json::to_string(&r.matches).unwrap_or_default()
}
