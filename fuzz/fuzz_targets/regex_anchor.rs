//! User regular expressions in route matches are "anchored to the whole
//! value" (api/src/route/mod.rs, api/src/model.rs `Pattern`).
//!
//! Line 1 of the input is a pattern, written into a TrafficRoute as a
//! `RegularExpression` path match and compiled the way users' patterns are
//! (`parse_file` + `translate`); the other lines are paths. Translation must
//! not panic (hostile patterns are refused by the size limit, not by
//! running out of memory), and whenever the compiled pattern matches a path
//! the match must span the whole path: a pattern that matches only part of a
//! value would route requests the user did not mean to route.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use strait_api::manifest::parse_file;
use strait_api::model::PathMatch;
use strait_api::translate::translate;

fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("STRAIT_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let source = lines.next().unwrap_or_default();
    // A JSON string is a YAML double-quoted scalar.
    let quoted = serde_json::to_string(source).expect("string serializes");
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n---\n\
         apiVersion: strait.dev/v1alpha1\nkind: TrafficRoute\nmetadata: {{name: web}}\n\
         spec:\n  parentRef: {{name: web}}\n  rules:\n    - matches: [{{path: {{type: RegularExpression, value: {quoted}}}}}]\n      backends: [{{name: web}}]\n"
    );
    let (objects, errors) = parse_file("fuzz.yaml", &yaml);
    if !errors.is_empty() {
        return; // characters YAML does not allow in a stream
    }
    let t = translate(&objects);
    let Some(routes) = t
        .snapshot
        .services
        .values()
        .next()
        .and_then(|s| s.routes.as_ref())
    else {
        assert!(!t.errors.is_empty(), "route neither attached nor refused");
        return;
    };
    let Some(PathMatch::Regex(p)) = routes[0].matches[0].path.as_ref() else {
        panic!("not a regex match: {:?}", routes[0].matches[0]);
    };
    assert_eq!(p.source, source);
    // Finding 1 in docs/fuzzing.md: a source that is not a regex on its own
    // (an unbalanced `)`) can close the anchoring group and leave the rest
    // unanchored. STRAIT_FUZZ_SKIP_KNOWN=1 skips those so a run can look for
    // other ways out; drop this once the bug is fixed.
    if skip_known() && regex::Regex::new(source).is_err() {
        return;
    }
    for path in lines.chain([source, ""]) {
        if let Some(m) = p.regex.find(path) {
            assert_eq!(
                m.range(),
                0..path.len(),
                "pattern {source:?} matched only {:?} of path {path:?} (compiled as {})",
                m.as_str(),
                p.regex.as_str()
            );
        }
    }
});
