//! How the parts of one config version make the whole version again. Pure.
//!
//! The control plane sends each version in bounded parts (`more` is set on
//! every part but the last); every client of the stream (the proxy, `strait
//! explain`, the scale benchmark) puts them back together the same way.

use crate::wire::ConfigUpdate;

/// Collects the parts of a version; returns it whole with its last part.
/// A part of a newer version drops an unfinished older one.
pub fn assemble(pending: &mut Option<ConfigUpdate>, part: ConfigUpdate) -> Option<ConfigUpdate> {
    let update = match pending.take() {
        Some(mut acc) if acc.version == part.version => {
            acc.upserts.extend(part.upserts);
            acc.removals.extend(part.removals);
            acc.more = part.more;
            acc
        }
        _ => part,
    };
    if update.more {
        *pending = Some(update);
        None
    } else {
        Some(update)
    }
}
