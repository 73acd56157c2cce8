//! The mesh TLS line of `strait stat`: per direction, the share of
//! requests that crossed mesh TLS and the identities on the other end,
//! from the proxies' `strait_mesh_requests_total` increases. Pure.

use super::table::Direction;
use crate::prom::Sample;
use std::collections::BTreeMap;

/// One direction's mesh TLS over the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// `outbound` or `inbound`.
    pub direction: String,
    /// Requests in the interval.
    pub requests: f64,
    /// Of those, over mesh TLS.
    pub mtls: f64,
    /// The other proxies' identities, with their request counts.
    pub peers: BTreeMap<String, f64>,
}

/// The mesh TLS share per direction, from the [`super::table::deltas`]
/// of every proxy.
pub fn shares(deltas: &[Sample], direction: Direction) -> Vec<Share> {
    let mut out: BTreeMap<String, Share> = BTreeMap::new();
    for s in deltas
        .iter()
        .filter(|s| s.name == "strait_mesh_requests_total")
    {
        let dir = s.label("direction");
        let wanted = match direction {
            Direction::All => true,
            Direction::Outbound => dir == "outbound",
            Direction::Inbound => dir == "inbound",
        };
        if !wanted {
            continue;
        }
        let e = out.entry(dir.to_string()).or_insert_with(|| Share {
            direction: dir.to_string(),
            requests: 0.0,
            mtls: 0.0,
            peers: BTreeMap::new(),
        });
        e.requests += s.value;
        if s.label("tls") == "true" {
            e.mtls += s.value;
            if s.value > 0.0 {
                *e.peers
                    .entry(s.label("peer_identity").to_string())
                    .or_default() += s.value;
            }
        }
    }
    out.into_values().filter(|s| s.requests > 0.0).collect()
}

/// One line per direction: `MTLS outbound 100.0% of 420 requests (to …)`.
pub fn render(shares: &[Share]) -> String {
    let mut out = String::new();
    for s in shares {
        let to = if s.direction == "outbound" {
            "to"
        } else {
            "from"
        };
        let peers: Vec<&str> = s.peers.keys().map(String::as_str).collect();
        let peers = if peers.is_empty() {
            String::new()
        } else {
            format!(" ({to} {})", peers.join(", "))
        };
        out.push_str(&format!(
            "MTLS     {:<8} {:.1}% of {} requests{peers}\n",
            s.direction,
            100.0 * s.mtls / s.requests,
            s.requests
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_per_direction_with_peers() {
        let deltas = crate::prom::parse(
            "strait_mesh_requests_total{direction=\"outbound\",tls=\"true\",peer_identity=\"spiffe://cluster.local/ns/shop/sa/web\"} 90\n\
             strait_mesh_requests_total{direction=\"outbound\",tls=\"false\",peer_identity=\"\"} 10\n\
             strait_mesh_requests_total{direction=\"outbound\",tls=\"true\",peer_identity=\"spiffe://cluster.local/ns/shop/sa/db\"} 0\n\
             strait_mesh_requests_total{direction=\"inbound\",tls=\"true\",peer_identity=\"spiffe://cluster.local/ns/shop/sa/client\"} 4\n",
        );
        let all = shares(&deltas, Direction::All);
        assert_eq!(all.len(), 2);
        let out = all.iter().find(|s| s.direction == "outbound").unwrap();
        assert_eq!((out.requests, out.mtls), (100.0, 90.0));
        assert_eq!(
            out.peers.keys().collect::<Vec<_>>(),
            ["spiffe://cluster.local/ns/shop/sa/web"],
            "a peer without requests in the interval is not named"
        );
        let text = render(&all);
        assert!(
            text.contains(
                "MTLS     outbound 90.0% of 100 requests (to spiffe://cluster.local/ns/shop/sa/web)"
            ),
            "{text}"
        );
        assert!(
            text.contains("MTLS     inbound  100.0% of 4 requests (from spiffe://cluster.local/ns/shop/sa/client)"),
            "{text}"
        );
        assert_eq!(shares(&deltas, Direction::Inbound).len(), 1);
        // Quiet: no line at all.
        assert!(shares(&[], Direction::All).is_empty());
    }
}
