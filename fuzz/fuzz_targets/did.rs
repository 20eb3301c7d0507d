//! `did:key` strings from remote cards: parsing never panics, and what parses is the one
//! canonical spelling of its key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::Did;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Some((did, key)) = Did::parse(s)
    {
        assert_eq!(did.as_str(), s);
        assert_eq!(Did::from_key(&key), did);
    }
});
