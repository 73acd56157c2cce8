//! Leader election with a Kubernetes Lease.
//!
//! Every replica serves config streams; only the holder of the Lease writes
//! status (and renews the webhook's certificate), so two replicas never
//! fight over an object. The holder renews every 2 s; a Lease whose record
//! has not changed for 15 s may be taken over. Updates use the Lease's
//! resourceVersion, so two replicas racing for it cannot both win.
//!
//! Time is never compared across machines: like client-go's leader
//! election, a replica notes *on its own monotonic clock* when it last saw
//! the Lease's record change (holder, renew time, resourceVersion), and the
//! Lease is expired when that observed record has been still for the lease
//! duration. The `renewTime` written is for people reading the Lease; with
//! clock skew between nodes, comparing it with the local clock made two
//! leaders, or none.
//!
//! On shutdown the holder releases the Lease (empty holder), so a planned
//! restart hands over at once instead of after 15 s.
//!
//! (Written here rather than taken from a crate: the logic is the pure
//! [`step`] below and one read-modify-replace; `kube-leader-election` and
//! `kube-lease-manager` could not be checked against kube 5 here.)

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Seconds a Lease is valid without renewal.
pub const LEASE_SECONDS: i32 = 15;
const RENEW: Duration = Duration::from_secs(2);

/// What to do with the Lease we read. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ours: renew.
    Renew,
    /// Free, released or expired: take it.
    Acquire,
    /// Someone else holds it.
    Follow,
}

/// Decides from the Lease's holder and how long (on this replica's clock)
/// its record has not changed.
pub fn step(holder: Option<&str>, unchanged_for: Duration, lease: Duration, me: &str) -> Step {
    match holder {
        Some(h) if h == me => Step::Renew,
        Some(h) if !h.is_empty() && unchanged_for < lease => Step::Follow,
        _ => Step::Acquire,
    }
}

/// The last Lease record this replica saw, and when it first saw it.
#[derive(Debug, Default)]
pub struct Observed {
    record: String,
    since: Option<Instant>,
}

impl Observed {
    /// Notes the record read at `now`; returns how long it has been the same.
    pub fn note(&mut self, record: String, now: Instant) -> Duration {
        if self.since.is_none() || record != self.record {
            self.record = record;
            self.since = Some(now);
        }
        now.saturating_duration_since(self.since.unwrap_or(now))
    }
}

/// Keeps `is_leader` current until `stop` fires; then releases the Lease
/// if this replica holds it.
pub async fn run(
    client: Client,
    namespace: String,
    name: String,
    me: String,
    is_leader: Arc<AtomicBool>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let mut observed = Observed::default();
    let mut stop = stop;
    loop {
        let leading = match round(&api, &name, &me, &mut observed).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, lease = %format!("{namespace}/{name}"), "leader election failed; not writing status");
                false
            }
        };
        if is_leader.swap(leading, Ordering::AcqRel) != leading {
            tracing::info!(leading, replica = %me, "leadership changed");
        }
        tokio::select! {
            _ = tokio::time::sleep(RENEW) => {}
            _ = stop.changed() => {
                is_leader.store(false, Ordering::Release);
                if leading {
                    match release(&api, &name, &me).await {
                        Ok(()) => tracing::info!(replica = %me, "Lease released"),
                        Err(e) => tracing::warn!(error = %e, "could not release the Lease; another replica takes over after 15 s"),
                    }
                }
                return;
            }
        }
    }
}

/// Gives the Lease up: no holder, so the next replica to look takes it.
async fn release(api: &Api<Lease>, name: &str, me: &str) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(me) {
        return Ok(());
    }
    spec.holder_identity = Some(String::new());
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

async fn round(
    api: &Api<Lease>,
    name: &str,
    me: &str,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
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
    let record = format!(
        "{:?}|{:?}|{:?}",
        spec.holder_identity,
        spec.renew_time.as_ref().map(|t| t.0),
        lease.metadata.resource_version
    );
    let unchanged_for = observed.note(record, Instant::now());
    let lease_for = Duration::from_secs(
        u64::try_from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS)).unwrap_or(15),
    );
    let decision = step(
        spec.holder_identity.as_deref(),
        unchanged_for,
        lease_for,
        me,
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
        let lease = Duration::from_secs(15);
        let s = |n| Duration::from_secs(n);
        assert_eq!(step(Some("me"), s(100), lease, "me"), Step::Renew);
        assert_eq!(step(Some("other"), s(5), lease, "me"), Step::Follow);
        assert_eq!(
            step(Some("other"), s(15), lease, "me"),
            Step::Acquire,
            "still for a lease duration"
        );
        assert_eq!(step(None, s(0), lease, "me"), Step::Acquire);
        assert_eq!(
            step(Some(""), s(0), lease, "me"),
            Step::Acquire,
            "released: at once"
        );
    }

    /// Clock skew cannot matter: only changes of the record, timed on this
    /// replica's clock, do. A holder renewing with a wildly wrong clock is
    /// still followed; one that stopped is taken over a lease later.
    #[test]
    fn observed_record_not_renew_time() {
        let lease = Duration::from_secs(15);
        let t0 = Instant::now();
        let mut o = Observed::default();
        // The holder's clock is a year off; it renews every 2 s.
        for i in 0..20u64 {
            let record = format!("other|2027-12-01T00:00:{i:02}Z|rv{i}");
            let still = o.note(record, t0 + Duration::from_secs(2 * i));
            assert_eq!(
                step(Some("other"), still, lease, "me"),
                Step::Follow,
                "renewing holder, round {i}"
            );
        }
        // It stops renewing: the same record for 15 s on our clock.
        let last = "other|2027-12-01T00:00:19Z|rv19".to_string();
        let at = t0 + Duration::from_secs(38);
        assert_eq!(
            step(
                Some("other"),
                o.note(last.clone(), at + Duration::from_secs(14)),
                lease,
                "me"
            ),
            Step::Follow
        );
        assert_eq!(
            step(
                Some("other"),
                o.note(last, at + Duration::from_secs(15)),
                lease,
                "me"
            ),
            Step::Acquire
        );
        // A replica that just started has seen nothing change yet: it waits.
        let mut fresh = Observed::default();
        assert_eq!(
            step(
                Some("other"),
                fresh.note("other|1999-01-01T00:00:00Z|rv1".into(), at),
                lease,
                "me"
            ),
            Step::Follow,
            "a renew time long past does not mean expired"
        );
    }
}
