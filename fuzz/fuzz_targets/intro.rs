//! The signed intro envelope a stranger leaves in a handle's intro queue: decoding never panics,
//! and what decodes re-decodes equal from its own signed bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::intro::Intro;

fuzz_target!(|data: &[u8]| {
    if let Ok(intro) = Intro::decode(data) {
        let again = Intro::decode(intro.signed_bytes()).expect("decoded bytes decode again");
        assert_eq!(again, intro);
    }
});
