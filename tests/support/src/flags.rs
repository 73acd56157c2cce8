//! A binary's `--help` against the flag table of its docs section, so the
//! two cannot drift: the same flags on both sides, and for each the same
//! environment variable and default.
//!
//! A docs section is a Markdown heading followed (before the next heading)
//! by a table whose first three columns are the flag (`` `--name ARG` ``),
//! its environment variable (`` `NAME` `` or `—`) and its default. A
//! default the binary has is written in backticks (`empty` for an empty
//! one; the crate version as `<version>`); a flag without one says so in
//! words (`—`, `off`, `cores`), never in backticks.

use std::path::Path;
use std::process::Command;

/// One option as `--help` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The long name, with its dashes.
    pub name: String,
    /// `[env: NAME=]`.
    pub env: Option<String>,
    /// `[default: VALUE]`.
    pub default: Option<String>,
}

/// One row of a docs table: the cells as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The long name, with its dashes.
    pub name: String,
    /// The env cell.
    pub env: String,
    /// The default cell.
    pub default: String,
}

fn option_line(line: &str) -> Option<String> {
    let t = line.trim_start();
    if line.len() - t.len() < 2 {
        return None;
    }
    let t = match t.strip_prefix('-') {
        Some(rest) if rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) => {
            rest.get(1..)?.strip_prefix(", ")?
        }
        _ => t,
    };
    let name: String = t
        .strip_prefix("--")?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!name.is_empty()).then(|| format!("--{name}"))
}

fn bracket(text: &str, key: &str) -> Option<String> {
    let start = text.find(key)? + key.len();
    let end = text[start..].find(']')? + start;
    Some(text[start..end].to_string())
}

/// The options of a clap `--help` text, without `--help` and `--version`.
pub fn parse_help(help: &str) -> Vec<Flag> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        match option_line(line) {
            Some(name) => blocks.push((name, line.to_string())),
            None => {
                if let Some((_, text)) = blocks.last_mut() {
                    text.push(' ');
                    text.push_str(line.trim());
                }
            }
        }
    }
    blocks
        .into_iter()
        .filter(|(n, _)| n != "--help" && n != "--version")
        .map(|(name, text)| Flag {
            env: bracket(&text, "[env: ").map(|e| e.trim_end_matches('=').to_string()),
            // clap writes an empty default as `""` in long help.
            default: bracket(&text, "[default: ").map(
                |d| {
                    if d == "\"\"" { String::new() } else { d }
                },
            ),
            name,
        })
        .collect()
}

/// The rows of the table under the heading `heading` (exact text, with
/// its `#`s), up to the next heading.
pub fn parse_doc(markdown: &str, heading: &str) -> Result<Vec<Row>, String> {
    let mut lines = markdown.lines().skip_while(|l| l.trim() != heading);
    if lines.next().is_none() {
        return Err(format!("no heading {heading:?}"));
    }
    let rows: Vec<Row> = lines
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with("| `-"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // `--name ARG` or `-n, --name`.
            let name = cells
                .get(1)?
                .trim_matches('`')
                .split([' ', ','])
                .find(|t| t.starts_with("--"))?
                .to_string();
            Some(Row {
                name,
                env: cells.get(2)?.to_string(),
                default: cells.get(3)?.to_string(),
            })
        })
        .collect();
    if rows.is_empty() {
        return Err(format!("no flag rows under {heading:?}"));
    }
    Ok(rows)
}

/// Every difference between the help and the docs, as sentences.
pub fn differences(help: &[Flag], doc: &[Row], version: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in help {
        let Some(row) = doc.iter().find(|r| r.name == f.name) else {
            out.push(format!("{} is in --help but not in the docs", f.name));
            continue;
        };
        let want_env = f.env.as_ref().map(|e| format!("`{e}`"));
        match &want_env {
            Some(e) if &row.env != e => {
                out.push(format!("{}: env is {e}, the docs say {}", f.name, row.env))
            }
            None if row.env != "—" => out.push(format!(
                "{}: has no env variable, the docs say {}",
                f.name, row.env
            )),
            _ => {}
        }
        match f
            .default
            .as_deref()
            .map(|d| d.replace(version, "<version>"))
        {
            Some(d) if d.is_empty() => {
                if !row.default.starts_with("empty") {
                    out.push(format!(
                        "{}: the default is empty, the docs say {}",
                        f.name, row.default
                    ));
                }
            }
            Some(d) => {
                if !row.default.contains(&format!("`{d}`")) {
                    out.push(format!(
                        "{}: the default is `{d}`, the docs say {}",
                        f.name, row.default
                    ));
                }
            }
            None => {
                if row.default.starts_with('`') {
                    out.push(format!(
                        "{}: has no default, the docs say {}",
                        f.name, row.default
                    ));
                }
            }
        }
    }
    for r in doc {
        if !help.iter().any(|f| f.name == r.name) {
            out.push(format!("{} is in the docs but not in --help", r.name));
        }
    }
    out
}

/// Runs `bin ARGS --help` and panics with every difference from the table
/// under `heading` in `doc`.
pub fn check(bin: &Path, args: &[&str], doc: &Path, heading: &str, version: &str) {
    let out = Command::new(bin)
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {args:?} --help failed",
        bin.display()
    );
    let help = String::from_utf8_lossy(&out.stdout);
    let markdown =
        std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let rows = parse_doc(&markdown, heading).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let diff = differences(&parse_help(&help), &rows, version);
    assert!(
        diff.is_empty(),
        "{} {} --help and {} ({heading}) differ:\n  {}",
        bin.display(),
        args.join(" "),
        doc.display(),
        diff.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = r#"Usage: x [OPTIONS]

Options:
      --local <LOCAL>
          Read config
          [env: STRAIT_LOCAL=]

      --pod <POD>
          Pod [env: POD_NAME=] [default: ""]
  -n, --namespace <NS>  The namespace [default: strait-system]
      --image <I>  Image [default: img:1.2.3]
      --once
          Print once
  -h, --help
          Print help
"#;

    #[test]
    fn help_is_parsed_in_long_and_short_form() {
        let flags = parse_help(HELP);
        let got: Vec<(&str, Option<&str>, Option<&str>)> = flags
            .iter()
            .map(|f| (f.name.as_str(), f.env.as_deref(), f.default.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("--local", Some("STRAIT_LOCAL"), None),
                ("--pod", Some("POD_NAME"), Some("")),
                ("--namespace", None, Some("strait-system")),
                ("--image", None, Some("img:1.2.3")),
                ("--once", None, None),
            ]
        );
    }

    const DOC: &str = "# T

## x flags

| flag | env | default | meaning |
| --- | --- | --- | --- |
| `--local DIR` | `STRAIT_LOCAL` | — | dirs |
| `--pod` | `POD_NAME` | empty | pod |
| `-n, --namespace` | — | `strait-system` | ns |
| `--image` | — | `img:<version>` | image |
| `--once` | — | off | once |

## other

| `--not-this` | — | — | x |
";

    #[test]
    fn matching_help_and_docs_have_no_differences() {
        let rows = parse_doc(DOC, "## x flags").unwrap();
        assert_eq!(rows.len(), 5, "the next section is not read: {rows:?}");
        assert_eq!(
            differences(&parse_help(HELP), &rows, "1.2.3"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_kind_of_drift_is_named() {
        let drifted = DOC
            .replace("`STRAIT_LOCAL`", "`STRAIT_DIR`")
            .replace("`strait-system`", "`default`")
            .replace("| `--once` | — | off |", "| `--once` | — | `true` |")
            .replace("| `--pod` |", "| `--pods` |");
        let diff = differences(
            &parse_help(HELP),
            &parse_doc(&drifted, "## x flags").unwrap(),
            "1.2.3",
        );
        let text = diff.join("\n");
        for needle in [
            "--local: env is `STRAIT_LOCAL`, the docs say `STRAIT_DIR`",
            "--namespace: the default is `strait-system`",
            "--once: has no default",
            "--pod is in --help but not in the docs",
            "--pods is in the docs but not in --help",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        assert!(parse_doc(DOC, "## nothing").is_err());
    }
}
