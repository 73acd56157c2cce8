//! Directories of manifests, as every local mode reads them: the proxy's
//! and the controller's `--local`, and `strait explain --local`.
//!
//! One or more directories are read; in each, every `*.yaml` / `*.yml` file
//! (not subdirectories, as `kubectl apply -f DIR` does), in name order. A
//! [`Fingerprint`] (names, sizes, modification times) tells a poller
//! whether anything changed for the price of a few `stat` calls, with no
//! inotify, which misses changes on some volumes (ConfigMaps mounted
//! through symlinks). What each reader does with a file's errors is its own
//! decision: the proxy refuses the whole update, the controller keeps that
//! file's last good objects.

use super::{Located, ManifestError, Object, Skipped, parse_file, skipped};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A directory could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read directory {dir}: {source}")]
pub struct DirError {
    /// The directory.
    pub dir: PathBuf,
    /// What the OS said.
    pub source: std::io::Error,
}

/// What a poller compares: each file's path, size and modification time.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The manifest files of `dirs`: each directory's in name order, then the
/// next directory's.
pub fn files(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, DirError> {
    let mut out = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|source| DirError {
            dir: dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_manifest(p))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

fn is_manifest(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// The fingerprint of `dirs`, or `None` when one cannot be listed.
pub fn fingerprint(dirs: &[PathBuf]) -> Option<Fingerprint> {
    Some(
        files(dirs)
            .ok()?
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

/// One file, read and parsed.
#[derive(Debug)]
pub struct File {
    /// Its path.
    pub path: PathBuf,
    /// Its text with line breaks normalised as the parser counts them, so
    /// that object lines index into it.
    pub text: String,
    /// The objects of the kinds the mesh reads.
    pub objects: Vec<Located<Object>>,
    /// What did not parse, with lines. A file that cannot be read has one
    /// error at line 0.
    pub errors: Vec<ManifestError>,
    /// Documents of other kinds, named so that nothing is dropped silently.
    pub skipped: Vec<Skipped>,
}

/// Reads and parses every manifest file of `dirs`.
pub fn read(dirs: &[PathBuf]) -> Result<Vec<File>, DirError> {
    Ok(files(dirs)?.into_iter().map(read_file).collect())
}

fn read_file(path: PathBuf) -> File {
    let name = path.display().to_string();
    // Read at most one byte past the limit: a file that grows while it is
    // read cannot get past it.
    let read = std::fs::File::open(&path).and_then(|f| {
        use std::io::Read;
        let mut bytes = Vec::new();
        f.take(crate::bounds::FILE_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > crate::bounds::FILE_BYTES {
            return Err(std::io::Error::other(format!(
                "more than the {} bytes a manifest file may have",
                crate::bounds::FILE_BYTES
            )));
        }
        Ok(bytes)
    });
    match read {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes)
                .replace("\r\n", "\n")
                .replace('\r', "\n");
            let (objects, errors) = parse_file(&name, &text);
            let skipped = skipped(&text);
            File {
                path,
                text,
                objects,
                errors,
                skipped,
            }
        }
        Err(e) => File {
            errors: vec![ManifestError {
                file: name,
                line: 0,
                message: format!("cannot read: {e}"),
            }],
            path,
            text: String::new(),
            objects: Vec::new(),
            skipped: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";

    #[test]
    fn reads_every_directory_in_order_and_only_manifests() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("2.yaml"), SVC.replace("web", "a2")).unwrap();
        std::fs::write(a.path().join("1.yml"), SVC.replace("web", "a1")).unwrap();
        std::fs::write(a.path().join("notes.txt"), "not yaml").unwrap();
        std::fs::create_dir(a.path().join("sub.yaml")).unwrap();
        std::fs::write(b.path().join("0.yaml"), SVC.replace("web", "b0")).unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let names: Vec<String> = read(&dirs)
            .unwrap()
            .iter()
            .flat_map(|f| f.objects.iter().map(|o| o.object.describe()))
            .collect();
        assert_eq!(
            names,
            [
                "Service default/a1",
                "Service default/a2",
                "Service default/b0"
            ]
        );
    }

    #[test]
    fn errors_skips_and_line_breaks() {
        let d = tempfile::tempdir().unwrap();
        let text = "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata: {name: c}\r\n---\r\nkind: [\r\n";
        std::fs::write(d.path().join("x.yaml"), text).unwrap();
        let files = read(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(files.len(), 1);
        let f = &files[0];
        assert!(!f.text.contains('\r'));
        assert_eq!(f.skipped.len(), 1, "{:?}", f.skipped);
        assert_eq!(f.skipped[0].kind, "v1/ConfigMap");
        assert_eq!(f.errors.len(), 1, "{:?}", f.errors);
        assert_eq!(f.errors[0].line, 5);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_has_no_fingerprint() {
        let missing = PathBuf::from("/nonexistent/strait-manifests");
        let e = read(std::slice::from_ref(&missing)).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/strait-manifests"),
            "{e}"
        );
        assert!(fingerprint(&[missing]).is_none());
    }

    #[test]
    fn a_file_past_the_size_limit_is_an_error_not_read() {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(d.path().join("huge.yaml")).unwrap();
        // Sparse: the limit is checked before a byte is read.
        f.set_len(crate::bounds::FILE_BYTES + 1).unwrap();
        let files = read(&[d.path().to_path_buf()]).unwrap();
        assert!(files[0].objects.is_empty());
        assert!(
            files[0].errors[0]
                .message
                .contains("more than the 67108864"),
            "{}",
            files[0].errors[0]
        );
    }

    #[test]
    fn the_fingerprint_changes_with_a_file() {
        let d = tempfile::tempdir().unwrap();
        let dirs = [d.path().to_path_buf()];
        let empty = fingerprint(&dirs).unwrap();
        std::fs::write(d.path().join("a.yaml"), SVC).unwrap();
        let one = fingerprint(&dirs).unwrap();
        assert_ne!(empty, one);
        std::fs::write(d.path().join("a.yaml"), format!("{SVC}# more\n")).unwrap();
        assert_ne!(one, fingerprint(&dirs).unwrap());
    }
}
