//! The filters of an HTTPRoute or GRPCRoute rule: header changes, one
//! mirror, and (HTTPRoute) a redirect or a URL rewrite, whose
//! `ReplacePrefixMatch` is resolved per match, once the matched prefix is
//! known.

use super::{ServiceIndex, backend_key, unsupported};
use crate::manifest::{HeaderFilter, HeaderModifierSpec, HttpRouteFilter};
use crate::model::{HeaderModifier, Mirror, PathMatch};
use crate::rewrite::{PathChange, Redirect, Rewrite};
use crate::translate::rule;

/// What the filters of one rule add up to.
#[derive(Default)]
pub(super) struct Filters {
    pub(super) request_headers: HeaderModifier,
    pub(super) response_headers: HeaderModifier,
    pub(super) redirect: Option<RedirectSpec>,
    pub(super) rewrite: Option<RewriteSpec>,
    pub(super) mirror: Option<Mirror>,
}

/// A redirect or rewrite before its `ReplacePrefixMatch` knows the prefix
/// (that depends on which match selected the rule).
pub(super) struct RedirectSpec(crate::manifest::RedirectFilter);
pub(super) struct RewriteSpec(crate::manifest::RewriteFilter);

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

pub(super) fn filters(
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

pub(super) fn redirect(r: &RedirectSpec, matched: Option<&PathMatch>) -> Result<Redirect, String> {
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

pub(super) fn rewrite(r: &RewriteSpec, matched: Option<&PathMatch>) -> Result<Rewrite, String> {
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
