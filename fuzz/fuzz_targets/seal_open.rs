//! The seal openers (PROTOCOL.md §19) on both sides of the AEAD: the input as a sealed box
//! (HPKE for segments and pair requests, a line box) never panics an opener, and the input as
//! the plaintext of a box that does open (sealed by the peer on the line, or with HPKE to us)
//! reaches the decoders behind it. A box opens to exactly what was sealed, under its own purpose
//! and direction only, and one flipped bit never opens.
#![no_main]

#[path = "../common/seal_open.rs"]
mod seal_open;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    seal_open::run(data);
});
