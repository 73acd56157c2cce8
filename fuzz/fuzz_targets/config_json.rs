//! Objects as the config stream carries them: `manifest::parse_json(kind,
//! json)` (the proxy's `remote` module and the control plane's watcher),
//! then `translate`.
//!
//! The input is `KIND\nJSON`: line 1 is the kind (as `ResourceKey.kind`
//! sends it), the rest the object's JSON. Neither step may panic; an
//! unknown kind is refused; what parses is of the kind asked for; and an
//! object that parses is translated like one from a file (errors carry the
//! location it was given).

#![no_main]

use libfuzzer_sys::fuzz_target;
use strait_api::manifest::{Located, parse_json};
use strait_api::translate::translate;

const KINDS: &[&str] = &[
    "Service",
    "EndpointSlice",
    "TrafficRoute",
    "DestinationPolicy",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (kind, json) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(object) = parse_json(kind, json) else {
        return;
    };
    assert!(KINDS.contains(&kind), "parsed an object of kind {kind:?}");
    assert_eq!(object.key().0, kind);
    let _ = object.describe();
    let located = vec![Located {
        file: format!("{kind} stream"),
        line: 0,
        object,
    }];
    let t = translate(&located);
    for e in &t.errors {
        assert_eq!((e.file.as_str(), e.line), (located[0].file.as_str(), 0));
    }
    serde_json::to_string(&t.snapshot).expect("snapshot serializes");
});
