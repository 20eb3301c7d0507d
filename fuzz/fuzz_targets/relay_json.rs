//! The relay's small JSON bodies and path tokens: acknowledgements, directory claims (with the
//! card inside), owner tokens, capabilities and slot ids. None of them panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_relay::api::{decode_ack, decode_claim};
use wire_relay::token::{SlotId, Token};

fuzz_target!(|data: &[u8]| {
    let _ = decode_ack(data);
    if let Ok(claim) = decode_claim(data) {
        let _ = SlotId::parse(&claim.slot);
        let _ = claim.card.verify();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(t) = Token::parse(s) {
            assert_eq!(t.reveal(), s, "a token has one spelling");
        }
        if let Some(slot) = SlotId::parse(s) {
            assert_eq!(slot.to_string(), s, "a slot id has one spelling");
        }
    }
});
