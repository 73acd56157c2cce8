//! The server name in a TLS ClientHello, as the inbound listener reads it
//! to tell mesh TLS from an app's own (`strait_proxy::tls::hello`), on
//! bytes anyone on the pod network may send.
//!
//! Checks: never panics; `NeedMore(k)` asks for more than it has and no
//! more than one record; a decided answer does not change when more bytes
//! follow (only the first record is read); a name it returns is bytes of
//! the input, at most 2^16 long.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strait_proxy::tls::hello::{Hello, MAX_RECORD, server_name};

fuzz_target!(|data: &[u8]| {
    let whole = server_name(data);
    match &whole {
        Hello::NeedMore(k) => assert!(*k > data.len() && *k <= MAX_RECORD, "{k} for {}", data.len()),
        Hello::ServerName(Some(name)) => {
            assert!(name.len() < 1 << 16);
            assert!(
                data.windows(name.len().max(1)).any(|w| w == name.as_bytes()),
                "a name that is not in the input"
            );
        }
        Hello::ServerName(None) | Hello::Malformed => {}
    }
    // Every prefix that is decided says what the whole says.
    for k in 0..data.len() {
        match server_name(&data[..k]) {
            Hello::NeedMore(n) => assert!(n > k),
            decided => {
                assert_eq!(decided, whole, "prefix of {k} decided otherwise");
                break;
            }
        }
    }
});
