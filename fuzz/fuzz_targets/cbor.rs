//! The canonical CBOR decoder under every other decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = wire_log::cbor::decode_canonical(data, 1 << 20) {
        assert_eq!(wire_log::cbor::encode(&v), data);
    }
});
