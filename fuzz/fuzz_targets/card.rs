//! Agent cards as JSON from a claim or a resolver: parsing and verifying never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::card::SignedCard;

fuzz_target!(|data: &[u8]| {
    if let Ok(card) = SignedCard::from_json(data) {
        let _ = card.verify();
    }
});
