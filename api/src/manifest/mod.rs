//! Manifests as users write them: the Kubernetes objects a mesh reads and
//! Strait's own CRDs, parsed from multi-document YAML.
//!
//! These are light serde mirrors of the wire shapes (no kube / k8s-openapi, so
//! the proxy stays small). Kubernetes' own kinds accept unknown fields, as the
//! API server does; Strait's specs refuse them, so a typo such as `weigth`
//! is an error with a line number instead of a silently ignored field.
//! Kinds the mesh does not read (Deployments, ConfigMaps, …) are skipped, so a
//! directory of ordinary application manifests can be used as it is.

pub mod dir;
mod gateway;
mod key;
mod kube;
mod strait;

pub use gateway::*;
pub use key::ObjectKey;
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
    /// `v1/Pod`: a meshed Pod's identity (see [`Pod`]).
    Pod(Pod),
    /// `gateway.networking.k8s.io/v1/HTTPRoute` with Service parents (GAMMA).
    HttpRoute(HttpRoute),
    /// `gateway.networking.k8s.io/v1/GRPCRoute` with Service parents (GAMMA).
    GrpcRoute(GrpcRoute),
}

impl Object {
    /// `(kind, namespace, name)`: the object's identity.
    pub fn key(&self) -> (&'static str, &str, &str) {
        let (kind, meta) = self.kind_and_meta();
        (kind, meta.namespace(), meta.name.as_str())
    }

    /// The kind and the metadata.
    pub fn kind_and_meta(&self) -> (&'static str, &ObjectMeta) {
        match self {
            Object::Service(o) => ("Service", &o.metadata),
            Object::EndpointSlice(o) => ("EndpointSlice", &o.metadata),
            Object::TrafficRoute(o) => ("TrafficRoute", &o.metadata),
            Object::DestinationPolicy(o) => ("DestinationPolicy", &o.metadata),
            Object::Pod(o) => ("Pod", &o.metadata),
            Object::HttpRoute(o) => ("HTTPRoute", &o.metadata),
            Object::GrpcRoute(o) => ("GRPCRoute", &o.metadata),
        }
    }

    /// The key the object is stored and sent under.
    pub fn object_key(&self) -> ObjectKey {
        let (kind, namespace, name) = self.key();
        ObjectKey::new(kind, namespace, name)
    }

    /// `kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        let (kind, meta) = self.kind_and_meta();
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

/// Splits a YAML stream into documents, keeping each one's 1-based start
/// line (the line of its `---`, or of its first content for an implicit
/// first document).
///
/// The YAML library's event parser finds the boundaries, so a document that
/// starts on its `---` line (`--- {apiVersion: v1, ...}`) keeps that
/// content, and a `---` inside a block scalar is not a boundary. Each
/// document is then parsed from its own text, so an error's line is right
/// whatever the documents around it hold; a document with a syntax error is
/// still handed on whole, for `parse_document` to report.
pub fn documents(text: &str) -> Vec<(usize, String)> {
    use granit_parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    // (byte offset, line) where the open document's text starts.
    let mut open: Option<(usize, usize)> = None;
    let close = |open: &mut Option<(usize, usize)>, end: usize, docs: &mut Vec<(usize, String)>| {
        if let Some((from, line)) = open.take() {
            docs.push((
                line,
                text.get(from..end.max(from))
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    };
    while let Some(event) = parser.next_event() {
        match event {
            Ok((Event::DocumentStart(explicit, _), span)) => {
                let at = |m: &granit_parser::Marker| m.byte_offset().unwrap_or(0);
                close(&mut open, at(&span.start), &mut docs);
                let line = span.start.line().max(1);
                open = Some(if !explicit {
                    (at(&span.start), line)
                } else {
                    // After `---`: the rest of its line, if it holds
                    // content; else the document starts on the next line.
                    let after = at(&span.end);
                    let rest = text.get(after..).unwrap_or_default();
                    match rest.find('\n') {
                        Some(nl) if rest[..nl].trim().is_empty() => (after + nl + 1, line + 1),
                        _ => (after, line),
                    }
                });
            }
            Ok((Event::DocumentEnd, span)) => {
                let end = span.start.byte_offset().unwrap_or(text.len());
                // An implicit end ends where the next thing starts; keep the
                // text up to there (trailing comments are harmless).
                close(&mut open, end, &mut docs);
            }
            Ok((Event::StreamEnd, _)) => break,
            Ok(_) => {}
            Err(_) => {
                // A syntax error: this document's text runs to the next
                // boundary; parse_document reports the error with its line.
                if open.is_none() {
                    open = Some((0, 1));
                }
                if !parser.proceed_next_document().unwrap_or(false) {
                    break;
                }
            }
        }
    }
    close(&mut open, text.len(), &mut docs);
    docs.retain(|(_, d)| {
        d.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "..." && t != "---"
        })
    });
    docs
}

/// A document of a kind the mesh does not read, skipped on purpose (so a
/// directory of application manifests can be used as it is) but named, so
/// that nothing is dropped without a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line where the document starts.
    pub line: usize,
    /// Its `apiVersion/kind`.
    pub kind: String,
}

/// The documents of a file that [`parse_file`] skips, with their lines.
pub fn skipped(text: &str) -> Vec<Skipped> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    documents(&text)
        .into_iter()
        .filter(|(_, doc)| matches!(parse_document(doc), Ok(None)))
        .filter_map(|(line, doc)| {
            let meta: TypeMeta = serde_saphyr::from_str(&doc).ok()?;
            Some(Skipped {
                line,
                kind: format!("{}/{}", meta.api_version?, meta.kind?),
            })
        })
        .collect()
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
        if doc.len() > crate::bounds::DOCUMENT_BYTES {
            errors.push(ManifestError {
                file: file.to_string(),
                line: start,
                message: format!(
                    "the document is {} bytes, more than the {} a Kubernetes object may have",
                    doc.len(),
                    crate::bounds::DOCUMENT_BYTES
                ),
            });
            continue;
        }
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
        ("v1", "Pod") => Object::Pod(serde_saphyr::from_str(doc).map_err(located)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            Object::EndpointSlice(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (STRAIT_API_VERSION, "TrafficRoute") => {
            Object::TrafficRoute(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (STRAIT_API_VERSION, "DestinationPolicy") => {
            Object::DestinationPolicy(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (GATEWAY_API_VERSION, "HTTPRoute") => {
            Object::HttpRoute(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (GATEWAY_API_VERSION, "GRPCRoute") => {
            Object::GrpcRoute(serde_saphyr::from_str(doc).map_err(located)?)
        }
        (v, "HTTPRoute" | "GRPCRoute") if v.starts_with("gateway.networking.k8s.io/") => {
            return Err((
                1,
                format!(
                    "unsupported apiVersion {v:?} for {kind}; this Strait reads {GATEWAY_API_VERSION} (the standard channel since Gateway API v1.0 for HTTPRoute, v1.1 for GRPCRoute)"
                ),
            ));
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
    if json.len() > crate::bounds::DOCUMENT_BYTES {
        return Err(format!(
            "{kind}: {} bytes, more than the {} a Kubernetes object may have",
            json.len(),
            crate::bounds::DOCUMENT_BYTES
        ));
    }
    let err = |e: serde_json::Error| format!("{kind}: {e}");
    Ok(match kind {
        "Service" => Object::Service(serde_json::from_slice(json).map_err(err)?),
        "Pod" => Object::Pod(serde_json::from_slice(json).map_err(err)?),
        "EndpointSlice" => Object::EndpointSlice(serde_json::from_slice(json).map_err(err)?),
        "TrafficRoute" => Object::TrafficRoute(serde_json::from_slice(json).map_err(err)?),
        "DestinationPolicy" => {
            Object::DestinationPolicy(serde_json::from_slice(json).map_err(err)?)
        }
        "HTTPRoute" => Object::HttpRoute(serde_json::from_slice(json).map_err(err)?),
        "GRPCRoute" => Object::GrpcRoute(serde_json::from_slice(json).map_err(err)?),
        other => return Err(format!("unknown kind {other:?}")),
    })
}

/// The API group/version of Strait's CRDs.
pub const STRAIT_API_VERSION: &str = "strait.dev/v1alpha1";

#[cfg(test)]
mod tests;
