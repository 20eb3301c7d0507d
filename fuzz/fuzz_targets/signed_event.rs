//! The signed wire form of an event: decoding never panics, and what decodes re-decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::SignedEvent;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = SignedEvent::decode(data) {
        let again = SignedEvent::decode(e.signed_bytes()).expect("decoded bytes decode again");
        assert_eq!(again.event, e.event);
        assert_eq!(again.id, e.id);
        let _ = e.verify();
    }
});
