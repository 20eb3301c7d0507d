//! `incremental == rebuild` over random valid sequences of renames, pair requests, dials,
//! accepts, rejects, confirmations, forgets, cursors, sends and received messages.

use proptest::prelude::*;
use wire_log::body::PeerCard;
use wire_log::{Event, EventId, Kind, LogId, SecretKey};

use crate::new_session;

#[derive(Debug, Clone)]
enum Op {
    Rename(Option<String>, Option<String>),
    Request(u8),
    Dial(u8),
    Accept(u8),
    Reject(u8),
    Confirm(u8),
    Forget(u8),
    Cursor(u8, u64),
    Send(u8, Vec<u8>),
    Receive(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0u8..4;
    prop_oneof![
        (
            proptest::option::of("[a-z]{3,8}-[a-z]{3,8}"),
            proptest::option::of(prop::sample::select(vec![
                "🦊".to_owned(),
                "🐻".to_owned(),
                "x".to_owned()
            ]))
        )
            .prop_map(|(n, e)| Op::Rename(n, e)),
        peer.clone().prop_map(Op::Request),
        peer.clone().prop_map(Op::Dial),
        peer.clone().prop_map(Op::Accept),
        peer.clone().prop_map(Op::Reject),
        peer.clone().prop_map(Op::Confirm),
        peer.clone().prop_map(Op::Forget),
        (peer.clone(), 0u64..20).prop_map(|(p, s)| Op::Cursor(p, s)),
        (peer.clone(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(p, b)| Op::Send(p, b)),
        (peer, 1u8..4).prop_map(|(p, n)| Op::Receive(p, n)),
    ]
}

fn peer_key(p: u8) -> SecretKey {
    SecretKey::from_seed(&[100 + p; 32])
}

fn card(p: u8) -> PeerCard {
    let k = peer_key(p);
    PeerCard {
        peer: k.author(),
        handle: format!("peer{p}@relay.example"),
        x25519: k.x25519_public(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn incremental_equals_rebuild(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = new_session(dir.path(), 1);
        let me = s.key();
        // Each peer's own chain in the pair log it shares with us.
        let mut chains: [(u64, Option<EventId>); 4] = [(0, None); 4];
        let mut applied = 0usize;
        for op in ops {
            let r = match &op {
                Op::Rename(n, e) => s.rename(n.as_deref(), e.as_deref()).map(|_| ()),
                Op::Request(p) => s.record_pair_request(&card(*p)),
                Op::Dial(p) => s.record_dial(&card(*p)),
                Op::Accept(p) => s.accept(&peer_key(*p).author()).map(|_| ()),
                Op::Reject(p) => s.reject(&peer_key(*p).author()).map(|_| ()),
                Op::Confirm(p) => s.confirm(&peer_key(*p).author()).map(|_| ()),
                Op::Forget(p) => s.forget(&peer_key(*p).author()),
                Op::Cursor(p, seq) => s.advance_cursor(&peer_key(*p).author(), *seq),
                Op::Send(p, body) => s.send(&peer_key(*p).author(), Kind::MESSAGE, body.clone()).map(|_| ()),
                Op::Receive(p, n) => {
                    let k = peer_key(*p);
                    let (mut seq, mut prev) = chains[usize::from(*p)];
                    let mut batch = Vec::new();
                    for _ in 0..*n {
                        seq += 1;
                        let e = Event {
                            author: k.author(),
                            log: LogId::pair_log(&me, &k.author()),
                            seq,
                            prev,
                            ts_ms: seq,
                            kind: Kind::MESSAGE,
                            body: b"hello".to_vec(),
                        }
                        .sign(&k)
                        .expect("sign");
                        prev = Some(e.id());
                        batch.push(e.signed_bytes().to_vec());
                    }
                    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    let r = s.ingest(&refs).map(|_| ());
                    if r.is_ok() {
                        chains[usize::from(*p)] = (seq, prev);
                    }
                    r
                }
            };
            if r.is_ok() {
                applied += 1;
            }
        }
        let incremental = s.state().expect("state");
        let rebuilt = s.rebuild().expect("rebuild");
        prop_assert_eq!(&incremental, &rebuilt);
        // And the audit agrees with both.
        let report = s.verify(&mut |_| {}).expect("verify");
        prop_assert!(report.events as usize > applied);
    }
}

#[test]
fn the_pairing_state_machine_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = new_session(dir.path(), 1);
    let bob = peer_key(0).author();

    // Accepting or rejecting without a request is refused and writes nothing.
    let before = s.store().len().expect("len");
    assert!(s.accept(&bob).is_err());
    assert!(s.send(&bob, Kind::MESSAGE, b"hi".to_vec()).is_err());
    assert_eq!(s.store().len().expect("len"), before);

    // A refusal sticks: a second request from the same key is dropped.
    s.record_pair_request(&card(0)).expect("request");
    assert_eq!(s.pending().expect("pending").len(), 1);
    s.reject(&bob).expect("reject");
    s.record_pair_request(&card(0)).expect("request again");
    assert!(s.pending().expect("pending").is_empty());

    // Dialing shows the peer as dialed, never paired, until the acceptance comes back.
    let carol = peer_key(1).author();
    s.record_dial(&card(1)).expect("dial");
    assert_eq!(
        s.peers()
            .expect("peers")
            .iter()
            .find(|p| p.key == carol)
            .map(|p| p.state),
        Some(wire_engine::PeerState::Dialed)
    );
    assert!(s.send(&carol, Kind::MESSAGE, b"hi".to_vec()).is_err());
    s.confirm(&carol).expect("confirm");
    s.send(&carol, Kind::MESSAGE, b"hi".to_vec())
        .expect("send once paired");

    // Events from a peer that is not paired are refused on ingest.
    let stranger = peer_key(2);
    let e = Event {
        author: stranger.author(),
        log: LogId::pair_log(&s.key(), &stranger.author()),
        seq: 1,
        prev: None,
        ts_ms: 1,
        kind: Kind::MESSAGE,
        body: b"let me in".to_vec(),
    }
    .sign(&stranger)
    .expect("sign");
    let err = s.ingest(&[e.signed_bytes()]).expect_err("stranger");
    assert!(err.to_string().contains("not from a paired peer"), "{err}");
}
