//! Manifests → [`Snapshot`]: the one place wire shapes become domain types.
//!
//! [`translate`] is pure: the proxy's `--local` mode feeds it files, the
//! control plane feeds it what its reflectors hold. Every object is checked
//! beyond what a schema can say (references resolve, regexes compile, header
//! names are legal, per-try timeouts fit the route timeout). An invalid object
//! is left out of the snapshot and reported with its file, line and reason;
//! callers decide whether that rejects the whole set (local mode does, so the
//! last good config stays in force) or only the object (the control plane).

mod attach;
mod gateway;
mod index;
mod policy;
mod rule;

use crate::manifest::{
    DestinationPolicy, EndpointSlice, Located, ManifestError, Object, SERVICE_NAME_LABEL, Service,
};
use crate::model::{
    Backend, Endpoint, Policy, ServiceAccount, ServicePort, ServicePortKey, Snapshot,
};
use attach::attach_routes;
use index::{NsName, ServiceIndex};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The result of a translation: what was valid, and what was not.
#[derive(Debug, Default)]
pub struct Translation {
    /// The snapshot built from the valid objects.
    pub snapshot: Snapshot,
    /// One entry per invalid object (or duplicate), with its location.
    pub errors: Vec<ManifestError>,
}

/// Annotation on a Service listing ports to carry as opaque TCP.
pub const OPAQUE_PORTS_ANNOTATION: &str = "config.strait.dev/opaque-ports";

/// `appProtocol` values that mean HTTP; any other value makes the port opaque.
const HTTP_APP_PROTOCOLS: &[&str] = &[
    "http",
    "http2",
    "h2c",
    "grpc",
    "kubernetes.io/h2c",
    "kubernetes.io/ws",
    "ws",
];

/// [`translate`] for what one proxy applies: a set with more Services than
/// a proxy's config may hold ([`crate::bounds::SERVICES`]) is refused whole,
/// before any work. The controller validates the whole cluster's objects
/// with plain [`translate`], where the limit does not apply (each proxy
/// receives only its namespace's view).
pub fn translate_view(objects: &[Located<Object>]) -> Translation {
    let service_count = objects
        .iter()
        .filter(|o| matches!(o.object, Object::Service(_)))
        .count();
    if service_count > crate::bounds::SERVICES {
        let first = objects
            .iter()
            .find(|o| matches!(o.object, Object::Service(_)));
        return Translation {
            snapshot: Snapshot::default(),
            errors: vec![ManifestError {
                file: first.map(|o| o.file.clone()).unwrap_or_default(),
                line: first.map(|o| o.line).unwrap_or(0),
                message: format!(
                    "{service_count} Services, more than the {} one proxy's config may hold; limit what each namespace sees with strait.dev/export-to",
                    crate::bounds::SERVICES
                ),
            }],
        };
    }

    translate(objects)
}

/// Builds a snapshot from manifests. Pure; see the module docs.
pub fn translate(objects: &[Located<Object>]) -> Translation {
    let mut errors = Vec::new();
    let err = |o: &Located<Object>, message: String| ManifestError {
        file: o.file.clone(),
        line: o.line,
        message: format!("{}: {message}", o.object.describe()),
    };

    // Services first: everything else refers to them.
    let mut services: HashMap<NsName, &Service> = HashMap::new();
    let mut slices: Vec<&EndpointSlice> = Vec::new();
    let mut policies: HashMap<NsName, Policy> = HashMap::new();
    let mut routes: Vec<&Located<Object>> = Vec::new();
    let mut meshed: HashMap<NsName, ServiceAccount> = HashMap::new();
    for o in objects {
        match &o.object {
            Object::Service(s) => {
                let key = (s.metadata.namespace().to_string(), s.metadata.name.clone());
                if services.insert(key, s).is_some() {
                    errors.push(err(o, "defined more than once".into()));
                }
            }
            Object::EndpointSlice(s) => slices.push(s),
            Object::DestinationPolicy(p) => match policy::convert(&p.spec) {
                Ok(policy) => {
                    let key = (
                        p.metadata.namespace().to_string(),
                        p.spec.target_ref.name.clone(),
                    );
                    if policies.insert(key, policy).is_some() {
                        errors.push(err(
                            o,
                            "another DestinationPolicy already targets this Service".into(),
                        ));
                    }
                }
                Err(e) => errors.push(err(o, e)),
            },
            Object::TrafficRoute(_) => routes.push(o),
            Object::HttpRoute(r) if gateway::has_service_parent(&r.spec.parent_refs) => {
                routes.push(o)
            }
            Object::GrpcRoute(r) if gateway::has_service_parent(&r.spec.parent_refs) => {
                routes.push(o)
            }
            // Routes of Gateways only: another controller's.
            Object::HttpRoute(_) | Object::GrpcRoute(_) => {}
            Object::Pod(p) if p.is_meshed() => {
                let ns = p.metadata.namespace().to_string();
                let sa = ServiceAccount {
                    namespace: ns.clone(),
                    name: p.service_account().to_string(),
                };
                meshed.insert((ns, p.metadata.name.clone()), sa);
            }
            Object::Pod(_) => {}
        }
    }
    for (o, p) in objects.iter().filter_map(|o| match &o.object {
        Object::DestinationPolicy(p) => Some((o, p)),
        _ => None,
    }) {
        check_policy_target(p, &services)
            .map_err(|e| errors.push(err(o, e)))
            .ok();
    }

    let endpoints = index_endpoints(&slices, &meshed);
    let mut snapshot = Snapshot::default();
    for ((ns, name), svc) in &services {
        let opaque_ports = opaque_ports(svc);
        let policy = policies
            .get(&(ns.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        for port in &svc.spec.ports {
            if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            let key = ServicePortKey::new(ns, name, port.port);
            let opaque = opaque_ports.contains(&port.port)
                || port.app_protocol.as_deref().is_some_and(|p| {
                    !HTTP_APP_PROTOCOLS.contains(&p.to_ascii_lowercase().as_str())
                });
            for ip in cluster_ips(svc) {
                snapshot
                    .by_addr
                    .insert(SocketAddr::new(ip, port.port), key.clone());
            }
            let port_name = port.name.clone().unwrap_or_default();
            let (eps, not_ready) = endpoints
                .get(&(ns.clone(), name.clone(), port_name))
                .cloned()
                .unwrap_or_default();
            snapshot.backends.insert(
                key.clone(),
                Backend {
                    key: key.clone(),
                    endpoints: eps,
                    not_ready,
                    policy: policy.clone(),
                },
            );
            snapshot.services.insert(
                key.clone(),
                ServicePort {
                    key,
                    opaque,
                    routes: None,
                },
            );
        }
    }

    let index = ServiceIndex { services };
    attach_routes(&routes, &index, &mut snapshot, &mut errors, &err);
    Translation { snapshot, errors }
}

fn check_policy_target(
    p: &DestinationPolicy,
    services: &HashMap<NsName, &Service>,
) -> Result<(), String> {
    let ns = p.metadata.namespace();
    let name = &p.spec.target_ref.name;
    if services.contains_key(&(ns.to_string(), name.clone())) {
        Ok(())
    } else {
        Err(format!("targetRef: Service {ns}/{name} not found"))
    }
}

fn cluster_ips(svc: &Service) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = svc
        .spec
        .cluster_ips
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    if let Some(ip) = svc.spec.cluster_ip.as_deref().and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

fn opaque_ports(svc: &Service) -> Vec<u16> {
    svc.metadata
        .annotations
        .get(OPAQUE_PORTS_ANNOTATION)
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// A Service port's ready endpoints and the addresses of those not ready.
type PortEndpoints = (Vec<Endpoint>, Vec<SocketAddr>);

/// `(namespace, service, port name)` → ready endpoints (sorted for stable
/// snapshots) and the addresses of those not ready. An endpoint whose
/// `targetRef` names a meshed Pod carries that Pod's identity.
fn index_endpoints(
    slices: &[&EndpointSlice],
    meshed: &HashMap<NsName, ServiceAccount>,
) -> HashMap<(String, String, String), PortEndpoints> {
    let mut out: HashMap<_, PortEndpoints> = HashMap::new();
    for slice in slices {
        if slice.address_type == "FQDN" {
            continue;
        }
        let Some(svc) = slice.metadata.labels.get(SERVICE_NAME_LABEL) else {
            continue;
        };
        let ns = slice.metadata.namespace().to_string();
        for port in slice.ports.iter().flatten() {
            let Some(number) = port.port else { continue };
            let entry = out
                .entry((
                    ns.clone(),
                    svc.clone(),
                    port.name.clone().unwrap_or_default(),
                ))
                .or_default();
            for ep in &slice.endpoints {
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    entry.1.push(SocketAddr::new(ip, number));
                    continue;
                }
                let target = ep.target_ref.as_ref().and_then(|r| {
                    if r.kind.as_deref().is_some_and(|k| k != "Pod") {
                        return None;
                    }
                    let name = r.name.as_ref()?;
                    Some((
                        r.namespace.clone().unwrap_or_else(|| ns.clone()),
                        name.clone(),
                    ))
                });
                entry.0.push(Endpoint {
                    addr: SocketAddr::new(ip, number),
                    pod: target.as_ref().map(|(ns, name)| format!("{ns}/{name}")),
                    identity: target.and_then(|t| meshed.get(&t).cloned()),
                });
            }
        }
    }
    for (eps, not_ready) in out.values_mut() {
        eps.sort_by_key(|e| e.addr);
        eps.dedup_by_key(|e| e.addr);
        not_ready.sort();
        not_ready.dedup();
    }
    out
}

#[cfg(test)]
mod tests;

/// Compiles a pattern the way translation does (for other modules' tests).
#[cfg(test)]
pub(crate) fn pattern_for_tests(source: &str) -> Result<crate::model::Pattern, String> {
    rule::pattern(source)
}
