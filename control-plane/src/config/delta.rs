//! What a version is made of: object keys, their JSON, and the delta from
//! one version to the next. A leaf: the store produces deltas, the scope
//! narrows them, the views and parts encode them.

/// An object's key (`strait_api::manifest::ObjectKey`: kind, namespace,
/// name), the same type the proxy and the status writer use.
pub type Key = strait_api::manifest::ObjectKey;

/// An object as JSON (UTF-8), shared: the store, every version's delta, the
/// full sets and every stream's messages hold the same bytes.
pub type Json = bytes::Bytes;

/// One change to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    /// The version this delta brings a proxy to.
    pub version: u64,
    /// New or changed objects (key, JSON).
    pub upserts: Vec<(Key, Json)>,
    /// Removed objects.
    pub removals: Vec<Key>,
}
