//! What the controller makes at run time (its leader-election Lease, the
//! webhook's Secret, a trust anchor it generated) belongs to its Deployment: an owner reference on each
//! lets the garbage collector delete them with the Deployment, so `helm
//! uninstall` leaves nothing but the CRDs behind. Without a Deployment (the
//! controller run by hand, in tests) nothing is adopted.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;

/// Adopts the Lease and the Secret until both carry the owner reference.
pub async fn run(
    client: kube::Client,
    namespace: String,
    deployment: String,
    lease: String,
    secret: String,
) {
    loop {
        let done = match adopt(&client, &namespace, &deployment, &lease, &secret).await {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!("adopting the Lease and Secret: {e}");
                false
            }
        };
        tokio::time::sleep(if done {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(5)
        })
        .await;
    }
}

async fn adopt(
    client: &kube::Client,
    ns: &str,
    deployment: &str,
    lease: &str,
    secret: &str,
) -> Result<bool, kube::Error> {
    let Some(owner) = reference(client, ns, deployment).await? else {
        return Ok(false);
    };
    let a = ensure::<Lease>(client, ns, lease, &owner).await?;
    let b = ensure::<Secret>(client, ns, secret, &owner).await?;
    Ok(a && b)
}

/// The owner reference to Deployment `ns/deployment`, if it exists and is
/// not being deleted: what an object the controller creates carries from
/// the start, so that one re-created between two adoption rounds is not
/// left behind. `None` while `helm uninstall` removes the Deployment: the
/// caller must then not create the object at all (a replica still
/// terminating would otherwise leave an orphan behind).
pub async fn reference(
    client: &kube::Client,
    ns: &str,
    deployment: &str,
) -> Result<Option<OwnerReference>, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let uid = deployments
        .get_opt(deployment)
        .await?
        .filter(|d| d.metadata.deletion_timestamp.is_none())
        .and_then(|d| d.metadata.uid);
    Ok(uid.map(|uid| OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: deployment.into(),
        uid,
        ..OwnerReference::default()
    }))
}

async fn ensure<K>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    owner: &OwnerReference,
) -> Result<bool, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let refs = obj.meta().owner_references.clone().unwrap_or_default();
    if refs.iter().any(|r| r.uid == owner.uid) {
        return Ok(true);
    }
    let mut refs: Vec<_> = refs
        .into_iter()
        .filter(|r| r.kind != "Deployment" || r.name != owner.name)
        .collect();
    refs.push(owner.clone());
    let patch = serde_json::json!({"metadata": {"ownerReferences": refs}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(kind = K::kind(&()).as_ref(), %name, "now owned by Deployment {}", owner.name);
    Ok(true)
}
