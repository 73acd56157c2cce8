//! Writes the Strait CRDs, generated from the Rust types, to `crds/`.
//!
//! ```text
//! cargo run -p strait-control-plane --bin crdgen               # (re)write crds/*.yaml
//! cargo run -p strait-control-plane --bin crdgen -- --check    # exit 1 if crds/ is stale
//! cargo run -p strait-control-plane --bin crdgen -- --out DIR  # write elsewhere
//! ```
//!
//! `--check` is CI's drift check: it fails, with a diff, when a committed file
//! differs from what the types generate (or is missing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use strait_control_plane::crd;

/// Most diff lines printed per file.
const MAX_DIFF_LINES: usize = 60;

fn main() -> ExitCode {
    let mut check = false;
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = manifest_dir.parent().unwrap_or(manifest_dir).join("crds");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--out" => match args.next() {
                Some(dir) => out = PathBuf::from(dir),
                None => return usage("--out needs a directory"),
            },
            "-h" | "--help" => {
                println!("usage: crdgen [--check] [--out DIR]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let mut stale = Vec::new();
    for def in crd::all() {
        let path = out.join(crd::file_name(&def));
        let want = match crd::to_yaml(&def) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("crdgen: cannot serialise {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let have = std::fs::read_to_string(&path).ok();
        if have.as_deref() == Some(want.as_str()) {
            continue;
        }
        if check {
            let what = if have.is_some() {
                "out of date"
            } else {
                "missing"
            };
            eprintln!("crdgen: {} is {what}", path.display());
            eprint!("{}", diff(have.as_deref().unwrap_or(""), &want));
            stale.push(path);
        } else if let Err(e) =
            std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&path, &want))
        {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            eprintln!("crdgen: wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "crdgen: {} CRD file(s) differ from the Rust types; run \
         `cargo run -p strait-control-plane --bin crdgen` and commit the result",
        stale.len()
    );
    ExitCode::FAILURE
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("crdgen: {msg}\nusage: crdgen [--check] [--out DIR]");
    ExitCode::from(2)
}

/// A line diff (`-` committed, `+` generated) from the longest common
/// subsequence, with one line of context around each change. The files are
/// a few hundred lines, so the quadratic table is cheap.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, old line number, text)
    let mut ops: Vec<(char, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i + 1, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, a[i]));
            i += 1;
        } else {
            ops.push(('+', i + 1, b[j]));
            j += 1;
        }
    }
    let changed = |k: usize| ops.get(k).is_some_and(|o| o.0 != ' ');
    let mut text = String::new();
    let mut printed = 0;
    let mut last = None;
    for (k, &(tag, line_no, line)) in ops.iter().enumerate() {
        let near = changed(k) || (k > 0 && changed(k - 1)) || changed(k + 1);
        if !near {
            continue;
        }
        if printed == MAX_DIFF_LINES {
            text.push_str("  ... (more differences)\n");
            break;
        }
        if last.is_none_or(|l| l + 1 != k) {
            text.push_str(&format!("@@ line {line_no} @@\n"));
        }
        text.push_str(&format!("{tag} {line}\n"));
        printed += 1;
        last = Some(k);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn diff_shows_changes_with_context() {
        let old = "a\nb\nc\nd\ne\nf\n";
        let new = "a\nB\nc\nd\ne\nf\ng\n";
        assert_eq!(
            diff(old, new),
            "@@ line 1 @@\n  a\n- b\n+ B\n  c\n@@ line 6 @@\n  f\n+ g\n"
        );
        assert_eq!(diff("", "x\n"), "@@ line 1 @@\n+ x\n");
        assert_eq!(diff("same\n", "same\n"), "");
    }
}
