//! Local mode: config from directories of manifests, watched while serving.
//!
//! Every `*.yaml` / `*.yml` file in the directories is read
//! (`strait_api::manifest::dir`, multi-document files allowed), translated
//! by the shared `strait_api::translate`, and applied. The directories are
//! polled by fingerprint (names, sizes, modification times). Any error in
//! any file rejects the whole update, is logged with file, line and reason,
//! and the last good config stays in force.

use crate::state::State;
use std::path::PathBuf;
use std::time::Duration;
use strait_api::Snapshot;
use strait_api::manifest::ManifestError;
use strait_api::manifest::dir::{self, DirError};
use strait_api::translate::translate_view;

/// How often the directory is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why the directories could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A directory could not be listed.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// Files had errors.
    #[error("{} error(s) in manifests:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Manifests(Vec<ManifestError>),
}

/// Reads and translates every manifest in `dirs`.
pub fn load(dirs: &[PathBuf]) -> Result<Snapshot, LoadError> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for file in dir::read(dirs)? {
        for skip in &file.skipped {
            tracing::info!(
                "{}:{}: skipping {} (not a kind the mesh reads)",
                file.path.display(),
                skip.line,
                skip.kind
            );
        }
        objects.extend(file.objects);
        errors.extend(file.errors);
    }
    let t = translate_view(&objects);
    errors.extend(t.errors);
    if errors.is_empty() {
        Ok(t.snapshot)
    } else {
        Err(LoadError::Manifests(errors))
    }
}

/// The source name in logs and `/config`: `local:DIR[,DIR…]`.
pub fn source(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    format!("local:{}", names.join(","))
}

/// Loads `dirs` now, then applies every change until the process exits.
pub async fn watch(dirs: Vec<PathBuf>, state: std::sync::Arc<State>) {
    let source = source(&dirs);
    let mut last: Option<Option<dir::Fingerprint>> = None;
    loop {
        let fp = dir::fingerprint(&dirs);
        if last.as_ref() != Some(&fp) {
            match load(&dirs) {
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
