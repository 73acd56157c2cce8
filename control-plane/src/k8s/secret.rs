//! The Secrets the controller writes (the webhook's certificates, the
//! mesh's trust anchor): PEM text under named keys, labelled as Strait's.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;

/// A Secret `name` of type `type_` holding each `(key, pem)`.
pub fn with_pems(name: &str, type_: &str, entries: &[(&str, &str)]) -> Secret {
    let data: BTreeMap<String, ByteString> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app.kubernetes.io/part-of".to_owned(), "strait".to_owned())].into()),
            ..Default::default()
        },
        type_: Some(type_.into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The text under `key`, if there is valid UTF-8 there.
pub fn text(s: &Secret, key: &str) -> Option<String> {
    let b = s.data.as_ref()?.get(key)?;
    String::from_utf8(b.0.clone()).ok()
}
