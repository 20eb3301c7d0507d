//! The daemon's control-socket request line (PROTOCOL.md §23). Properties in
//! `common/control.rs`.
#![no_main]

#[path = "../common/control.rs"]
mod control;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::run(data);
});
