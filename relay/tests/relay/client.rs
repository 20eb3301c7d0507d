//! `wire-net`'s relay client against real relays on real sockets: the relay's own serving code
//! (`server::bind` + `server::serve`) on loopback TCP and a Unix socket, and a few fake
//! servers for the transport's failure paths. TLS is in `tls.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::serve::ListenerExt;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire_log::card::SignedCard;
use wire_log::{Intro, SecretKey};
use wire_net::{
    ClaimStatus, ClientOptions, IntroStatus, NetError, Record, RecordStream, RelayClient,
    RelayError, resolver_url,
};
use wire_relay::api::router;
use wire_relay::app::{App, Config, Rates, now_ms};
use wire_relay::server;

/// A relay served by `wire_relay::server` on 127.0.0.1 (any port) and a Unix socket, with
/// rate limits off. Dropping it starts the relay's shutdown.
struct Live {
    url: String,
    domain: String,
    sock: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Live {
    async fn start() -> Live {
        Live::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut Config)) -> Live {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("relay.sock");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let bound = server::bind(any, Some(&sock), false).await.expect("bind");
        let url = format!("http://{}", bound.addr);
        let mut config = crate::harness::config(&url, dir.path().join("data"));
        config.rates = Rates::unlimited();
        tweak(&mut config);
        let domain = config.domain.clone();
        let (app, _commit_thread) = App::open(config).expect("open relay");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(app, bound, async move {
            let _ = stopped.await;
        }));
        Live {
            url,
            domain,
            sock,
            stop: Some(stop),
            _dir: dir,
        }
    }

    fn client(&self) -> RelayClient {
        RelayClient::new(&self.url).expect("client")
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A relay served with `axum::serve` on a listener that counts the connections it accepts.
async fn counting_relay() -> (String, Arc<AtomicUsize>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = crate::harness::config(&url, dir.path().join("data"));
    config.rates = Rates::unlimited();
    let (app, _commit_thread) = App::open(config).expect("open relay");
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, router(app)).await });
    (url, accepts, dir)
}

fn relay_code(r: Result<impl std::fmt::Debug, NetError>) -> (u16, String) {
    match r {
        Err(NetError::Relay { status, code, .. }) => (status, code),
        other => panic!("expected a relay error, got {other:?}"),
    }
}

#[tokio::test]
async fn slots_caps_appends_and_revocation() {
    let live = Live::start().await;
    let client = live.client();
    assert_eq!(client.base_url(), live.url);
    assert_eq!(client.domain(), Some(live.domain.as_str()));
    client.healthz().await.expect("healthz");
    let info = client.info().await.expect("info");
    assert_eq!(
        (
            info.software.as_str(),
            info.domain.as_str(),
            info.local_only
        ),
        ("wire-relay", live.domain.as_str(), false)
    );
    assert_eq!(info.limits.blob_bytes_max, Some(1 << 20));

    let grant = client.allocate_slot().await.expect("slot");
    assert!(
        !format!("{grant:?}").contains(&grant.token),
        "Debug shows the token"
    );
    let cap = client
        .mint_cap(&grant.slot, &grant.token)
        .await
        .expect("cap");
    assert!(
        !format!("{cap:?}").contains(&cap.cap),
        "Debug shows the capability"
    );

    let first = client
        .append(&grant.slot, &cap.cap, Bytes::from_static(b"hello"))
        .await
        .expect("append");
    assert!(first.stored);
    assert_eq!(first.hash, blake3::hash(b"hello").to_hex().as_str());
    let again = client
        .append(&grant.slot, &cap.cap, Bytes::from_static(b"hello"))
        .await
        .expect("append again");
    assert_eq!((again.seq, again.stored), (first.seq, false));
    let info = client
        .slot_info(&grant.slot, &grant.token)
        .await
        .expect("slot info");
    assert_eq!((info.blobs, info.last_seq, info.caps), (1, first.seq, 1));

    // A capability appends and does nothing else.
    assert_eq!(
        relay_code(client.read(&grant.slot, &cap.cap, 0, 10).await),
        (403, "forbidden".into())
    );
    client
        .revoke_cap(&grant.slot, &grant.token, &cap.cap_id)
        .await
        .expect("revoke");
    let refused = client
        .append(&grant.slot, &cap.cap, Bytes::from_static(b"late"))
        .await;
    assert_eq!(relay_code(refused), (401, "bad_token".into()));
    // The owner may append too; an unknown slot is the relay's 404.
    client
        .append(&grant.slot, &grant.token, Bytes::from_static(b"own"))
        .await
        .expect("owner appends");
    let missing = client
        .slot_info(&"0".repeat(32), &grant.token)
        .await
        .expect_err("unknown slot");
    assert_eq!(missing.code(), Some("unknown_slot"));
    assert!(!missing.is_transient());
    // Ids that a path cannot carry never leave the client.
    assert!(matches!(
        client.slot_info("../x", &grant.token).await,
        Err(NetError::BadInput(_))
    ));
}

#[tokio::test]
async fn batches_pages_and_acknowledgements() {
    let live = Live::start_with(|c| c.quotas.slot_blobs_max = 6).await;
    let client = live.client();
    let grant = client.allocate_slot().await.expect("slot");
    let (slot, owner) = (grant.slot.as_str(), grant.token.as_str());
    let cap = client.mint_cap(slot, owner).await.expect("cap").cap;

    let blobs: Vec<Bytes> = [&b"a"[..], b"b", b"a", b"c"]
        .into_iter()
        .map(Bytes::from_static)
        .collect();
    let results = client
        .append_batch(slot, &cap, &blobs)
        .await
        .expect("batch");
    let got: Vec<(u64, bool)> = results
        .iter()
        .map(|r| {
            let a = r.as_ref().expect("accepted");
            (a.seq, a.stored)
        })
        .collect();
    assert_eq!(got, [(1, true), (2, true), (1, false), (3, true)]);
    // Over the slot's quota of 6: the first three fit, the rest are refused one by one.
    let more: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![b'x', i])).collect();
    let results = client.append_batch(slot, &cap, &more).await.expect("batch");
    assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
    assert!(
        results[3..]
            .iter()
            .all(|r| matches!(r, Err(RelayError { code, .. }) if code == "slot_full")),
        "{results:?}"
    );
    assert!(matches!(
        client.append_batch(slot, &cap, &[]).await,
        Err(NetError::BadInput(_))
    ));

    // Pages of two: `more` until the end, `last_seq` the highest assigned.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = client.read(slot, owner, after, 2).await.expect("read");
        assert_eq!(page.last_seq, 6);
        assert!(page.records.len() <= 2);
        seen.extend(page.records.iter().map(|r| (r.seq, r.bytes.clone())));
        if let Some(last) = page.records.last() {
            after = last.seq;
        }
        if !page.more {
            break;
        }
    }
    assert_eq!(
        seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(seen[0].1, Bytes::from_static(b"a"));
    assert_eq!(seen[3].1, Bytes::from(vec![b'x', 0]));

    let acked = client.ack(slot, owner, 4).await.expect("ack");
    assert_eq!(
        (acked.acked_through, acked.removed, acked.remaining),
        (4, 4, 2)
    );
    let page = client.read(slot, owner, 0, 100).await.expect("read");
    assert_eq!(
        page.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [5, 6]
    );
    assert!(!page.more);
    assert_eq!(
        relay_code(client.ack(slot, owner, 99).await),
        (422, "ack_beyond_last".into())
    );
}

async fn next(stream: &mut RecordStream) -> Record {
    stream
        .next()
        .await
        .expect("the stream is open")
        .expect("a record")
}

#[tokio::test]
async fn a_stream_sends_the_backlog_then_live_blobs() {
    let live = Live::start().await;
    let client = live.client();
    let grant = client.allocate_slot().await.expect("slot");
    let (slot, owner) = (grant.slot.clone(), grant.token.clone());
    for blob in [&b"one"[..], b"two", b"three"] {
        client
            .append(&slot, &owner, Bytes::copy_from_slice(blob))
            .await
            .expect("append");
    }
    let mut stream = client.stream(&slot, &owner, 1).await.expect("stream");
    let r = next(&mut stream).await;
    assert_eq!((r.seq, r.bytes.as_ref()), (2, &b"two"[..]));
    let r = next(&mut stream).await;
    assert_eq!((r.seq, r.bytes.as_ref()), (3, &b"three"[..]));
    // Appended after subscribing, on another task: it arrives live.
    let writer = client.clone();
    let (s, o) = (slot.clone(), owner.clone());
    tokio::spawn(async move { writer.append(&s, &o, Bytes::from_static(b"four")).await });
    let r = next(&mut stream).await;
    assert_eq!((r.seq, r.bytes.as_ref()), (4, &b"four"[..]));
    assert_eq!(stream.last_seq(), 4);
    // A capability cannot stream.
    let cap = client.mint_cap(&slot, &owner).await.expect("cap").cap;
    assert_eq!(
        relay_code(client.stream(&slot, &cap, 0).await),
        (403, "forbidden".into())
    );
    // The relay shutting down ends the stream cleanly.
    drop(live);
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn claim_resolve_and_intros() {
    let live = Live::start().await;
    let client = live.client();
    let grant = client.allocate_slot().await.expect("slot");
    let (slot, owner) = (grant.slot.as_str(), grant.token.as_str());
    let alice = SecretKey::from_seed(&[1; 32]);
    let handle = format!("alice@{}", live.domain);
    let card = SignedCard::sign(&alice, &handle, 10).expect("sign");
    let card_json = serde_json::to_string(&card).expect("json");

    let claimed = client
        .claim("alice", slot, owner, &card_json)
        .await
        .expect("claim");
    assert_eq!(
        (claimed.handle.as_str(), claimed.status),
        (handle.as_str(), ClaimStatus::Claimed)
    );
    let again = client
        .claim("alice", slot, owner, &card_json)
        .await
        .expect("claim again");
    assert_eq!(again.status, ClaimStatus::Unchanged);
    assert!(matches!(
        client.claim("alice", slot, owner, "{not json").await,
        Err(NetError::BadInput(_))
    ));

    // The handle says where to resolve it; the card comes back and verifies.
    let (nick, base) = resolver_url(&handle).expect("resolver url");
    assert_eq!((nick.as_str(), base.as_str()), ("alice", live.url.as_str()));
    let resolved = RelayClient::new(&base)
        .expect("client")
        .resolve(&nick)
        .await
        .expect("resolve");
    assert_eq!(resolved.handle, handle);
    assert_eq!(resolved.did, claimed.did);
    let served = SignedCard::from_json(resolved.card.as_bytes()).expect("card parses");
    assert_eq!(served, card);
    served.verify().expect("card verifies");
    assert_eq!(
        resolved.intro.content_type,
        wire_relay::api::INTRO_CONTENT_TYPE
    );
    assert_eq!(
        wire_net::INTRO_CONTENT_TYPE,
        wire_relay::api::INTRO_CONTENT_TYPE
    );
    assert_eq!(
        relay_code(client.resolve("nobody").await),
        (404, "unknown_handle".into())
    );

    // A stranger leaves an intro; a second from the same key replaces it.
    let bob = SecretKey::from_seed(&[2; 32]);
    let envelope = |sealed: &[u8]| {
        Bytes::copy_from_slice(
            Intro::sign(&bob, &handle, now_ms(), sealed.to_vec())
                .expect("intro")
                .signed_bytes(),
        )
    };
    let queued = client
        .send_intro("alice", envelope(b"hi"))
        .await
        .expect("intro");
    assert_eq!(
        (queued.status, queued.to.as_str()),
        (IntroStatus::Queued, handle.as_str())
    );
    let replaced = client
        .send_intro("alice", envelope(b"hi again"))
        .await
        .expect("intro");
    assert_eq!(replaced.status, IntroStatus::Replaced);
    assert_eq!(
        relay_code(
            client
                .send_intro("alice", Bytes::from_static(b"junk"))
                .await
        ),
        (400, "bad_intro".into())
    );
    let page = client.intros(slot, owner, 0, 10).await.expect("intros");
    assert_eq!(page.records.len(), 1);
    let intro = Intro::decode(&page.records[0].bytes).expect("an intro envelope");
    assert_eq!(intro.from, bob.author());
    let acked = client
        .ack_intros(slot, owner, page.records[0].seq)
        .await
        .expect("ack intros");
    assert_eq!(acked.remaining, 0);
    let page = client.intros(slot, owner, 0, 10).await.expect("intros");
    assert!(page.records.is_empty());
}

#[tokio::test]
async fn a_unix_socket_url_works_end_to_end() {
    let live = Live::start().await;
    let url = format!("unix:{}", live.sock.display());
    let client = RelayClient::new(&url).expect("client");
    assert_eq!(client.base_url(), url);
    assert_eq!(client.domain(), None);
    assert_eq!(client.info().await.expect("info").domain, live.domain);
    let grant = client.allocate_slot().await.expect("slot");
    let cap = client
        .mint_cap(&grant.slot, &grant.token)
        .await
        .expect("cap");
    let a = client
        .append(&grant.slot, &cap.cap, Bytes::from_static(b"over uds"))
        .await
        .expect("append");
    let page = client
        .read(&grant.slot, &grant.token, 0, 10)
        .await
        .expect("read");
    assert_eq!(page.records.len(), 1);
    assert_eq!(
        (page.records[0].seq, page.records[0].bytes.as_ref()),
        (a.seq, &b"over uds"[..])
    );
    let mut stream = client
        .stream(&grant.slot, &grant.token, 0)
        .await
        .expect("stream");
    assert_eq!(next(&mut stream).await.seq, a.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_kept_alive_and_bounded() {
    let (url, accepts, _dir) = counting_relay().await;
    let client = RelayClient::new(&url).expect("client");
    let grant = client.allocate_slot().await.expect("slot");
    let cap = client
        .mint_cap(&grant.slot, &grant.token)
        .await
        .expect("cap");
    for i in 0..200u32 {
        client
            .append(&grant.slot, &cap.cap, Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .expect("append");
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        1,
        "202 sequential requests used one connection"
    );

    // Concurrent calls open more connections, never more than the bound.
    let options = ClientOptions {
        connections_max: 4,
        ..ClientOptions::default()
    };
    let bounded = RelayClient::with_options(&url, options).expect("client");
    let before = accepts.load(Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let (c, slot, cap) = (bounded.clone(), grant.slot.clone(), cap.cap.clone());
        tasks.spawn(async move {
            c.append(&slot, &cap, Bytes::from(format!("concurrent {i}")))
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("append");
    }
    let opened = accepts.load(Ordering::SeqCst) - before;
    assert!(
        (1..=4).contains(&opened),
        "{opened} connections for 4 allowed"
    );
    let page = client
        .read(&grant.slot, &grant.token, 0, 4096)
        .await
        .expect("read");
    assert_eq!(page.records.len(), 264);
}

/// A fake server that answers the first request on each connection with `200 ok` and keeps
/// the connection, then reads the second request and hangs up without answering.
async fn hangs_up_on_second_request() -> (String, Arc<AtomicUsize>) {
    async fn read_head(s: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if read_head(&mut s).await {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                        .await;
                    read_head(&mut s).await;
                }
            });
        }
    });
    (url, accepts)
}

#[tokio::test]
async fn a_broken_pooled_connection_is_retried_only_when_that_is_safe() {
    let (url, accepts) = hangs_up_on_second_request().await;
    let client = RelayClient::new(&url).expect("client");
    client.healthz().await.expect("first request");
    // The pooled connection breaks under a GET: sent again on a new connection.
    client.healthz().await.expect("retried on a new connection");
    assert_eq!(accepts.load(Ordering::SeqCst), 2);
    // Under a POST that may have taken effect: reported, not repeated.
    let lost = client.allocate_slot().await.expect_err("connection lost");
    assert!(matches!(lost, NetError::ConnectionLost { .. }), "{lost:?}");
    assert!(lost.is_transient());
    assert_eq!(accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unreachable_and_silent_relays_are_reported_as_transient() {
    // A port nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let client = RelayClient::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let e = client.healthz().await.expect_err("unreachable");
    assert!(matches!(e, NetError::Unreachable { .. }), "{e:?}");
    assert!(e.is_transient());
    assert!(e.to_string().contains("wire relay-server"), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let client = RelayClient::new(&format!("unix:{}", dir.path().join("none.sock").display()))
        .expect("client");
    assert!(matches!(
        client.allocate_slot().await,
        Err(NetError::Unreachable { .. })
    ));

    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let client = RelayClient::with_options(&url, options).expect("client");
    let e = client.info().await.expect_err("timeout");
    assert!(matches!(e, NetError::Timeout { .. }), "{e:?}");
    assert!(e.is_transient());
}

#[test]
fn base_urls_are_checked_without_io() {
    for (url, normal) in [
        ("http://127.0.0.1:8771", "http://127.0.0.1:8771"),
        ("http://[::1]:8771/", "http://[::1]:8771"),
        ("HTTPS://Relay.Example", "https://relay.example"),
        ("unix:/run/wire/relay.sock", "unix:/run/wire/relay.sock"),
    ] {
        assert_eq!(RelayClient::new(url).expect(url).base_url(), normal);
    }
    for url in [
        "relay.example",
        "ftp://relay.example",
        "unix:relay.sock",
        "http://a b",
    ] {
        assert!(
            matches!(RelayClient::new(url), Err(NetError::BadUrl(_))),
            "{url:?}"
        );
    }
}

#[test]
fn handles_resolve_over_http_only_on_loopback_with_a_port() {
    let check = |handle: &str, nick: &str, url: &str| {
        assert_eq!(
            resolver_url(handle).expect(handle),
            (nick.to_owned(), url.to_owned())
        );
    };
    check("alice@127.0.0.1:8771", "alice", "http://127.0.0.1:8771");
    check("bob@[::1]:8771", "bob", "http://[::1]:8771");
    check("carol@LocalHost:9000", "carol", "http://localhost:9000");
    check("alice@relay.example", "alice", "https://relay.example");
    check(
        "alice@relay.example:8443",
        "alice",
        "https://relay.example:8443",
    );
    check("alice@localhost", "alice", "https://localhost");
    check("alice@10.0.0.1:8771", "alice", "https://10.0.0.1:8771");
    for bad in [
        "alice",
        "@relay.example",
        "Alice@relay.example",
        "alice@",
        "alice@relay example",
        "alice@relay.example/path",
        "alice@bob@relay.example",
        "alice@[::1",
        "alice@relay.example:port",
    ] {
        assert!(
            matches!(resolver_url(bad), Err(NetError::BadInput(_))),
            "{bad:?} was accepted"
        );
    }
}
