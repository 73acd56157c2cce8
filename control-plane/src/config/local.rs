//! `strait-controller --local DIR`: the control plane without Kubernetes.
//!
//! The directories (read as `strait-proxy --local` reads them) are polled;
//! on a change every object is read again and replaces the store's content,
//! and the publisher sends proxies what changed. Unlike the proxy's local
//! mode, an invalid object does not refuse the whole directory: it is left
//! out (or its last good version stays), as the Kubernetes source does. A
//! file that does not parse (a typo such as `weigth`) keeps the objects it
//! last gave: the error is logged with its line, and nothing of that file
//! changes until it parses again.

use super::shared::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strait_api::manifest::Object;
use strait_api::manifest::dir;

const POLL: Duration = Duration::from_millis(250);

/// The objects each file gave when it last parsed without an error.
pub type LastGood = std::collections::HashMap<PathBuf, Vec<(Object, String)>>;

/// Reads every object in `dirs`, as (object, JSON) pairs; logs file errors.
/// A file with an error contributes what it gave last time it had none
/// (kept in `last_good`).
pub fn read(dirs: &[PathBuf], last_good: &mut LastGood) -> Vec<(Object, String)> {
    let files = match dir::read(dirs) {
        Ok(f) => f,
        Err(e) => {
            // A directory that went away: keep serving what every file gave.
            tracing::error!("{e}; keeping the last objects read");
            return last_good.values().flatten().cloned().collect();
        }
    };
    let mut out = Vec::new();
    last_good.retain(|p, _| files.iter().any(|f| &f.path == p));
    for file in files {
        let name = file.path.display().to_string();
        for skip in &file.skipped {
            tracing::info!(
                "{name}:{}: skipping {} (not a kind the mesh reads)",
                skip.line,
                skip.kind
            );
        }
        // Each object's own document, found by its first line: the file is
        // split once (splitting it again per object made reading a
        // directory quadratic in its documents: 40,000 took over a minute).
        let documents: std::collections::HashMap<usize, String> =
            strait_api::manifest::documents(&file.text)
                .into_iter()
                .collect();
        let mut file_objects = Vec::new();
        for o in file.objects {
            match documents
                .get(&o.line)
                .and_then(|doc| to_json(&o.object, doc))
            {
                Some(json) => file_objects.push((o.object, json)),
                None => tracing::error!(file = %name, line = o.line, "cannot re-encode object"),
            }
        }
        if file.errors.is_empty() {
            last_good.insert(file.path, file_objects.clone());
            out.extend(file_objects);
            continue;
        }
        let kept = last_good.get(&file.path).cloned().unwrap_or_default();
        for e in &file.errors {
            tracing::error!(
                "{e}; keeping the {} object(s) {name} gave when it last parsed",
                kept.len()
            );
        }
        out.extend(kept);
    }
    out
}

/// The object's own document as JSON (the wire form).
fn to_json(object: &Object, doc: &str) -> Option<String> {
    let value: serde_json::Value = serde_saphyr::from_str(doc).ok()?;
    // Round-trip check: the JSON must parse back to the same kind.
    strait_api::manifest::parse_json(object.key().0, value.to_string()).ok()?;
    Some(value.to_string())
}

/// Watches `dirs` until the process ends.
pub async fn watch(dirs: Vec<PathBuf>, shared: Arc<Shared>) {
    let mut last = None;
    let mut last_good = LastGood::new();
    loop {
        let fp = dir::fingerprint(&dirs);
        if last.as_ref() != Some(&fp) {
            let objects = read(&dirs, &mut last_good);
            tracing::info!(dirs = ?dirs, objects = objects.len(), "manifests read");
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
        let dirs = [dir.path().to_path_buf()];
        let f = dir.path().join("web.yaml");
        let mut last_good = LastGood::new();
        std::fs::write(&f, ROUTE).unwrap();
        let good = names(&read(&dirs, &mut last_good));
        assert_eq!(good, ["Service shop/web", "TrafficRoute shop/web"]);
        // The typo from the issue: the route stays, nothing is removed.
        std::fs::write(&f, ROUTE.replace("weight", "weigth")).unwrap();
        assert_eq!(names(&read(&dirs, &mut last_good)), good);
        // Fixed: the new content is read.
        std::fs::write(&f, ROUTE.replace("weight: 1", "weight: 2")).unwrap();
        let objects = read(&dirs, &mut last_good);
        assert!(objects[1].1.contains("\"weight\":2"), "{:?}", objects[1].1);
        // A file that never parsed gives nothing; a deleted file is forgotten.
        std::fs::write(dir.path().join("bad.yaml"), "kind: [").unwrap();
        assert_eq!(read(&dirs, &mut last_good).len(), 2);
        std::fs::remove_file(&f).unwrap();
        assert!(read(&dirs, &mut last_good).is_empty());
        assert!(last_good.is_empty());
    }
}
