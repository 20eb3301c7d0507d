//! What a pairing by code reads from a relay's pair slot (the relay or anyone in the middle
//! chooses these bytes): the host's and the joiner's first messages, a card box, and the code
//! an operator types. Decoding never panics; hellos are canonical (`encode(decode(x)) == x`);
//! a box under a key nobody but the two sides holds never opens; a code that parses re-parses
//! to itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wire_log::pair::PairRequest;
use wire_log::pake::{self, Code, Exchange, HostHello, JoinHello, Side};

const K: [u8; 32] = [0x11; 32];

/// The seed's box key and the code, derived once (they do not depend on the input).
fn fixed() -> &'static ([u8; 32], Code) {
    static FIXED: OnceLock<([u8; 32], Code)> = OnceLock::new();
    FIXED.get_or_init(|| {
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
        let code = Code::parse("0042-winter-bayou-quiet-meadow").expect("code");
        (key, code)
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, code) = fixed();
    let host_hello = HostHello::decode(data);
    if let Ok(h) = &host_hello {
        assert_eq!(h.encode(), data);
    }
    let join_hello = JoinHello::decode(data);
    if let Ok(j) = &join_hello {
        assert_eq!(j.encode(), data);
    }
    // The seed's key: boxes sealed under it (the corpus has one) open and their bundle is
    // checked; anything else is refused.
    if let Ok(plain) = pake::open_box(key, Side::Host, data) {
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
    // A real exchange finishing against the bytes never panics. `finish` decodes the other
    // side's hello first and returns that error untouched, so an exchange (two scalar
    // multiplications to start, none of them reading the input) is started only for bytes
    // that decode as the hello it reads: the host's side reads a `JoinHello`, the joiner's a
    // `HostHello`.
    if join_hello.is_ok() {
        let _ = Exchange::host(code, 0).finish(data);
    }
    if host_hello.is_ok() {
        let _ = Exchange::join(code).finish(data);
    }
});
