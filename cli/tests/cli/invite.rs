//! Pairing by invite URL, as real processes: a relay on loopback, a daemon per agent. The happy
//! path pairs with no `wire pending`/`wire accept` on the issuer's side (the invite was its
//! consent); a second use of a one-use invite, a request naming an invite never issued, an
//! expired invite, a changed byte and an invite signed by another key are all refused with
//! the reason.

use std::time::Duration;

use serde_json::Value;
use wire_log::Intro;
use wire_log::SecretKey;
use wire_log::body::Endpoint;
use wire_log::card::SignedCard;
use wire_log::invite::{INVITE_URL_PREFIX, Invite, InviteNonce};
use wire_log::pair::PairRequest;

use crate::http;
use crate::line::{Agent, POLL_DEADLINE, Rig, await_messages, poll, wire};

fn invite(agent: &Agent, args: &[&str]) -> String {
    let mut all = vec!["invite"];
    all.extend_from_slice(args);
    let v = agent.json(&all);
    assert_eq!(v["status"], "invited", "{v}");
    let url = v["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with(INVITE_URL_PREFIX), "{url}");
    url
}

/// The refusals `wire status` reports for `agent`, as text.
fn refusals(agent: &Agent) -> String {
    let s = agent.status();
    s["report"]["refused"].to_string()
}

fn await_refusal(agent: &Agent, needle: &str) {
    poll(&format!("{} to refuse: {needle}", agent.handle), || {
        let r = refusals(agent);
        if r.contains(needle) { Ok(()) } else { Err(r) }
    });
}

fn secret_of(agent: &Agent) -> SecretKey {
    SecretKey::read(&agent.home.join("sessions/default/keys/identity.key")).expect("key file")
}

#[test]
fn an_invite_pairs_without_a_question_once_and_then_is_used_up() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("invalice");
    let bob = rig.agent("invbob");
    let carol = rig.agent("invcarol");

    let url = invite(&alice, &["--ttl", "10m", "--uses", "1"]);
    // The URL carries what a pair request needs, never a token that reads alice's mailbox.
    let token_dir = alice.home.join("sessions/default/keys");
    for entry in std::fs::read_dir(&token_dir).expect("keys dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(tok) = text.split('"').find(|t| t.starts_with("wot1_")) {
            assert!(!url.contains(tok), "the invite carries an owner token");
        }
    }
    let parsed = Invite::from_url(&url).expect("the URL parses");
    assert_eq!(parsed.card.key.to_hex(), alice.key);
    assert_eq!(parsed.relay, rig.url());

    let accepted = bob.json(&["accept", &url]);
    // With both daemons up the answer usually comes while `accept` waits (8 s) for it.
    assert!(
        accepted["status"] == "paired" || accepted["status"] == "dialed",
        "{accepted}"
    );
    assert_eq!(accepted["peer"]["did"], alice.did.as_str(), "{accepted}");
    // alice's daemon pairs on its own: the invite was her consent.
    poll("alice to pair with bob by the invite", || {
        match alice.peer(&bob).map(|p| p["state"].clone()) {
            Some(s) if s == "paired" => Ok(()),
            other => Err(format!("{other:?}, pending {:?}", alice.pending())),
        }
    });
    poll("bob to see alice paired", || {
        match bob.peer_state(&alice).as_str() {
            "paired" => Ok(()),
            other => Err(other.to_owned()),
        }
    });
    assert!(alice.pending().is_empty(), "nothing waited for a decision");
    alice.send_stored(&bob, "hello by invite");
    bob.send_stored(&alice, "hello back");
    await_messages(
        &bob,
        &alice,
        "hello by",
        &["hello by invite".into()],
        POLL_DEADLINE,
    );
    await_messages(
        &alice,
        &bob,
        "hello back",
        &["hello back".into()],
        POLL_DEADLINE,
    );

    // The same one-use URL again, from carol: her side cannot know it is spent, alice's does.
    let second = wire(
        &carol.home,
        &["accept", &url],
        &[("WIRE_NO_AUTO_JSON", "1")],
    )
    .ok();
    assert!(
        second.stdout.contains("no answer yet") && second.stdout.contains("used up"),
        "{}",
        second.describe()
    );
    await_refusal(&alice, "used up (1 of 1 uses spent)");
    assert!(alice.peer(&carol).is_none(), "{:?}", alice.peers());
    assert!(alice.pending().is_empty(), "{:?}", alice.pending());
    assert_eq!(carol.peer_state(&alice), "dialed");

    // bob presenting it again is refused by his own side: he is paired already.
    let again = bob.run(&["accept", &url]);
    assert_eq!(again.code, 2, "{}", again.describe());
    assert!(
        again.stderr.contains("already paired"),
        "{}",
        again.describe()
    );

    // `wire verify` replays the invite, its one use and the pairing from the log.
    alice.verify_clean();
    bob.verify_clean();
}

#[test]
fn a_request_naming_an_invite_never_issued_is_refused_not_queued() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("invalice");
    let mallory = rig.agent("invmallory");
    // mallory seals a well-formed pair request that names an invite alice never issued.
    let key = secret_of(&mallory);
    let card = SignedCard::sign(&key, &mallory.handle, 1).expect("card");
    let x25519: [u8; 32] = hex::decode(&alice.x25519)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let endpoint = Endpoint {
        relay: rig.url(),
        slot: "00112233445566778899aabbccddeeff".into(),
    };
    let cap = format!("wac1_{}", "A".repeat(43));
    let sealed = PairRequest::seal_invite(
        &card,
        &[endpoint],
        &cap,
        &[],
        &InviteNonce([0x5a; 16]),
        &x25519,
    )
    .expect("seal");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let intro = Intro::sign(&key, &alice.handle, now, sealed).expect("intro");
    let nick = alice.handle.split('@').next().expect("nick");
    let r = http::request(
        &rig.target(),
        "POST",
        &format!("/v1/handles/{nick}/intro"),
        &[("Content-Type", "application/vnd.wire.intro")],
        intro.signed_bytes(),
    )
    .expect("POST intro");
    assert_eq!(r.status, 202, "{r:?}");
    await_refusal(&alice, "never issued");
    assert!(alice.pending().is_empty(), "{:?}", alice.pending());
    assert!(alice.peers().is_empty(), "{:?}", alice.peers());
}

#[test]
fn expired_changed_and_foreign_signed_invites_are_refused_with_the_reason() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("invalice");
    let bob = rig.agent("invbob");
    let url = invite(&alice, &["--ttl", "10s"]);

    // One character changed anywhere after the prefix: refused, and nothing is recorded.
    let at = INVITE_URL_PREFIX.len() + (url.len() - INVITE_URL_PREFIX.len()) / 2;
    let mut bytes = url.clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(bytes).expect("ascii");
    let r = bob.run(&["accept", &changed]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("tampered")
            || r.stderr.contains("damaged")
            || r.stderr.contains("signature does not verify"),
        "{}",
        r.describe()
    );
    let v: Value = r.json();
    assert!(v["error"].is_string(), "{v}");

    // The same invite re-signed by another key: its signer is not the key of its card.
    let parsed = Invite::from_url(&url).expect("parse");
    let mallory = SecretKey::from_seed(&[0x4d; 32]);
    let forged = Invite::sign_as(
        &mallory,
        &parsed.card.signed,
        &parsed.relay,
        parsed.nonce,
        parsed.expires_ms,
        parsed.uses,
    )
    .expect("sign")
    .to_url();
    let r = bob.run(&["accept", &forged]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("not by the key of the card it carries"),
        "{}",
        r.describe()
    );
    assert!(bob.peers().is_empty(), "{:?}", bob.peers());

    // Not a URL of ours at all.
    let r = bob.run(&["accept", "wire://pair?v=9&i=AAAA"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("not a wire invite URL"),
        "{}",
        r.describe()
    );

    // Past its ten seconds, the genuine invite is refused as expired.
    std::thread::sleep(Duration::from_millis(
        parsed
            .expires_ms
            .saturating_sub(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis() as u64,
            )
            .saturating_add(500),
    ));
    let r = bob.run(&["accept", &url]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("expired"), "{}", r.describe());
    assert!(r.stderr.contains("wire invite"), "{}", r.describe());
    assert!(bob.peers().is_empty(), "{:?}", bob.peers());
    assert!(alice.peers().is_empty() && alice.pending().is_empty());
}

#[test]
fn deprecated_verbs_still_work_with_one_note_and_stay_out_of_help() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("depalice");
    let help = wire(&alice.home, &["--help"], &[]).ok();
    assert!(!help.stdout.contains("pair-accept"), "{}", help.describe());
    assert!(help.stdout.contains("invite"), "{}", help.describe());
    // JSON mode (stdout piped): the result and no note.
    let r = wire(&alice.home, &["pair-list-inbound"], &[]).ok();
    assert_eq!(
        r.json()["pending"],
        Value::Array(vec![]),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("deprecated"), "{}", r.describe());
    // Prose: the note once, naming the new verb and the variable that hides it.
    let prose = [("WIRE_NO_AUTO_JSON", "1")];
    let r = wire(&alice.home, &["pair-list-inbound"], &prose).ok();
    assert!(
        r.stderr
            .contains("`wire pair-list-inbound` is deprecated; use `wire pending`")
            && r.stderr
                .contains("WIRE_DEPRECATION_NAGGED_PAIR_LIST_INBOUND=1"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("No pair requests waiting"),
        "{}",
        r.describe()
    );
    // The same shell (this test process is the parent of both): not again.
    let r = wire(&alice.home, &["pair-list-inbound"], &prose).ok();
    assert!(!r.stderr.contains("deprecated"), "{}", r.describe());
    // The variable silences a verb even the first time.
    let r = wire(
        &alice.home,
        &["pair-reject", "nobody"],
        &[
            ("WIRE_NO_AUTO_JSON", "1"),
            ("WIRE_DEPRECATION_NAGGED_PAIR_REJECT", "1"),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(!r.stderr.contains("deprecated"), "{}", r.describe());
    let r = wire(&alice.home, &["pair-accept", "nobody"], &prose);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("use `wire accept`"), "{}", r.describe());
}
