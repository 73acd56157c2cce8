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
    GatewayBackendRef, GatewayParentRef, GrpcMethodMatch, GrpcRoute, HeaderFilter,
    HeaderModifierSpec, HttpBackendRef, HttpRoute, HttpRouteFilter, HttpRouteMatch, HttpRouteRetry,
    HttpValueMatch, ObjectMeta, PathMatchSpec, RouteMatchSpec, SessionPersistence, Unsupported,
    ValueMatchSpec,
};
use crate::model::{
    Affinity, HeaderModifier, Mirror, PathMatch, RetryPolicy, Route, RouteMatch, ServicePortKey,
    WeightedBackend,
};
use crate::rewrite::{PathChange, Redirect, Rewrite};
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

/// What the filters of one rule add up to.
#[derive(Default)]
struct Filters {
    request_headers: HeaderModifier,
    response_headers: HeaderModifier,
    redirect: Option<RedirectSpec>,
    rewrite: Option<RewriteSpec>,
    mirror: Option<Mirror>,
}

/// A redirect or rewrite before its `ReplacePrefixMatch` knows the prefix
/// (that depends on which match selected the rule).
struct RedirectSpec(crate::manifest::RedirectFilter);
struct RewriteSpec(crate::manifest::RewriteFilter);

fn header_filter(f: &HeaderFilter) -> Result<HeaderModifier, String> {
    let map = |pairs: &[crate::manifest::HeaderPair]| {
        pairs
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    };
    rule::modifier(&Some(HeaderModifierSpec {
        set: map(&f.set),
        add: map(&f.add),
        remove: f.remove.clone(),
    }))
}

fn filters(
    list: &[HttpRouteFilter],
    ns: &str,
    index: &ServiceIndex<'_>,
    grpc: bool,
) -> Result<Filters, String> {
    let mut out = Filters::default();
    for (k, f) in list.iter().enumerate() {
        let at = format!(".filters[{k}]");
        unsupported(&f.unsupported, &at)?;
        let missing = || format!("{at}: type {} needs its field set", f.kind);
        match f.kind.as_str() {
            "RequestHeaderModifier" => {
                let h = f.request_header_modifier.as_ref().ok_or_else(missing)?;
                out.request_headers = header_filter(h).map_err(|e| format!("{at}: {e}"))?;
            }
            "ResponseHeaderModifier" => {
                let h = f.response_header_modifier.as_ref().ok_or_else(missing)?;
                out.response_headers = header_filter(h).map_err(|e| format!("{at}: {e}"))?;
            }
            "RequestRedirect" if !grpc => {
                let r = f.request_redirect.as_ref().ok_or_else(missing)?;
                out.redirect = Some(RedirectSpec(r.clone()));
            }
            "URLRewrite" if !grpc => {
                let r = f.url_rewrite.as_ref().ok_or_else(missing)?;
                out.rewrite = Some(RewriteSpec(r.clone()));
            }
            "RequestMirror" => {
                if out.mirror.is_some() {
                    return Err(format!(
                        "{at}: Strait mirrors to one backend per rule; this is the second RequestMirror"
                    ));
                }
                let m = f.request_mirror.as_ref().ok_or_else(missing)?;
                let percent = match (&m.percent, &m.fraction) {
                    (Some(p), _) => *p,
                    (None, Some(fr)) => {
                        let den = fr.denominator.unwrap_or(100);
                        if den == 0 || fr.numerator > den {
                            return Err(format!("{at}.requestMirror.fraction: not a share"));
                        }
                        // Strait mirrors whole percents; round to the nearest.
                        ((u64::from(fr.numerator) * 100 + u64::from(den) / 2) / u64::from(den))
                            as u32
                    }
                    (None, None) => 100,
                };
                out.mirror = Some(Mirror {
                    backend: backend_key(&m.backend_ref, ns, index)
                        .map_err(|e| format!("{at}.requestMirror.backendRef: {e}"))?,
                    percent: rule::percent(percent)
                        .map_err(|e| format!("{at}.requestMirror.percent: {e}"))?,
                });
            }
            other => {
                return Err(format!(
                    "{at}: filter type {other} is not supported by Strait{}",
                    if grpc { " on a GRPCRoute" } else { "" }
                ));
            }
        }
    }
    if out.redirect.is_some() && out.rewrite.is_some() {
        return Err(".filters: RequestRedirect and URLRewrite cannot be used together".into());
    }
    Ok(out)
}

fn backend_key(
    b: &GatewayBackendRef,
    ns: &str,
    index: &ServiceIndex<'_>,
) -> Result<ServicePortKey, String> {
    let kind = b.kind.as_deref().unwrap_or("Service");
    if kind != "Service"
        || b.group
            .as_deref()
            .is_some_and(|g| !g.is_empty() && g != "core")
    {
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
        let backend = backend_key(&b.target, ns, index).map_err(|e| format!("{at}: {e}"))?;
        let weight = bounds::count(b.weight.unwrap_or(1), bounds::WEIGHT)
            .map_err(|e| format!("{at}.weight: {e}"))?;
        // Weight 0 means "send nothing"; the proxy's split wants it gone.
        if weight > 0 {
            out.push(WeightedBackend { backend, weight });
        }
    }
    Ok(out)
}

fn affinity(s: &Option<SessionPersistence>) -> Result<Option<Affinity>, String> {
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

fn path_change(
    m: &crate::manifest::PathModifierSpec,
    matched: Option<&PathMatch>,
    at: &str,
) -> Result<PathChange, String> {
    match (
        m.kind.as_str(),
        &m.replace_full_path,
        &m.replace_prefix_match,
    ) {
        ("ReplaceFullPath", Some(p), _) if p.starts_with('/') => Ok(PathChange::Full(p.clone())),
        ("ReplacePrefixMatch", _, Some(p)) if p.is_empty() || p.starts_with('/') => match matched {
            Some(PathMatch::Prefix(prefix)) => Ok(PathChange::Prefix {
                matched: prefix.clone(),
                with: p.clone(),
            }),
            _ => Err(format!(
                "{at}: ReplacePrefixMatch needs every match of the rule to be a PathPrefix match"
            )),
        },
        ("ReplaceFullPath" | "ReplacePrefixMatch", _, _) => Err(format!(
            "{at}: type {} needs its path, starting with '/'",
            m.kind
        )),
        (other, _, _) => Err(format!(
            "{at}: type {other:?} is not ReplaceFullPath or ReplacePrefixMatch"
        )),
    }
}

fn redirect(r: &RedirectSpec, matched: Option<&PathMatch>) -> Result<Redirect, String> {
    let r = &r.0;
    let at = ".filters.requestRedirect";
    if let Some(s) = r.scheme.as_deref()
        && s != "http"
        && s != "https"
    {
        return Err(format!("{at}.scheme: {s:?} is not http or https"));
    }
    let status = r.status_code.unwrap_or(302);
    if ![301, 302, 303, 307, 308].contains(&status) {
        return Err(format!(
            "{at}.statusCode: {status} is not a redirect status"
        ));
    }
    Ok(Redirect {
        scheme: r.scheme.clone(),
        hostname: r.hostname.clone(),
        port: r.port,
        path: r
            .path
            .as_ref()
            .map(|p| path_change(p, matched, &format!("{at}.path")))
            .transpose()?,
        status,
    })
}

fn rewrite(r: &RewriteSpec, matched: Option<&PathMatch>) -> Result<Rewrite, String> {
    let r = &r.0;
    if let Some(h) = &r.hostname
        && http::HeaderValue::from_str(h).is_err()
    {
        return Err(format!(".filters.urlRewrite.hostname: {h:?} is not a host"));
    }
    Ok(Rewrite {
        hostname: r.hostname.clone(),
        path: r
            .path
            .as_ref()
            .map(|p| path_change(p, matched, ".filters.urlRewrite.path"))
            .transpose()?,
    })
}

fn http_match(m: &HttpRouteMatch) -> Result<RouteMatch, String> {
    unsupported(&m.unsupported, "")?;
    let value = |v: &HttpValueMatch| ValueMatchSpec {
        name: v.name.clone(),
        kind: v.kind.clone(),
        value: Some(v.value.clone()),
    };
    let path = m.path.clone().unwrap_or_default();
    rule::convert_match(&RouteMatchSpec {
        path: Some(PathMatchSpec {
            kind: path.kind.clone(),
            value: path.value.clone().unwrap_or_else(|| "/".into()),
        }),
        headers: m.headers.iter().map(value).collect(),
        method: m.method.clone(),
        query_params: m.query_params.iter().map(value).collect(),
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

fn source(kind: &str, meta: &ObjectMeta) -> String {
    format!("{kind} {}/{}", meta.namespace(), meta.name)
}

/// Converts an HTTPRoute. Any part Strait cannot honour rejects the route.
pub(crate) fn convert_http(
    route: &HttpRoute,
    index: &ServiceIndex<'_>,
) -> Result<Converted, String> {
    let meta = &route.metadata;
    let ns = meta.namespace();
    unsupported(&route.spec.unsupported, "spec")?;
    let parents = parents(meta, &route.spec.parent_refs, index)?;
    let mut rules = Vec::new();
    for (i, r) in route.spec.rules.iter().enumerate() {
        let fail = |e: String| format!("rules[{i}]{e}");
        unsupported(&r.unsupported, "").map_err(fail)?;
        let f = filters(&r.filters, ns, index, false).map_err(fail)?;
        let backends = backends(&r.backend_refs, ns, index).map_err(fail)?;
        let timeouts = r.timeouts.clone().unwrap_or_default();
        let request = gateway_timeout(&timeouts.request, ".timeouts.request").map_err(fail)?;
        let backend =
            gateway_timeout(&timeouts.backend_request, ".timeouts.backendRequest").map_err(fail)?;
        if let (Some(req), Some(b)) = (request, backend)
            && b > req
        {
            return Err(fail(
                ".timeouts.backendRequest: must not be longer than timeouts.request".into(),
            ));
        }
        let retry = retry(&r.retry, backend).map_err(fail)?;
        // Without retries a backend request is the request: the shorter wins.
        let timeout = match (request, backend, &retry) {
            (r, Some(b), None) => Some(r.map_or(b, |r| r.min(b))),
            (r, _, _) => r,
        };
        let affinity = affinity(&r.session_persistence).map_err(fail)?;
        let matches: Vec<HttpRouteMatch> = if r.matches.is_empty() {
            vec![HttpRouteMatch::default()]
        } else {
            r.matches.clone()
        };
        let name = format!(
            "{}/{}",
            meta.name,
            r.name.clone().unwrap_or_else(|| format!("rule-{i}"))
        );
        for (j, m) in matches.iter().enumerate() {
            let m = http_match(m).map_err(|e| fail(format!(".matches[{j}]{e}")))?;
            let redirect = f
                .redirect
                .as_ref()
                .map(|x| redirect(x, m.path.as_ref()))
                .transpose()
                .map_err(fail)?;
            let rewrite = f
                .rewrite
                .as_ref()
                .map(|x| rewrite(x, m.path.as_ref()))
                .transpose()
                .map_err(fail)?;
            let precedence = Precedence {
                specificity: http_specificity(&m),
                created: meta.creation_timestamp.clone().unwrap_or_default(),
                object: format!("{ns}/{}", meta.name),
                order: (i, j),
            };
            rules.push((
                precedence,
                Route {
                    name: name.clone(),
                    matches: vec![m],
                    backends: backends.clone(),
                    affinity: affinity.clone(),
                    timeout,
                    retry: retry.clone(),
                    fault: None,
                    request_headers: f.request_headers.clone(),
                    response_headers: f.response_headers.clone(),
                    mirror: f.mirror.clone(),
                    redirect,
                    rewrite,
                    source: source("HTTPRoute", meta),
                },
            ));
        }
    }
    Ok((parents, rules))
}

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
            "/{}/{}",
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
    let meta = &route.metadata;
    let ns = meta.namespace();
    unsupported(&route.spec.unsupported, "spec")?;
    let parents = parents(meta, &route.spec.parent_refs, index)?;
    let mut rules = Vec::new();
    for (i, r) in route.spec.rules.iter().enumerate() {
        let fail = |e: String| format!("rules[{i}]{e}");
        unsupported(&r.unsupported, "").map_err(fail)?;
        let f = filters(&r.filters, ns, index, true).map_err(fail)?;
        let backends = backends(&r.backend_refs, ns, index).map_err(fail)?;
        let affinity = affinity(&r.session_persistence).map_err(fail)?;
        let matches = if r.matches.is_empty() {
            vec![Default::default()]
        } else {
            r.matches.clone()
        };
        let name = format!(
            "{}/{}",
            meta.name,
            r.name.clone().unwrap_or_else(|| format!("rule-{i}"))
        );
        for (j, m) in matches.iter().enumerate() {
            let at = |e: String| fail(format!(".matches[{j}]{e}"));
            unsupported(&m.unsupported, "").map_err(at)?;
            let (path, lens) = match &m.method {
                Some(method) => grpc_path(method).map_err(at)?,
                None => (None, [0, 0]),
            };
            let headers = rule::convert_match(&RouteMatchSpec {
                headers: m
                    .headers
                    .iter()
                    .map(|v| ValueMatchSpec {
                        name: v.name.clone(),
                        kind: v.kind.clone(),
                        value: Some(v.value.clone()),
                    })
                    .collect(),
                ..Default::default()
            })
            .map_err(at)?
            .headers;
            let m = RouteMatch {
                path,
                headers,
                method: None,
                query: Vec::new(),
            };
            let precedence = Precedence {
                specificity: [lens[0], lens[1], -(m.headers.len() as i64), 0, 0],
                created: meta.creation_timestamp.clone().unwrap_or_default(),
                object: format!("{ns}/{}", meta.name),
                order: (i, j),
            };
            rules.push((
                precedence,
                Route {
                    name: name.clone(),
                    matches: vec![m],
                    backends: backends.clone(),
                    affinity: affinity.clone(),
                    timeout: None,
                    retry: None,
                    fault: None,
                    request_headers: f.request_headers.clone(),
                    response_headers: f.response_headers.clone(),
                    mirror: f.mirror.clone(),
                    redirect: None,
                    rewrite: None,
                    source: source("GRPCRoute", meta),
                },
            ));
        }
    }
    Ok((parents, rules))
}

#[cfg(test)]
mod tests;
