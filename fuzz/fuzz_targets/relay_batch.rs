//! Batched appends (`application/vnd.wire.blobs`): splitting never panics, and a batch that
//! splits re-encodes to exactly its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_relay::frames::{decode_blobs, encode_blobs};

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(blobs) = decode_blobs(&body, 1 << 20, 4096) {
        assert!(!blobs.is_empty());
        assert!(blobs.iter().all(|b| !b.is_empty()));
        assert_eq!(encode_blobs(blobs.iter().map(|b| &b[..])), data);
    }
});
