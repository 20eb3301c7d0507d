//! Sealed segments and pair requests: what a peer (or anyone holding a capability) puts in our
//! mailbox, and what a stranger seals into an intro. Opening and decoding never panic; a signed
//! segment that decodes is addressed to the key it was checked for; a line box that opens came
//! from the line's peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::SecretKey;
use wire_log::line::LineKeys;
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
    // A line box from a peer (the id must match before anything is decrypted), and the
    // unsigned segment a line box carries.
    let peer = SecretKey::from_seed(&[8; 32]);
    if let Ok(line) = LineKeys::derive(&me, &peer.author(), &peer.x25519_public()) {
        let _ = line.open(data);
        // The same bytes behind the right id, so the AEAD itself is reached.
        let mut framed = vec![wire_log::line::LINE_BOX_VERSION];
        framed.extend_from_slice(&line.recv_id().0);
        framed.extend_from_slice(data);
        assert!(line.open(&framed).is_err(), "a forged line box opened");
        if let Ok(seg) = Segment::open_line(&line, data) {
            assert_eq!(seg.from, peer.author());
            assert_eq!(seg.to, me.author());
        }
    }
    if let Ok(seg) = Segment::parse_unsigned(data, &me.author()) {
        assert_eq!(seg.to, me.author());
    }
    // A pair request's plaintext, from some sender.
    let _ = PairRequest::decode(data, &me.author());
});
