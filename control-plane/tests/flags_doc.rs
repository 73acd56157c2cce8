//! `strait-controller --help` matches the flag table of
//! docs/configuration.md: same flags, env variables and defaults.

use strait_test_support::{flags, repo};

#[test]
fn controller_flags_match_the_docs() {
    flags::check(
        std::path::Path::new(env!("CARGO_BIN_EXE_strait-controller")),
        &[],
        &repo().join("docs/configuration.md"),
        "## strait-controller flags",
        env!("CARGO_PKG_VERSION"),
    );
}
