//! Keeps the webhook's certificate and its MutatingWebhookConfiguration in
//! step, every 30 seconds and at once when the Secret changes (every
//! replica watches it, so a replaced certificate is served by all of them
//! within a moment, not one round later):
//!
//! 1. the Secret (`tls.crt`, `tls.key`, `ca.crt`, `ca.key`) exists:
//!    if not, any replica creates it with a new CA and serving certificate
//!    (a replica that loses the race reads the winner's);
//! 2. the serving certificate is renewed by the leader once less than a
//!    third of its life is left, signed by the same CA, so the API server's
//!    trust does not change;
//! 3. the listener serves what the Secret holds (replicas converge on the
//!    leader's renewal);
//! 4. every webhook of the configuration carries the CA as `caBundle`
//!    (a `helm upgrade` that rewrote it is repaired within one round).

use super::certs::{self, Pem};
use super::tls::Resolver;
use crate::k8s::secret;
use base64::Engine;
use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the webhook's pieces live.
#[derive(Debug, Clone)]
pub struct Target {
    /// The controller's namespace (Secret, Service).
    pub namespace: String,
    /// The Secret holding the certificates.
    pub secret: String,
    /// The webhook Service (its DNS names go into the certificate).
    pub service: String,
    /// The MutatingWebhookConfiguration whose `caBundle` is kept.
    pub configuration: String,
    /// The controller's Deployment, owner of a Secret created here.
    pub owner: Option<String>,
}

/// Why a round failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API server refused or was unreachable.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A certificate could not be made or read.
    #[error("{0}")]
    Cert(#[from] certs::CertError),
    /// The listener could not load the certificate.
    #[error("loading the certificate: {0}")]
    Load(String),
}

/// Runs the rounds until the process ends.
pub async fn run(
    client: kube::Client,
    target: Target,
    resolver: Arc<Resolver>,
    leading: Arc<AtomicBool>,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={}", target.secret));
    let mut changes = watcher::watcher(secrets, only_ours).boxed();
    loop {
        let wait = match round(&client, &target, &resolver, leading.load(Ordering::Acquire)).await {
            Ok(()) => Duration::from_secs(30),
            Err(e) => {
                tracing::warn!(secret = %target.secret, "webhook certificate: {e}; retrying");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // Any event (a change, a deletion, the watch restarting) is a
            // reason to look now; errors are retried by the watcher itself.
            _ = changes.next() => {}
        }
    }
}

fn to_secret(name: &str, ca: &Pem, tls: &Pem) -> Secret {
    // Opaque, not kubernetes.io/tls: it also holds the CA and its key,
    // which that type does not describe. The controller's Deployment owns
    // it (k8s/owner.rs), so `helm uninstall` removes it.
    secret::with_pems(
        name,
        "Opaque",
        &[
            ("ca.crt", &ca.cert),
            ("ca.key", &ca.key),
            ("tls.crt", &tls.cert),
            ("tls.key", &tls.key),
        ],
    )
}

async fn round(
    client: &kube::Client,
    t: &Target,
    resolver: &Resolver,
    leading: bool,
) -> Result<(), ReconcileError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &t.namespace);
    let now = time::OffsetDateTime::now_utc();
    let names = certs::dns_names(&t.service, &t.namespace);
    let existing = secrets.get_opt(&t.secret).await?;
    let pems = existing.as_ref().and_then(|s| {
        Some((
            Pem {
                cert: secret::text(s, "ca.crt")?,
                key: secret::text(s, "ca.key")?,
            },
            Pem {
                cert: secret::text(s, "tls.crt")?,
                key: secret::text(s, "tls.key")?,
            },
        ))
    });
    let (ca, tls) = match (existing, pems) {
        (Some(mut secret), Some((ca, tls))) => {
            if leading && certs::renewal_due(certs::validity(&tls.cert)?, now.unix_timestamp()) {
                let renewed = certs::issue(&ca, &names, now)?;
                let fresh = to_secret(&t.secret, &ca, &renewed);
                secret.data = fresh.data;
                // resourceVersion guards against a concurrent writer.
                secrets
                    .replace(&t.secret, &PostParams::default(), &secret)
                    .await?;
                tracing::info!(secret = %t.secret, "webhook serving certificate renewed");
                (ca, renewed)
            } else {
                (ca, tls)
            }
        }
        (existing, _) => {
            let ca = certs::new_ca(now)?;
            let tls = certs::issue(&ca, &names, now)?;
            let secret = to_secret(&t.secret, &ca, &tls);
            let done = match existing {
                // Unreadable: replace it whole (the leader only).
                Some(old) if leading => {
                    let mut s = secret;
                    s.metadata.resource_version = old.metadata.resource_version;
                    secrets
                        .replace(&t.secret, &PostParams::default(), &s)
                        .await
                        .map(|_| ())
                }
                Some(_) => return Ok(()),
                None => {
                    let mut s = secret;
                    if let Some(owner) = &t.owner {
                        let Some(r) =
                            crate::k8s::owner::reference(client, &t.namespace, owner).await?
                        else {
                            tracing::info!(secret = %t.secret, "not creating the webhook Secret: Deployment {owner} is gone (uninstalling)");
                            return Ok(());
                        };
                        s.metadata.owner_references = Some(vec![r]);
                    }
                    secrets.create(&PostParams::default(), &s).await.map(|_| ())
                }
            };
            match done {
                Ok(()) => tracing::info!(secret = %t.secret, "webhook certificate created"),
                // Another replica created it first: use theirs next round.
                Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            (ca, tls)
        }
    };
    if resolver
        .set(&tls.cert, &tls.key)
        .map_err(ReconcileError::Load)?
    {
        tracing::info!("webhook serving certificate loaded");
    }
    ensure_ca_bundle(client, t, &ca.cert).await
}

async fn ensure_ca_bundle(
    client: &kube::Client,
    t: &Target,
    ca_pem: &str,
) -> Result<(), ReconcileError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(cfg) = api.get_opt(&t.configuration).await? else {
        tracing::debug!(configuration = %t.configuration, "no webhook configuration (yet)");
        return Ok(());
    };
    let want = ByteString(ca_pem.as_bytes().to_vec());
    let ops: Vec<serde_json::Value> = cfg
        .webhooks
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter(|(_, w)| w.client_config.ca_bundle.as_ref() != Some(&want))
        .map(|(i, _)| {
            serde_json::json!({
                "op": "add",
                "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                "value": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            })
        })
        .collect();
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| ReconcileError::Load(e.to_string()))?;
    api.patch(
        &t.configuration,
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await?;
    tracing::info!(configuration = %t.configuration, "caBundle set");
    Ok(())
}
