//! `strait-controller --local DIR`: the control plane without Kubernetes.
//!
//! The directory (the same files `strait-proxy --local` reads) is polled;
//! on a change every object is read again and replaces the store's content,
//! and the publisher sends proxies what changed. Unlike the proxy's local
//! mode, an invalid object does not refuse the whole directory: it is left
//! out (or its last good version stays), as the Kubernetes source does. A
//! file that does not parse (a typo such as `weigth`) keeps the objects it
//! last gave: the error is logged with its line, and nothing of that file
//! changes until it parses again.

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

/// The objects each file gave when it last parsed without an error.
pub type LastGood = std::collections::HashMap<PathBuf, Vec<(Object, String)>>;

/// Reads every object in `dir`, as (object, JSON) pairs; logs file errors.
/// A file with an error contributes what it gave last time it had none
/// (kept in `last_good`).
pub fn read(dir: &Path, last_good: &mut LastGood) -> Vec<(Object, String)> {
    let mut out = Vec::new();
    let files: Vec<PathBuf> = fingerprint(dir).into_iter().map(|(p, _, _)| p).collect();
    last_good.retain(|p, _| files.contains(p));
    for path in files {
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
        for skip in strait_api::manifest::skipped(&text) {
            tracing::info!(
                "{name}:{}: skipping {} (not a kind the mesh reads)",
                skip.line,
                skip.kind
            );
        }
        let mut file_objects = Vec::new();
        for o in objects {
            match to_json(&o.object, &text, o.line) {
                Some(json) => file_objects.push((o.object, json)),
                None => tracing::error!(file = %name, line = o.line, "cannot re-encode object"),
            }
        }
        if errors.is_empty() {
            last_good.insert(path.clone(), file_objects.clone());
            out.extend(file_objects);
            continue;
        }
        let kept = last_good.get(&path).cloned().unwrap_or_default();
        for e in &errors {
            tracing::error!(
                "{e}; keeping the {} object(s) {name} gave when it last parsed",
                kept.len()
            );
        }
        out.extend(kept);
    }
    out
}

/// The object's own document as JSON (the wire form), from its YAML source
/// (documents split as `parse_file` splits them).
fn to_json(object: &Object, text: &str, line: usize) -> Option<String> {
    let doc = strait_api::manifest::documents(text)
        .into_iter()
        .find(|(start, _)| *start == line)?
        .1;
    let value: serde_json::Value = serde_saphyr::from_str(&doc).ok()?;
    // Round-trip check: the JSON must parse back to the same kind.
    strait_api::manifest::parse_json(object.key().0, value.to_string()).ok()?;
    Some(value.to_string())
}

/// Watches `dir` until the process ends.
pub async fn watch(dir: PathBuf, shared: Arc<Shared>) {
    let mut last = None;
    let mut last_good = LastGood::new();
    loop {
        let fp = fingerprint(&dir);
        if last.as_ref() != Some(&fp) {
            let objects = read(&dir, &mut last_good);
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

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n---\napiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {name: web, namespace: shop}\nspec:\n  parentRef: {name: web, port: 80}\n  rules:\n    - backends: [{name: web, port: 80, weight: 1}]\n";

    fn names(objects: &[(Object, String)]) -> Vec<String> {
        objects.iter().map(|(o, _)| o.describe()).collect()
    }

    #[test]
    fn a_file_that_does_not_parse_keeps_what_it_gave_last() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("web.yaml");
        let mut last_good = LastGood::new();
        std::fs::write(&f, ROUTE).unwrap();
        let good = names(&read(dir.path(), &mut last_good));
        assert_eq!(good, ["Service shop/web", "TrafficRoute shop/web"]);
        // The typo from the issue: the route stays, nothing is removed.
        std::fs::write(&f, ROUTE.replace("weight", "weigth")).unwrap();
        assert_eq!(names(&read(dir.path(), &mut last_good)), good);
        // Fixed: the new content is read.
        std::fs::write(&f, ROUTE.replace("weight: 1", "weight: 2")).unwrap();
        let objects = read(dir.path(), &mut last_good);
        assert!(objects[1].1.contains("\"weight\":2"), "{:?}", objects[1].1);
        // A file that never parsed gives nothing; a deleted file is forgotten.
        std::fs::write(dir.path().join("bad.yaml"), "kind: [").unwrap();
        assert_eq!(read(dir.path(), &mut last_good).len(), 2);
        std::fs::remove_file(&f).unwrap();
        assert!(read(dir.path(), &mut last_good).is_empty());
        assert!(last_good.is_empty());
    }
}
