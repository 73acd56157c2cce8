//! Where the trust anchor lives: a Secret in the controller's namespace,
//! laid out as cert-manager writes one (`tls.crt` and `tls.key` for the
//! issuer, `ca.crt` for the roots). A user can supply their own through the
//! Helm chart; otherwise the first controller to start creates one, and
//! every replica reads the same (a create that loses the race reads the
//! winner's).

use super::ca::{AnchorPem, CaError, new_anchor};
use crate::k8s::secret;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

/// Why no anchor could be had.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The API server failed.
    #[error("trust anchor Secret: {0}")]
    Kube(#[from] kube::Error),
    /// The Secret exists but lacks a key or holds something else.
    #[error("trust anchor Secret {0}: {1}")]
    Invalid(String, String),
    /// A new anchor could not be made.
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// Reads a Secret's anchor.
pub fn from_secret(s: &Secret) -> Result<AnchorPem, AnchorError> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let get = |key: &str| {
        secret::text(s, key).ok_or_else(|| AnchorError::Invalid(name.clone(), format!("no {key}")))
    };
    Ok(AnchorPem {
        issuer_cert: get("tls.crt")?,
        issuer_key: get("tls.key")?,
        roots: get("ca.crt")?,
    })
}

fn to_secret(name: &str, a: &AnchorPem) -> Secret {
    secret::with_pems(
        name,
        "kubernetes.io/tls",
        &[
            ("tls.crt", &a.issuer_cert),
            ("tls.key", &a.issuer_key),
            ("ca.crt", &a.roots),
        ],
    )
}

/// The anchor in Secret `namespace/name`, created (a new root and issuer)
/// when there is none and `create` allows it.
///
/// A created Secret is owned by Deployment `owner` (the controller's own),
/// so `helm uninstall` removes it with the rest; a user's own Secret is
/// never touched.
pub async fn load_or_create(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    trust_domain: &str,
    owner: Option<&str>,
    create: bool,
) -> Result<AnchorPem, AnchorError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(s) = secrets.get_opt(name).await? {
        return from_secret(&s);
    }
    if !create {
        return Err(AnchorError::Invalid(
            name.into(),
            "not found; create it (cert-manager, or kubectl create secret generic with tls.crt, tls.key and ca.crt)".into(),
        ));
    }
    let fresh = new_anchor(time::OffsetDateTime::now_utc(), trust_domain)?;
    let mut secret = to_secret(name, &fresh);
    if let Some(owner) = owner {
        let Some(r) = crate::k8s::owner::reference(client, namespace, owner).await? else {
            return Err(AnchorError::Invalid(
                name.into(),
                format!("not created: Deployment {owner} is gone (uninstalling)"),
            ));
        };
        secret.metadata.owner_references = Some(vec![r]);
    }
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %name, "created the mesh's trust anchor");
            Ok(fresh)
        }
        // Another replica created it first: use theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => from_secret(&secrets.get(name).await?),
        Err(e) => Err(e.into()),
    }
}
