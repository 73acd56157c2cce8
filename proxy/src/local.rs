//! Local mode: config from a directory of manifests, watched while serving.
//!
//! Every `*.yaml` / `*.yml` file in the directory is read (multi-document
//! files allowed), translated by the shared `strait_api::translate`, and
//! applied. The directory is polled: a poll compares names, sizes and
//! modification times, so it costs a few `stat` calls and needs no inotify
//! (which does not see changes on some volume types, such as ConfigMaps
//! mounted through symlinks). Any error in any file rejects the whole
//! update, is logged with file, line and reason, and the last good config
//! stays in force.

use crate::state::State;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use strait_api::Snapshot;
use strait_api::manifest::{self, ManifestError};
use strait_api::translate::translate;

/// How often the directory is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// Why a directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory could not be listed.
    #[error("cannot read directory {dir}: {source}")]
    Dir {
        /// Directory.
        dir: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Files had errors.
    #[error("{} error(s) in manifests:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Manifests(Vec<ManifestError>),
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn fingerprint(dir: &Path) -> Option<Fingerprint> {
    let files = manifest_files(dir).ok()?;
    Some(
        files
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
                let mtime = meta.and_then(|m| m.modified().ok());
                (p, len, mtime)
            })
            .collect(),
    )
}

/// Reads and translates every manifest in `dir`.
pub fn load(dir: &Path) -> Result<Snapshot, LoadError> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for path in manifest_files(dir)? {
        let name = path.display().to_string();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let (o, e) = manifest::parse_file(&name, &text);
                for skip in manifest::skipped(&text) {
                    tracing::info!(
                        "{name}:{}: skipping {} (not a kind the mesh reads)",
                        skip.line,
                        skip.kind
                    );
                }
                objects.extend(o);
                errors.extend(e);
            }
            Err(e) => errors.push(ManifestError {
                file: name,
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    let t = translate(&objects);
    errors.extend(t.errors);
    if errors.is_empty() {
        Ok(t.snapshot)
    } else {
        Err(LoadError::Manifests(errors))
    }
}

/// Loads `dir` now, then applies every change until the process exits.
pub async fn watch(dir: PathBuf, state: std::sync::Arc<State>) {
    let source = format!("local:{}", dir.display());
    let mut last: Option<Option<Fingerprint>> = None;
    loop {
        let fp = fingerprint(&dir);
        if last.as_ref() != Some(&fp) {
            match load(&dir) {
                Ok(snapshot) => {
                    let endpoints = snapshot.endpoint_count();
                    let services = snapshot.services.len();
                    let version = state.apply(snapshot, &source);
                    state.metrics.reload(true);
                    tracing::info!(version, services, endpoints, %source, "config applied");
                }
                Err(e) => {
                    state.metrics.reload(false);
                    let kept = match state.load().version {
                        0 => "no config applied yet".to_owned(),
                        v => format!("keeping version {v}"),
                    };
                    tracing::error!(%source, "config update refused; {kept}: {e}");
                }
            }
            last = Some(fp);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
