//! TrafficRoute rules → domain [`Route`]s, with every check a schema cannot
//! make: regexes compile, header names and values are legal, referenced
//! Services and ports exist, timeouts are well formed and consistent.

use super::index::ServiceIndex;
use crate::bounds;
use crate::manifest::{
    HeaderModifierSpec, PathMatchSpec, RouteMatchSpec, RouteRule, TrafficRoute, ValueMatchSpec,
};
use crate::model::{
    Affinity, Fault, FaultAbort, FaultDelay, HeaderMatch, HeaderModifier, Mirror, PathMatch,
    Pattern, QueryMatch, RetryPolicy, Route, RouteMatch, ServicePortKey, ValueMatch,
    WeightedBackend,
};
use http::{HeaderName, HeaderValue, Method};
use std::time::Duration;

/// Retry-on classes a rule may name.
pub const RETRY_ON_CLASSES: &[&str] = &[
    "5xx",
    "gateway-error",
    "connect-failure",
    "reset",
    "retriable-codes",
];

/// Converts a whole TrafficRoute: the parent Service ports it attaches to and
/// its rules in order. Any invalid part rejects the whole route, with the
/// path of the offending field in the message.
pub(crate) fn convert_route(
    route: &TrafficRoute,
    index: &ServiceIndex<'_>,
) -> Result<(Vec<ServicePortKey>, Vec<Route>), String> {
    let ns = route.metadata.namespace();
    let parent = &route.spec.parent_ref;
    let parents = match parent.port {
        Some(port) => vec![
            index
                .resolve(ns, &parent.name, Some(port))
                .map_err(|e| format!("parentRef: {e}"))?,
        ],
        None => {
            let svc = index
                .services
                .get(&(ns.to_string(), parent.name.clone()))
                .ok_or_else(|| format!("parentRef: Service {ns}/{} not found", parent.name))?;
            svc.spec
                .ports
                .iter()
                .map(|p| ServicePortKey::new(ns, &parent.name, p.port))
                .collect()
        }
    };
    if route.spec.rules.is_empty() {
        return Err("rules: at least one rule is required".into());
    }
    let rules = route
        .spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            convert_rule(&route.metadata.name, ns, i, r, index)
                .map_err(|e| format!("rules[{i}]{e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((parents, rules))
}

fn convert_rule(
    route_name: &str,
    ns: &str,
    i: usize,
    r: &RouteRule,
    index: &ServiceIndex<'_>,
) -> Result<Route, String> {
    let name = format!(
        "{route_name}/{}",
        r.name.clone().unwrap_or_else(|| format!("rule-{i}"))
    );
    let matches = r
        .matches
        .iter()
        .enumerate()
        .map(|(j, m)| convert_match(m).map_err(|e| format!(".matches[{j}]{e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if r.backends.is_empty() {
        return Err(".backends: at least one backend is required".into());
    }
    let backends = r
        .backends
        .iter()
        .enumerate()
        .map(|(j, b)| {
            let backend = index
                .resolve(ns, &b.name, b.port)
                .map_err(|e| format!(".backends[{j}]: {e}"))?;
            Ok(WeightedBackend {
                backend,
                weight: bounds::count(b.weight.unwrap_or(1), bounds::WEIGHT)
                    .map_err(|e| format!(".backends[{j}].weight: {e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if backends.iter().all(|b| b.weight == 0) {
        return Err(".backends: at least one backend needs a weight above 0".into());
    }
    let affinity = match &r.session_affinity {
        None => None,
        Some(a) => Some(match (&a.header, &a.cookie) {
            (Some(h), None) => Affinity::Header(
                header_name(h).map_err(|e| format!(".sessionAffinity.header: {e}"))?,
            ),
            (None, Some(c)) if !c.is_empty() => Affinity::Cookie(c.clone()),
            _ => return Err(".sessionAffinity: set exactly one of header or cookie".into()),
        }),
    };
    let timeout =
        opt_duration(&r.timeout, bounds::TIMEOUT).map_err(|e| format!(".timeout: {e}"))?;
    let retry = match &r.retry {
        None => None,
        Some(rs) => {
            let per_try_timeout = opt_duration(&rs.per_try_timeout, bounds::TIMEOUT)
                .map_err(|e| format!(".retry.perTryTimeout: {e}"))?;
            if let (Some(p), Some(t)) = (per_try_timeout, timeout)
                && p > t
            {
                return Err(
                    ".retry.perTryTimeout: must not be longer than the rule's timeout".into(),
                );
            }
            for class in &rs.on {
                if !RETRY_ON_CLASSES.contains(&class.as_str()) {
                    return Err(format!(
                        ".retry.on: unknown class {class:?} (one of {RETRY_ON_CLASSES:?})"
                    ));
                }
            }
            Some(RetryPolicy {
                attempts: match rs.attempts.unwrap_or(2) {
                    0 => return Err(".retry.attempts: must be at least 1".into()),
                    n => bounds::count(n, bounds::ATTEMPTS)
                        .map_err(|e| format!(".retry.attempts: {e}"))?,
                },
                per_try_timeout,
                on: if rs.on.is_empty() {
                    vec![
                        "gateway-error".into(),
                        "connect-failure".into(),
                        "reset".into(),
                    ]
                } else {
                    rs.on.clone()
                },
                retriable_codes: rs.retriable_codes.clone(),
                backoff: opt_duration(&rs.backoff, bounds::BACKOFF)
                    .map_err(|e| format!(".retry.backoff: {e}"))?
                    .unwrap_or(Duration::from_millis(25)),
                non_idempotent: rs.non_idempotent.unwrap_or(false),
            })
        }
    };
    let fault = match &r.fault {
        None => None,
        Some(f) => Some(Fault {
            delay: match &f.delay {
                None => None,
                Some(d) => Some(FaultDelay {
                    percent: percent(d.percent)
                        .map_err(|e| format!(".fault.delay.percent: {e}"))?,
                    duration: bounds::parse_duration(&d.duration, bounds::TIMEOUT)
                        .map_err(|e| format!(".fault.delay.duration: {e}"))?,
                }),
            },
            abort: match &f.abort {
                None => None,
                Some(a) => {
                    if !(100..=599).contains(&a.status) {
                        return Err(".fault.abort.status: must be an HTTP status (100-599)".into());
                    }
                    Some(FaultAbort {
                        percent: percent(a.percent)
                            .map_err(|e| format!(".fault.abort.percent: {e}"))?,
                        status: a.status,
                    })
                }
            },
        }),
    };
    let mirror = match &r.mirror {
        None => None,
        Some(m) => Some(Mirror {
            backend: index
                .resolve(ns, &m.name, m.port)
                .map_err(|e| format!(".mirror: {e}"))?,
            percent: percent(m.percent.unwrap_or(100))
                .map_err(|e| format!(".mirror.percent: {e}"))?,
        }),
    };
    Ok(Route {
        name,
        matches,
        backends,
        affinity,
        timeout,
        retry,
        fault,
        request_headers: modifier(&r.request_headers)
            .map_err(|e| format!(".requestHeaders: {e}"))?,
        response_headers: modifier(&r.response_headers)
            .map_err(|e| format!(".responseHeaders: {e}"))?,
        mirror,
        redirect: None,
        rewrite: None,
        source: format!("TrafficRoute {ns}/{route_name}"),
    })
}

pub(crate) fn convert_match(m: &RouteMatchSpec) -> Result<RouteMatch, String> {
    let path = m
        .path
        .as_ref()
        .map(convert_path)
        .transpose()
        .map_err(|e| format!(".path: {e}"))?;
    let headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(k, h)| {
            Ok(HeaderMatch {
                name: header_name(&h.name).map_err(|e| format!(".headers[{k}]: {e}"))?,
                value: value_match(h).map_err(|e| format!(".headers[{k}]: {e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let query = m
        .query_params
        .iter()
        .enumerate()
        .map(|(k, q)| {
            if q.name.is_empty() {
                return Err(format!(".queryParams[{k}]: name must not be empty"));
            }
            Ok(QueryMatch {
                name: q.name.clone(),
                value: value_match(q).map_err(|e| format!(".queryParams[{k}]: {e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let method = m
        .method
        .as_deref()
        .map(|s| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    ".method: {s:?} is not an upper-case HTTP method such as GET"
                ));
            }
            Method::from_bytes(s.as_bytes())
                .map_err(|_| format!(".method: {s:?} is not a valid method"))
        })
        .transpose()?;
    Ok(RouteMatch {
        path,
        headers,
        method,
        query,
    })
}

fn convert_path(p: &PathMatchSpec) -> Result<PathMatch, String> {
    match p.kind.as_deref().unwrap_or("PathPrefix") {
        "Exact" | "PathPrefix" if !p.value.starts_with('/') => {
            Err(format!("value {:?} must start with '/'", p.value))
        }
        "Exact" => Ok(PathMatch::Exact(p.value.clone())),
        "PathPrefix" => {
            let trimmed = p.value.trim_end_matches('/');
            Ok(PathMatch::Prefix(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            }))
        }
        "RegularExpression" => Ok(PathMatch::Regex(pattern(&p.value)?)),
        other => Err(format!(
            "type {other:?} is not one of Exact, PathPrefix, RegularExpression"
        )),
    }
}

fn value_match(v: &ValueMatchSpec) -> Result<ValueMatch, String> {
    match (v.kind.as_deref().unwrap_or("Exact"), &v.value) {
        ("Exact", Some(value)) => Ok(ValueMatch::Exact(value.clone())),
        ("RegularExpression", Some(value)) => Ok(ValueMatch::Regex(pattern(value)?)),
        ("Present", _) => Ok(ValueMatch::Present),
        ("Exact" | "RegularExpression", None) => Err("value is required".into()),
        (other, _) => Err(format!(
            "type {other:?} is not one of Exact, RegularExpression, Present"
        )),
    }
}

/// Compiles a user regex anchored to the whole value, with a size limit so a
/// hostile pattern cannot take the proxy's memory.
pub(crate) fn pattern(source: &str) -> Result<Pattern, String> {
    let build = |src: &str| regex::RegexBuilder::new(src).size_limit(1 << 20).build();
    // Compile the source alone first: wrapping an unbalanced source such as
    // `/a)|(/b` would otherwise escape the anchors (`^(?:/a)|(/b)$`).
    build(source).map_err(|e| format!("regular expression {source:?} does not compile: {e}"))?;
    let regex = build(&format!("^(?:{source})$"))
        .map_err(|e| format!("regular expression {source:?} does not compile: {e}"))?;
    Ok(Pattern {
        source: source.to_string(),
        regex,
    })
}

fn header_name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not a valid header name"))
}

pub(crate) fn modifier(spec: &Option<HeaderModifierSpec>) -> Result<HeaderModifier, String> {
    let Some(spec) = spec else {
        return Ok(HeaderModifier::default());
    };
    let pairs = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| {
                Ok((
                    header_name(k)?,
                    HeaderValue::from_str(v)
                        .map_err(|_| format!("{v:?} is not a valid header value"))?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    Ok(HeaderModifier {
        set: pairs(&spec.set)?,
        add: pairs(&spec.add)?,
        remove: spec
            .remove
            .iter()
            .map(|s| header_name(s))
            .collect::<Result<_, _>>()?,
    })
}

fn opt_duration(s: &Option<String>, max: Duration) -> Result<Option<Duration>, String> {
    s.as_deref()
        .map(|v| bounds::parse_duration(v, max))
        .transpose()
}

pub(crate) fn percent(p: u32) -> Result<u32, String> {
    if p <= 100 {
        Ok(p)
    } else {
        Err(format!("{p} is not a percentage (0-100)"))
    }
}
