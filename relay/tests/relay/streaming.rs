//! Streaming: backlog then live blobs, in order; a reader is woken by a commit.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wire_relay::api::router;
use wire_relay::frames::RecordReader;

use crate::harness::Relay;

/// Reads records from a streaming body until `n` have arrived.
pub async fn take(body: &mut Body, reader: &mut RecordReader, n: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while out.len() < n {
        while let Some((seq, blob)) = reader.next_record().expect("records") {
            out.push((seq, blob.to_vec()));
        }
        if out.len() >= n {
            break;
        }
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("a record within 20 s")
            .expect("stream still open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            reader.feed(&data);
        }
    }
    out
}

/// Polls the stream until it waits for live blobs (it yields nothing within the pause).
pub async fn settle(body: &mut Body) {
    let pending = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(
        pending.is_err(),
        "the stream yielded while it should be idle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_serves_the_backlog_then_wakes_on_each_commit() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    for b in [&b"old-1"[..], b"old-2", b"old-3"] {
        relay.append(&slot, &cap, b).await;
    }
    let app = relay.app().clone();
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/slots/{slot}/stream?after=1"))
        .header("authorization", format!("Bearer {owner}"))
        .body(Body::empty())
        .expect("request");
    let resp = router(app.clone()).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        wire_relay::frames::RECORDS_CONTENT_TYPE
    );
    let mut body = resp.into_body();
    let mut reader = RecordReader::new(1 << 20);
    let backlog = take(&mut body, &mut reader, 2).await;
    assert_eq!(backlog, [(2, b"old-2".to_vec()), (3, b"old-3".to_vec())]);
    settle(&mut body).await;

    for (i, b) in [&b"new-4"[..], b"new-5"].iter().enumerate() {
        relay.append(&slot, &cap, b).await;
        let live = take(&mut body, &mut reader, 1).await;
        assert_eq!(live, [(4 + i as u64, b.to_vec())]);
        settle(&mut body).await;
    }
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(stats["subscribers"], 1);
    drop(body);
    drop(app);
    // Dropping the body unregisters the subscriber.
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(stats["subscribers"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_cut_off_not_buffered() {
    let relay = Relay::with(|c| {
        c.hub.queue_frames = 8;
        c.hub.queue_bytes = 64 * 1024;
    });
    let (slot, owner) = relay.slot().await;
    let (_, cap) = relay.cap(&slot, &owner).await;
    let app = relay.app().clone();
    let req = Request::builder()
        .uri(format!("/v1/slots/{slot}/stream"))
        .header("authorization", format!("Bearer {owner}"))
        .body(Body::empty())
        .expect("request");
    let resp = router(app.clone()).oneshot(req).await.expect("infallible");
    let mut body = resp.into_body();
    // Drive the stream to its live phase, then stop reading.
    relay.append(&slot, &cap, b"first").await;
    let mut reader = RecordReader::new(1 << 20);
    assert_eq!(take(&mut body, &mut reader, 1).await[0].0, 1);
    settle(&mut body).await;
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(stats["subscribers"], 1);
    for i in 0..64u32 {
        relay
            .append(
                &slot,
                &cap,
                &[i.to_be_bytes().as_slice(), &[0u8; 4096]].concat(),
            )
            .await;
    }
    let stats = relay
        .req(Method::GET, "/stats.json")
        .send(&relay)
        .await
        .json();
    assert_eq!(
        stats["subscribers"], 0,
        "the stalled subscriber was cut off"
    );
    let metrics = relay.req(Method::GET, "/metrics").send(&relay).await.text();
    assert!(
        metrics.contains("wire_relay_subscribers_cut_total 1"),
        "{metrics}"
    );
    // What was queued before the cut is still delivered, then the stream ends; nothing is
    // lost, because the blobs are in storage for the next read.
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            reader.feed(&data);
        }
        while reader.next_record().expect("records").is_some() {
            n += 1;
        }
    }
    assert!(n <= 8, "at most the queue's worth arrived, got {n}");
    assert_eq!(relay.read_all(&slot, &owner, 1).await.len(), 64);
    drop(app);
}

#[tokio::test]
async fn stream_limits_per_slot() {
    let relay = Relay::with(|c| c.hub.per_slot = 1);
    let (slot, owner) = relay.slot().await;
    let app = relay.app().clone();
    let open = || {
        Request::builder()
            .uri(format!("/v1/slots/{slot}/stream"))
            .header("authorization", format!("Bearer {owner}"))
            .body(Body::empty())
            .expect("request")
    };
    let first = router(app.clone())
        .oneshot(open())
        .await
        .expect("infallible");
    let mut body = first.into_body();
    settle(&mut body).await;
    let second = relay.call(open()).await;
    second.error(StatusCode::TOO_MANY_REQUESTS, "too_many_subscribers");
    drop(body);
    drop(app);
}
