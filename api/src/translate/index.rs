//! The Services a route rule may refer to, and resolving a backend
//! reference against them (a leaf of `translate`: the rule and policy
//! translations read it, the top level builds it).

use crate::manifest::Service;
use crate::model::ServicePortKey;
use std::collections::HashMap;

pub(crate) type NsName = (String, String);

/// What a route rule may refer to: the Services that exist and their ports.
pub(crate) struct ServiceIndex<'a> {
    pub(crate) services: HashMap<NsName, &'a Service>,
}

impl ServiceIndex<'_> {
    /// Resolves a backend reference to a Service port key, or says why not.
    pub(crate) fn resolve(
        &self,
        ns: &str,
        name: &str,
        port: Option<u16>,
    ) -> Result<ServicePortKey, String> {
        let Some(svc) = self.services.get(&(ns.to_string(), name.to_string())) else {
            return Err(format!("Service {ns}/{name} not found"));
        };
        // Only TCP ports carry mesh traffic (the snapshot has no others).
        let ports: Vec<u16> = svc
            .spec
            .ports
            .iter()
            .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .map(|p| p.port)
            .collect();
        let port = match (port, ports.as_slice()) {
            (Some(p), _) if ports.contains(&p) => p,
            (Some(p), _) => {
                return Err(format!(
                    "Service {ns}/{name} has no port {p} (TCP ports: {ports:?})"
                ));
            }
            (None, [only]) => *only,
            (None, _) => {
                return Err(format!(
                    "port is required: Service {ns}/{name} has ports {ports:?}"
                ));
            }
        };
        Ok(ServicePortKey::new(ns, name, port))
    }
}
