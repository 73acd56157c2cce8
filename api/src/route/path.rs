//! Request paths as routing sees them: normalised per RFC 3986 before any
//! rule is matched, and forwarded as matched, so `/public/../admin` cannot
//! pass a `/public` prefix rule and `/%70ublic` is `/public`.
//!
//! * percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded, other escapes keep their byte and get upper-case hex
//!   (`%2f` → `%2F`: an encoded slash stays a character of a segment);
//! * dot segments are removed (§5.2.4), after decoding, so `%2e%2e` counts;
//! * a bad escape (`%`, `%zz`) or dot segments that climb above the root
//!   make the path refused (the proxy answers 400, as nginx does).
//!
//! Repeated slashes are kept: `//a` and `/a` are different paths to many
//! servers. Paths that need nothing (no `%`, no dot segment: nearly all)
//! are returned borrowed.

use std::borrow::Cow;

/// Why a path cannot be normalised safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    #[error("bad percent-encoding in the path")]
    BadEscape,
    /// `..` segments lead above `/`.
    #[error("the path's dot segments climb above the root")]
    AboveRoot,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn has_dot_segment(path: &str) -> bool {
    // Every dot segment follows a '/': most paths have none, and are not split.
    path.contains("/.") && path.split('/').any(|s| s == "." || s == "..")
}

/// The normalised form of an origin-form path (one that starts with `/`;
/// anything else, such as `*`, is returned as it is).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') || (!path.contains('%') && !has_dot_segment(path)) {
        return Ok(Cow::Borrowed(path));
    }
    // 1. Escapes: decode the unreserved, canonicalise the rest.
    let bytes = path.as_bytes();
    let mut decoded: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            decoded.push(bytes[i]);
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let b = h << 4 | l;
        if unreserved(b) {
            decoded.push(b);
        } else {
            decoded.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
        i += 3;
    }
    // Only ASCII was added, so this fails only if the input was not UTF-8.
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::BadEscape)?;
    // 2. Dot segments (the path is absolute: it starts with '/').
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if n == last {
                    out.push("");
                }
            }
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                if n == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    Ok(Cow::Owned(format!("/{}", out.join("/"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            ("/", "/"),
            ("/public/items", "/public/items"),
            ("/public/../admin", "/admin"),
            ("/public/./a", "/public/a"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/%70ublic", "/public"),
            ("/%7Euser", "/~user"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E./admin", "/admin"),
            ("/%41%42", "/AB"),
            ("/a%20b", "/a%20b"),
            ("//a", "//a"),
            ("/a/..b", "/a/..b"),
            ("/a/.b/c", "/a/.b/c"),
            ("*", "*"),
            ("/caf%C3%A9/./x", "/caf%C3%A9/x"),
            ("/café/./x", "/café/x"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
        let bad = [
            ("/%", PathError::BadEscape),
            ("/%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/..", PathError::AboveRoot),
            ("/../admin", PathError::AboveRoot),
            ("/a/../../b", PathError::AboveRoot),
            ("/%2e%2e/x", PathError::AboveRoot),
        ];
        for (input, want) in bad {
            assert_eq!(normalize(input), Err(want), "{input}");
        }
        assert!(
            matches!(normalize("/plain/path"), Ok(Cow::Borrowed(_))),
            "no copy for plain paths"
        );
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in [
            "/public/../admin",
            "/%70ublic/%2e/x",
            "/a%2fb/./c",
            "/x/y/../../z",
        ] {
            let once = normalize(p).unwrap().into_owned();
            assert_eq!(normalize(&once).unwrap(), once, "{p}");
        }
    }
}
