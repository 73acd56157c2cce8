//! HTTPRoute and GRPCRoute (Gateway API, GAMMA) → domain [`Route`]s: the
//! same model TrafficRoute becomes, so the proxy routes both alike.
//!
//! Pure, like the rest of `translate`. Two things differ from TrafficRoute:
//! * Gateway API orders rules by *precedence* (exact path, longest prefix,
//!   method, most headers, most query params; then the older route, then
//!   its name, then rule order), not by where they are written. Each match
//!   becomes its own domain rule carrying a [`Precedence`], and the caller
//!   sorts every Gateway rule of a Service port by it, so the proxy's
//!   first-match-wins picks what Gateway API says.
//! * Fields are checked against what Strait can do: a filter, backend kind
//!   or experimental field it cannot honour rejects the route with the
//!   field's path and why, rather than being dropped.

use super::index::ServiceIndex;
use super::rule::{self, RETRY_ON_CLASSES};
use crate::bounds;
use crate::manifest::{
    GatewayBackendRef, GatewayParentRef, GatewayRoute, HttpBackendRef, HttpRoute, HttpRouteMatch,
    HttpRouteRetry, HttpRouteRule, HttpValueMatch, ObjectMeta, PathMatchSpec, RouteMatchSpec,
    RuleRefs, SessionPersistence, Unsupported, ValueMatchSpec,
};
use crate::model::{
    Affinity, PathMatch, RetryPolicy, Route, RouteMatch, ServicePortKey, WeightedBackend,
};
use crate::rewrite::{Redirect, Rewrite};
use filters::{Filters, filters, redirect, rewrite};
use std::time::Duration;

/// Where a rule stands among the Gateway rules of one Service port; the
/// smallest sorts first (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Precedence {
    /// Match specificity, most specific first (stored negated).
    specificity: [i64; 5],
    /// Creation time (RFC 3339; absent sorts first, as in local files).
    created: String,
    /// `namespace/name`.
    object: String,
    /// Rule index, then match index.
    order: (usize, usize),
}

/// A converted Gateway route: the Service ports it attaches to and its
/// rules, one per match, each with its precedence.
pub(crate) type Converted = (Vec<ServicePortKey>, Vec<(Precedence, Route)>);

fn unsupported(u: &Unsupported, at: &str) -> Result<(), String> {
    match u.keys().next() {
        None => Ok(()),
        Some(field) => Err(format!("{at}.{field}: not supported by Strait")),
    }
}

/// The Service ports a route's Service parents name. Parents that are not
/// Services (Gateways) are another controller's business and are skipped.
fn parents(
    meta: &ObjectMeta,
    refs: &[GatewayParentRef],
    index: &ServiceIndex<'_>,
) -> Result<Vec<ServicePortKey>, String> {
    let ns = meta.namespace();
    let mut out = Vec::new();
    for (i, p) in refs.iter().enumerate() {
        if !p.is_service() {
            continue;
        }
        let at = format!("parentRefs[{i}]");
        if p.namespace.as_deref().is_some_and(|n| n != ns) {
            return Err(format!(
                "{at}: a Service in another namespace (a consumer route) is not supported yet; put the route in the Service's namespace"
            ));
        }
        let Some(svc) = index.services.get(&(ns.to_string(), p.name.clone())) else {
            return Err(format!("{at}: Service {ns}/{} not found", p.name));
        };
        let tcp = |sp: &&crate::manifest::ServicePort| {
            sp.protocol.as_deref().is_none_or(|pr| pr == "TCP")
        };
        let ports: Vec<u16> = match (p.port, &p.section_name) {
            (Some(port), _) => vec![
                index
                    .resolve(ns, &p.name, Some(port))
                    .map_err(|e| format!("{at}: {e}"))?
                    .port,
            ],
            (None, Some(section)) => {
                let port = svc
                    .spec
                    .ports
                    .iter()
                    .filter(tcp)
                    .find(|sp| sp.name.as_deref() == Some(section.as_str()))
                    .ok_or_else(|| {
                        format!(
                            "{at}: Service {ns}/{} has no port named {section:?}",
                            p.name
                        )
                    })?;
                vec![port.port]
            }
            (None, None) => svc
                .spec
                .ports
                .iter()
                .filter(tcp)
                .map(|sp| sp.port)
                .collect(),
        };
        for port in ports {
            let key = ServicePortKey::new(ns, &p.name, port);
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    Ok(out)
}

/// Whether a route names any Service parent at all (else it is not ours).
pub(crate) fn has_service_parent(refs: &[GatewayParentRef]) -> bool {
    refs.iter().any(GatewayParentRef::is_service)
}

fn backend_key(
    b: &GatewayBackendRef,
    ns: &str,
    index: &ServiceIndex<'_>,
) -> Result<ServicePortKey, String> {
    let kind = b.kind.as_deref().unwrap_or("Service");
    if kind != "Service" || b.group.as_deref().is_some_and(|g| !g.is_empty()) {
        return Err(format!(
            "kind {}{kind} is not supported; Strait routes to Services",
            b.group
                .as_deref()
                .filter(|g| !g.is_empty())
                .map(|g| format!("{g}/"))
                .unwrap_or_default()
        ));
    }
    if b.namespace.as_deref().is_some_and(|n| n != ns) {
        return Err(format!(
            "Service {}/{} is in another namespace; that needs a ReferenceGrant, which Strait does not read yet",
            b.namespace.as_deref().unwrap_or_default(),
            b.name
        ));
    }
    index.resolve(ns, &b.name, b.port)
}

fn backends(
    refs: &[HttpBackendRef],
    ns: &str,
    index: &ServiceIndex<'_>,
) -> Result<Vec<WeightedBackend>, String> {
    let mut out = Vec::new();
    for (j, b) in refs.iter().enumerate() {
        let at = format!(".backendRefs[{j}]");
        if !b.filters.is_empty() {
            return Err(format!(
                "{at}.filters: per-backend filters are not supported by Strait; put them on the rule"
            ));
        }
        let weight = bounds::count(b.weight.unwrap_or(1), bounds::WEIGHT)
            .map_err(|e| format!("{at}.weight: {e}"))?;
        // Weight 0 means "send nothing": such a backend is never reached, so
        // it need not exist (a canary not yet deployed; the conformance
        // suite's `echo-v3`), and the proxy's split wants it gone.
        if weight == 0 {
            continue;
        }
        let backend = backend_key(&b.target, ns, index).map_err(|e| format!("{at}: {e}"))?;
        out.push(WeightedBackend { backend, weight });
    }
    Ok(out)
}

fn affinity(s: Option<&SessionPersistence>) -> Result<Option<Affinity>, String> {
    let Some(s) = s else { return Ok(None) };
    unsupported(&s.unsupported, ".sessionPersistence").map_err(|e| {
        format!("{e}: Strait keeps a session by hashing the value the client sends, and neither issues nor expires it")
    })?;
    let name = s.session_name.as_deref().filter(|n| !n.is_empty()).ok_or(
        ".sessionPersistence.sessionName: required by Strait, which keys the split on that cookie or header",
    )?;
    Ok(Some(match s.kind.as_deref().unwrap_or("Cookie") {
        "Cookie" => Affinity::Cookie(name.to_string()),
        "Header" => {
            Affinity::Header(http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!(".sessionPersistence.sessionName: {name:?} is not a header name")
            })?)
        }
        other => {
            return Err(format!(
                ".sessionPersistence.type: {other:?} is not Cookie or Header"
            ));
        }
    }))
}

fn retry(
    r: &Option<HttpRouteRetry>,
    backend_request: Option<Duration>,
) -> Result<Option<RetryPolicy>, String> {
    let Some(r) = r else { return Ok(None) };
    let retries = r.attempts.unwrap_or(1);
    let attempts = bounds::count(retries.saturating_add(1), bounds::ATTEMPTS)
        .map_err(|e| format!(".retry.attempts: {e} tries in all"))?;
    for code in &r.codes {
        if !(400..=599).contains(code) {
            return Err(format!(
                ".retry.codes: {code} is not an error status (400-599)"
            ));
        }
    }
    let on: Vec<String> = if r.codes.is_empty() {
        vec![
            "gateway-error".into(),
            "connect-failure".into(),
            "reset".into(),
        ]
    } else {
        vec!["retriable-codes".into(), "connect-failure".into()]
    };
    debug_assert!(on.iter().all(|c| RETRY_ON_CLASSES.contains(&c.as_str())));
    Ok(Some(RetryPolicy {
        attempts,
        per_try_timeout: backend_request,
        on,
        retriable_codes: r.codes.clone(),
        backoff: match &r.backoff {
            Some(b) => bounds::parse_duration(b, bounds::BACKOFF)
                .map_err(|e| format!(".retry.backoff: {e}"))?,
            None => Duration::from_millis(25),
        },
        // Gateway API retries whatever the method; the user asked for it.
        non_idempotent: true,
    }))
}

/// A Gateway duration; `0s` means "no timeout".
fn gateway_timeout(s: &Option<String>, at: &str) -> Result<Option<Duration>, String> {
    match s.as_deref() {
        None => Ok(None),
        Some(v) => bounds::parse_duration(v, bounds::TIMEOUT)
            .map(|d| (!d.is_zero()).then_some(d))
            .map_err(|e| format!("{at}: {e}")),
    }
}

/// A Gateway header or query condition as TrafficRoute's (one validation).
fn value_spec(v: &HttpValueMatch) -> ValueMatchSpec {
    ValueMatchSpec {
        name: v.name.clone(),
        kind: v.kind.clone(),
        value: Some(v.value.clone()),
    }
}

fn http_match(m: &HttpRouteMatch) -> Result<RouteMatch, String> {
    unsupported(&m.unsupported, "")?;
    let path = m.path.clone().unwrap_or_default();
    rule::convert_match(&RouteMatchSpec {
        path: Some(PathMatchSpec {
            kind: path.kind.clone(),
            value: path.value.clone().unwrap_or_else(|| "/".into()),
        }),
        headers: m.headers.iter().map(value_spec).collect(),
        method: m.method.clone(),
        query_params: m.query_params.iter().map(value_spec).collect(),
    })
}

fn http_specificity(m: &RouteMatch) -> [i64; 5] {
    let (kind, len) = match &m.path {
        Some(PathMatch::Exact(p)) => (3, p.len()),
        Some(PathMatch::Regex(p)) => (2, p.source.len()),
        Some(PathMatch::Prefix(p)) => (1, p.len()),
        None => (0, 0),
    };
    [
        -kind,
        -(len as i64),
        -i64::from(m.method.is_some()),
        -(m.headers.len() as i64),
        -(m.query.len() as i64),
    ]
}

/// What the rules of a Gateway route share before their matches: converted
/// once per rule, then made into one domain rule per match.
struct RuleBase<'a> {
    meta: &'a ObjectMeta,
    kind: &'static str,
    index: usize,
    name: String,
    filters: Filters,
    backends: Vec<WeightedBackend>,
    affinity: Option<Affinity>,
}

/// The rule-level settings only HTTPRoute has.
#[derive(Default)]
struct HttpOnly {
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
}

impl<'a> RuleBase<'a> {
    /// Checks and converts a rule's name, filters, backends and session
    /// persistence. Errors are relative to the rule (`.filters[0]…`).
    fn new(
        meta: &'a ObjectMeta,
        kind: &'static str,
        index: usize,
        rule: &impl RuleRefs,
        services: &ServiceIndex<'_>,
    ) -> Result<Self, String> {
        let ns = meta.namespace();
        unsupported(rule.unsupported(), "")?;
        Ok(Self {
            meta,
            kind,
            index,
            name: format!(
                "{}/{}",
                meta.name,
                rule.name()
                    .map_or_else(|| format!("rule-{index}"), str::to_string)
            ),
            filters: filters(rule.filters(), ns, services, kind == "GRPCRoute")?,
            backends: backends(rule.backend_refs(), ns, services)?,
            affinity: affinity(rule.session_persistence())?,
        })
    }

    /// The domain rule for the rule's `j`th match.
    fn rule(
        &self,
        j: usize,
        m: RouteMatch,
        specificity: [i64; 5],
        http: &HttpOnly,
        url: (Option<Redirect>, Option<Rewrite>),
    ) -> (Precedence, Route) {
        let meta = self.meta;
        let precedence = Precedence {
            specificity,
            created: meta.creation_timestamp.clone().unwrap_or_default(),
            object: format!("{}/{}", meta.namespace(), meta.name),
            order: (self.index, j),
        };
        let f = &self.filters;
        let route = Route {
            name: self.name.clone(),
            matches: vec![m],
            backends: self.backends.clone(),
            affinity: self.affinity.clone(),
            timeout: http.timeout,
            retry: http.retry.clone(),
            fault: None,
            request_headers: f.request_headers.clone(),
            response_headers: f.response_headers.clone(),
            mirror: f.mirror.clone(),
            redirect: url.0,
            rewrite: url.1,
            source: format!("{} {}/{}", self.kind, meta.namespace(), meta.name),
        };
        (precedence, route)
    }
}

/// The Service ports a route attaches to, after refusing unknown spec fields.
fn start<R>(
    route: &GatewayRoute<R>,
    index: &ServiceIndex<'_>,
) -> Result<Vec<ServicePortKey>, String> {
    unsupported(&route.spec.unsupported, "spec")?;
    parents(&route.metadata, &route.spec.parent_refs, index)
}

/// A rule's timeouts and retries (HTTPRoute only).
fn http_only(r: &HttpRouteRule) -> Result<HttpOnly, String> {
    let timeouts = r.timeouts.clone().unwrap_or_default();
    let request = gateway_timeout(&timeouts.request, ".timeouts.request")?;
    let backend = gateway_timeout(&timeouts.backend_request, ".timeouts.backendRequest")?;
    if let (Some(req), Some(b)) = (request, backend)
        && b > req
    {
        return Err(".timeouts.backendRequest: must not be longer than timeouts.request".into());
    }
    let retry = retry(&r.retry, backend)?;
    // Without retries a backend request is the request: the shorter wins.
    let timeout = match (request, backend, &retry) {
        (r, Some(b), None) => Some(r.map_or(b, |r| r.min(b))),
        (r, _, _) => r,
    };
    Ok(HttpOnly { timeout, retry })
}

/// Converts an HTTPRoute. Any part Strait cannot honour rejects the route.
pub(crate) fn convert_http(
    route: &HttpRoute,
    index: &ServiceIndex<'_>,
) -> Result<Converted, String> {
    let parents = start(route, index)?;
    let mut rules = Vec::new();
    for (i, r) in route.spec.rules.iter().enumerate() {
        let fail = |e: String| format!("rules[{i}]{e}");
        let base = RuleBase::new(&route.metadata, "HTTPRoute", i, r, index).map_err(fail)?;
        let http = http_only(r).map_err(fail)?;
        let matches: Vec<HttpRouteMatch> = if r.matches.is_empty() {
            vec![HttpRouteMatch::default()]
        } else {
            r.matches.clone()
        };
        for (j, m) in matches.iter().enumerate() {
            let m = http_match(m).map_err(|e| fail(format!(".matches[{j}]{e}")))?;
            let f = &base.filters;
            let url = (
                f.redirect
                    .as_ref()
                    .map(|x| redirect(x, m.path.as_ref()))
                    .transpose()
                    .map_err(fail)?,
                f.rewrite
                    .as_ref()
                    .map(|x| rewrite(x, m.path.as_ref()))
                    .transpose()
                    .map_err(fail)?,
            );
            let specificity = http_specificity(&m);
            rules.push(base.rule(j, m, specificity, &http, url));
        }
    }
    Ok((parents, rules))
}

mod filters;
mod grpc;

pub(crate) use grpc::convert_grpc;

#[cfg(test)]
mod tests;
