//! Leader election with a Kubernetes Lease.
//!
//! Every replica serves config streams; only the holder of the Lease writes
//! status, so two replicas never fight over an object's conditions. The
//! holder renews every 2 s; a Lease not renewed for 15 s may be taken over.
//! Updates use the Lease's resourceVersion, so two replicas racing for an
//! expired Lease cannot both win.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Seconds a Lease is valid without renewal.
pub const LEASE_SECONDS: i32 = 15;
const RENEW: Duration = Duration::from_secs(2);

/// What to do with the Lease we read. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ours: renew.
    Renew,
    /// Free or expired: take it.
    Acquire,
    /// Someone else holds it.
    Follow,
}

/// Decides from the Lease's holder and last renewal.
pub fn step(
    holder: Option<&str>,
    renewed: Option<Timestamp>,
    duration_s: i32,
    me: &str,
    now: Timestamp,
) -> Step {
    match (holder, renewed) {
        (Some(h), _) if h == me => Step::Renew,
        (Some(h), Some(t))
            if !h.is_empty()
                && now.duration_since(t) < SignedDuration::from_secs(i64::from(duration_s)) =>
        {
            Step::Follow
        }
        _ => Step::Acquire,
    }
}

/// Keeps `is_leader` current until the process ends.
pub async fn run(
    client: Client,
    namespace: String,
    name: String,
    me: String,
    is_leader: Arc<AtomicBool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    loop {
        let leading = match round(&api, &name, &me).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, lease = %format!("{namespace}/{name}"), "leader election failed; not writing status");
                false
            }
        };
        if is_leader.swap(leading, Ordering::AcqRel) != leading {
            tracing::info!(leading, replica = %me, "leadership changed");
        }
        tokio::time::sleep(RENEW).await;
    }
}

async fn round(api: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let lease = match api.get_opt(name).await? {
        Some(l) => l,
        None => {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.to_string()),
                    lease_duration_seconds: Some(LEASE_SECONDS),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        }
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let decision = step(
        spec.holder_identity.as_deref(),
        spec.renew_time.as_ref().map(|t| t.0),
        spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS),
        me,
        now,
    );
    if decision == Step::Follow {
        return Ok(false);
    }
    let mut next = lease.clone();
    let s = next.spec.get_or_insert_with(LeaseSpec::default);
    s.renew_time = Some(MicroTime(now));
    s.lease_duration_seconds = Some(LEASE_SECONDS);
    if decision == Step::Acquire {
        s.holder_identity = Some(me.to_string());
        s.acquire_time = Some(MicroTime(now));
        s.lease_transitions = Some(s.lease_transitions.unwrap_or(0) + 1);
    }
    // replace() sends the resourceVersion we read: a racing writer gets 409.
    match api.replace(name, &PostParams::default(), &next).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_table() {
        let now: Timestamp = "2026-11-26T08:00:00Z".parse().unwrap();
        let ago = |s: i64| Some(now - SignedDuration::from_secs(s));
        assert_eq!(step(Some("me"), ago(100), 15, "me", now), Step::Renew);
        assert_eq!(step(Some("other"), ago(5), 15, "me", now), Step::Follow);
        assert_eq!(
            step(Some("other"), ago(20), 15, "me", now),
            Step::Acquire,
            "expired"
        );
        assert_eq!(step(None, None, 15, "me", now), Step::Acquire);
        assert_eq!(
            step(Some(""), ago(1), 15, "me", now),
            Step::Acquire,
            "released"
        );
        assert_eq!(step(Some("other"), None, 15, "me", now), Step::Acquire);
    }
}
