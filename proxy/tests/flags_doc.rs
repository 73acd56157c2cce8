//! `strait-proxy --help` and `strait-proxy init --help` match the flag
//! tables of docs/configuration.md: same flags, env variables and defaults.

use strait_test_support::{flags, repo};

#[test]
fn proxy_flags_match_the_docs() {
    let doc = repo().join("docs/configuration.md");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_strait-proxy"));
    let v = env!("CARGO_PKG_VERSION");
    flags::check(bin, &[], &doc, "## strait-proxy flags", v);
    flags::check(bin, &["init"], &doc, "### strait-proxy init flags", v);
}
