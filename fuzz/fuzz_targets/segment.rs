//! Sealed segments and pair requests: what a peer (or anyone holding a capability) puts in our
//! mailbox, and what a stranger seals into an intro. Opening and decoding never panic; a signed
//! segment that decodes is addressed to the key it was checked for; a line box that opens came
//! from the line's peer, and nothing forges one.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wire_log::SecretKey;
use wire_log::cbor;
use wire_log::line::{LINE_BOX_VERSION, LineKeys};
use wire_log::pair::PairRequest;
use wire_log::segment::Segment;

/// Our key and the line with one peer, derived once (a Diffie-Hellman per input would make
/// the fuzzer a hundred times slower).
fn keys() -> &'static (SecretKey, SecretKey, LineKeys) {
    static KEYS: OnceLock<(SecretKey, SecretKey, LineKeys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let me = SecretKey::from_seed(&[9; 32]);
        let peer = SecretKey::from_seed(&[8; 32]);
        let line = LineKeys::derive(&me, &peer.author(), &peer.x25519_public()).expect("line");
        (me, peer, line)
    })
}

fuzz_target!(|data: &[u8]| {
    let (me, peer, line) = keys();
    // The sealed form: version, encapsulated key, ciphertext. `Segment::open` is a length
    // check, then `seal::open(me, Purpose::Segment, _)` (a Diffie-Hellman), then
    // `Segment::decode`: calling `seal::open` on its own as well ran the same opener twice.
    let _ = Segment::open(me, data);
    // The line box, below, is the only reader here that is not CBOR first. The other three
    // (`Segment::decode`, `Segment::parse_unsigned`, `PairRequest::decode`) each start with
    // `cbor::decode_canonical` under a size limit and return its error: bytes that are not
    // canonical CBOR at any size are refused by all three the same way, so they are decoded
    // once here instead of three times.
    let cbor = cbor::decode_canonical(data, usize::MAX).is_ok();
    // The signed form inside the seal, as if it had opened.
    if cbor && let Ok(seg) = Segment::decode(data, &me.author()) {
        assert_eq!(seg.to, me.author());
        assert!(seg.events.iter().all(|e| !e.is_empty()));
    }
    // A line box from the peer, and the same bytes behind the right id so the AEAD itself is
    // reached: without the key nothing opens.
    if let Ok(seg) = Segment::open_line(line, data) {
        assert_eq!(seg.from, peer.author());
        assert_eq!(seg.to, me.author());
    }
    let mut framed = vec![LINE_BOX_VERSION];
    framed.extend_from_slice(&line.recv_id().0);
    framed.extend_from_slice(data);
    assert!(line.open(&framed).is_err(), "a forged line box opened");
    if !cbor {
        return;
    }
    // The unsigned segment a line box carries.
    if let Ok(seg) = Segment::parse_unsigned(data, &me.author()) {
        assert_eq!(seg.to, me.author());
    }
    // A pair request's plaintext, from some sender.
    let _ = PairRequest::decode(data, &me.author());
});
