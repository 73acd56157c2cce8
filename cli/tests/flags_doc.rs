//! Every `strait` subcommand's `--help` matches its flag table in
//! docs/configuration.md: same flags, env variables and defaults.

use strait_test_support::{flags, repo};

#[test]
fn every_subcommands_flags_match_the_docs() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_strait"));
    let doc = repo().join("docs/configuration.md");
    for sub in [
        "demo",
        "stat",
        "tap",
        "proxy-status",
        "explain",
        "inject",
        "uninject",
        "check",
    ] {
        flags::check(
            bin,
            &[sub],
            &doc,
            &format!("### strait {sub}"),
            env!("CARGO_PKG_VERSION"),
        );
    }
}
