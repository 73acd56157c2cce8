//! `strait-controller --local DIR`: the control plane without Kubernetes.
//!
//! The directory (the same files `strait-proxy --local` reads) is polled;
//! on a change every object is read again and replaces the store's content,
//! and the publisher sends proxies what changed. Unlike the proxy's local
//! mode, an invalid object does not refuse the whole directory: it is left
//! out (or its last good version stays), as the Kubernetes source does.

use super::server::Shared;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use strait_api::manifest::{Object, parse_file};

const POLL: Duration = Duration::from_millis(250);

fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let len = m.as_ref().map(|m| m.len()).unwrap_or(0);
            (p, len, m.and_then(|m| m.modified().ok()))
        })
        .collect();
    v.sort();
    v
}

/// Reads every object in `dir`, as (object, JSON) pairs; logs file errors.
pub fn read(dir: &Path) -> Vec<(Object, String)> {
    let mut out = Vec::new();
    for (path, _, _) in fingerprint(dir) {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(file = %name, error = %e, "cannot read");
                continue;
            }
        };
        // Line numbers refer to the text with line breaks normalised the way
        // parse_file does; slice documents out of that same text.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let (objects, errors) = parse_file(&name, &text);
        for e in errors {
            tracing::error!("{e}");
        }
        for o in objects {
            match to_json(&o.object, &text, o.line) {
                Some(json) => out.push((o.object, json)),
                None => tracing::error!(file = %name, line = o.line, "cannot re-encode object"),
            }
        }
    }
    out
}

/// The object's own document as JSON (the wire form), from its YAML source.
fn to_json(object: &Object, text: &str, line: usize) -> Option<String> {
    let doc: String = text
        .lines()
        .skip(line.saturating_sub(1))
        .take_while(|l| {
            let t = l.trim_end();
            !(t == "---" || t.starts_with("--- "))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let value: serde_json::Value = serde_saphyr::from_str(&doc).ok()?;
    // Round-trip check: the JSON must parse back to the same kind.
    strait_api::manifest::parse_json(object.key().0, value.to_string()).ok()?;
    Some(value.to_string())
}

/// Watches `dir` until the process ends.
pub async fn watch(dir: PathBuf, shared: Arc<Shared>) {
    let mut last = None;
    loop {
        let fp = fingerprint(&dir);
        if last.as_ref() != Some(&fp) {
            let objects = read(&dir);
            tracing::info!(dir = %dir.display(), objects = objects.len(), "manifests read");
            if let Ok(mut store) = shared.store.lock() {
                store.replace_all(objects);
            }
            shared.changed();
            last = Some(fp);
        }
        tokio::time::sleep(POLL).await;
    }
}
