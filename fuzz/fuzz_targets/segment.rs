//! Sealed segments and pair requests: what a peer (or anyone holding a capability) puts in our
//! mailbox, and what a stranger seals into an intro. Opening and decoding never panic; a signed
//! segment that decodes is addressed to the key it was checked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::SecretKey;
use wire_log::pair::PairRequest;
use wire_log::seal::{self, Purpose};
use wire_log::segment::Segment;

fuzz_target!(|data: &[u8]| {
    let me = SecretKey::from_seed(&[9; 32]);
    // The sealed form: version, encapsulated key, ciphertext.
    let _ = seal::open(&me, Purpose::Segment, data);
    let _ = Segment::open(&me, data);
    // The signed form inside the seal, as if it had opened.
    if let Ok(seg) = Segment::decode(data, &me.author()) {
        assert_eq!(seg.to, me.author());
        assert!(seg.events.iter().all(|e| !e.is_empty()));
    }
    // A pair request's plaintext, from some sender.
    let _ = PairRequest::decode(data, &me.author());
});
