//! `strait explain`: what the mesh would do with one request, and why.
//!
//! Given the source pod's namespace and a request, it walks the same steps
//! as the proxy with the same pure code (`strait_api::{authority, route,
//! split}`): which Service, which rule matched (and which did not), which
//! backend the split chooses (the sticky bucket when the rule has session
//! affinity), the endpoints, and the policy that applies. [`explain`] is pure
//! over a snapshot; the config comes from a directory or from the control
//! plane's stream.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::fmt::Write;
use strait_api::Snapshot;
use strait_api::manifest::{Located, parse_json};
use strait_api::model::{Affinity, ServicePortKey, TlsMode};
use strait_api::translate::translate;
use strait_api::{authority, route, split};

/// Explains one request. Pure.
pub fn explain(
    snap: &Snapshot,
    from_ns: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> String {
    let mut o = String::new();
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let service = host
        .parse::<std::net::SocketAddr>()
        .ok()
        .and_then(|addr| snap.service_by_addr(addr))
        .or_else(|| authority::parse(&host, from_ns).and_then(|k| snap.service(&k)));
    let Some(service) = service else {
        let _ = writeln!(
            o,
            "service   {host:?} names no Service this proxy knows → 404 unknown-service (or, for an IP that is not a Service, TCP passthrough)"
        );
        return o;
    };
    let _ = writeln!(
        o,
        "service   {} (from {host:?}, namespace {from_ns})",
        service.key
    );
    if service.opaque {
        let _ = writeln!(
            o,
            "protocol  opaque TCP: no HTTP routing; connections are balanced over the Service's endpoints"
        );
    }
    let backend_keys: Vec<ServicePortKey> = match &service.routes {
        None => {
            let _ = writeln!(
                o,
                "route     default (no TrafficRoute attaches to {})",
                service.key
            );
            vec![service.key.clone()]
        }
        Some(routes) => {
            let info = route::RequestInfo::from_parts(method, uri, headers);
            for r in routes {
                if r.matches.is_empty() || r.matches.iter().any(|m| route::matches(m, &info)) {
                    break;
                }
                let _ = writeln!(o, "          rule {} does not match", r.name);
            }
            let Some(rule) = route::select(routes, &info) else {
                let _ = writeln!(
                    o,
                    "route     no rule matches {method} {} → 404 no-route",
                    uri.path()
                );
                return o;
            };
            let _ = writeln!(o, "route     {} matches (from {})", rule.name, rule.source);
            if let Some(r) = &rule.redirect {
                let host = uri.host().unwrap_or(&service.key.name);
                let location = strait_api::rewrite::location(
                    r,
                    "http",
                    host,
                    service.key.port,
                    uri.path(),
                    uri.query(),
                );
                let _ = writeln!(o, "answer    {} redirect to {location}", r.status);
                return o;
            }
            if let Some(w) = &rule.rewrite {
                let path = w
                    .path
                    .as_ref()
                    .map(|c| strait_api::rewrite::rewrite_path(c, uri.path()));
                let _ = writeln!(
                    o,
                    "rewrite   path {} host {}",
                    path.as_deref().unwrap_or("kept"),
                    w.hostname.as_deref().unwrap_or("kept")
                );
            }
            let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
            let weights: Vec<String> = rule
                .backends
                .iter()
                .map(|b| {
                    format!(
                        "{} {} ({:.1} %)",
                        b.backend,
                        b.weight,
                        100.0 * b.weight as f64 / total.max(1) as f64
                    )
                })
                .collect();
            let key = rule
                .affinity
                .as_ref()
                .and_then(|a| split::affinity_key(a, headers));
            // Sticky: the one backend this key always gets. Otherwise each
            // request draws anew, so every weighted backend is a candidate.
            let candidates: Vec<ServicePortKey> = match key {
                Some(k) => {
                    let draw = split::sticky_draw(k);
                    let what = match rule.affinity.as_ref() {
                        Some(Affinity::Header(h)) => format!("header {h}"),
                        Some(Affinity::Cookie(c)) => format!("cookie {c}"),
                        None => String::new(),
                    };
                    let b = split::pick(&rule.backends, draw);
                    let _ = writeln!(
                        o,
                        "split     sticky on {what}={:?}: bucket {} of {total} → always {} [weights: {}]",
                        String::from_utf8_lossy(k),
                        draw % total.max(1),
                        b.map(|b| b.backend.to_string())
                            .unwrap_or_else(|| "none".into()),
                        weights.join(", ")
                    );
                    b.map(|b| b.backend.clone()).into_iter().collect()
                }
                None => {
                    let _ = writeln!(o, "split     random by weight: {}", weights.join(", "));
                    if let Some(a) = &rule.affinity {
                        let _ = writeln!(
                            o,
                            "          (the rule is sticky on {a:?}, but the request does not carry it)"
                        );
                    }
                    rule.backends
                        .iter()
                        .filter(|b| b.weight > 0)
                        .map(|b| b.backend.clone())
                        .collect()
                }
            };
            if let Some(t) = rule.timeout {
                let _ = writeln!(o, "timeout   {t:?} for the whole request");
            }
            if let Some(r) = &rule.retry {
                let per_try = r
                    .per_try_timeout
                    .map(|t| format!(", {t:?} per try"))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "retry     up to {} attempts on {}{per_try}, backoff {:?}",
                    r.attempts,
                    r.on.join(", "),
                    r.backoff
                );
            }
            if let Some(f) = &rule.fault {
                let mut parts = Vec::new();
                if let Some(d) = &f.delay {
                    parts.push(format!("{} % delayed {:?}", d.percent, d.duration));
                }
                if let Some(a) = &f.abort {
                    parts.push(format!("{} % aborted with {}", a.percent, a.status));
                }
                let _ = writeln!(o, "fault     {}", parts.join(", "));
            }
            if let Some(m) = &rule.mirror {
                let _ = writeln!(o, "mirror    {} % to {}", m.percent, m.backend);
            }
            if candidates.is_empty() {
                let _ = writeln!(o, "backend   none: every weight is 0 → 503 no-backend");
                return o;
            }
            candidates
        }
    };
    for key in &backend_keys {
        describe_backend(&mut o, snap, key);
    }
    o
}

/// The endpoints and policy of one backend.
fn describe_backend(o: &mut String, snap: &Snapshot, backend_key: &ServicePortKey) {
    let Some(backend) = snap.backend(backend_key) else {
        let _ = writeln!(o, "backend   {backend_key}: unknown → 503");
        return;
    };
    let p = &backend.policy;
    let _ = writeln!(
        o,
        "backend   {} ({} ready endpoints, balanced by {:?})",
        backend.key,
        backend.endpoints.len(),
        p.load_balancer
    );
    for e in &backend.endpoints {
        // What the client's proxy demands of it: an identity over mTLS, or
        // nothing (plaintext).
        let tls = match (&e.identity, p.tls_mode) {
            (Some(_), TlsMode::Disabled) => "  plaintext (tls.mode Disabled)".to_string(),
            (Some(sa), _) => format!("  mTLS as ServiceAccount {}/{}", sa.namespace, sa.name),
            (None, _) => "  plaintext (no proxy)".to_string(),
        };
        let _ = writeln!(
            o,
            "          {}{}{tls}",
            e.addr,
            e.pod
                .as_ref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default()
        );
    }
    if backend.endpoints.is_empty() {
        let _ = writeln!(o, "          (none → 503 no-endpoints)");
    }
    if let Some(cb) = &p.circuit_breaker {
        let _ = writeln!(
            o,
            "breaker   eject after {} failures for {:?} (up to {:?}), at most {} % ejected",
            cb.consecutive_failures,
            cb.base_ejection_time,
            cb.max_ejection_time,
            cb.max_ejected_percent
        );
    }
    let _ = writeln!(
        o,
        "budget    retries ≤ max({}/s, {} × requests) over {:?}",
        p.retry_budget.min_per_second, p.retry_budget.ratio, p.retry_budget.window
    );
}

/// Builds the snapshot from manifest directories, as `strait-proxy --local` does.
pub fn from_dirs(dirs: &[std::path::PathBuf]) -> anyhow::Result<Snapshot> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for file in strait_api::manifest::dir::read(dirs)? {
        objects.extend(file.objects);
        errors.extend(file.errors);
    }
    let t = translate(&objects);
    errors.extend(t.errors);
    if !errors.is_empty() {
        // Every error, as the proxy reports them: fixing one at a time
        // would take a run per typo.
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::bail!(
            "{} error(s) in manifests:\n{}",
            errors.len(),
            lines.join("\n")
        );
    }
    Ok(t.snapshot)
}

/// Takes the control plane's current full set for the pod `namespace/pod`,
/// as its proxy would: the control plane scopes what it sends by the
/// proxy's namespace, so this is exactly what that pod's proxy knows. The
/// Hello claims no service account (this is not the pod's proxy), so the
/// control plane does not check one and shows the stream as unverified.
pub async fn from_control_plane(
    addr: &str,
    namespace: &str,
    pod: &str,
) -> anyhow::Result<Snapshot> {
    use strait_api::wire::{
        Hello, ProxyMessage, config_discovery_client::ConfigDiscoveryClient, proxy_message,
    };
    let mut client = ConfigDiscoveryClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the control plane at {addr}: {e}"))?;
    let hello = ProxyMessage {
        kind: Some(proxy_message::Kind::Hello(Hello {
            namespace: namespace.into(),
            pod: pod.into(),
            ..Hello::default()
        })),
    };
    let mut stream = client
        .stream(futures_util::stream::iter([hello]))
        .await?
        .into_inner();
    // The full set comes in parts; the last one has `more` unset.
    let mut pending = None;
    let full = loop {
        let part = stream
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the control plane ended the stream mid-update"))?;
        if let Some(whole) = strait_api::parts::assemble(&mut pending, part) {
            break whole;
        }
    };
    let mut objects = Vec::new();
    for r in full.upserts {
        let k = r.key.unwrap_or_default();
        objects.push(Located {
            file: format!("{} {}/{}", k.kind, k.namespace, k.name),
            line: 0,
            object: parse_json(&k.kind, &r.json).map_err(anyhow::Error::msg)?,
        });
    }
    let t = translate(&objects);
    if let Some(e) = t.errors.first() {
        anyhow::bail!("{e}");
    }
    Ok(t.snapshot)
}

/// Parses `-H 'name: value'` arguments.
pub fn headers(raw: &[String]) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::new();
    for r in raw {
        let (k, v) = r
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("header {r:?} is not `name: value`"))?;
        h.append(
            HeaderName::from_bytes(k.trim().as_bytes())?,
            HeaderValue::from_str(v.trim())?,
        );
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        let shop = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shop");
        from_dirs(&[shop.into()]).unwrap()
    }

    fn run(method: &str, url: &str, hs: &[&str]) -> String {
        let h = headers(&hs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        explain(
            &snap(),
            "shop",
            &Method::from_bytes(method.as_bytes()).unwrap(),
            &url.parse().unwrap(),
            &h,
        )
    }

    #[test]
    fn canary_rule_by_header() {
        let out = run("GET", "http://web/api/items?beta=1", &["x-canary: true"]);
        assert!(out.contains("service   shop/web:80"), "{out}");
        assert!(
            out.contains("route     web/canary-by-header matches (from TrafficRoute shop/web)"),
            "{out}"
        );
        assert!(out.contains("backend   shop/web-v2:80"), "{out}");
    }

    #[test]
    fn sticky_split_names_the_bucket_and_is_stable() {
        let a = run(
            "GET",
            "http://web.shop.svc.cluster.local/",
            &["x-user-id: alice"],
        );
        assert!(
            a.contains("rule web/canary-by-header does not match"),
            "{a}"
        );
        assert!(
            a.contains("sticky on header x-user-id=\"alice\": bucket"),
            "{a}"
        );
        assert_eq!(
            a,
            run(
                "GET",
                "http://web.shop.svc.cluster.local/",
                &["x-user-id: alice"]
            )
        );
        assert!(
            a.contains(
                "retry     up to 2 attempts on gateway-error, connect-failure, reset, 500ms per try"
            ) && a.contains("mirror    10 % to shop/web-shadow:80"),
            "{a}"
        );
    }

    #[test]
    fn unknown_and_unkeyed() {
        assert!(run("GET", "http://nope/", &[]).contains("names no Service"));
        let out = run("GET", "http://web/", &[]);
        assert!(
            out.contains(
                "random by weight: shop/web-v1:80 90 (90.0 %), shop/web-v2:80 10 (10.0 %)"
            ),
            "{out}"
        );
        assert!(out.contains("does not carry it"), "{out}");
    }

    #[test]
    fn endpoints_say_what_the_proxy_demands_of_them() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{name: http, port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.0.0.1], targetRef: {kind: Pod, name: web-0}}, {addresses: [10.0.0.2]}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: shop, annotations: {strait.dev/proxy-version: x}}\nspec: {serviceAccountName: web}\n";
        let (objects, errors) = strait_api::manifest::parse_file("t.yaml", yaml);
        assert!(errors.is_empty(), "{errors:?}");
        let snap = translate(&objects).snapshot;
        let out = explain(
            &snap,
            "shop",
            &Method::GET,
            &"http://web/".parse().unwrap(),
            &HeaderMap::new(),
        );
        assert!(
            out.contains("10.0.0.1:8080  (shop/web-0)  mTLS as ServiceAccount shop/web"),
            "{out}"
        );
        assert!(out.contains("10.0.0.2:8080  plaintext (no proxy)"), "{out}");
    }
}
