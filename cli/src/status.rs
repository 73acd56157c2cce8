//! `strait proxy-status`: which config version every connected proxy runs,
//! as the control plane's config server records it.

use std::time::{SystemTime, UNIX_EPOCH};
use strait_api::wire::config_discovery_client::ConfigDiscoveryClient;
use strait_api::wire::{ProxyInfo, ProxyStatusRequest, ProxyStatusResponse};

/// A proxy's sync state, in words. Pure.
pub fn sync_state(p: &ProxyInfo, latest: u64) -> String {
    if p.nacked_version > p.acked_version {
        format!("NACKED v{}: {}", p.nacked_version, p.last_nack)
    } else if p.acked_version >= latest {
        "SYNCED".to_string()
    } else if p.sent_version > p.acked_version {
        format!("APPLYING v{}", p.sent_version)
    } else {
        "STALE".to_string()
    }
}

fn age(since: u64, now: u64) -> String {
    let s = now.saturating_sub(since);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// How the control plane knows who a proxy is, in a word. Pure.
/// `mtls`: its certificate proves it; `verified`: the Pod it named runs as
/// the service account it said; `unverified`: nothing to check against.
pub fn identity(p: &ProxyInfo) -> &'static str {
    match (p.proven, p.verified) {
        (true, _) => "mtls",
        (false, true) => "verified",
        (false, false) => "unverified",
    }
}

/// Formats the status table. Pure given `now`.
pub fn render(r: &ProxyStatusResponse, now: u64) -> String {
    let mut out = format!(
        "control plane {} publishes v{}\n\n",
        r.replica, r.latest_version
    );
    out.push_str(&format!(
        "{:<40} {:<16} {:<10} {:>8} {:<10} {:<22} {}\n",
        "PROXY", "SERVICE ACCOUNT", "IDENTITY", "VERSION", "CONNECTED", "PEER", "STATUS"
    ));
    let mut proxies = r.proxies.clone();
    proxies.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    for p in &proxies {
        out.push_str(&format!(
            "{:<40} {:<16} {:<10} {:>8} {:<10} {:<22} {}\n",
            format!("{}/{}", p.namespace, p.pod),
            p.service_account,
            identity(p),
            format!("v{}", p.acked_version),
            age(p.connected_since, now),
            p.peer,
            sync_state(p, r.latest_version)
        ));
    }
    if proxies.is_empty() {
        out.push_str("(no proxy connected)\n");
    }
    out
}

/// Asks the control plane and prints the table.
pub async fn run(addr: &str) -> anyhow::Result<()> {
    let mut client = ConfigDiscoveryClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the control plane at {addr}: {e}"))?;
    let r = client
        .proxy_status(ProxyStatusRequest {})
        .await?
        .into_inner();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    print!("{}", render(&r, now));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(acked: u64, sent: u64, nacked: u64) -> ProxyInfo {
        ProxyInfo {
            namespace: "shop".into(),
            pod: "web-0".into(),
            acked_version: acked,
            sent_version: sent,
            nacked_version: nacked,
            last_nack: "bad".into(),
            connected_since: 100,
            ..ProxyInfo::default()
        }
    }

    #[test]
    fn states() {
        assert_eq!(sync_state(&p(5, 5, 0), 5), "SYNCED");
        assert_eq!(sync_state(&p(4, 5, 0), 5), "APPLYING v5");
        assert_eq!(sync_state(&p(4, 4, 0), 5), "STALE");
        assert_eq!(sync_state(&p(4, 5, 5), 5), "NACKED v5: bad");
        assert_eq!(
            sync_state(&p(6, 6, 5), 6),
            "SYNCED",
            "a later ACK clears an old NACK"
        );
        let table = render(
            &ProxyStatusResponse {
                proxies: vec![p(5, 5, 0)],
                latest_version: 5,
                replica: "cp-0".into(),
            },
            3700,
        );
        assert!(
            table.contains("shop/web-0") && table.contains("SYNCED") && table.contains("60m"),
            "{table}"
        );
        assert!(table.contains(" unverified "), "{table}");
        let verified = ProxyInfo {
            verified: true,
            ..p(5, 5, 0)
        };
        let table = render(
            &ProxyStatusResponse {
                proxies: vec![verified],
                latest_version: 5,
                replica: "cp-0".into(),
            },
            3700,
        );
        assert!(table.contains(" verified "), "{table}");
        let proven = ProxyInfo {
            verified: true,
            proven: true,
            ..p(5, 5, 0)
        };
        assert_eq!(identity(&proven), "mtls");
    }
}
