//! A version as it goes on the wire: parts of bounded size (pure).

use super::delta::{Delta, Key};
use std::sync::Arc;
use strait_api::wire::{ConfigUpdate, Resource, ResourceKey};

/// Largest JSON payload in one part of a version (an object larger than
/// this goes alone). tonic keeps a stream's encode buffer at the size of the
/// largest message it encoded, for the stream's life, so bounding the parts
/// (and yielding each message at once, `strait_api::codec`) bounds the
/// controller's memory per proxy: one 1.8 MiB full state per stream cost
/// ~2 GB at 1,000 proxies before parts existed, 32 KiB parts gathered into
/// 32 KiB writes ~170 KB per proxy (docs/benchmarks.md).
pub const PART_BYTES: usize = 16 * 1024;

/// One version as the parts that go on the wire (pure). Every part carries
/// the version and `full`; all but the last have `more`.
pub fn to_parts(d: &Delta, full: bool) -> Vec<ConfigUpdate> {
    let key = |k: &Key| ResourceKey {
        kind: k.kind.clone(),
        namespace: k.namespace.clone(),
        name: k.name.clone(),
    };
    let empty = || ConfigUpdate {
        version: d.version,
        full,
        ..ConfigUpdate::default()
    };
    let mut parts = vec![empty()];
    let mut size = 0;
    for (k, json) in &d.upserts {
        if size > 0 && size + json.len() > PART_BYTES {
            parts.push(empty());
            size = 0;
        }
        size += json.len();
        if let Some(p) = parts.last_mut() {
            p.upserts.push(Resource {
                key: Some(key(k)),
                json: json.clone(),
            });
        }
    }
    if let Some(p) = parts.last_mut() {
        p.removals = d.removals.iter().map(key).collect();
    }
    let n = parts.len();
    for (i, p) in parts.iter_mut().enumerate() {
        p.more = i + 1 < n;
    }
    parts
}

/// The parts of one version, shared by every stream that sends them.
pub type Parts = Arc<Vec<ConfigUpdate>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(sizes: &[usize], removals: usize) -> Delta {
        Delta {
            version: 7,
            upserts: sizes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        Key::new("Service", "ns", format!("s{i}")),
                        "x".repeat(*n).into(),
                    )
                })
                .collect(),
            removals: (0..removals)
                .map(|i| Key::new("Service", "ns", format!("gone{i}")))
                .collect(),
        }
    }

    #[test]
    fn parts_are_bounded_ordered_and_flagged() {
        // Empty version: one part, no `more`.
        let p = to_parts(&delta(&[], 0), true);
        assert_eq!(p.len(), 1);
        assert!(p[0].full && !p[0].more && p[0].version == 7);
        // 100 objects of 1 KiB: parts of at most PART_BYTES, each full.
        let p = to_parts(&delta(&[1024; 100], 3), true);
        let per_part = PART_BYTES / 1024;
        assert_eq!(p.len(), 100_usize.div_ceil(per_part));
        assert!(
            p.iter()
                .all(|x| x.upserts.iter().map(|u| u.json.len()).sum::<usize>() <= PART_BYTES)
        );
        assert_eq!(p.iter().map(|x| x.upserts.len()).sum::<usize>(), 100);
        assert!(p.iter().rev().skip(1).all(|x| x.upserts.len() == per_part));
        assert_eq!(p.iter().filter(|x| x.more).count(), p.len() - 1);
        let last = &p[p.len() - 1];
        assert!(
            !last.more && last.removals.len() == 3,
            "removals travel with the last part"
        );
        assert!(p.iter().all(|x| x.full && x.version == 7));
        // One object larger than a part still goes, alone.
        let p = to_parts(&delta(&[10, PART_BYTES * 2, 10], 0), false);
        assert_eq!(
            p.iter().map(|x| x.upserts.len()).collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }
}
