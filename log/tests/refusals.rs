//! Appends the store must refuse, each with a clear error, leaving the store unchanged.

use wire_log::{
    AppendError, AppendOutcome, DecodeError, Event, EventStore, Kind, LogId, SecretKey,
    store::ORDER,
};

use crate::{chain, key};

fn store() -> (tempfile::TempDir, EventStore, SecretKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = key(1);
    let store = EventStore::create(&dir.path().join("store.redb"), k.author()).expect("create");
    (dir, store, k)
}

fn bytes(events: &[wire_log::VerifiedEvent]) -> Vec<&[u8]> {
    events.iter().map(|e| e.signed_bytes()).collect()
}

#[test]
fn a_valid_chain_appends_in_one_batch_and_reads_back_verified() {
    let (_d, store, k) = store();
    let events = chain(&k, 10);
    let out = store.append_batch(&bytes(&events)).expect("append");
    assert_eq!(out[9], AppendOutcome::Stored { position: 9 });
    let back = store
        .read_chain(&LogId::self_log(&k.author()), &k.author(), 0, 100)
        .expect("read");
    assert_eq!(back, events);
    assert_eq!(
        store
            .head(&LogId::self_log(&k.author()), &k.author())
            .expect("head"),
        Some((10, events[9].id()))
    );
    // The same event again is a no-op, not an error.
    assert_eq!(
        store.append(events[3].signed_bytes()).expect("dup"),
        AppendOutcome::Duplicate
    );
    assert_eq!(store.len().expect("len"), 10);
}

fn assert_unchanged(store: &EventStore, n: u64) {
    assert_eq!(store.len().expect("len"), n);
    let txn = store.read_txn().expect("txn");
    let order = txn.open_table(ORDER).expect("order");
    assert_eq!(redb::ReadableTableMetadata::len(&order).expect("len"), n);
}

#[test]
fn bad_signature_is_refused() {
    let (_d, store, k) = store();
    let events = chain(&k, 1);
    let mut b = events[0].signed_bytes().to_vec();
    let last = b.len() - 1;
    b[last] ^= 1;
    let err = store.append(&b).expect_err("must refuse");
    assert!(matches!(err, AppendError::Verify { index: 0, .. }), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");
    assert_unchanged(&store, 0);
}

#[test]
fn broken_prev_skipped_and_repeated_seq_are_refused() {
    let (_d, store, k) = store();
    let events = chain(&k, 3);
    store.append(events[0].signed_bytes()).expect("first");

    // Skipped seq: 3 after 1.
    let err = store.append(events[2].signed_bytes()).expect_err("gap");
    assert!(
        matches!(
            err,
            AppendError::SeqGap {
                expected: 2,
                got: 3,
                ..
            }
        ),
        "{err}"
    );

    // Broken prev: seq 2 pointing somewhere else.
    let forged = Event {
        prev: Some(wire_log::EventId([9; 32])),
        ..events[1].event().clone()
    }
    .sign(&k)
    .expect("sign");
    let err = store.append(forged.signed_bytes()).expect_err("prev");
    assert!(
        matches!(err, AppendError::BrokenPrev { seq: 2, .. }),
        "{err}"
    );

    // Repeated seq with different content: a fork.
    let fork = Event {
        body: b"other".to_vec(),
        ..events[0].event().clone()
    }
    .sign(&k)
    .expect("sign");
    let err = store.append(fork.signed_bytes()).expect_err("fork");
    assert!(matches!(err, AppendError::Conflict { seq: 1, .. }), "{err}");

    // A batch with one bad event stores nothing of it.
    let err = store
        .append_batch(&[events[1].signed_bytes(), forged.signed_bytes()])
        .expect_err("batch");
    assert!(
        matches!(
            err,
            AppendError::SeqGap { .. } | AppendError::Conflict { .. }
        ),
        "{err}"
    );
    assert_unchanged(&store, 1);
}

#[test]
fn foreign_author_is_refused() {
    let (_d, store, _k) = store();
    // A stranger writing a valid chain into its own self log, in our store.
    let stranger = key(7);
    let err = store
        .append(chain(&stranger, 1)[0].signed_bytes())
        .expect_err("foreign");
    assert!(matches!(err, AppendError::NotMember { .. }), "{err}");
    // A stranger writing into our self log.
    let e = Event {
        author: stranger.author(),
        log: LogId::self_log(&key(1).author()),
        seq: 1,
        prev: None,
        ts_ms: 1,
        kind: Kind::MESSAGE,
        body: vec![],
    }
    .sign(&stranger)
    .expect("sign");
    assert!(matches!(
        store.append(e.signed_bytes()),
        Err(AppendError::NotMember { .. })
    ));
    assert_unchanged(&store, 0);
}

#[test]
fn oversized_body_and_non_canonical_encoding_are_refused() {
    let (_d, store, k) = store();
    let too_big = Event {
        author: k.author(),
        log: LogId::self_log(&k.author()),
        seq: 1,
        prev: None,
        ts_ms: 1,
        kind: Kind::MESSAGE,
        body: vec![0; wire_log::BODY_BYTES_MAX + 1],
    };
    assert!(matches!(
        too_big.clone().sign(&k),
        Err(wire_log::event::VerifyError::Decode(
            DecodeError::BodyTooLarge(_)
        ))
    ));
    // Hand-build the oversized encoding, since our own encoder refuses to.
    let huge = oversized_signed(&k);
    let err = store.append(&huge).expect_err("oversized");
    assert!(err.to_string().contains("over the limit"), "{err}");

    // Seq 1 written as a two-byte integer: valid CBOR, not canonical.
    let good = chain(&k, 1)[0].signed_bytes().to_vec();
    let non_canonical = non_canonical_seq(&good);
    let err = store.append(&non_canonical).expect_err("non-canonical");
    assert!(err.to_string().contains("canonical"), "{err}");
    assert_unchanged(&store, 0);
}

/// A signed event with a body one byte over the cap, built with ciborium directly.
pub fn oversized_signed(k: &SecretKey) -> Vec<u8> {
    use ciborium::Value;
    let body = vec![0u8; wire_log::BODY_BYTES_MAX + 1];
    let unsigned = Value::Array(vec![
        Value::Integer(1.into()),
        Value::Bytes(k.author().0.to_vec()),
        Value::Bytes(LogId::self_log(&k.author()).0.to_vec()),
        Value::Integer(1.into()),
        Value::Null,
        Value::Integer(1.into()),
        Value::Integer(1000.into()),
        Value::Bytes(body),
    ]);
    let unsigned = wire_log::cbor::encode(&unsigned);
    wire_log::cbor::encode(&Value::Array(vec![
        Value::Bytes(unsigned),
        Value::Bytes(vec![0; 64]),
    ]))
}

/// Re-encodes the seq field (1) of a signed event as `0x18 0x01`.
pub fn non_canonical_seq(signed: &[u8]) -> Vec<u8> {
    use ciborium::Value;
    let Ok(Value::Array(outer)) = ciborium::from_reader::<Value, _>(signed) else {
        panic!("outer")
    };
    let (Value::Bytes(unsigned), Value::Bytes(sig)) = (&outer[0], &outer[1]) else {
        panic!("fields")
    };
    // Unsigned layout: array header, uint 1, bstr32 author (2+32), bstr32 log (2+32), then seq.
    let at = 1 + 1 + 34 + 34;
    assert_eq!(unsigned[at], 0x01, "seq 1 expected at {at}");
    let mut u = unsigned[..at].to_vec();
    u.extend_from_slice(&[0x18, 0x01]);
    u.extend_from_slice(&unsigned[at + 1..]);
    wire_log::cbor::encode(&Value::Array(vec![
        Value::Bytes(u),
        Value::Bytes(sig.clone()),
    ]))
}
