//! The body of a `message.broadcast` event (kind 1040). Properties in `common/broadcast.rs`.
#![no_main]

#[path = "../common/broadcast.rs"]
mod broadcast;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    broadcast::run(data);
});
