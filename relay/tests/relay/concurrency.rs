//! Concurrent appends: identical ones store once, distinct ones all store, every request
//! learns the outcome only after its commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{Method, StatusCode};

use crate::harness::Relay;

async fn fire(relay: &Arc<Relay>, slot: &str, cap: &str, blobs: Vec<Vec<u8>>) -> Vec<(u64, bool)> {
    let mut tasks = Vec::new();
    for blob in blobs {
        let (relay, slot, cap) = (relay.clone(), slot.to_owned(), cap.to_owned());
        tasks.push(tokio::spawn(async move {
            let r = relay.append(&slot, &cap, &blob).await;
            assert!(r.status.is_success(), "{}", r.text());
            let v = r.json();
            (
                v["seq"].as_u64().expect("seq"),
                v["stored"].as_bool().expect("stored"),
            )
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_identical_appends_store_one() {
    let relay = Arc::new(Relay::new());
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    let outcomes = fire(&relay, &slot, &cap, vec![b"the same bytes".to_vec(); 32]).await;
    let stored = outcomes.iter().filter(|(_, s)| *s).count();
    assert_eq!(stored, 1, "exactly one request stores: {outcomes:?}");
    assert!(
        outcomes.iter().all(|(seq, _)| *seq == 1),
        "all name the same seq: {outcomes:?}"
    );
    assert_eq!(relay.read_all(&slot, &owner, 0).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_distinct_appends_store_thirty_two() {
    let relay = Arc::new(Relay::new());
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    let blobs: Vec<Vec<u8>> = (0..32u8).map(|i| vec![i; 100]).collect();
    let outcomes = fire(&relay, &slot, &cap, blobs).await;
    assert!(outcomes.iter().all(|(_, s)| *s));
    let seqs: BTreeSet<u64> = outcomes.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=32).collect::<BTreeSet<u64>>());
    let held = relay.read_all(&slot, &owner, 0).await;
    assert_eq!(held.len(), 32);
    let contents: BTreeSet<u8> = held.iter().map(|(_, b)| b[0]).collect();
    assert_eq!(contents.len(), 32);
    // Group commit actually grouped: fewer transactions than appends is allowed, more is not.
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert!(stats["commits"].as_u64().expect("commits") <= 32 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_many_slots_keep_each_slot_in_order() {
    let relay = Arc::new(Relay::new());
    let mut slots = Vec::new();
    for _ in 0..4 {
        let (slot, owner) = relay.slot().await;
        let (_, cap) = relay.cap(&slot, &owner).await;
        slots.push((slot, owner, cap));
    }
    let mut tasks = Vec::new();
    for (slot, _, cap) in &slots {
        for i in 0..16u32 {
            let (relay, slot, cap) = (relay.clone(), slot.clone(), cap.clone());
            tasks.push(tokio::spawn(async move {
                let r = relay
                    .append(&slot, &cap, format!("{slot}-{i}").as_bytes())
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    for (slot, owner, _) in &slots {
        let held = relay.read_all(slot, owner, 0).await;
        assert_eq!(
            held.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (1..=16).collect::<Vec<u64>>()
        );
        assert!(held.iter().all(|(_, b)| b.starts_with(slot.as_bytes())));
    }
}
