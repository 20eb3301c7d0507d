//! The body of a `message.broadcast` event (kind 1040), as a paired peer writes it into our
//! pair log: `wire tail`, `wire mesh` and the MCP server decode it to show the message inside.
//! Decoding never panics; what decodes is canonical (`encode(decode(x)) == x`) and decodes
//! again to the same message; its inner kind is a message kind a broadcast may carry (1000 or
//! 1100 to 9999, never one wire reserves); and the input as the inner body of a broadcast we
//! send, when it is within `BODY_BYTES_MAX - BROADCAST_OVERHEAD_BYTES`, encodes within
//! `BODY_BYTES_MAX` and decodes back to exactly that message.
//!
//! Shared, word for word, by the `broadcast` fuzz target and the corpus test that replays its
//! corpus (`relay/tests/relay/corpus.rs`).

use wire_log::body::{BROADCAST_ID_BYTES, BROADCAST_OVERHEAD_BYTES, Body, BroadcastMessage};
use wire_log::{BODY_BYTES_MAX, Kind, KindClass};

/// Runs one input (see the module's properties).
pub fn run(data: &[u8]) {
    // The input as the body a peer sent.
    if let Ok(b) = BroadcastMessage::decode(data) {
        assert_eq!(
            b.encode(),
            data,
            "a broadcast body decoded from other bytes"
        );
        assert_eq!(BroadcastMessage::decode(data).as_ref(), Ok(&b));
        let kind = Kind::new(b.kind).expect("a broadcast's inner kind is a kind");
        assert_eq!(kind.class(), KindClass::Regular, "inner kind {}", b.kind);
        assert!(!kind.is_reserved(), "inner kind {} is reserved", b.kind);
        assert!(b.body.len() < data.len());
    }

    // The input as the message inside a broadcast we send: id and kind from its first bytes.
    let mut id = [0u8; BROADCAST_ID_BYTES];
    for (slot, byte) in id.iter_mut().zip(data) {
        *slot = *byte;
    }
    let pick = data
        .get(BROADCAST_ID_BYTES..BROADCAST_ID_BYTES + 2)
        .map_or(0, |b| u32::from(u16::from_be_bytes([b[0], b[1]])));
    let kind = if pick % 2 == 0 {
        1000
    } else {
        1100 + pick % 8900
    };
    if data.len() <= BODY_BYTES_MAX - BROADCAST_OVERHEAD_BYTES {
        let sent = BroadcastMessage {
            id,
            kind,
            body: data.to_vec(),
        };
        let encoded = sent.encode();
        assert!(
            encoded.len() <= BODY_BYTES_MAX,
            "{} bytes of message took {} bytes of body",
            data.len(),
            encoded.len()
        );
        assert_eq!(BroadcastMessage::decode(&encoded), Ok(sent));
    }
}
