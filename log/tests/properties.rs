//! Codec properties: round trips, and no single-byte change to a signed event survives decoding
//! and verification.

use proptest::prelude::*;
use wire_log::{Event, EventId, Kind, LogId, SecretKey, SignedEvent};

fn arb_event() -> impl Strategy<Value = (u8, Event)> {
    (
        any::<u8>(),
        any::<[u8; 32]>(),
        1u64..u64::MAX,
        any::<[u8; 32]>(),
        any::<u64>(),
        1000u32..40_000,
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(seed, log, seq, prev, ts_ms, kind, body)| {
            let key = SecretKey::from_seed(&[seed; 32]);
            (
                seed,
                Event {
                    author: key.author(),
                    log: LogId(log),
                    seq,
                    prev: (seq > 1).then_some(EventId(prev)),
                    ts_ms,
                    kind: Kind::new(kind).expect("kind in range"),
                    body,
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trips((seed, event) in arb_event()) {
        let key = SecretKey::from_seed(&[seed; 32]);
        prop_assert_eq!(Event::decode(&event.encode()).expect("decode"), event.clone());
        let signed = event.sign(&key).expect("sign");
        let back = SignedEvent::decode(signed.signed_bytes()).expect("decode").verify().expect("verify");
        prop_assert_eq!(back, signed);
    }

    #[test]
    fn any_single_byte_change_is_refused(
        (seed, event) in arb_event(),
        at in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let key = SecretKey::from_seed(&[seed; 32]);
        let signed = event.sign(&key).expect("sign");
        let mut bytes = signed.signed_bytes().to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= delta;
        let outcome = SignedEvent::decode(&bytes).map_err(|e| e.to_string()).and_then(|e| e.verify().map_err(|e| e.to_string()));
        prop_assert!(outcome.is_err(), "byte {} changed and the event still verified", i);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedEvent::decode(&bytes);
        let _ = Event::decode(&bytes);
    }
}
