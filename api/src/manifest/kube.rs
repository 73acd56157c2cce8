//! Serde mirrors of the Kubernetes kinds the mesh reads: `ObjectMeta`,
//! `Service`, `EndpointSlice` and (for mesh identity) `Pod`. Only the fields Strait uses are named;
//! everything else is accepted and ignored, as the API server's clients do.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The part of `metadata` Strait reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace; `default` when absent, as kubectl does.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels; an EndpointSlice names its Service in `kubernetes.io/service-name`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations; Strait reads `config.strait.dev/opaque-ports` on a Service.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Generation (set by the API server).
    #[serde(default)]
    pub generation: Option<i64>,
    /// When the API server created the object (RFC 3339, UTC, so the text
    /// sorts by time): of two conflicting routes the older one wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

impl ObjectMeta {
    /// The namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// `v1/Service`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Service {
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// Cluster IPs and ports.
    #[serde(default)]
    pub spec: ServiceSpec,
}

/// `Service.spec`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `clusterIP` (`None` for headless).
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// `clusterIPs` (dual stack).
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    /// The Service's ports; only TCP ones carry mesh traffic.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
}

/// One `Service.spec.ports[]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port name (required by Kubernetes when there is more than one).
    #[serde(default)]
    pub name: Option<String>,
    /// The Service port.
    pub port: u16,
    /// `TCP` (default), `UDP`, `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `appProtocol`, e.g. `http`, `kubernetes.io/h2c`, `tcp`.
    #[serde(default)]
    pub app_protocol: Option<String>,
}

/// `discovery.k8s.io/v1/EndpointSlice`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Metadata; the `kubernetes.io/service-name` label names the Service.
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    /// The slice's endpoints, each with its addresses and readiness.
    #[serde(default)]
    pub endpoints: Vec<SliceEndpoint>,
    /// Ports, matched to Service ports by name.
    #[serde(default)]
    pub ports: Option<Vec<SlicePort>>,
}

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One `EndpointSlice.endpoints[]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SliceEndpoint {
    /// Addresses (one is used, as kube-proxy does).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Readiness; an endpoint without it counts as ready, as in Kubernetes.
    #[serde(default)]
    pub conditions: Option<EndpointConditions>,
    /// The Pod behind the endpoint, when known.
    #[serde(default)]
    pub target_ref: Option<ObjectReference>,
}

/// `EndpointSlice.endpoints[].conditions`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct EndpointConditions {
    /// Absent means ready (Kubernetes' own rule).
    #[serde(default)]
    pub ready: Option<bool>,
}

/// A reference to another object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ObjectReference {
    /// The referent's kind (`Pod` is the only one Strait reads).
    #[serde(default)]
    pub kind: Option<String>,
    /// The referent's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The referent's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// One `EndpointSlice.ports[]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlicePort {
    /// Port name; matches the Service port's name (both may be empty).
    #[serde(default)]
    pub name: Option<String>,
    /// Port number on the endpoint.
    #[serde(default)]
    pub port: Option<u16>,
}

/// `v1/Pod`, as far as mesh identity needs it: a Pod whose proxy serves
/// mesh TLS, and the ServiceAccount it proves. The control plane sends
/// only meshed Pods, cut down to these fields; a `--local` directory may
/// hold them written by hand.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Pod {
    /// Name and namespace; the injector's `strait.dev/proxy-version`
    /// annotation marks a meshed Pod.
    pub metadata: ObjectMeta,
    /// The ServiceAccount.
    #[serde(default)]
    pub spec: PodSpec,
}

/// `Pod.spec`, as far as identity needs it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// `default` when unset, as Kubernetes runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

impl Pod {
    /// Whether the injector put a proxy in it.
    pub fn is_meshed(&self) -> bool {
        self.metadata
            .annotations
            .contains_key(crate::inject::VERSION_ANNOTATION)
    }

    /// Its ServiceAccount's name.
    pub fn service_account(&self) -> &str {
        self.spec
            .service_account_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }
}
