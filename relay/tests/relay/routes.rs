//! Every route and every error, in-process.

use axum::http::{Method, StatusCode};
use serde_json::json;
use wire_relay::frames;

use crate::harness::Relay;

#[tokio::test]
async fn informational_routes_answer() {
    let relay = Relay::new();
    let r = relay.req(Method::GET, "/healthz").send(&relay).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok\n"));
    let r = relay.req(Method::GET, "/").send(&relay).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("wire relay") && r.text().contains("relay.test:8771"));
    let r = relay.req(Method::GET, "/v1/relay").send(&relay).await;
    assert_eq!(r.json()["domain"], "relay.test:8771");
    assert_eq!(r.json()["local_only"], false);

    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    assert_eq!(
        relay.append(&slot, &cap, b"one").await.status,
        StatusCode::CREATED
    );
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(
        (stats["slots"].as_u64(), stats["blobs"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(stats["appends_stored"], 1);
    let r = relay.req(Method::GET, "/metrics").send(&relay).await;
    assert!(
        r.headers["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/plain; version=0.0.4"))
    );
    let text = r.text();
    for needle in [
        "wire_relay_appends_stored_total 1",
        "wire_relay_slots 1",
        "wire_relay_blobs 1",
        "wire_relay_bytes 3",
        "wire_relay_subscribers 0",
        "wire_relay_commit_batch_size_bucket{le=\"1\"} 1",
        "wire_relay_commit_seconds_count 1",
        "# TYPE wire_relay_append_seconds histogram",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let relay = Relay::new();
    relay
        .req(Method::GET, "/nope")
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    relay
        .req(Method::DELETE, "/healthz")
        .send(&relay)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    relay
        .req(Method::GET, "/v1/slots/%ZZ/blobs")
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_id");
}

#[tokio::test]
async fn a_slot_lives_through_append_read_ack() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    for (i, blob) in [&b"alpha"[..], b"beta", b"gamma"].iter().enumerate() {
        let r = relay.append(&slot, &cap, blob).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.json()["seq"], i as u64 + 1);
        assert_eq!(r.json()["stored"], true);
        assert_eq!(r.json()["hash"], blake3::hash(blob).to_hex().as_str());
    }
    let all = relay.read_all(&slot, &owner, 0).await;
    let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(&all[1].1[..], b"beta");

    // Paging: limit=1 says there is more.
    let r = relay
        .req(
            Method::GET,
            &format!("/v1/slots/{slot}/blobs?after=1&limit=1"),
        )
        .bearer(&owner)
        .send(&relay)
        .await;
    assert_eq!(r.headers["content-type"], frames::RECORDS_CONTENT_TYPE);
    assert_eq!(
        (&r.headers["wire-more"], &r.headers["wire-last-seq"]),
        (&"1".parse().expect("hv"), &"3".parse().expect("hv"))
    );
    assert_eq!(
        frames::decode_records(&r.body, 64).expect("records")[0].0,
        2
    );

    // Slot info.
    let info = relay
        .req(Method::GET, &format!("/v1/slots/{slot}"))
        .bearer(&owner)
        .send(&relay)
        .await
        .json();
    assert_eq!(
        (
            info["blobs"].as_u64(),
            info["last_seq"].as_u64(),
            info["caps"].as_u64()
        ),
        (Some(3), Some(3), Some(1))
    );

    // Acknowledge two: the slot shrinks, the rest stays, sequence numbers keep counting.
    let r = relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .json(&json!({"through": 2}))
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        (r.json()["removed"].as_u64(), r.json()["remaining"].as_u64()),
        (Some(2), Some(1))
    );
    let rest = relay.read_all(&slot, &owner, 0).await;
    assert_eq!(rest.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3]);
    assert_eq!(relay.append(&slot, &cap, b"delta").await.json()["seq"], 4);
    // Acknowledging again is harmless; past the last assigned number is refused.
    let r = relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .json(&json!({"through": 1}))
        .send(&relay)
        .await;
    assert_eq!(r.json()["removed"], 0);
    let v = relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .json(&json!({"through": 99}))
        .send(&relay)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "ack_beyond_last");
    assert_eq!(v["last_seq"], 4);
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(stats["blobs"], 2);
}

#[tokio::test]
async fn duplicate_bytes_store_once_and_say_where() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    assert_eq!(
        relay.append(&slot, &cap, b"x").await.status,
        StatusCode::CREATED
    );
    let r = relay.append(&slot, &cap, b"same").await;
    assert_eq!(r.json()["seq"], 2);
    let again = relay.append(&slot, &cap, b"same").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        (
            again.json()["seq"].as_u64(),
            again.json()["stored"].as_bool()
        ),
        (Some(2), Some(false))
    );
    assert_eq!(relay.read_all(&slot, &owner, 0).await.len(), 2);
}

#[tokio::test]
async fn batches_store_in_order_and_bad_batches_store_nothing() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    let body = frames::encode_blobs([&b"a"[..], b"b", b"a", b"c"]);
    let r = relay
        .req(Method::POST, &format!("/v1/slots/{slot}/batch"))
        .bearer(&cap)
        .body(frames::BLOBS_CONTENT_TYPE, body.clone())
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let results = r.json()["results"].as_array().expect("results").clone();
    let got: Vec<(u64, bool)> = results
        .iter()
        .map(|v| {
            (
                v["seq"].as_u64().expect("seq"),
                v["stored"].as_bool().expect("stored"),
            )
        })
        .collect();
    assert_eq!(got, [(1, true), (2, true), (1, false), (3, true)]);

    let mut cut = body;
    cut.pop();
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/batch"))
        .bearer(&cap)
        .body(frames::BLOBS_CONTENT_TYPE, cut)
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_batch");
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/batch"))
        .bearer(&cap)
        .body(frames::BLOBS_CONTENT_TYPE, vec![])
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_batch");
    assert_eq!(relay.read_all(&slot, &owner, 0).await.len(), 3);
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    let blobs = format!("/v1/slots/{slot}/blobs");

    // Missing, wrong scheme, garbage.
    let r = relay
        .req(Method::POST, &blobs)
        .octets(b"x".to_vec())
        .send(&relay)
        .await;
    r.error(StatusCode::UNAUTHORIZED, "missing_token");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    relay
        .req(Method::POST, &blobs)
        .header("authorization", &format!("Basic {cap}"))
        .octets(b"x".to_vec())
        .send(&relay)
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");
    relay
        .req(Method::POST, &blobs)
        .bearer("wac1_nope")
        .octets(b"x".to_vec())
        .send(&relay)
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");
    // The scheme is case-insensitive.
    let r = relay
        .req(Method::POST, &blobs)
        .header("authorization", &format!("bEaReR {cap}"))
        .octets(b"x".to_vec())
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // A capability never reads or manages, whatever the route.
    for (method, path) in [
        (Method::GET, blobs.clone()),
        (Method::GET, format!("/v1/slots/{slot}")),
        (Method::GET, format!("/v1/slots/{slot}/stream")),
        (Method::GET, format!("/v1/slots/{slot}/intros")),
        (Method::POST, format!("/v1/slots/{slot}/caps")),
        (Method::GET, format!("/v1/slots/{slot}/caps")),
    ] {
        relay
            .req(method, &path)
            .bearer(&cap)
            .send(&relay)
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
    }
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&cap)
        .json(&json!({"through": 1}))
        .send(&relay)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");

    // Another slot's owner token and another slot's capability get nowhere.
    let (other, other_owner) = relay.slot().await;
    let (_, other_cap) = relay.cap(&other, &other_owner).await;
    relay
        .req(Method::GET, &blobs)
        .bearer(&other_owner)
        .send(&relay)
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");
    relay
        .append(&slot, &other_cap, b"y")
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");

    // The owner may append to its own slot.
    assert_eq!(
        relay.append(&slot, &owner, b"from the owner").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn revoking_a_capability_stops_it_at_once() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (id_a, cap_a) = relay.cap(&slot, &owner).await;
    let (id_b, cap_b) = relay.cap(&slot, &owner).await;
    let listed = relay
        .req(Method::GET, &format!("/v1/slots/{slot}/caps"))
        .bearer(&owner)
        .send(&relay)
        .await
        .json();
    let mut ids: Vec<String> = listed["caps"]
        .as_array()
        .expect("caps")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    let mut want = vec![id_a.clone(), id_b.clone()];
    want.sort();
    assert_eq!(ids, want);

    let r = relay
        .req(Method::DELETE, &format!("/v1/slots/{slot}/caps/{id_a}"))
        .bearer(&owner)
        .send(&relay)
        .await;
    assert_eq!(r.json()["revoked"], id_a.as_str());
    relay
        .append(&slot, &cap_a, b"after revoke")
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");
    assert_eq!(
        relay.append(&slot, &cap_b, b"still fine").await.status,
        StatusCode::CREATED
    );
    relay
        .req(Method::DELETE, &format!("/v1/slots/{slot}/caps/{id_a}"))
        .bearer(&owner)
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_cap");
    relay
        .req(Method::DELETE, &format!("/v1/slots/{slot}/caps/XYZ"))
        .bearer(&owner)
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_id");
}

#[tokio::test]
async fn malformed_ids_unknown_slots_content_types_and_sizes() {
    let relay = Relay::with(|c| c.blob_bytes_max = 16);
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    for bad in [
        "abc",
        "00112233445566778899AABBCCDDEEFF",
        "00112233445566778899aabbccddeef",
    ] {
        relay
            .append(bad, &cap, b"x")
            .await
            .error(StatusCode::BAD_REQUEST, "bad_id");
    }
    let unknown = "00112233445566778899aabbccddeeff";
    relay
        .append(unknown, &cap, b"x")
        .await
        .error(StatusCode::NOT_FOUND, "unknown_slot");
    relay
        .req(Method::GET, &format!("/v1/slots/{unknown}/blobs"))
        .bearer(&owner)
        .send(&relay)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_slot");
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/blobs"))
        .bearer(&cap)
        .body("text/plain", b"x".to_vec())
        .send(&relay)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_content_type");
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/blobs"))
        .bearer(&cap)
        .send(&relay)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_content_type");
    relay
        .append(&slot, &cap, &[7; 17])
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    relay
        .append(&slot, &cap, b"")
        .await
        .error(StatusCode::BAD_REQUEST, "empty_blob");
    // A batch frame over the blob cap.
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/batch"))
        .bearer(&cap)
        .body(
            frames::BLOBS_CONTENT_TYPE,
            frames::encode_blobs([&[1u8; 17][..]]),
        )
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_batch");
    // Bad query and bad JSON.
    relay
        .req(Method::GET, &format!("/v1/slots/{slot}/blobs?after=-1"))
        .bearer(&owner)
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_query");
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .body("application/json", b"{\"through\":\"1\"}".to_vec())
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_json");
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .body("application/json", b"{\"through\":1,\"extra\":2}".to_vec())
        .send(&relay)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_json");
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .body("application/json", vec![b' '; 9000])
        .send(&relay)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // Nothing of the above stored anything.
    assert!(relay.read_all(&slot, &owner, 0).await.is_empty());
}

#[tokio::test]
async fn a_full_slot_says_so_and_recovers_after_ack() {
    let relay = Relay::with(|c| c.quotas.slot_blobs_max = 2);
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    relay.append(&slot, &cap, b"1").await;
    relay.append(&slot, &cap, b"2").await;
    let v = relay
        .append(&slot, &cap, b"3")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "slot_full");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("acknowledge")),
        "{v}"
    );
    // A duplicate of something held is still answered (it needs no room).
    assert_eq!(relay.append(&slot, &cap, b"2").await.status, StatusCode::OK);
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .json(&json!({"through": 1}))
        .send(&relay)
        .await;
    assert_eq!(relay.append(&slot, &cap, b"3").await.json()["seq"], 3);

    let relay = Relay::with(|c| c.quotas.caps_per_slot_max = 1);
    let (slot, owner) = relay.slot().await;
    relay.cap(&slot, &owner).await;
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/caps"))
        .bearer(&owner)
        .send(&relay)
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "too_many_caps");
}

#[tokio::test]
async fn slot_allocation_is_rate_limited_per_source() {
    let relay = Relay::with(|c| {
        c.rates.slots_per_source = wire_relay::limits::Rate {
            per_second: 0.001,
            burst: 2.0,
        }
    });
    for _ in 0..2 {
        let r = relay
            .req(Method::POST, "/v1/slots")
            .source_ip("192.0.2.1")
            .send(&relay)
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = relay
        .req(Method::POST, "/v1/slots")
        .source_ip("192.0.2.1")
        .send(&relay)
        .await;
    r.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = r.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait >= 1);
    // Another address has its own budget.
    let r = relay
        .req(Method::POST, "/v1/slots")
        .source_ip("192.0.2.2")
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn everything_acknowledged_survives_a_restart() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (cap_id, cap) = relay.cap(&slot, &owner).await;
    for i in 0..50u32 {
        assert_eq!(
            relay.append(&slot, &cap, &i.to_be_bytes()).await.status,
            StatusCode::CREATED
        );
    }
    relay
        .req(Method::POST, &format!("/v1/slots/{slot}/ack"))
        .bearer(&owner)
        .json(&json!({"through": 10}))
        .send(&relay)
        .await;
    let before = relay.read_all(&slot, &owner, 0).await;
    let relay = relay.restart();
    let after = relay.read_all(&slot, &owner, 0).await;
    assert_eq!(before, after);
    assert_eq!(after.len(), 40);
    // Idempotency, capabilities and numbering carry over.
    let dup = relay.append(&slot, &cap, &20u32.to_be_bytes()).await;
    assert_eq!(
        (dup.json()["seq"].as_u64(), dup.json()["stored"].as_bool()),
        (Some(21), Some(false))
    );
    assert_eq!(relay.append(&slot, &cap, b"new").await.json()["seq"], 51);
    relay
        .req(Method::DELETE, &format!("/v1/slots/{slot}/caps/{cap_id}"))
        .bearer(&owner)
        .send(&relay)
        .await;
    relay
        .append(&slot, &cap, b"revoked")
        .await
        .error(StatusCode::UNAUTHORIZED, "bad_token");
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(
        (stats["slots"].as_u64(), stats["blobs"].as_u64()),
        (Some(1), Some(41))
    );
}

/// Two `Authorization` headers are refused whichever is valid (ARCHITECTURE invariant 47), and
/// a 415 never quotes header text that is not a short media type back.
#[tokio::test]
async fn one_credential_per_request_and_no_header_text_reflected() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    let path = format!("/v1/slots/{slot}/blobs");
    for (first, second) in [(&cap, &owner), (&owner, &cap)] {
        let r = relay
            .req(Method::POST, &path)
            .header("authorization", &format!("Bearer {first}"))
            .header("authorization", &format!("Bearer {second}"))
            .octets(b"two".to_vec())
            .send(&relay)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
        assert_eq!(r.json()["code"], "bad_token");
        assert!(
            r.text().contains("more than one Authorization"),
            "{}",
            r.text()
        );
    }
    let r = relay
        .req(Method::POST, &path)
        .bearer(&cap)
        .body(&format!("application/x: Bearer {owner}"), b"x".to_vec())
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert!(!r.text().contains(&owner), "{}", r.text());
    assert!(r.text().contains("not a short media type"), "{}", r.text());
    let r = relay
        .req(Method::POST, &path)
        .bearer(&cap)
        .body("application/json", b"{}".to_vec())
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert!(
        r.text().contains(r#"not \"application/json\""#),
        "{}",
        r.text()
    );
}
