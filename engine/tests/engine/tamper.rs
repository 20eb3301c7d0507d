//! Damage written into the store behind the engine's back, each kind caught by verify, which
//! names the bad event.

use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use wire_engine::VerifyFailure;
use wire_log::store::{EVENT_IDS, EVENTS, EventKey, HEADS, ORDER, split_stored};
use wire_log::{Event, EventId, Kind, LogId, SecretKey, VerifiedEvent};

use crate::{new_session, reopen};

/// A session with a self log of 1 identity event and 4 notes.
fn setup() -> (tempfile::TempDir, SecretKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = new_session(dir.path(), 1);
    for i in 0..4 {
        s.append(
            s.self_log(),
            Kind::MESSAGE,
            format!("note {i}").into_bytes(),
        )
        .expect("append");
    }
    s.verify(&mut |_| {}).expect("clean store verifies");
    (dir, SecretKey::from_seed(&[1; 32]))
}

fn db(dir: &std::path::Path) -> Database {
    Database::open(dir.join("sessions/default/store.redb")).expect("open redb")
}

fn verify(dir: &std::path::Path) -> VerifyFailure {
    reopen(dir)
        .verify(&mut |_| {})
        .expect_err("tampering must be detected")
}

fn read_event(db: &Database, key: &EventKey) -> (u64, Vec<u8>) {
    let txn = db.begin_read().expect("read");
    let t = txn.open_table(EVENTS).expect("events");
    let v = t.get(&key.to_bytes()).expect("get").expect("present");
    let (pos, bytes) = split_stored(v.value()).expect("split");
    (pos, bytes.to_vec())
}

fn overwrite(db: &Database, key: &EventKey, pos: u64, bytes: &[u8]) {
    let txn = db.begin_write().expect("write");
    {
        let mut t = txn.open_table(EVENTS).expect("events");
        let mut v = pos.to_be_bytes().to_vec();
        v.extend_from_slice(bytes);
        t.insert(&key.to_bytes(), v.as_slice()).expect("insert");
    }
    txn.commit().expect("commit");
}

/// Writes an event at the end of the log with every index consistent, so that only the
/// event's own content can give it away.
fn inject(db: &Database, key: EventKey, id: EventId, bytes: &[u8]) {
    let txn = db.begin_write().expect("write");
    {
        let mut order = txn.open_table(ORDER).expect("order");
        let pos = order.len().expect("len");
        order.insert(pos, &key.to_bytes()).expect("order");
        let mut events = txn.open_table(EVENTS).expect("events");
        let mut v = pos.to_be_bytes().to_vec();
        v.extend_from_slice(bytes);
        events
            .insert(&key.to_bytes(), v.as_slice())
            .expect("events");
        txn.open_table(EVENT_IDS)
            .expect("ids")
            .insert(&id.0, &key.to_bytes())
            .expect("ids");
        let mut h = [0u8; 64];
        h[..32].copy_from_slice(&key.log.0);
        h[32..].copy_from_slice(&key.author.0);
        let mut hv = [0u8; 40];
        hv[..8].copy_from_slice(&key.seq.to_be_bytes());
        hv[8..].copy_from_slice(&id.0);
        txn.open_table(HEADS)
            .expect("heads")
            .insert(&h, &hv)
            .expect("heads");
    }
    txn.commit().expect("commit");
}

fn self_key(k: &SecretKey, seq: u64) -> EventKey {
    EventKey {
        log: LogId::self_log(&k.author()),
        author: k.author(),
        seq,
    }
}

fn signed(
    k: &SecretKey,
    log: LogId,
    seq: u64,
    prev: Option<EventId>,
    body: &[u8],
) -> VerifiedEvent {
    Event {
        author: k.author(),
        log,
        seq,
        prev,
        ts_ms: 5,
        kind: Kind::MESSAGE,
        body: body.to_vec(),
    }
    .sign(k)
    .expect("sign")
}

fn head(dir: &std::path::Path, k: &SecretKey) -> (u64, EventId) {
    let s = reopen(dir);
    s.store()
        .head(&LogId::self_log(&k.author()), &k.author())
        .expect("head")
        .expect("some")
}

#[test]
fn bad_signature_is_located() {
    let (dir, k) = setup();
    let key = self_key(&k, 3);
    let db = db(dir.path());
    let (pos, mut bytes) = read_event(&db, &key);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    overwrite(&db, &key, pos, &bytes);
    drop(db);
    let f = verify(dir.path());
    assert_eq!(
        (f.seq, f.author, f.position),
        (Some(3), Some(k.author()), Some(2)),
        "{f}"
    );
    assert!(f.problem.contains("signature"), "{f}");
    // Reads check again: the single-event read path refuses it too.
    let err = reopen(dir.path())
        .store()
        .get(&key)
        .expect_err("read must refuse");
    assert!(err.to_string().contains("signature"), "{err}");
}

#[test]
fn broken_prev_is_located() {
    let (dir, k) = setup();
    let key = self_key(&k, 4);
    let db = db(dir.path());
    let (pos, _) = read_event(&db, &key);
    // A properly signed seq 4 whose prev points nowhere, stored in place of the real one.
    let forged = signed(&k, key.log, 4, Some(EventId([7; 32])), b"forged");
    overwrite(&db, &key, pos, forged.signed_bytes());
    drop(db);
    let f = verify(dir.path());
    assert_eq!(f.seq, Some(4), "{f}");
    assert!(f.problem.contains("prev"), "{f}");
}

#[test]
fn skipped_seq_is_located() {
    let (dir, k) = setup();
    let (seq, id) = head(dir.path(), &k);
    let e = signed(
        &k,
        LogId::self_log(&k.author()),
        seq + 2,
        Some(id),
        b"skipped one",
    );
    inject(
        &db(dir.path()),
        self_key(&k, seq + 2),
        e.id(),
        e.signed_bytes(),
    );
    let f = verify(dir.path());
    assert_eq!(f.seq, Some(seq + 2), "{f}");
    assert!(f.problem.contains("skipped or repeated"), "{f}");
}

#[test]
fn repeated_seq_is_located() {
    let (dir, k) = setup();
    let (seq, _) = head(dir.path(), &k);
    // A second event claiming the last seq, written at the next slot.
    let db = db(dir.path());
    let (_, last) = read_event(&db, &self_key(&k, seq));
    let last = wire_log::SignedEvent::decode(&last).expect("decode");
    let e = signed(
        &k,
        LogId::self_log(&k.author()),
        seq,
        last.event.prev,
        b"again",
    );
    inject(&db, self_key(&k, seq + 1), e.id(), e.signed_bytes());
    drop(db);
    let f = verify(dir.path());
    assert_eq!(f.seq, Some(seq + 1), "{f}");
    assert!(f.problem.contains(&format!("seq {seq}")), "{f}");
}

#[test]
fn foreign_author_is_located() {
    let (dir, _k) = setup();
    let stranger = SecretKey::from_seed(&[66; 32]);
    let e = signed(
        &stranger,
        LogId::self_log(&stranger.author()),
        1,
        None,
        b"hello from outside",
    );
    inject(
        &db(dir.path()),
        self_key(&stranger, 1),
        e.id(),
        e.signed_bytes(),
    );
    let f = verify(dir.path());
    assert_eq!((f.author, f.seq), (Some(stranger.author()), Some(1)), "{f}");
    assert!(f.problem.contains("foreign author"), "{f}");
}

#[test]
fn oversized_body_is_located() {
    let (dir, k) = setup();
    let (seq, _) = head(dir.path(), &k);
    let huge = oversized(&k, seq + 1);
    inject(
        &db(dir.path()),
        self_key(&k, seq + 1),
        EventId([3; 32]),
        &huge,
    );
    let f = verify(dir.path());
    assert_eq!(f.seq, Some(seq + 1), "{f}");
    assert!(f.problem.contains("over the limit"), "{f}");
}

#[test]
fn non_canonical_encoding_is_located() {
    let (dir, k) = setup();
    let key = self_key(&k, 2);
    let db = db(dir.path());
    let (pos, bytes) = read_event(&db, &key);
    // Re-encode the outer array header in its two-byte form: same value, other bytes.
    assert_eq!(bytes[0], 0x82);
    let mut nc = vec![0x98, 0x02];
    nc.extend_from_slice(&bytes[1..]);
    overwrite(&db, &key, pos, &nc);
    drop(db);
    let f = verify(dir.path());
    assert_eq!(f.seq, Some(2), "{f}");
    assert!(f.problem.contains("canonical"), "{f}");
}

#[test]
fn damaged_projection_is_detected_and_rebuilt() {
    let (dir, _) = setup();
    let s = reopen(dir.path());
    s.rename(Some("quiet-harbor"), None).expect("rename");
    drop(s);
    let db = db(dir.path());
    let txn = db.begin_write().expect("write");
    txn.open_table(wire_projections::IDENTITY)
        .expect("identity")
        .remove("self")
        .expect("remove");
    txn.commit().expect("commit");
    drop(db);
    let f = verify(dir.path());
    assert!(f.problem.contains("identity_v1"), "{f}");
    let s = reopen(dir.path());
    let rebuilt = s.rebuild().expect("rebuild");
    assert_eq!(
        rebuilt.identity.map(|i| i.character.nickname),
        Some("quiet-harbor".to_owned())
    );
    s.verify(&mut |_| {}).expect("verifies after rebuild");
}

fn oversized(k: &SecretKey, seq: u64) -> Vec<u8> {
    use ciborium::Value;
    let unsigned = Value::Array(vec![
        Value::Integer(1.into()),
        Value::Bytes(k.author().0.to_vec()),
        Value::Bytes(LogId::self_log(&k.author()).0.to_vec()),
        Value::Integer(seq.into()),
        Value::Bytes(vec![0; 32]),
        Value::Integer(1.into()),
        Value::Integer(1000.into()),
        Value::Bytes(vec![0; wire_log::BODY_BYTES_MAX + 1]),
    ]);
    let unsigned = wire_log::cbor::encode(&unsigned);
    wire_log::cbor::encode(&Value::Array(vec![
        Value::Bytes(unsigned),
        Value::Bytes(vec![0; 64]),
    ]))
}
