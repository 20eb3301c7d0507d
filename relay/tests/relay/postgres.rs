//! The PostgreSQL store's own behaviour, on the test server of `pg.rs` whatever store the
//! other tests run on: schema versions, errors at start, and several stores (relay instances)
//! on one database acting as one.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use bytes::Bytes;
use wire_relay::store::{
    AppendItem, AppendOutcome, BlobStore, ClaimOutcome, Credential, HandleRecord, PgStore, Quotas,
    RedbStore,
};
use wire_relay::token::{CapId, SlotId, TokenHash};

use crate::pg;

const OWNER: TokenHash = TokenHash([7; 32]);

fn open(url: &str) -> PgStore {
    PgStore::open(url, Quotas::default()).expect("open the PostgreSQL store")
}

fn item(slot: SlotId, blob: &[u8]) -> AppendItem {
    AppendItem {
        slot,
        credential: Credential::Owner(OWNER),
        blob: Bytes::copy_from_slice(blob),
    }
}

#[test]
fn a_database_newer_than_this_build_is_refused() {
    let url = pg::fresh_database();
    let store = open(&url);
    store.create_slot(SlotId([1; 16]), OWNER, 1).expect("slot");
    drop(store);
    // Reopening applies nothing and keeps the data.
    let store = open(&url);
    assert!(store.slot_info(SlotId([1; 16])).expect("read").is_some());
    drop(store);
    pg::execute(&url, "UPDATE schema_version SET version = 99");
    let e = PgStore::open(&url, Quotas::default()).expect_err("a newer schema is refused");
    assert!(e.0.contains("schema version 99"), "{e}");
    assert!(e.0.contains("newer than this wire"), "{e}");
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    // Nothing listens on port 1.
    let e = PgStore::open(
        "postgres://wire:hunter2@127.0.0.1:1/relay",
        Quotas::default(),
    )
    .expect_err("nothing to connect to");
    assert!(e.0.contains("postgres://wire:***@127.0.0.1:1/relay"), "{e}");
    assert!(!e.0.contains("hunter2"), "{e}");
    assert!(e.0.contains("check that the server is running"), "{e}");
}

#[test]
fn two_stores_on_one_database_are_one_mailbox() {
    let url = pg::fresh_database();
    // Started together: the migration is applied once, under its lock.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| open(&url));
        let b = s.spawn(|| open(&url));
        (a.join().expect("a"), b.join().expect("b"))
    });
    let stores = [Arc::new(a), Arc::new(b)];
    let slot = SlotId([2; 16]);
    stores[0].create_slot(slot, OWNER, 1).expect("slot");

    // Identical bytes appended through both at once store once, and both learn the seq.
    let outcomes = race(&stores, |_| vec![item(slot, b"the same bytes")]);
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, AppendOutcome::Stored { .. }))
        .count();
    assert_eq!(stored, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            AppendOutcome::Stored { seq: 1 } | AppendOutcome::Duplicate { seq: 1 }
        )),
        "{outcomes:?}"
    );

    // Distinct bytes through both get distinct, gapless sequence numbers.
    let outcomes = race(&stores, |i| {
        (0..50u8).map(|n| item(slot, &[i as u8, n])).collect()
    });
    let seqs: BTreeSet<u64> = outcomes
        .iter()
        .map(|o| match o {
            AppendOutcome::Stored { seq } => *seq,
            other => panic!("not stored: {other:?}"),
        })
        .collect();
    assert_eq!(seqs, (2..=101).collect::<BTreeSet<u64>>());
    let page = stores[1]
        .read_after(slot, 0, usize::MAX, usize::MAX)
        .expect("read");
    assert_eq!(page.items.len(), 101);
    assert_eq!(page.last_seq, 101);
    assert_eq!(stores[0].totals().expect("totals").blobs, 101);

    // One handle claimed by two keys through two instances at once: the first wins.
    let barrier = Barrier::new(2);
    let claims = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let barrier = &barrier;
                s.spawn(move || {
                    let record = HandleRecord {
                        nick: "contested".into(),
                        key: [i as u8 + 1; 32],
                        slot,
                        card: format!("card {i}"),
                        issued_ms: 1,
                        claimed_ms: 1,
                        listed: false,
                        profile: String::new(),
                    };
                    barrier.wait();
                    store.claim(record).expect("claim")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("claim thread"))
            .collect::<Vec<_>>()
    });
    let won = claims
        .iter()
        .filter(|c| **c == ClaimOutcome::Claimed)
        .count();
    let lost = claims
        .iter()
        .filter(|c| matches!(c, ClaimOutcome::Taken(_)))
        .count();
    assert_eq!((won, lost), (1, 1), "{claims:?}");
    assert_eq!(stores[1].totals().expect("totals").handles, 1);
}

/// Every rule of one group's outcomes, on both stores: the PostgreSQL store decides a group
/// (from the rows its first round trip locked and read) as the redb store does.
#[test]
fn one_group_is_decided_as_the_redb_store_decides_it() {
    let quotas = Quotas {
        slot_blobs_max: 5,
        slot_bytes_max: 64,
        ..Quotas::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = RedbStore::open(dir.path(), quotas.clone(), 1 << 20).expect("redb");
    let postgres = PgStore::open(&pg::fresh_database(), quotas).expect("postgres");
    let stores: [&dyn BlobStore; 2] = [&redb, &postgres];
    let (a, b, full, nowhere) = (
        SlotId([0xa; 16]),
        SlotId([0xb; 16]),
        SlotId([0xf; 16]),
        SlotId([0xe; 16]),
    );
    let (cap_a, cap_b, revoked) = (TokenHash([1; 32]), TokenHash([2; 32]), TokenHash([3; 32]));
    let with = |slot, credential, blob: &[u8]| AppendItem {
        slot,
        credential,
        blob: Bytes::copy_from_slice(blob),
    };
    let owner = Credential::Owner(OWNER);
    let mut results = Vec::new();
    for store in stores {
        for slot in [a, b, full] {
            store.create_slot(slot, OWNER, 1).expect("slot");
        }
        store.mint_cap(a, CapId([1; 8]), cap_a).expect("cap a");
        store.mint_cap(b, CapId([2; 8]), cap_b).expect("cap b");
        store.mint_cap(a, CapId([3; 8]), revoked).expect("cap");
        assert!(store.revoke_cap(a, CapId([3; 8])).expect("revoke"));
        // Held before the group: "old" in a; `full` four blobs and 50 of its 64 bytes.
        let before = store
            .append(&[
                with(a, owner, b"old"),
                with(full, owner, &[1; 20]),
                with(full, owner, &[2; 20]),
                with(full, owner, &[3; 5]),
                with(full, owner, &[4; 5]),
            ])
            .expect("before");
        assert!(
            before
                .iter()
                .all(|o| matches!(o, AppendOutcome::Stored { .. }))
        );
        let group = vec![
            with(b, owner, b"one"),                                  // stored, b 1
            with(a, Credential::Cap(cap_a), b"two"),                 // stored by a capability, a 2
            with(a, Credential::Cap(cap_b), b"three"),               // another slot's capability
            with(a, Credential::Cap(revoked), b"four"),              // a revoked capability
            with(a, Credential::Owner(TokenHash([9; 32])), b"five"), // not the owner
            with(nowhere, owner, b"six"),                            // no such slot
            with(a, owner, b"old"), // held before: duplicate of a 1
            with(a, owner, b"two"), // stored in this group: a 2
            with(b, Credential::Cap(cap_b), b"one"), // the same, by a capability
            with(full, owner, &[5; 20]), // does not fit the bytes
            with(full, owner, &[6; 10]), // fits: full 5
            with(full, owner, &[5; 20]), // still does not fit
            with(full, owner, &[7; 1]), // five blobs now: full
            with(a, owner, b"seven"), // stored, a 3
            with(a, Credential::Cap(TokenHash([9; 32])), b"one"), // an unknown capability
        ];
        let outcomes = store.append(&group).expect("group");
        let held = store.read_after(a, 0, 100, usize::MAX).expect("read a");
        let counted = store.slot_info(full).expect("info").expect("full exists");
        results.push((
            outcomes,
            held.items,
            held.last_seq,
            counted.blobs,
            counted.bytes,
        ));
    }
    use AppendOutcome::*;
    assert_eq!(
        results[0].0,
        vec![
            Stored { seq: 1 },
            Stored { seq: 2 },
            Unauthorized,
            Unauthorized,
            Unauthorized,
            UnknownSlot,
            Duplicate { seq: 1 },
            Duplicate { seq: 2 },
            Duplicate { seq: 1 },
            SlotFull {
                blobs: 4,
                bytes: 50
            },
            Stored { seq: 5 },
            SlotFull {
                blobs: 5,
                bytes: 60
            },
            SlotFull {
                blobs: 5,
                bytes: 60
            },
            Stored { seq: 3 },
            Unauthorized,
        ],
        "redb"
    );
    assert_eq!(results[1], results[0], "PostgreSQL as redb");
    assert_eq!(postgres.totals().expect("totals").blobs, 9);
}

/// A group whose write fails is the group's error, and the COMMIT pipelined behind the write
/// stores none of it: not the other slot's blob, not a slot row moved on, not the totals.
#[test]
fn a_group_whose_write_fails_stores_nothing() {
    let url = pg::fresh_database();
    let store = open(&url);
    let (clash, fine) = (SlotId([4; 16]), SlotId([5; 16]));
    store.create_slot(clash, OWNER, 1).expect("slot");
    store.create_slot(fine, OWNER, 1).expect("slot");
    // A row the relay did not write, where the slot's next blob goes.
    pg::execute(
        &url,
        "INSERT INTO blobs (slot, seq, hash, body) \
         VALUES (decode(repeat('04', 16), 'hex'), 1, '\\x00', '\\x00')",
    );
    let group = [item(fine, b"fine"), item(clash, b"clash")];
    let e = store.append(&group).expect_err("the insert fails");
    assert!(e.0.contains("nothing was stored"), "{e}");
    for slot in [fine, clash] {
        let info = store.slot_info(slot).expect("info").expect("slot");
        assert_eq!((info.last_seq, info.blobs), (0, 0), "{slot:?}");
    }
    assert!(
        store
            .read_after(fine, 0, 10, usize::MAX)
            .expect("read")
            .items
            .is_empty()
    );
    assert_eq!(store.totals().expect("totals").blobs, 0);
    // The lane's connection is usable again, and the same group stores once the row is gone.
    pg::execute(&url, "DELETE FROM blobs");
    assert_eq!(
        store.append(&group).expect("append"),
        vec![
            AppendOutcome::Stored { seq: 1 },
            AppendOutcome::Stored { seq: 1 }
        ]
    );
}

/// Appends `items(i)` through store `i`, all stores at once; every outcome, in any order.
fn race(
    stores: &[Arc<PgStore>],
    items: impl Fn(usize) -> Vec<AppendItem> + Sync,
) -> Vec<AppendOutcome> {
    let barrier = Barrier::new(stores.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (barrier, items) = (&barrier, &items);
                s.spawn(move || {
                    let mut out = Vec::new();
                    let batch = items(i);
                    barrier.wait();
                    // One call per item: many small transactions racing the other store's.
                    for one in batch {
                        out.extend(store.append(&[one]).expect("append"));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("append thread"))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_instance_wakes_on_appends_through_another() {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;
    use wire_relay::frames::RecordReader;

    use crate::harness::Relay;
    use crate::streaming::{settle, take};

    let url = pg::fresh_database();
    let a = Relay::with(|c| c.store_url = Some(url.clone()));
    let b = Relay::with(|c| c.store_url = Some(url.clone()));
    let (slot, owner) = a.slot().await;
    let (_, cap) = b.cap(&slot, &owner).await;
    b.append(&slot, &cap, b"before").await;
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/slots/{slot}/stream?after=0"))
        .header("authorization", format!("Bearer {owner}"))
        .body(Body::empty())
        .expect("request");
    let resp = wire_relay::api::router(a.app().clone())
        .oneshot(req)
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut reader = RecordReader::new(1 << 20);
    assert_eq!(
        take(&mut body, &mut reader, 1).await,
        [(1, b"before".to_vec())]
    );
    settle(&mut body).await;
    // Through the other instance: the stream here wakes (LISTEN/NOTIFY), in order.
    for (i, blob) in [&b"live-2"[..], b"live-3"].iter().enumerate() {
        let r = b.append(&slot, &cap, blob).await;
        assert!(r.status.is_success(), "{}", r.text());
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            take(&mut body, &mut reader, 1),
        )
        .await
        .expect("woken within 5 s");
        assert_eq!(got, [(2 + i as u64, blob.to_vec())]);
    }
    // Interleaved through both: still in order and without a gap.
    for i in 4..=9u64 {
        let via = if i % 2 == 0 { &a } else { &b };
        let r = via
            .append(&slot, &cap, format!("mixed-{i}").as_bytes())
            .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    // Without the gap read the stream would skip a seq and wait forever (heartbeats only).
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        take(&mut body, &mut reader, 6),
    )
    .await
    .expect("all six within 10 s, none skipped");
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (4..=9).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_across_instances_on_one_database() {
    use axum::http::{Method, StatusCode};
    use wire_relay::limits::Rate;

    use crate::directory::{card, claim, intro, key, leave};
    use crate::harness::{DOMAIN, Relay};

    let url = pg::fresh_database();
    let tight = |url: String| {
        move |c: &mut wire_relay::app::Config| {
            c.store_url = Some(url);
            c.rates.intros_per_source = Rate {
                per_second: 0.001,
                burst: 3.0,
            };
            c.rates.slots_per_source = Rate {
                per_second: 0.001,
                burst: 4.0,
            };
        }
    };
    let a = Relay::with(tight(url.clone()));
    let b = Relay::with(tight(url.clone()));
    let (slot, owner) = a.slot().await;
    let r = claim(&a, "bob", &slot, &owner, card(&key(1), "bob", 1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let to = format!("bob@{DOMAIN}");
    // One address, through both instances in turn: three intros in all, not three each.
    let ip = "192.0.2.77";
    for i in 0..3u8 {
        let via = if i % 2 == 0 { &a } else { &b };
        let r = leave(via, "bob", intro(&key(50 + i), &to, b"hi"), ip).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "intro {i}: {}", r.text());
    }
    for via in [&a, &b] {
        let r = leave(via, "bob", intro(&key(60), &to, b"hi"), ip).await;
        r.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(r.headers.contains_key("retry-after"));
    }
    // The bucket is that address's: another one still gets through either instance.
    let r = leave(&b, "bob", intro(&key(61), &to, b"hi"), "192.0.2.78").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    // Slots per address, likewise: four across both, then refused by both.
    let ip = "198.51.100.9";
    for i in 0..4 {
        let via = if i % 2 == 0 { &a } else { &b };
        let r = via
            .req(Method::POST, "/v1/slots")
            .source_ip(ip)
            .send(via)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "slot {i}: {}", r.text());
    }
    for via in [&a, &b] {
        via.req(Method::POST, "/v1/slots")
            .source_ip(ip)
            .send(via)
            .await
            .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
}

/// Two instances on a fresh database, and the owner's stream on A, settled.
struct Streaming {
    db: String,
    /// The server's `postgres` database, for statements about `db`.
    admin: String,
    a: crate::harness::Relay,
    b: crate::harness::Relay,
    slot: String,
    owner: String,
    body: axum::body::Body,
    reader: wire_relay::frames::RecordReader,
}

impl Streaming {
    async fn start() -> Streaming {
        use axum::body::Body;
        use axum::http::{Method, Request, StatusCode};
        use tower::ServiceExt;

        use crate::harness::Relay;

        let url = pg::fresh_database();
        let db = url.rsplit('/').next().expect("database name").to_owned();
        let admin = format!("{}/postgres", url.rsplit_once('/').expect("url").0);
        let a = Relay::with(|c| c.store_url = Some(url.clone()));
        let b = Relay::with(|c| c.store_url = Some(url.clone()));
        let (slot, owner) = a.slot().await;
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("/v1/slots/{slot}/stream?after=0"))
            .header("authorization", format!("Bearer {owner}"))
            .body(Body::empty())
            .expect("request");
        let resp = wire_relay::api::router(a.app().clone())
            .oneshot(req)
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        crate::streaming::settle(&mut body).await;
        Streaming {
            db,
            admin,
            a,
            b,
            slot,
            owner,
            body,
            reader: wire_relay::frames::RecordReader::new(1 << 20),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_reconnects_wakes_the_streams_it_left_waiting() {
    use wire_relay::store::LISTENER_NAME;

    use crate::streaming::{settle, take};

    // `_a` keeps instance A, which holds the stream, alive to the end.
    let Streaming {
        db,
        admin,
        a: _a,
        b,
        slot,
        owner,
        mut body,
        mut reader,
    } = Streaming::start().await;
    let r = b.append(&slot, &owner, b"while listening").await;
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(
        take(&mut body, &mut reader, 1).await,
        [(1, b"while listening".to_vec())]
    );
    // The listeners' connections are cut, and no new connection to the database is let in
    // (the instances' other connections stay): what B stores now is announced to no one.
    pg::execute(
        &admin,
        &format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false"),
    );
    pg::execute(
        &admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}' AND application_name = '{LISTENER_NAME}'"
        ),
    );
    for blob in [&b"unheard 2"[..], b"unheard 3"] {
        let r = b.append(&slot, &owner, blob).await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    settle(&mut body).await;
    // Connections are let in again: A's listener reconnects, and its stream reads both.
    pg::execute(
        &admin,
        &format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"),
    );
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        take(&mut body, &mut reader, 2),
    )
    .await
    .expect("both within 20 s of the listener's return");
    assert_eq!(
        got,
        [(2, b"unheard 2".to_vec()), (3, b"unheard 3".to_vec())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_whose_connection_broke_is_sent_again() {
    use wire_relay::store::NOTIFIER_NAME;

    use crate::streaming::take;

    // `_a` keeps instance A, which holds the stream, alive to the end.
    let Streaming {
        db,
        admin,
        a: _a,
        b,
        slot,
        owner,
        mut body,
        mut reader,
    } = Streaming::start().await;
    let r = b.append(&slot, &owner, b"announced").await;
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(
        take(&mut body, &mut reader, 1).await,
        [(1, b"announced".to_vec())]
    );
    // The notifiers' connections are cut: B's next announcement meets a dead connection.
    pg::execute(
        &admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}' AND application_name = '{NOTIFIER_NAME}'"
        ),
    );
    let r = b.append(&slot, &owner, b"announced again").await;
    assert!(r.status.is_success(), "{}", r.text());
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        take(&mut body, &mut reader, 1),
    )
    .await
    .expect("delivered within 20 s: the notifier reconnected and sent it again");
    assert_eq!(got, [(2, b"announced again".to_vec())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_slots_are_shared_by_every_instance() {
    use axum::http::{Method, StatusCode};

    use crate::harness::Relay;

    let url = pg::fresh_database();
    let a = Relay::with(|c| c.store_url = Some(url.clone()));
    let b = Relay::with(|c| c.store_url = Some(url.clone()));
    let slot = "0123456789abcdef0123456789abcdef";
    let cell = |c: &str| format!("/v1/pair/{slot}/{c}");
    // The host opens the slot through A; the joiner reads through B.
    let r = a
        .req(Method::PUT, &cell("host/0"))
        .octets(b"h0".to_vec())
        .send(&a)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = b.req(Method::GET, &cell("host/0")).send(&b).await;
    assert_eq!((r.status, r.body.as_ref()), (StatusCode::OK, &b"h0"[..]));
    // A read waiting on B gets what is written through A.
    let waiting = {
        let req = b.req(Method::GET, &format!("{}?wait_ms=20000", cell("host/1")));
        let router = wire_relay::api::router(b.app().clone());
        tokio::spawn(async move { crate::harness::send(&router, req.build()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = a
        .req(Method::PUT, &cell("host/1"))
        .octets(b"h1".to_vec())
        .send(&a)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = waiting.await.expect("waiting read");
    assert_eq!((r.status, r.body.as_ref()), (StatusCode::OK, &b"h1"[..]));
    // Write-once across instances: the same bytes again are unchanged, others are refused.
    let r = b
        .req(Method::PUT, &cell("join/0"))
        .octets(b"j0".to_vec())
        .send(&b)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = a
        .req(Method::PUT, &cell("join/0"))
        .octets(b"j0".to_vec())
        .send(&a)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    a.req(Method::PUT, &cell("join/0"))
        .octets(b"someone else".to_vec())
        .send(&a)
        .await
        .error(StatusCode::CONFLICT, "pair_slot_taken");
    // Idle past PAIR_IDLE on the database's clock: gone for both.
    let idle = i64::try_from(wire_relay::pairs::PAIR_IDLE.as_millis()).expect("ms");
    pg::execute(
        &url,
        &format!("UPDATE pair_slots SET touched_ms = touched_ms - {idle} - 1000"),
    );
    for r in [&a, &b] {
        r.req(Method::GET, &cell("host/0"))
            .send(r)
            .await
            .error(StatusCode::NOT_FOUND, "unknown_pair_slot");
    }
    // Closed through one, gone through the other.
    let other = "fedcba9876543210fedcba9876543210";
    let r = a
        .req(Method::PUT, &format!("/v1/pair/{other}/host/0"))
        .octets(b"h".to_vec())
        .send(&a)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = b
        .req(Method::DELETE, &format!("/v1/pair/{other}"))
        .send(&b)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    a.req(Method::GET, &format!("/v1/pair/{other}/host/0"))
        .send(&a)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_pair_slot");
}

/// Notifications on `wire_appends` that reach a connection listening under the listener's
/// name, within `wait`.
fn notices(c: &mut postgres::Client, wait: std::time::Duration) -> Vec<String> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut got = Vec::new();
    let until = std::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return got;
        }
        match c.notifications().timeout_iter(left).next() {
            Ok(Some(n)) => got.push(n.payload().to_owned()),
            Ok(None) | Err(_) => return got,
        }
    }
}

/// An instance alone on its database announces nothing (a NOTIFY per group for no one); once
/// another instance's listener is there, every group is announced: this one does not say that
/// it registers its streams (`watch_listeners`), as an instance of an older build would not.
/// (A listener that comes up within the notifier's stale look is sent a "catch up" notice
/// instead: see `notifier`.)
#[test]
fn an_instance_alone_announces_nothing_and_announces_once_another_listens() {
    use wire_relay::store::LISTENER_NAME;

    let url = pg::fresh_database();
    let store = open(&url);
    let slot = SlotId([9; 16]);
    store.create_slot(slot, OWNER, 1).expect("slot");
    // A bystander listening under another name does not count as an instance.
    let mut bystander = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    bystander
        .batch_execute("LISTEN wire_appends")
        .expect("listen");
    for i in 0..20u8 {
        store.append(&[item(slot, &[i; 8])]).expect("append");
    }
    assert_eq!(
        notices(&mut bystander, std::time::Duration::from_millis(400)),
        Vec::<String>::new(),
        "announced while no other instance listened"
    );
    let mut other = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    other
        .batch_execute(&format!(
            "SET application_name = '{LISTENER_NAME}'; LISTEN wire_appends"
        ))
        .expect("listen");
    // The notifier's look may be up to its age old: the second append is past it.
    store.append(&[item(slot, b"heard 1")]).expect("append");
    std::thread::sleep(std::time::Duration::from_millis(250));
    store.append(&[item(slot, b"heard 2")]).expect("append");
    let got = notices(&mut other, std::time::Duration::from_secs(2));
    assert!(
        got.iter().any(|p| p.contains(&hex::encode(slot.0))),
        "the appends after another listener came were not announced: {got:?}"
    );
}

/// While every other instance registers its streams, a group announces only the slots that
/// another instance streams (decision (aq)): a slot streamed nowhere else costs no
/// notification, and the one streamed on B still wakes B with every blob, in order.
#[test]
fn only_slots_streamed_on_another_instance_are_announced() {
    use std::time::Duration;

    let url = pg::fresh_database();
    let a = open(&url);
    let b = open(&url);
    let (streamed, quiet) = (SlotId([11; 16]), SlotId([12; 16]));
    for slot in [streamed, quiet] {
        a.create_slot(slot, OWNER, 1).expect("slot");
    }
    let (tx, rx) = std::sync::mpsc::channel::<(SlotId, u64)>();
    b.watch_others(
        Arc::new(move |blobs: &[(SlotId, u64, Bytes)]| {
            for (slot, seq, _) in blobs {
                let _ = tx.send((*slot, *seq));
            }
        }),
        Arc::new(move |slot| slot == streamed),
        Arc::new(move || vec![streamed]),
    )
    .expect("listen");
    b.watch(streamed).expect("register the stream");
    let mut bystander = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    bystander
        .batch_execute("LISTEN wire_appends")
        .expect("listen");
    // B's listener has said that it registers its streams; A's notifier then looks once.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while admin
        .query_one("SELECT count(*) FROM watch_listeners", &[])
        .expect("count")
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < until,
            "B's listener never registered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.append(&[item(quiet, b"warm-up")]).expect("append");
    std::thread::sleep(Duration::from_millis(300));
    let _ = notices(&mut bystander, Duration::from_millis(200));
    // A has seen B: it keeps its share of the lanes in flight (decision (ar)).
    assert_eq!(a.append_lanes_now(), a.append_lanes().div_ceil(2));

    for i in 0..10u8 {
        a.append(&[item(quiet, &[i; 4]), item(streamed, &[i; 4])])
            .expect("append");
    }
    let got = notices(&mut bystander, Duration::from_millis(600));
    assert!(
        got.iter().any(|p| p.contains(&hex::encode(streamed.0))),
        "the slot streamed on B was not announced: {got:?}"
    );
    assert!(
        !got.iter().any(|p| p.contains(&hex::encode(quiet.0))),
        "a slot nobody else streams was announced: {got:?}"
    );
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let (slot, seq) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("B woken within 5 s");
        assert_eq!(slot, streamed);
        seqs.push(seq);
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
    // The look-up that asks who streams also finds the blobs held: the same bytes again are
    // duplicates, with the seqs they got.
    let again = a
        .append(&[item(streamed, &[0; 4]), item(quiet, &[0; 4])])
        .expect("append");
    assert_eq!(
        again,
        [
            AppendOutcome::Duplicate { seq: 1 },
            AppendOutcome::Duplicate { seq: 2 }
        ]
    );
}

/// With one group at a time, every group runs on the lane the group before it gave back, so
/// one backend stays warm and the others idle (decision (as)); a lane whose connection was cut
/// fails at most the one group that finds it cut, and the next group connects it again.
#[test]
fn one_group_at_a_time_keeps_to_one_lane_and_a_cut_lane_connects_again() {
    use wire_relay::store::APPEND_NAME;

    let url = pg::fresh_database();
    let store = open(&url);
    assert!(store.append_lanes() >= 2, "the default keeps two lanes");
    let slot = SlotId([13; 16]);
    store.create_slot(slot, OWNER, 1).expect("slot");
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    // Each lane's backend and its last statement: "COMMIT" once it ran a group.
    let lanes = |admin: &mut postgres::Client| -> Vec<(i32, String)> {
        admin
            .query(
                "SELECT pid, query FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = $1 ORDER BY pid",
                &[&APPEND_NAME],
            )
            .expect("lanes")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    assert_eq!(lanes(&mut admin).len(), store.append_lanes());
    for i in 0..20u8 {
        store.append(&[item(slot, &[i; 8])]).expect("append");
    }
    let seen = lanes(&mut admin);
    let ran: Vec<_> = seen.iter().filter(|(_, q)| q == "COMMIT").collect();
    assert_eq!(
        ran.len(),
        1,
        "groups one at a time took turns on the lanes: {seen:?}"
    );

    // Every lane's connection is cut.
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
            &[&APPEND_NAME],
        )
        .expect("terminate");
    let mut failed = Vec::new();
    let mut stored = 0;
    for i in 20..30u8 {
        match store.append(&[item(slot, &[i; 8])]) {
            Ok(out) => {
                assert_eq!(
                    out,
                    [AppendOutcome::Stored {
                        seq: u64::from(i) + 1 - failed.len() as u64
                    }]
                );
                stored += 1;
            }
            Err(e) => failed.push(e.0),
        }
    }
    assert!(
        failed.len() <= 1,
        "a cut lane failed more than one group: {failed:?}"
    );
    assert_eq!(stored, 10 - failed.len());
    let held = store.read_after(slot, 0, 100, usize::MAX).expect("read");
    assert_eq!(
        held.items.len(),
        30 - failed.len(),
        "every stored blob is held, once"
    );
    eprintln!("the group that found its lane cut: {failed:?}");
    let seen = lanes(&mut admin);
    assert_eq!(
        seen.iter().filter(|(_, q)| q == "COMMIT").count(),
        1,
        "the groups after the cut connected one lane again: {seen:?}"
    );
}
