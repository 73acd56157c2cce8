//! The proxy's end of the config stream: a protobuf `ConfigUpdate` from the
//! control plane, decoded by prost and applied by `remote::Objects::apply`
//! (pure: upserts parsed with `parse_json`, removals, then `translate`).
//!
//! The input is the update's protobuf encoding, exactly the bytes of one
//! gRPC message. Decoding and applying must not panic. The input is applied
//! twice, to the empty set and then to its own result, so deltas on a
//! non-empty set run too. What `apply` accepts must be a consistent
//! snapshot, and applying the same update again to the result must be
//! accepted as well, with the same services (upserts and removals are
//! idempotent).

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strait_api::wire::ConfigUpdate;
use strait_proxy::remote::Objects;

fuzz_target!(|data: &[u8]| {
    let Ok(update) = ConfigUpdate::decode(data) else {
        return;
    };
    let Ok((objects, snapshot)) = Objects::default().apply(&update) else {
        return;
    };
    for key in snapshot.by_addr.values() {
        assert!(snapshot.services.contains_key(key), "{key}");
    }
    let (_, again) = objects
        .apply(&update)
        .expect("an update that applied once applies again");
    assert_eq!(
        snapshot.services.keys().collect::<Vec<_>>(),
        again.services.keys().collect::<Vec<_>>()
    );
});
