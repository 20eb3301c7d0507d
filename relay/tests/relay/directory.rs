//! The handle directory, discovery and the intro queue.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use wire_log::card::SignedCard;
use wire_log::{Intro, SecretKey};
use wire_relay::api::INTRO_CONTENT_TYPE;
use wire_relay::app::now_ms;
use wire_relay::frames;
use wire_relay::limits::Rate;

use crate::harness::{DOMAIN, Relay};

pub(crate) fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

pub(crate) fn card(key: &SecretKey, nick: &str, issued_ms: u64) -> Value {
    let c = SignedCard::sign(key, &format!("{nick}@{DOMAIN}"), issued_ms).expect("sign");
    serde_json::to_value(c).expect("json")
}

pub(crate) async fn claim(
    relay: &Relay,
    nick: &str,
    slot: &str,
    owner: &str,
    card: Value,
) -> crate::harness::Resp {
    relay
        .req(Method::PUT, &format!("/v1/handles/{nick}"))
        .bearer(owner)
        .json(&json!({ "slot": slot, "card": card }))
        .send(relay)
        .await
}

pub(crate) fn intro(from: &SecretKey, to: &str, sealed: &[u8]) -> Vec<u8> {
    Intro::sign(from, to, now_ms(), sealed.to_vec())
        .expect("intro")
        .signed_bytes()
        .to_vec()
}

pub(crate) async fn leave(
    relay: &Relay,
    nick: &str,
    body: Vec<u8>,
    ip: &str,
) -> crate::harness::Resp {
    relay
        .req(Method::POST, &format!("/v1/handles/{nick}/intro"))
        .source_ip(ip)
        .body(INTRO_CONTENT_TYPE, body)
        .send(relay)
        .await
}

#[tokio::test]
async fn first_come_first_served_and_the_holder_may_update() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let r = claim(&relay, "alice", &slot, &owner, card(&key(1), "alice", 10)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"], "claimed");
    assert_eq!(r.json()["handle"], format!("alice@{DOMAIN}"));
    // Same card again: unchanged. Newer card from the same key: updated.
    let r = claim(&relay, "alice", &slot, &owner, card(&key(1), "alice", 10)).await;
    assert_eq!(r.json()["status"], "unchanged");
    let r = claim(&relay, "alice", &slot, &owner, card(&key(1), "alice", 20)).await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (StatusCode::OK, Some("updated"))
    );
    // An older card from the same key, e.g. a replay onto another slot, is stale.
    let (slot2, owner2) = relay.slot().await;
    claim(&relay, "alice", &slot2, &owner2, card(&key(1), "alice", 20))
        .await
        .error(StatusCode::CONFLICT, "stale_card");
    // Another key: 409 naming the holder.
    let v = claim(&relay, "alice", &slot2, &owner2, card(&key(2), "alice", 99))
        .await
        .error(StatusCode::CONFLICT, "handle_taken");
    let holder_did = wire_log::Did::from_key(&key(1).author()).to_string();
    assert_eq!(v["holder"]["did"], holder_did.as_str());
    assert!(v["error"].as_str().is_some_and(|e| e.contains(&holder_did)));
    // The record serves the newest card.
    let agent = relay
        .req(Method::GET, "/.well-known/wire/agent?handle=alice")
        .send(&relay)
        .await;
    assert_eq!(agent.status, StatusCode::OK, "{}", agent.text());
    assert_eq!(agent.json()["card"]["issued_ms"], 20);
}

#[tokio::test]
async fn claims_are_checked_before_they_are_stored() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    // Wrong nick in the card, another relay's card, a forged signature.
    claim(&relay, "bob", &slot, &owner, card(&key(1), "alice", 1))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "bad_card");
    let other = SignedCard::sign(&key(1), "alice@elsewhere.example", 1).expect("sign");
    let v = claim(
        &relay,
        "alice",
        &slot,
        &owner,
        serde_json::to_value(other).expect("json"),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "wrong_relay");
    assert!(v["error"].as_str().is_some_and(|e| e.contains(DOMAIN)));
    let mut forged = card(&key(1), "alice", 1);
    forged["issued_ms"] = json!(2);
    claim(&relay, "alice", &slot, &owner, forged)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "bad_card");
    // Credentials: none, a capability, another slot's owner.
    relay
        .req(Method::PUT, "/v1/handles/alice")
        .json(&json!({ "slot": slot, "card": card(&key(1), "alice", 1) }))
        .send(&relay)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
    claim(&relay, "alice", &slot, &cap, card(&key(1), "alice", 1))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let (_, owner2) = relay.slot().await;
    claim(&relay, "alice", &slot, &owner2, card(&key(1), "alice", 1))
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");
    // Malformed handle and body.
    claim(&relay, "Alice", &slot, &owner, card(&key(1), "alice", 1))
        .await
        .error(StatusCode::BAD_REQUEST, "bad_handle");
    relay
        .req(Method::PUT, "/v1/handles/alice")
        .bearer(&owner)
        .json(&json!({ "slot": slot }))
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_json");
    claim(&relay, "alice", "nothex", &owner, card(&key(1), "alice", 1))
        .await
        .error(StatusCode::BAD_REQUEST, "bad_id");
    // None of it claimed anything.
    relay
        .req(Method::GET, "/.well-known/wire/agent?handle=alice")
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_handle");
}

#[tokio::test]
async fn discovery_serves_the_signed_card_and_never_a_token() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    claim(&relay, "alice", &slot, &owner, card(&key(1), "alice", 5)).await;
    for q in [
        "alice",
        "alice@relay.test:8771",
        "alice%40relay.test%3A8771",
    ] {
        let r = relay
            .req(Method::GET, &format!("/.well-known/wire/agent?handle={q}"))
            .send(&relay)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text());
        let v = r.json();
        let card: SignedCard = serde_json::from_value(v["card"].clone()).expect("card");
        let verified = card.verify().expect("the served card verifies");
        assert_eq!(verified.key, key(1).author());
        assert_eq!(
            v["intro"]["url"],
            "http://relay.test:8771/v1/handles/alice/intro"
        );
        assert_eq!(v["intro"]["content_type"], INTRO_CONTENT_TYPE);
        let text = r.text();
        assert!(
            !text.contains(&owner) && !text.contains(&slot),
            "no token or slot: {text}"
        );
    }
    relay
        .req(
            Method::GET,
            "/.well-known/wire/agent?handle=alice@other.example",
        )
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_handle");
    relay
        .req(Method::GET, "/.well-known/wire/agent")
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_query");
    relay
        .req(Method::GET, "/.well-known/wire/agent?handle=bob")
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_handle");
    relay
        .req(Method::GET, "/.well-known/wire/agent?handle=B%20B")
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_handle");

    let r = relay
        .req(Method::GET, "/.well-known/agent-card.json?handle=alice")
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let a2a = r.json();
    assert!(
        a2a["name"]
            .as_str()
            .is_some_and(|n| n.contains("alice@relay.test:8771"))
    );
    let ext = &a2a["capabilities"]["extensions"][0];
    assert_eq!(
        ext["params"]["did"],
        wire_log::Did::from_key(&key(1).author()).to_string()
    );
    assert!(!r.text().contains(&owner));
}

/// A secret pasted where it does not belong (a query key, a JSON value that should have been an
/// object) is refused, and the refusal never quotes it back (the `relay_request` fuzz target
/// found the phonebook's 400 doing so; the redaction is at the one place error bodies are built).
#[tokio::test]
async fn a_refusal_never_quotes_a_token_back() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    let secret = &owner["wot1_".len()..];
    let r = relay
        .req(Method::GET, &format!("/phonebook?{owner}=1"))
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!r.text().contains(secret), "{}", r.text());
    assert!(
        r.text().contains("a parameter it does not know"),
        "{}",
        r.text()
    );
    // A plain unknown key is still named.
    let r = relay
        .req(Method::GET, "/phonebook?page=2")
        .send(&relay)
        .await;
    assert!(r.text().contains("page"), "{}", r.text());
    // serde quotes a string it could not take; the body's error must not.
    for body in [
        json!({ "slot": slot, "card": owner }),
        json!({ "slot": cap, "card": card(&key(1), "alice", 1) }),
    ] {
        let r = relay
            .req(Method::PUT, "/v1/handles/alice")
            .bearer(&owner)
            .json(&body)
            .send(&relay)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert!(!r.text().contains(secret), "{}", r.text());
        assert!(!r.text().contains(&cap["wac1_".len()..]), "{}", r.text());
    }
}

/// A secret typed into the phonebook's search comes back nowhere on the page: not in the search
/// box, not in "Nobody listed matches …", not (lower-cased) in the page links (the
/// `relay_request` fuzz target found `GET /phonebook?q=%/<owner token>` answering 200 with the
/// token in it; reproducer `fuzz/artifacts/relay_request/crash-ba81f576…`).
#[tokio::test]
async fn a_search_never_shows_a_token_back() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    for token in [&owner, &cap] {
        let secret = &token[5..];
        for path in [
            format!("/phonebook?q={token}"),
            format!("/phonebook?q=%/{token}"),
            format!("/phonebook?q=x+{token}&after=alice"),
        ] {
            let r = relay.req(Method::GET, &path).send(&relay).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
            let page = r.text();
            assert!(!page.contains(secret), "{path}: {page}");
            assert!(
                !page.contains(&secret.to_lowercase()),
                "{path}: lower-cased in {page}"
            );
            assert!(page.contains(&token[..5]), "{path}: the prefix is shown");
        }
    }
}

#[tokio::test]
async fn the_phonebook_pages_and_a_local_relay_hides_it() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (slot2, owner2) = relay.slot().await;
    for (i, nick) in ["carol", "alice", "bob", "dave"].iter().enumerate() {
        let (s, o) = if i < 2 {
            (&slot, &owner)
        } else {
            (&slot2, &owner2)
        };
        let r = claim(&relay, nick, s, o, card(&key(i as u8 + 1), nick, 1)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let page = relay
        .req(Method::GET, "/v1/handles?limit=3")
        .send(&relay)
        .await
        .json();
    let names: Vec<&str> = page["handles"]
        .as_array()
        .expect("handles")
        .iter()
        .map(|h| h["handle"].as_str().expect("handle"))
        .collect();
    assert_eq!(
        names,
        [
            "alice@relay.test:8771",
            "bob@relay.test:8771",
            "carol@relay.test:8771"
        ]
    );
    assert_eq!(page["next"], "carol");
    let page = relay
        .req(Method::GET, "/v1/handles?after=carol&limit=3")
        .send(&relay)
        .await
        .json();
    assert_eq!(page["handles"][0]["handle"], "dave@relay.test:8771");
    assert_eq!(page["next"], Value::Null);

    // Release: only the holding slot's owner.
    relay
        .req(Method::DELETE, "/v1/handles/alice")
        .bearer(&owner2)
        .send(&relay)
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");
    let r = relay
        .req(Method::DELETE, "/v1/handles/alice")
        .bearer(&owner)
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    relay
        .req(Method::DELETE, "/v1/handles/alice")
        .bearer(&owner)
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_handle");

    let local = Relay::with(|c| c.local_only = true);
    local
        .req(Method::GET, "/v1/handles")
        .send(&local)
        .await
        .error(StatusCode::NOT_FOUND, "not_listed");
}

#[tokio::test]
async fn a_slot_holds_a_bounded_number_of_handles() {
    let relay = Relay::with(|c| c.quotas.handles_per_slot_max = 1);
    let (slot, owner) = relay.slot().await;
    claim(&relay, "one", &slot, &owner, card(&key(1), "one", 1)).await;
    claim(&relay, "two", &slot, &owner, card(&key(1), "two", 1))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "too_many_handles");
    // Moving a handle to another slot frees room in the first; releasing frees it too.
    let (slot2, owner2) = relay.slot().await;
    let r = claim(&relay, "one", &slot2, &owner2, card(&key(1), "one", 2)).await;
    assert_eq!(r.json()["status"], "updated");
    let r = claim(&relay, "two", &slot, &owner, card(&key(1), "two", 1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = relay
        .req(Method::DELETE, "/v1/handles/two")
        .bearer(&owner)
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = claim(&relay, "three", &slot, &owner, card(&key(1), "three", 1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn strangers_leave_one_sealed_request_each_and_the_owner_reads_them() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    claim(&relay, "bob", &slot, &owner, card(&key(1), "bob", 1)).await;
    let to = format!("bob@{DOMAIN}");
    let r = leave(&relay, "bob", intro(&key(7), &to, b"first"), "198.51.100.1").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["status"], "queued");
    // The same stranger again replaces its request; another stranger adds one.
    let r = leave(
        &relay,
        "bob",
        intro(&key(7), &to, b"second"),
        "198.51.100.1",
    )
    .await;
    assert_eq!(r.json()["status"], "replaced");
    leave(&relay, "bob", intro(&key(8), &to, b"other"), "198.51.100.2").await;

    let r = relay
        .req(Method::GET, &format!("/v1/slots/{slot}/intros"))
        .bearer(&owner)
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let items = frames::decode_records(&r.body, 1 << 16).expect("records");
    assert_eq!(items.len(), 2, "one pending request per stranger");
    let decoded: Vec<Intro> = items
        .iter()
        .map(|(_, b)| Intro::decode(b).expect("intro"))
        .collect();
    assert_eq!(decoded[0].sealed, b"second");
    assert_eq!(decoded[0].from, key(7).author());
    assert_eq!(decoded[1].sealed, b"other");
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(stats["intros_pending"], 2);

    // Intros never enter the mailbox.
    assert!(relay.read_all(&slot, &owner, 0).await.is_empty());

    // Acknowledge the first; the stranger may then ask again.
    let r = relay
        .req(Method::POST, &format!("/v1/slots/{slot}/intros/ack"))
        .bearer(&owner)
        .json(&json!({ "through": items[0].0 }))
        .send(&relay)
        .await;
    assert_eq!(
        (r.status, r.json()["removed"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let r = leave(&relay, "bob", intro(&key(7), &to, b"third"), "198.51.100.1").await;
    assert_eq!(r.json()["status"], "queued");
}

#[tokio::test]
async fn junk_is_refused_before_it_counts_and_never_spends_anyone_elses_budget() {
    let relay = Relay::with(|c| {
        c.rates.intros_per_source = Rate {
            per_second: 0.001,
            burst: 2.0,
        };
        c.rates.intros_per_target = Rate {
            per_second: 0.001,
            burst: 3.0,
        };
        c.rates.junk_per_source = Rate {
            per_second: 0.001,
            burst: 5.0,
        };
    });
    let (slot, owner) = relay.slot().await;
    claim(&relay, "bob", &slot, &owner, card(&key(1), "bob", 1)).await;
    let to = format!("bob@{DOMAIN}");
    let attacker = "203.0.113.66";

    // Junk of every shape from one address: refused with a reason, charged to its junk budget.
    leave(&relay, "bob", b"not cbor".to_vec(), attacker)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_intro");
    let mut flipped = intro(&key(9), &to, b"x");
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    leave(&relay, "bob", flipped, attacker)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_intro");
    leave(
        &relay,
        "bob",
        intro(&key(9), &format!("carol@{DOMAIN}"), b"x"),
        attacker,
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "wrong_target");
    let stale = Intro::sign(&key(9), &to, now_ms() - 3_600_000, b"x".to_vec()).expect("intro");
    leave(&relay, "bob", stale.signed_bytes().to_vec(), attacker)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "stale_intro");
    leave(
        &relay,
        "nobody",
        intro(&key(9), &format!("nobody@{DOMAIN}"), b"x"),
        attacker,
    )
    .await
    .error(StatusCode::NOT_FOUND, "unknown_handle");
    // The attacker's junk budget is spent; it is now refused without a look.
    let r = leave(&relay, "bob", intro(&key(9), &to, b"x"), attacker).await;
    r.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    relay
        .req(Method::POST, "/v1/handles/bob/intro")
        .source_ip(attacker)
        .body("application/json", b"{}".to_vec())
        .send(&relay)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_content_type");
    relay
        .req(Method::POST, "/v1/handles/bob/intro")
        .source_ip(attacker)
        .body(
            INTRO_CONTENT_TYPE,
            vec![0; wire_log::intro::INTRO_BYTES_MAX + 1],
        )
        .send(&relay)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");

    // None of that touched bob's budget or a legitimate sender's: three strangers get through.
    for (i, ip) in ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
        .iter()
        .enumerate()
    {
        let r = leave(&relay, "bob", intro(&key(20 + i as u8), &to, b"hi"), ip).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    // Now bob's per-target budget is spent.
    leave(&relay, "bob", intro(&key(30), &to, b"hi"), "192.0.2.13")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Per-source: a valid sender is limited on its own address.
    claim(&relay, "carol", &slot, &owner, card(&key(2), "carol", 1)).await;
    let carol = format!("carol@{DOMAIN}");
    for i in 0..2u8 {
        let r = leave(
            &relay,
            "carol",
            intro(&key(40 + i), &carol, b"hi"),
            "192.0.2.50",
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    leave(
        &relay,
        "carol",
        intro(&key(42), &carol, b"hi"),
        "192.0.2.50",
    )
    .await
    .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn a_full_intro_queue_says_so() {
    let relay = Relay::with(|c| c.quotas.intros_per_slot_max = 2);
    let (slot, owner) = relay.slot().await;
    claim(&relay, "bob", &slot, &owner, card(&key(1), "bob", 1)).await;
    let to = format!("bob@{DOMAIN}");
    for i in 0..2u8 {
        leave(&relay, "bob", intro(&key(50 + i), &to, b"hi"), "192.0.2.1").await;
    }
    let r = leave(&relay, "bob", intro(&key(60), &to, b"hi"), "192.0.2.2").await;
    r.error(StatusCode::TOO_MANY_REQUESTS, "intro_queue_full");
    // A sender already queued may still replace its own request.
    let r = leave(&relay, "bob", intro(&key(50), &to, b"again"), "192.0.2.1").await;
    assert_eq!(r.json()["status"], "replaced");
}
