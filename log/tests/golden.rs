//! Golden vectors: the encoding, id and signature of fixed events, and the Character of fixed
//! DIDs, recomputed and compared with `testdata/`. `WIRE_BLESS=1` rewrites them (only when a
//! format version changes on purpose).

use std::path::PathBuf;

use serde_json::{Value, json};
use wire_log::{AuthorKey, Character, Did, Event, EventId, Kind, LogId, SecretKey, SignedEvent};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

fn check(name: &str, computed: Value) {
    let path = testdata(name);
    if std::env::var_os("WIRE_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&computed).expect("json") + "\n";
        std::fs::write(&path, text).expect("write golden file");
        return;
    }
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read golden file"))
            .expect("golden file is JSON");
    assert_eq!(
        computed, stored,
        "{name} no longer matches; a format change needs a new version"
    );
}

struct Case {
    name: &'static str,
    seed: u8,
    log: fn(&SecretKey) -> LogId,
    seq: u64,
    prev: Option<EventId>,
    ts_ms: u64,
    kind: Kind,
    body: Vec<u8>,
}

fn self_log(k: &SecretKey) -> LogId {
    LogId::self_log(&k.author())
}

fn pair_log(k: &SecretKey) -> LogId {
    LogId::pair_log(&k.author(), &SecretKey::from_seed(&[2; 32]).author())
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "identity.created, first of a self log",
            seed: 1,
            log: self_log,
            seq: 1,
            prev: None,
            ts_ms: 1_795_600_000_000,
            kind: Kind::IDENTITY_CREATED,
            body: wire_log::body::Body::encode(&wire_log::body::IdentityCreated {
                handle: "alice".into(),
                x25519: SecretKey::from_seed(&[1; 32]).x25519_public(),
            }),
        },
        Case {
            name: "message with a non-ASCII body, seq 7 of a pair log",
            seed: 1,
            log: pair_log,
            seq: 7,
            prev: Some(EventId([0x5a; 32])),
            ts_ms: 1_795_600_000_123,
            kind: Kind::MESSAGE,
            body: "training done 🐅 — want to look at the loss curves? ñ 日本"
                .as_bytes()
                .to_vec(),
        },
        Case {
            name: "empty body, addressable kind, large seq",
            seed: 3,
            log: self_log,
            seq: u64::from(u32::MAX) + 1,
            prev: Some(EventId([0xff; 32])),
            ts_ms: 0,
            kind: Kind::new(39_999).expect("kind"),
            body: Vec::new(),
        },
        Case {
            name: "largest allowed body (256 KiB)",
            seed: 4,
            log: self_log,
            seq: 2,
            prev: Some(EventId([1; 32])),
            ts_ms: 1_795_600_000_999,
            kind: Kind::MESSAGE,
            body: (0..wire_log::BODY_BYTES_MAX)
                .map(|i| (i % 251) as u8)
                .collect(),
        },
    ]
}

#[test]
fn event_vectors() {
    let mut out = Vec::new();
    for c in cases() {
        let key = SecretKey::from_seed(&[c.seed; 32]);
        let event = Event {
            author: key.author(),
            log: (c.log)(&key),
            seq: c.seq,
            prev: c.prev,
            ts_ms: c.ts_ms,
            kind: c.kind,
            body: c.body.clone(),
        };
        let unsigned = event.encode();
        let signed = event.clone().sign(&key).expect("sign");
        // Decoding the signed form gives back the same event, id and signature.
        let decoded = SignedEvent::decode(signed.signed_bytes())
            .expect("decode")
            .verify()
            .expect("verify");
        assert_eq!(decoded, signed);
        let small = c.body.len() <= 1024;
        out.push(json!({
            "name": c.name,
            "seed": hex::encode([c.seed; 32]),
            "author": key.author().to_hex(),
            "log": event.log.to_hex(),
            "seq": c.seq,
            "prev": c.prev.map(|p| p.to_hex()),
            "ts_ms": c.ts_ms,
            "kind": c.kind.number(),
            "body_len": c.body.len(),
            "body_hex": small.then(|| hex::encode(&c.body)),
            "body_blake3": blake3::hash(&c.body).to_hex().to_string(),
            "unsigned_hex": small.then(|| hex::encode(&unsigned)),
            "unsigned_blake3": blake3::hash(&unsigned).to_hex().to_string(),
            "id": signed.id().to_hex(),
            "sig": hex::encode(signed.sig().0),
            "signed_hex": small.then(|| hex::encode(signed.signed_bytes())),
            "signed_len": signed.signed_bytes().len(),
        }));
    }
    check("events.json", Value::Array(out));
}

#[test]
fn log_id_vectors() {
    let a = SecretKey::from_seed(&[1; 32]).author();
    let b = SecretKey::from_seed(&[2; 32]).author();
    check(
        "log_ids.json",
        json!({
            "a": a.to_hex(),
            "b": b.to_hex(),
            "self_log(a)": LogId::self_log(&a).to_hex(),
            "pair_log(a, b)": LogId::pair_log(&a, &b).to_hex(),
        }),
    );
}

#[test]
fn character_vectors() {
    let mut out = Vec::new();
    for seed in [1u8, 2, 3, 42, 200, 255] {
        let key = SecretKey::from_seed(&[seed; 32]).author();
        out.push(character_json(&key));
    }
    // Keys that are not from seeds, to cover the hash's whole range.
    for raw in [[0x11u8; 32], [0xee; 32]] {
        if let Some(did) = Did::parse(Did::from_key(&AuthorKey(raw)).as_str()) {
            out.push(character_json(&did.1));
        }
    }
    check("character.json", Value::Array(out));
}

fn character_json(key: &AuthorKey) -> Value {
    let did = Did::from_key(key);
    let c = Character::of(&did);
    json!({
        "key": key.to_hex(),
        "did": did.as_str(),
        "nickname": c.nickname,
        "emoji": c.emoji,
        "tag": c.tag,
        "colour": c.colour,
        "accent": c.accent,
        "label_ascii": c.label(false),
    })
}

#[test]
fn agent_cards_and_intros_match_their_golden_vectors() {
    use wire_log::card::SignedCard;
    use wire_log::intro::Intro;

    let alice = SecretKey::from_seed(&[1; 32]);
    let bob = SecretKey::from_seed(&[2; 32]);
    let card = SignedCard::sign(&alice, "alice@127.0.0.1:8771", 1_764_028_800_000).expect("card");
    card.verify().expect("verifies");
    let intro = Intro::sign(
        &bob,
        "alice@127.0.0.1:8771",
        1_764_028_800_000,
        b"sealed pair request".to_vec(),
    )
    .expect("intro");
    assert_eq!(Intro::decode(intro.signed_bytes()).expect("decodes"), intro);
    check(
        "cards_intros.json",
        json!({
            "card": {
                "seed": hex::encode([1u8; 32]),
                "json": serde_json::to_value(&card).expect("json"),
            },
            "intro": {
                "seed": hex::encode([2u8; 32]),
                "to": "alice@127.0.0.1:8771",
                "ts_ms": 1_764_028_800_000u64,
                "sealed_utf8": "sealed pair request",
                "signed_hex": hex::encode(intro.signed_bytes()),
            },
        }),
    );
}

#[test]
fn line_keys_and_a_line_sealed_segment_match_their_golden_vectors() {
    use wire_log::line::LineKeys;
    use wire_log::segment::Segment;

    let alice = SecretKey::from_seed(&[1; 32]);
    let bob = SecretKey::from_seed(&[2; 32]);
    let a = LineKeys::derive(&alice, &bob.author(), &bob.x25519_public()).expect("alice's line");
    let b = LineKeys::derive(&bob, &alice.author(), &alice.x25519_public()).expect("bob's line");
    assert_eq!(a.send_id(), b.recv_id());
    let nonce = [7u8; 24];
    let sealed = a.seal_with_nonce(b"hello bob", &nonce);
    assert_eq!(b.open(&sealed).expect("opens"), b"hello bob");
    // A segment inside a line box is the unsigned array of PROTOCOL.md §20.
    let event = Event {
        author: alice.author(),
        log: LogId::pair_log(&alice.author(), &bob.author()),
        seq: 1,
        prev: None,
        ts_ms: 1_764_028_800_000,
        kind: Kind::MESSAGE,
        body: b"hello".to_vec(),
    }
    .sign(&alice)
    .expect("sign");
    let segment = Segment::seal_line(&a, 0, 1_764_028_800_000, &[event.signed_bytes()])
        .expect("seal segment");
    let opened = Segment::open_line(&b, &segment).expect("bob opens it");
    assert_eq!(opened.from, alice.author());
    assert_eq!(opened.events, vec![event.signed_bytes().to_vec()]);
    let plaintext = b.open(&segment).expect("plaintext");
    check(
        "lines.json",
        json!({
            "alice_seed": hex::encode([1u8; 32]),
            "bob_seed": hex::encode([2u8; 32]),
            "alice_to_bob_id": hex::encode(a.send_id().0),
            "bob_to_alice_id": hex::encode(a.recv_id().0),
            "box": {
                "nonce": hex::encode(nonce),
                "plaintext_utf8": "hello bob",
                "sealed_hex": hex::encode(&sealed),
            },
            "segment_plaintext_hex": hex::encode(plaintext),
        }),
    );
}

#[test]
fn invites_and_pairing_by_code_match_their_golden_vectors() {
    use wire_log::card::SignedCard;
    use wire_log::identity::{ADJECTIVES, NOUNS};
    use wire_log::invite::{Invite, InviteNonce};
    use wire_log::pake::{self, Code, HostHello, JoinHello, Keys, Side};

    let alice = SecretKey::from_seed(&[1; 32]);
    let card = SignedCard::sign(&alice, "alice@127.0.0.1:8771", 1_764_028_800_000).expect("card");
    let invite = Invite::sign(
        &alice,
        &card,
        "http://127.0.0.1:8771",
        InviteNonce([0x0b; 16]),
        1_764_029_400_000,
        1,
    )
    .expect("invite");
    let url = invite.to_url();
    assert_eq!(Invite::from_url(&url).expect("parse"), invite);

    let code = Code::parse(&format!(
        "0042-{}-{}-{}-{}",
        ADJECTIVES[1], NOUNS[2], ADJECTIVES[3], NOUNS[4]
    ))
    .expect("code");
    let k = [0x11u8; 32];
    let mut a = vec![0x41u8];
    a.extend([0x22u8; 32]);
    let mut b = vec![0x42u8];
    b.extend([0x33u8; 32]);
    let host_hello = HostHello { flags: 1, spake: a }.encode();
    let join_hello = JoinHello { spake: b }.encode();
    let transcript = pake::transcript_of(&k, &host_hello, &join_hello);
    let sas = pake::sas_of(&transcript);
    let keys = Keys::derive(Side::Host, &k, &host_hello, &join_hello);
    let cap = format!("wac1_{}", "A".repeat(43));
    let endpoints = [wire_log::body::Endpoint {
        relay: "http://127.0.0.1:8771".into(),
        slot: "00112233445566778899aabbccddeeff".into(),
    }];
    let plain = wire_log::pair::PairRequest::encode_plain(&card, &endpoints, &cap, &[], None)
        .expect("plain");
    let card_box = keys.seal_with_nonce(Side::Host, &plain, &[0x44; 24]);
    let joiner = Keys::derive(Side::Join, &k, &host_hello, &join_hello);
    assert_eq!(
        joiner.open_card(&card_box).expect("open").card.key,
        alice.author()
    );

    check(
        "pairing.json",
        json!({
            "invite": {
                "seed": "01 x 32",
                "card_handle": "alice@127.0.0.1:8771",
                "card_issued_ms": 1_764_028_800_000u64,
                "relay": "http://127.0.0.1:8771",
                "nonce": invite.nonce.to_hex(),
                "expires_ms": invite.expires_ms,
                "uses": invite.uses,
                "signed_hex": hex::encode(invite.signed_bytes()),
                "url": url,
            },
            "code": {
                "code": code.as_str(),
                "nameplate": code.nameplate(),
                "slot": code.slot(),
            },
            "derivations": {
                "k": hex::encode(k),
                "host_hello_hex": hex::encode(&host_hello),
                "join_hello_hex": hex::encode(&join_hello),
                "transcript": hex::encode(transcript),
                "sas_digits": sas.digits,
                "sas_emoji": sas.emoji,
                "sas_tags": sas.tags,
                "aead_key": hex::encode(pake::aead_key_of(&transcript)),
                "card_box_nonce": hex::encode([0x44u8; 24]),
                "card_box_side": "host",
                "card_box_plain_hex": hex::encode(&plain),
                "card_box_hex": hex::encode(&card_box),
            },
        }),
    );
}

/// A journal frame (PROTOCOL.md §14): the first two events of `chain(key(1))` written by one
/// durable write to a new store, read back from `store.journal` byte for byte, its sum
/// recomputed from the formula the document gives.
#[test]
fn a_journal_frame_matches_its_golden_vector() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let k = crate::key(1);
    let events = crate::chain(&k, 2);
    let store = wire_log::EventStore::create(&path, k.author()).expect("create");
    store
        .write(|w| events.iter().try_for_each(|e| w.append(e).map(|_| ())))
        .expect("write");
    let bytes = std::fs::read(wire_log::store::journal_path(&path)).expect("journal");
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let body_len = be32(12) as usize;
    let frame = &bytes[..36 + body_len];
    assert_eq!(&frame[..4], b"wse1");
    assert_eq!(
        &frame[4..12],
        &0u64.to_be_bytes(),
        "a new store's epoch is 0"
    );
    assert_eq!(be32(16), 2, "two entries");
    let mut summed = frame[..20].to_vec();
    summed.extend_from_slice(&frame[36..]);
    assert_eq!(&frame[20..36], &blake3::hash(&summed).as_bytes()[..16]);
    let mut body = Vec::new();
    for e in &events {
        body.extend_from_slice(&(e.signed_bytes().len() as u32).to_be_bytes());
        body.extend_from_slice(e.signed_bytes());
    }
    assert_eq!(&frame[36..], &body[..], "entries: length ‖ signed event");
    check(
        "journal.json",
        json!({
            "seed": hex::encode([1u8; 32]),
            "events_hex": events.iter().map(|e| hex::encode(e.signed_bytes())).collect::<Vec<_>>(),
            "frame_hex": hex::encode(frame),
        }),
    );
}
