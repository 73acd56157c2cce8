//! Who a proxy is: the Pods the source has seen, and the check of a
//! proxy's Hello against them. Pure.
//!
//! Pods are never sent to proxies; the index keeps only what identity (and,
//! later, endpoint metadata) needs, a few hundred bytes per Pod, so a large
//! cluster's Pods do not cost the controller their full objects.
//!
//! A Hello naming a Pod the index knows must claim that Pod's service
//! account, or the stream is refused. A Pod the index does not know (not
//! seen yet, or `--local` mode where there are no Pods) is let in, and so is
//! a Hello that claims no service account (a tool such as `strait explain`);
//! both are recorded as unverified. Over mTLS the proxy's certificate
//! proves its namespace and ServiceAccount ([`prove`]): a Hello claiming
//! others is refused, and `strait proxy-status` shows the identity as
//! proven; without a certificate a Hello is a claim, checked against the
//! Pods where it can be.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// What the control plane keeps of one Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// `spec.serviceAccountName` (`default` when unset, as Kubernetes does).
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    /// `status.podIP`, once assigned.
    pub ip: Option<IpAddr>,
    /// `status.phase` (`Pending`, `Running`, …; empty when not reported).
    pub phase: String,
}

/// Every Pod the source has seen, by namespace and name.
#[derive(Debug, Default)]
pub struct Pods {
    by_name: HashMap<(String, String), Pod>,
}

impl Pods {
    /// Records the latest version of a Pod.
    pub fn upsert(&mut self, pod: Pod) {
        self.by_name
            .insert((pod.namespace.clone(), pod.name.clone()), pod);
    }

    /// Records that a Pod is gone.
    pub fn remove(&mut self, namespace: &str, name: &str) {
        self.by_name
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Replaces every Pod (after the watcher's initial list or a relist).
    pub fn replace_all(&mut self, pods: Vec<Pod>) {
        self.by_name = pods
            .into_iter()
            .map(|p| ((p.namespace.clone(), p.name.clone()), p))
            .collect();
    }

    /// One Pod.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.by_name.get(&(namespace.to_string(), name.to_string()))
    }

    /// How many Pods are known.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no Pod is known.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Why a Hello is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The Pod exists and runs as another service account.
    #[error(
        "pod {namespace}/{pod} runs as service account {actual}, the proxy said {claimed}: \
         start the proxy with the pod's service account (STRAIT_SERVICE_ACCOUNT, --service-account)"
    )]
    WrongServiceAccount {
        /// The Pod's namespace.
        namespace: String,
        /// The Pod's name.
        pod: String,
        /// The Pod's service account.
        actual: String,
        /// What the Hello said.
        claimed: String,
    },
    /// The Hello claims another identity than the client certificate.
    #[error(
        "the proxy's certificate is {certified}, but its Hello claims namespace/service account {claimed}"
    )]
    NotCertified {
        /// What the certificate proves.
        certified: String,
        /// What the Hello said.
        claimed: String,
    },
}

/// Checks a Hello against the identity its connection's certificate
/// proves: the same namespace and ServiceAccount, or refused.
pub fn prove(
    certified: &strait_api::identity::SpiffeId,
    trust_domain: &str,
    namespace: &str,
    service_account: &str,
) -> Result<(), IdentityError> {
    if certified.trust_domain == trust_domain
        && certified.namespace == namespace
        && certified.service_account == service_account
    {
        return Ok(());
    }
    Err(IdentityError::NotCertified {
        certified: certified.to_string(),
        claimed: format!("{namespace}/{service_account}"),
    })
}

/// Checks a Hello's identity against the Pods: `Ok(true)` when the Pod is
/// known and its service account matches, `Ok(false)` when there is nothing
/// to check against (unknown Pod, no claim), an error on a mismatch.
pub fn verify(
    pods: &Pods,
    namespace: &str,
    pod: &str,
    service_account: &str,
) -> Result<bool, IdentityError> {
    let Some(known) = pods.get(namespace, pod) else {
        return Ok(false);
    };
    if service_account.is_empty() {
        return Ok(false);
    }
    if known.service_account != service_account {
        return Err(IdentityError::WrongServiceAccount {
            namespace: namespace.into(),
            pod: pod.into(),
            actual: known.service_account.clone(),
            claimed: service_account.into(),
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> Pods {
        let mut p = Pods::default();
        p.upsert(Pod {
            namespace: "shop".into(),
            name: "web-1".into(),
            service_account: "web".into(),
            labels: BTreeMap::new(),
            ip: "10.0.0.7".parse().ok(),
            phase: "Running".into(),
        });
        p
    }

    #[test]
    fn hello_against_pods() {
        let p = pods();
        let table: &[(&str, &str, &str, Result<bool, &str>)] = &[
            ("shop", "web-1", "web", Ok(true)),
            (
                "shop",
                "web-1",
                "api",
                Err("pod shop/web-1 runs as service account web, the proxy said api: "),
            ),
            ("shop", "web-2", "api", Ok(false)),  // unknown pod
            ("other", "web-1", "api", Ok(false)), // same name, other namespace
            ("shop", "web-1", "", Ok(false)),     // no claim (strait explain)
        ];
        for (ns, pod, sa, want) in table {
            let got = verify(&p, ns, pod, sa).map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{ns}/{pod} as {sa}"),
                (Err(w), Err(g)) => assert!(g.starts_with(w), "{g}"),
                _ => panic!("{ns}/{pod} as {sa}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn index_follows_the_source() {
        let mut p = pods();
        assert_eq!(p.len(), 1);
        p.remove("shop", "web-1");
        assert!(p.is_empty());
        p.replace_all(vec![pods().get("shop", "web-1").cloned().unwrap()]);
        assert!(p.get("shop", "web-1").is_some());
    }

    #[test]
    fn a_certificate_proves_only_its_own_identity() {
        let web = strait_api::identity::SpiffeId::new("cluster.local", "shop", "web");
        assert_eq!(prove(&web, "cluster.local", "shop", "web"), Ok(()));
        for (td, ns, sa) in [
            ("cluster.local", "shop", "db"),
            ("cluster.local", "other", "web"),
            ("cluster.local", "shop", ""),
            ("other.mesh", "shop", "web"),
        ] {
            assert!(
                matches!(
                    prove(&web, td, ns, sa),
                    Err(IdentityError::NotCertified { .. })
                ),
                "{td} {ns}/{sa}"
            );
        }
    }
}
