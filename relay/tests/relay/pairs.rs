//! Pair slots (PROTOCOL.md §25.3), in process: write-once cells, the host's first message
//! makes a slot, reads wait for a write, a close or a restart forgets the slot, and the count
//! of slots is bounded.

use axum::http::{Method, StatusCode};
use wire_relay::pairs::PAIR_SLOTS_MAX;

use crate::harness::Relay;

const SLOT: &str = "00112233445566778899aabbccddeeff";

fn path(slot: &str, cell: &str) -> String {
    format!("/v1/pair/{slot}/{cell}")
}

#[tokio::test]
async fn cells_are_written_once_and_the_host_opens_the_slot() {
    let relay = Relay::new();
    // Nothing before the host: a joiner is told no pairing waits.
    let r = relay
        .req(Method::PUT, &path(SLOT, "join/0"))
        .octets(b"join".to_vec())
        .send(&relay)
        .await;
    r.error(StatusCode::NOT_FOUND, "unknown_pair_slot");
    let r = relay
        .req(Method::GET, &path(SLOT, "host/0"))
        .send(&relay)
        .await;
    r.error(StatusCode::NOT_FOUND, "unknown_pair_slot");

    let r = relay
        .req(Method::PUT, &path(SLOT, "host/0"))
        .octets(b"hello".to_vec())
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // The same bytes again are a no-op; other bytes are refused.
    let r = relay
        .req(Method::PUT, &path(SLOT, "host/0"))
        .octets(b"hello".to_vec())
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["stored"], false);
    let r = relay
        .req(Method::PUT, &path(SLOT, "host/0"))
        .octets(b"other".to_vec())
        .send(&relay)
        .await;
    r.error(StatusCode::CONFLICT, "pair_slot_taken");

    // A cell not yet written: 204 at once (wait_ms=0), the bytes once written.
    let r = relay
        .req(Method::GET, &path(SLOT, "join/0"))
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let waiting = {
        let app = relay.app().clone();
        tokio::spawn(async move {
            let router = wire_relay::api::router(app);
            let req = axum::http::Request::get(format!("{}?wait_ms=20000", path(SLOT, "join/0")))
                .body(axum::body::Body::empty())
                .expect("request");
            crate::harness::send(&router, req).await
        })
    };
    tokio::task::yield_now().await;
    let r = relay
        .req(Method::PUT, &path(SLOT, "join/0"))
        .octets(b"joined".to_vec())
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = waiting.await.expect("waiter");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body.as_ref(), b"joined");
    // A second joiner cannot take the place.
    let r = relay
        .req(Method::PUT, &path(SLOT, "join/0"))
        .octets(b"intruder".to_vec())
        .send(&relay)
        .await;
    r.error(StatusCode::CONFLICT, "pair_slot_taken");

    // Closing forgets it.
    let r = relay
        .req(Method::DELETE, &format!("/v1/pair/{SLOT}"))
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = relay
        .req(Method::GET, &path(SLOT, "host/0"))
        .send(&relay)
        .await;
    r.error(StatusCode::NOT_FOUND, "unknown_pair_slot");
}

#[tokio::test]
async fn bad_paths_and_sizes_are_refused_before_anything_is_held() {
    let relay = Relay::new();
    for (p, code) in [
        (path("0011", "host/0"), "bad_id"),
        (path(&SLOT.to_uppercase(), "host/0"), "bad_id"),
        (path(SLOT, "guest/0"), "bad_id"),
        (path(SLOT, "host/2"), "bad_id"),
    ] {
        let r = relay
            .req(Method::PUT, &p)
            .octets(b"x".to_vec())
            .send(&relay)
            .await;
        r.error(StatusCode::BAD_REQUEST, code);
    }
    let r = relay
        .req(Method::PUT, &path(SLOT, "host/0"))
        .octets(Vec::new())
        .send(&relay)
        .await;
    r.error(StatusCode::BAD_REQUEST, "empty_blob");
    let r = relay
        .req(Method::PUT, &path(SLOT, "host/0"))
        .octets(vec![7; 4097])
        .send(&relay)
        .await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert!(relay.app().pairs.is_empty());
}

#[tokio::test]
async fn slots_are_bounded_and_live_as_long_as_their_store() {
    let relay = Relay::new();
    for i in 0..PAIR_SLOTS_MAX {
        let slot = format!("{i:032x}");
        // Spread over addresses: one address may open only a burst of pairings.
        let ip = format!("10.0.{}.{}", i / 50, i % 50 + 1);
        let r = relay
            .req(Method::PUT, &path(&slot, "host/0"))
            .source_ip(&ip)
            .octets(b"h".to_vec())
            .send(&relay)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "slot {i}: {}", r.text());
    }
    let r = relay
        .req(Method::PUT, &path(&format!("{:032x}", u64::MAX), "host/0"))
        .source_ip("10.9.9.9")
        .octets(b"h".to_vec())
        .send(&relay)
        .await;
    r.error(StatusCode::TOO_MANY_REQUESTS, "too_many_pairings");
    // One address alone runs out of budget long before.
    let mut limited = false;
    for i in 0..100u32 {
        let r = relay
            .req(Method::PUT, &path(&format!("ff{i:030x}"), "host/0"))
            .source_ip("10.200.0.1")
            .octets(b"h".to_vec())
            .send(&relay)
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "one address opened 100 pairings");
    // A restart forgets every pairing held in memory; on PostgreSQL they are the
    // database's, which every instance (and a restarted one) serves.
    let relay = relay.restart();
    let r = relay
        .req(Method::GET, &path(&format!("{:032x}", 0), "host/0"))
        .send(&relay)
        .await;
    if crate::pg::enabled() {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    } else {
        r.error(StatusCode::NOT_FOUND, "unknown_pair_slot");
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_slot_is_dropped_and_no_slot_outlives_its_lifetime() {
    use std::time::Duration;
    use wire_relay::pairs::{PAIR_IDLE, PAIR_LIFETIME};

    if crate::pg::enabled() {
        // Paused time is this process's; on PostgreSQL a slot's times are the database's:
        // `relay postgres::pair_slots_are_shared_by_every_instance` checks them there.
        return;
    }
    let relay = Relay::new();
    let put = |slot: &str| {
        relay
            .req(Method::PUT, &path(slot, "host/0"))
            .octets(b"h".to_vec())
    };
    let get = |slot: &str| relay.req(Method::GET, &path(slot, "host/0"));
    // Left alone past the idle time: gone.
    let idle = "aa112233445566778899aabbccddeeff";
    assert_eq!(put(idle).send(&relay).await.status, StatusCode::CREATED);
    tokio::time::advance(PAIR_IDLE - Duration::from_secs(1)).await;
    assert_eq!(get(idle).send(&relay).await.status, StatusCode::OK);
    tokio::time::advance(PAIR_IDLE + Duration::from_secs(1)).await;
    get(idle)
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_pair_slot");
    // Touched every half idle time, it still ends at its lifetime.
    let busy = "bb112233445566778899aabbccddeeff";
    assert_eq!(put(busy).send(&relay).await.status, StatusCode::CREATED);
    let mut lived = Duration::ZERO;
    while lived + PAIR_IDLE / 2 < PAIR_LIFETIME {
        tokio::time::advance(PAIR_IDLE / 2).await;
        lived += PAIR_IDLE / 2;
        assert_eq!(
            get(busy).send(&relay).await.status,
            StatusCode::OK,
            "after {lived:?}"
        );
    }
    tokio::time::advance(PAIR_IDLE / 2).await;
    get(busy)
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_pair_slot");
}
