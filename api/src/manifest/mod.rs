//! Manifests as users write them: the Kubernetes objects a mesh reads and
//! Strait's own CRDs, parsed from multi-document YAML.
//!
//! These are light serde mirrors of the wire shapes (no kube / k8s-openapi, so
//! the proxy stays small). Kubernetes' own kinds accept unknown fields, as the
//! API server does; Strait's specs refuse them, so a typo such as `weigth`
//! is an error with a line number instead of a silently ignored field.
//! Kinds the mesh does not read (Deployments, ConfigMaps, …) are skipped, so a
//! directory of ordinary application manifests can be used as it is.

mod kube;
mod strait;

pub use kube::*;
pub use strait::*;

use serde::Deserialize;
use std::fmt;

/// One object the mesh reads, with where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The file (or other source name) it was read from.
    pub file: String,
    /// 1-based line where the object's document starts.
    pub line: usize,
    /// The object.
    pub object: T,
}

/// Every kind the mesh reads. Variants differ in size; objects are few and
/// short-lived, so boxing would only add noise.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// `v1/Service`.
    Service(Service),
    /// `discovery.k8s.io/v1/EndpointSlice`.
    EndpointSlice(EndpointSlice),
    /// `strait.dev/v1alpha1/TrafficRoute`.
    TrafficRoute(TrafficRoute),
    /// `strait.dev/v1alpha1/DestinationPolicy`.
    DestinationPolicy(DestinationPolicy),
}

impl Object {
    /// `(kind, namespace, name)`: the object's identity.
    pub fn key(&self) -> (&'static str, &str, &str) {
        let (kind, meta) = match self {
            Object::Service(o) => ("Service", &o.metadata),
            Object::EndpointSlice(o) => ("EndpointSlice", &o.metadata),
            Object::TrafficRoute(o) => ("TrafficRoute", &o.metadata),
            Object::DestinationPolicy(o) => ("DestinationPolicy", &o.metadata),
        };
        (kind, meta.namespace(), meta.name.as_str())
    }

    /// `kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        let (kind, meta) = match self {
            Object::Service(o) => ("Service", &o.metadata),
            Object::EndpointSlice(o) => ("EndpointSlice", &o.metadata),
            Object::TrafficRoute(o) => ("TrafficRoute", &o.metadata),
            Object::DestinationPolicy(o) => ("DestinationPolicy", &o.metadata),
        };
        format!("{kind} {}/{}", meta.namespace(), meta.name)
    }
}

/// A problem in a manifest: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// Source file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

#[derive(Deserialize)]
struct TypeMeta {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

/// Splits a YAML stream into documents, keeping each one's 1-based start line.
///
/// Splitting by hand (rather than letting the YAML parser do it) keeps the
/// line numbers of errors inside later documents right.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") || t.starts_with("---\t") {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs.retain(|(_, d)| {
        d.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "..."
        })
    });
    docs
}

/// Parses every document of one file. Documents of kinds the mesh does not
/// read are skipped; the others become objects or errors.
pub fn parse_file(file: &str, text: &str) -> (Vec<Located<Object>>, Vec<ManifestError>) {
    // The YAML parser counts a lone CR as a line break; so must we, or line
    // numbers and document boundaries drift (found by fuzzing).
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.as_str();
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (start, doc) in documents(text) {
        match parse_document(&doc) {
            Ok(Some(object)) => objects.push(Located {
                file: file.to_string(),
                line: start,
                object,
            }),
            Ok(None) => {}
            Err((line, message)) => errors.push(ManifestError {
                file: file.to_string(),
                line: start + line.saturating_sub(1),
                message,
            }),
        }
    }
    (objects, errors)
}

/// Parses one document; `Err((line within the document, message))`.
fn parse_document(doc: &str) -> Result<Option<Object>, (usize, String)> {
    let located = |e: serde_saphyr::Error| {
        let line = e.location().map(|l| l.line() as usize).unwrap_or(1);
        (line, e.to_string())
    };
    let meta: TypeMeta = serde_saphyr::from_str(doc).map_err(located)?;
    let (Some(api_version), Some(kind)) = (meta.api_version, meta.kind) else {
        return Err((1, "document has no apiVersion/kind".to_string()));
    };
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Service") => Object::Service(serde_saphyr::from_str(doc).map_err(located)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            Object::EndpointSlice(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (STRAIT_API_VERSION, "TrafficRoute") => {
            Object::TrafficRoute(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (STRAIT_API_VERSION, "DestinationPolicy") => {
            Object::DestinationPolicy(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (v, "TrafficRoute" | "DestinationPolicy") if v.starts_with("strait.dev/") => {
            return Err((
                1,
                format!(
                    "unsupported apiVersion {v:?} for {kind}; this Strait reads {STRAIT_API_VERSION}"
                ),
            ));
        }
        _ => return Ok(None),
    };
    Ok(Some(object))
}

/// Parses one object of a known kind from JSON (how the config stream
/// carries objects, as bytes). Fields are checked exactly as in YAML files;
/// bytes that are not UTF-8 are refused like any other malformed JSON.
pub fn parse_json(kind: &str, json: impl AsRef<[u8]>) -> Result<Object, String> {
    let json = json.as_ref();
    let err = |e: serde_json::Error| format!("{kind}: {e}");
    Ok(match kind {
        "Service" => Object::Service(serde_json::from_slice(json).map_err(err)?),
        "EndpointSlice" => Object::EndpointSlice(serde_json::from_slice(json).map_err(err)?),
        "TrafficRoute" => Object::TrafficRoute(serde_json::from_slice(json).map_err(err)?),
        "DestinationPolicy" => {
            Object::DestinationPolicy(serde_json::from_slice(json).map_err(err)?)
        }
        other => return Err(format!("unknown kind {other:?}")),
    })
}

/// The API group/version of Strait's CRDs.
pub const STRAIT_API_VERSION: &str = "strait.dev/v1alpha1";

#[cfg(test)]
mod tests;
