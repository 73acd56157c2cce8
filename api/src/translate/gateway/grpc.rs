//! GRPCRoute → domain rules: a gRPC method is the HTTP/2 path
//! `/service/method`, so a method match becomes a path match, and the rest
//! is shared with HTTPRoute ([`super::RuleBase`]).

use super::{Converted, HttpOnly, RuleBase, ServiceIndex, start, unsupported, value_spec};
use crate::manifest::{GrpcMethodMatch, GrpcRoute, RouteMatchSpec};
use crate::model::{PathMatch, RouteMatch};
use crate::translate::rule;

/// A GRPCRoute method match as a path match on `/service/method`.
fn grpc_path(m: &GrpcMethodMatch) -> Result<(Option<PathMatch>, [i64; 2]), String> {
    let (service, method) = (m.service.as_deref(), m.method.as_deref());
    let lens = [
        -(service.map_or(0, str::len) as i64),
        -(method.map_or(0, str::len) as i64),
    ];
    let bad = |s: &str| s.is_empty() || s.contains('/');
    if service.is_some_and(bad) || method.is_some_and(bad) {
        return Err(".method: service and method must be non-empty names without '/'".into());
    }
    let path = match (m.kind.as_deref().unwrap_or("Exact"), service, method) {
        (_, None, None) => return Err(".method: set service, method or both".into()),
        ("Exact", Some(s), Some(me)) => Some(PathMatch::Exact(format!("/{s}/{me}"))),
        ("Exact", Some(s), None) => Some(PathMatch::Prefix(format!("/{s}"))),
        ("Exact", None, Some(me)) => Some(PathMatch::Regex(rule::pattern(&format!(
            "/[^/]+/{}",
            regex::escape(me)
        ))?)),
        ("RegularExpression", s, me) => Some(PathMatch::Regex(rule::pattern(&format!(
            "/(?:{})/(?:{})",
            s.unwrap_or("[^/]+"),
            me.unwrap_or("[^/]+")
        ))?)),
        (other, _, _) => {
            return Err(format!(
                ".method.type: {other:?} is not Exact or RegularExpression"
            ));
        }
    };
    Ok((path, lens))
}

/// Converts a GRPCRoute: methods become paths (`/service/method`).
pub(crate) fn convert_grpc(
    route: &GrpcRoute,
    index: &ServiceIndex<'_>,
) -> Result<Converted, String> {
    let parents = start(route, index)?;
    let mut rules = Vec::new();
    for (i, r) in route.spec.rules.iter().enumerate() {
        let fail = |e: String| format!("rules[{i}]{e}");
        let base = RuleBase::new(&route.metadata, "GRPCRoute", i, r, index).map_err(fail)?;
        let matches = if r.matches.is_empty() {
            vec![Default::default()]
        } else {
            r.matches.clone()
        };
        for (j, m) in matches.iter().enumerate() {
            let at = |e: String| fail(format!(".matches[{j}]{e}"));
            unsupported(&m.unsupported, "").map_err(at)?;
            let (path, lens) = match &m.method {
                Some(method) => grpc_path(method).map_err(at)?,
                None => (None, [0, 0]),
            };
            let headers = rule::convert_match(&RouteMatchSpec {
                headers: m.headers.iter().map(value_spec).collect(),
                ..Default::default()
            })
            .map_err(at)?
            .headers;
            let specificity = [lens[0], lens[1], -(headers.len() as i64), 0, 0];
            let m = RouteMatch {
                path,
                headers,
                method: None,
                query: Vec::new(),
            };
            rules.push(base.rule(j, m, specificity, &HttpOnly::default(), (None, None)));
        }
    }
    Ok((parents, rules))
}
