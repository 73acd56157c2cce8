//! Every manifest under `examples/` parses and translates without errors, so
//! the documentation never shows a config the proxy would refuse.

use strait_api::manifest::parse_file;
use strait_api::translate::translate;

#[test]
fn every_example_directory_translates_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut dirs = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        dirs += 1;
        let mut objects = Vec::new();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "yaml") {
                let (o, errors) = parse_file(
                    &f.display().to_string(),
                    &std::fs::read_to_string(&f).unwrap(),
                );
                assert!(errors.is_empty(), "{errors:?}");
                objects.extend(o);
            }
        }
        assert!(!objects.is_empty(), "{} has no manifests", dir.display());
        let t = translate(&objects);
        assert!(t.errors.is_empty(), "{}: {:?}", dir.display(), t.errors);
    }
    assert!(
        dirs > 0,
        "no example directories found in {}",
        root.display()
    );
}
