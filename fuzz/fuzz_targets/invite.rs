//! The invite: a `wire://pair?…` URL a recipient pastes, and the signed bytes inside it.
//! Decoding never panics; what decodes re-decodes equal from its own bytes and its own URL, and
//! a URL that parses is the one spelling of its invite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::invite::Invite;

fuzz_target!(|data: &[u8]| {
    if let Ok(inv) = Invite::decode(data) {
        let again = Invite::decode(inv.signed_bytes()).expect("decoded bytes decode again");
        assert_eq!(again, inv);
        assert_eq!(
            Invite::from_url(&inv.to_url()).expect("its URL parses"),
            inv
        );
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(inv) = Invite::from_url(text)
    {
        assert_eq!(inv.to_url(), text.trim());
    }
});
