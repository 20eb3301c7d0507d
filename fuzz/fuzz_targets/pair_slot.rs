//! What a pairing by code reads from a relay's pair slot (the relay or anyone in the middle
//! chooses these bytes): the host's and the joiner's first messages, a card box, and the code
//! an operator types. Decoding never panics; hellos are canonical (`encode(decode(x)) == x`);
//! a box under a key nobody but the two sides holds never opens; a code that parses re-parses
//! to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::pair::PairRequest;
use wire_log::pake::{self, Code, Exchange, HostHello, JoinHello, Side};

const K: [u8; 32] = [0x11; 32];

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = HostHello::decode(data) {
        assert_eq!(h.encode(), data);
    }
    if let Ok(j) = JoinHello::decode(data) {
        assert_eq!(j.encode(), data);
    }
    // The seed's key: boxes sealed under it (the corpus has one) open and their bundle is
    // checked; anything else is refused.
    let host = HostHello {
        flags: 1,
        spake: [[0x41].as_slice(), &[0x22; 32]].concat(),
    }
    .encode();
    let join = JoinHello {
        spake: [[0x42].as_slice(), &[0x33; 32]].concat(),
    }
    .encode();
    let key = pake::aead_key_of(&pake::transcript_of(&K, &host, &join));
    if let Ok(plain) = pake::open_box(&key, Side::Host, data) {
        let _ = PairRequest::decode_own(&plain);
    }
    // A key no input knows: nothing opens under it.
    assert!(pake::open_box(&[0x5a; 32], Side::Join, data).is_err());
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(c) = Code::parse(text)
    {
        assert_eq!(Code::parse(c.as_str()).as_ref(), Ok(&c));
        assert_eq!(c.slot().len(), 32);
    }
    // A real exchange finishing against the bytes never panics.
    let code = Code::parse("0042-winter-bayou-quiet-meadow").expect("code");
    let _ = Exchange::host(&code, 0).finish(data);
    let _ = Exchange::join(&code).finish(data);
});
