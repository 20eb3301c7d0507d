//! Pairing by invite, on the issuer's side: the invite's uses and expiry are enforced by the
//! issuer's own log (the engine refuses first, the fold again), so neither a relay nor a
//! replayed request can stretch them, and a request naming an invite never issued is refused.

use std::sync::atomic::Ordering;

use wire_engine::{Home, InviteCheck, Minted, PeerState, Session};
use wire_log::body::{Body, Endpoint, InviteRedeemed};
use wire_log::card::SignedCard;
use wire_log::invite::{Invite, InviteNonce};
use wire_log::pair::PairRequest;
use wire_log::{AuthorKey, Intro, Kind, SecretKey};

use crate::TestClock;

const RELAY: &str = "http://127.0.0.1:8771";

fn slot(n: u8) -> Endpoint {
    Endpoint {
        relay: RELAY.into(),
        slot: format!("{n:02x}").repeat(16),
    }
}

fn cap(n: u8) -> String {
    format!("wac1_{}", char::from(b'A' + n).to_string().repeat(43))
}

/// A request from the key of seed `seed`, redeeming `nonce`, as alice's engine opens it.
fn request(alice: &Session, seed: u8, nonce: Option<InviteNonce>) -> PairRequest {
    let key = SecretKey::from_seed(&[seed; 32]);
    let card = SignedCard::sign(&key, &format!("peer{seed}@127.0.0.1:8771"), 1).expect("card");
    let x25519 = alice.identity().expect("identity").x25519.0;
    let sealed = match nonce {
        Some(n) => PairRequest::seal_invite(&card, &[slot(seed)], &cap(seed), &[], &n, &x25519),
        None => PairRequest::seal(&card, &[slot(seed)], &cap(seed), &[], &x25519),
    }
    .expect("seal");
    let intro = Intro::sign(&key, "alice@127.0.0.1:8771", 5, sealed).expect("intro");
    alice
        .open_pair_request(intro.signed_bytes())
        .expect("a well-formed request opens")
}

/// One capability minted on alice's slot, with the id `cap_id`.
fn minted(cap_id: &str) -> Vec<Minted> {
    vec![Minted {
        endpoint: slot(1),
        cap_id: cap_id.to_owned(),
        cap: cap(1),
    }]
}

fn refused(check: InviteCheck) -> String {
    match check {
        InviteCheck::Refused(why) => why,
        InviteCheck::Valid => panic!("the invite should have been refused"),
    }
}

#[test]
fn an_invite_pairs_up_to_its_uses_until_it_expires_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::default();
    let alice = Session::create(
        &Home::new(dir.path()),
        "default",
        "alice",
        Some(SecretKey::from_seed(&[1; 32])),
        Box::new(clock.clone()),
    )
    .expect("create");
    alice
        .attach_slot(&slot(1), &format!("wot1_{}", "B".repeat(43)))
        .expect("slot");
    alice.record_claim("alice@127.0.0.1:8771").expect("claim");
    let card = alice.sign_card("alice@127.0.0.1:8771").expect("card");

    // One use: the first redemption pairs at once, the second is refused as used up.
    let once = alice.issue_invite(&card, RELAY, 60_000, 1).expect("invite");
    let back = Invite::from_url(&once.to_url()).expect("the URL decodes");
    assert_eq!(back.nonce, once.nonce);
    let bob = request(&alice, 2, Some(once.nonce));
    let peer = alice
        .accept_invited(&bob, &minted("0011223344556677"))
        .expect("the first use pairs");
    assert_eq!(peer.state, PeerState::Paired);
    assert!(alice.pending().expect("pending").is_empty());
    let carol = request(&alice, 3, Some(once.nonce));
    let why = refused(alice.check_invite(&once.nonce).expect("check"));
    assert!(why.contains("used up (1 of 1"), "{why}");
    let err = alice
        .accept_invited(&carol, &minted("1111223344556677"))
        .expect_err("a second use is refused");
    assert!(err.to_string().contains("used up"), "{err}");
    assert!(alice.find_peer(&carol.card.key).expect("peer").is_none());

    // An invite this session never issued is refused, and never becomes a pending request.
    let made_up = InviteNonce([0xab; 16]);
    let dave = request(&alice, 4, Some(made_up));
    let why = refused(alice.check_invite(&made_up).expect("check"));
    assert!(why.contains("never issued"), "{why}");
    assert!(
        alice
            .accept_invited(&dave, &minted("2211223344556677"))
            .is_err()
    );

    // Expiry is the issuer's clock: an hour later the invite is refused as expired.
    let twice = alice.issue_invite(&card, RELAY, 60_000, 2).expect("invite");
    clock.0.fetch_add(3_600_000, Ordering::Relaxed);
    let why = refused(alice.check_invite(&twice.nonce).expect("check"));
    assert!(why.contains("expired 59 min ago"), "{why}");
    let erin = request(&alice, 5, Some(twice.nonce));
    assert!(
        alice
            .accept_invited(&erin, &minted("3311223344556677"))
            .is_err()
    );

    // The fold is the second line: a redemption slipped past the engine aborts the append.
    for nonce in [made_up, once.nonce, twice.nonce] {
        let forged = InviteRedeemed {
            nonce: nonce.0,
            peer: AuthorKey([9; 32]),
        };
        let err = alice
            .append(alice.self_log(), Kind::INVITE_REDEEMED, forged.encode())
            .expect_err("the fold refuses it");
        assert!(err.to_string().contains("invite"), "{err}");
    }

    // A request without an invite still only waits for the operator.
    let frank = request(&alice, 6, None);
    assert!(
        alice
            .accept_invited(&frank, &minted("4411223344556677"))
            .is_err()
    );

    let incremental = alice.state().expect("state");
    assert_eq!(incremental, alice.rebuild().expect("rebuild"));
    let invites = &incremental.identity.as_ref().expect("identity").invites;
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[0].used, 1);
    assert_eq!(invites[0].redeemed_by, vec![bob.card.key]);
    alice.verify(&mut |_| {}).expect("verify");
}
