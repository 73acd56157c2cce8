//! Asking the API server who a token belongs to (TokenReview), for the
//! identity service's audience only. The API server checks the signature,
//! the expiry, the audience, and that the pod and ServiceAccount it is bound
//! to still exist.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use strait_api::identity::SpiffeId;

/// Why a token grants no identity.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The API server did not accept it; its reason (expired, wrong
    /// audience, bad signature, deleted pod) is kept.
    #[error("token refused: {0}")]
    Refused(String),
    /// The token is for a user that is not a ServiceAccount.
    #[error("token refused: {0}")]
    NotServiceAccount(String),
    /// The API server could not be asked.
    #[error("cannot review the token: {0}")]
    Unavailable(#[from] kube::Error),
}

/// Largest token read (a projected token is about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The identity `token` grants, if the API server accepts it for
/// `audience`.
pub async fn review(
    client: &kube::Client,
    token: &str,
    audience: &str,
    trust_domain: &str,
) -> Result<SpiffeId, TokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Refused(format!(
            "a token of {} bytes",
            token.len()
        )));
    }
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: Some(vec![audience.to_owned()]),
        },
        ..Default::default()
    };
    let status = reviews
        .create(&PostParams::default(), &review)
        .await?
        .status
        .unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(TokenError::Refused(
            status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    // The API server answers with the audiences the token is valid for; it
    // must include ours (an empty list means the server's own audience).
    let audiences = status.audiences.unwrap_or_default();
    if !audiences.iter().any(|a| a == audience) {
        return Err(TokenError::Refused(format!(
            "the token is for audiences {audiences:?}, not {audience:?}"
        )));
    }
    let username = status.user.and_then(|u| u.username).unwrap_or_default();
    SpiffeId::from_username(trust_domain, &username)
        .map_err(|e| TokenError::NotServiceAccount(e.to_string()))
}
