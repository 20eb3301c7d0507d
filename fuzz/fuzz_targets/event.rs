//! The unsigned encoding: only canonical bytes decode, and they re-encode to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::Event;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Event::decode(data) {
        let encoded = e.encode();
        assert_eq!(encoded, data);
        assert_eq!(Event::decode(&encoded), Ok(e));
    }
});
