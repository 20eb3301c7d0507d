//! Every relay route, as a stranger or a credential holder reaches it: one HTTP request built
//! from the input and run through the relay's real router (`tower::ServiceExt::oneshot`) on a
//! relay with real redb files. Shared, word for word, by the `relay_request` fuzz target and
//! the corpus test that replays its corpus (`relay/tests/relay/corpus.rs`).
//!
//! Input: `METHOD PATH\n`, then header lines `Name: value\n`, then `\n`, then the body. In the
//! first two parts `$SLOT`, `$OWNER`, `$CAP`, `$CAPID` and `$NICK` stand for a real slot, its
//! owner token, an append capability, its id and a claimed handle, so inputs reach past the
//! credential checks. The last input byte picks the source address.
//!
//! Properties beyond "never panics": never a 500; every error is `{"error", "code"}` JSON; a
//! 401 carries `WWW-Authenticate: Bearer`, a rate limit's 429 and a 503 `Retry-After`; a capability never
//! reads (no 2xx to a GET with it); no answer ever contains the owner token or the capability.
//!
//! Time is tokio's paused clock (`start_paused`): a request that waits only on a timer (a pair
//! read's `wait_ms`, a caught-up stream's heartbeat) has its clock moved on at once instead of
//! waiting it out, while one that waits on real work (storage on the blocking pool, which holds
//! the clock still, or the group committer's thread, with no timer pending) waits for it. No
//! request is cut off by a real-time limit: every answer is read to its end, or, for a stream,
//! for [`STREAM_WAIT`] of tokio's time; a request that never answers is a libFuzzer timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wire_relay::api::router;
use wire_relay::app::{App, Config};

/// How long, in tokio's (paused) time, a response body is read before it is dropped (a stream
/// never ends on its own; dropping it cancels it): past two of its 15 s heartbeats. A body is
/// only cut between frames, so this is a bound on the clock, not a timer: a timer pending here
/// would let the paused clock jump to it while a request waits on the committer's thread.
const STREAM_WAIT: Duration = Duration::from_secs(40);
/// Most response bytes read.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub router: Router,
    pub slot: String,
    pub owner: String,
    pub cap_id: String,
    pub cap: String,
    pub nick: String,
    _app: Arc<App>,
    _dir: tempfile::TempDir,
}

async fn call(router: &Router, req: Request<Body>) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    let resp = router
        .clone()
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn local() -> ConnectInfo<SocketAddr> {
    ConnectInfo(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000))
}

/// A relay with one slot, a capability on it and a handle claimed by it.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::new("http://relay.fuzz:8771", dir.path().join("data")).expect("config");
    let (app, _thread) = App::open(config).expect("open the relay");
    let router = router(app.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (slot, owner, cap_id, cap, nick) = rt.block_on(async {
        let req = Request::post("/v1/slots")
            .extension(local())
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = call(&router, req).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let slot = v["slot"].as_str().expect("slot").to_owned();
        let owner = v["token"].as_str().expect("token").to_owned();
        let req = Request::post(format!("/v1/slots/{slot}/caps"))
            .header("authorization", format!("Bearer {owner}"))
            .extension(local())
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = call(&router, req).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let cap_id = v["cap_id"].as_str().expect("cap_id").to_owned();
        let cap = v["cap"].as_str().expect("cap").to_owned();
        let key = wire_log::SecretKey::from_seed(&[5; 32]);
        let card =
            wire_log::card::SignedCard::sign(&key, "fuzzed@relay.fuzz:8771", 1).expect("card");
        let body = serde_json::json!({ "slot": slot, "card": card }).to_string();
        let req = Request::put("/v1/handles/fuzzed")
            .header("authorization", format!("Bearer {owner}"))
            .header("content-type", "application/json")
            .extension(local())
            .body(Body::from(body))
            .expect("request");
        let (status, _, body) = call(&router, req).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        (slot, owner, cap_id, cap, "fuzzed".to_owned())
    });
    Fixture {
        rt,
        router,
        slot,
        owner,
        cap_id,
        cap,
        nick,
        _app: app,
        _dir: dir,
    }
}

fn fill(f: &Fixture, s: &str) -> String {
    s.replace("$SLOT", &f.slot)
        .replace("$OWNER", &f.owner)
        .replace("$CAPID", &f.cap_id)
        .replace("$CAP", &f.cap)
        .replace("$NICK", &f.nick)
}

/// Runs one input against `f` and checks the properties above; the status, when the input
/// was a request.
pub fn run(f: &Fixture, data: &[u8]) -> Option<u16> {
    let source = data.last().copied()?;
    let head_end = data.windows(2).position(|w| w == b"\n\n")?;
    let head = std::str::from_utf8(&data[..head_end]).ok()?;
    let body = data[head_end + 2..data.len().saturating_sub(1).max(head_end + 2)].to_vec();
    let head = fill(f, head);
    let mut lines = head.split('\n');
    let (method, path) = lines.next().and_then(|l| l.split_once(' '))?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let mut builder = Request::builder().method(method.clone()).uri(path);
    let mut auth_values = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        if name.eq_ignore_ascii_case("authorization") {
            auth_values.push(value.to_owned());
        }
        builder = builder.header(name, value);
    }
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, source)), 40000);
    // An error here is a request hyper would never hand the router (a bad URI or header).
    let req = builder
        .extension(ConnectInfo(addr))
        .body(Body::from(body))
        .ok()?;
    let router = f.router.clone();
    let answer = f.rt.block_on(async move {
        let started = tokio::time::Instant::now();
        let resp = router.oneshot(req).await;
        let resp = resp.expect("the router is infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return false };
                if let Some(d) = frame.data_ref() {
                    bytes.extend_from_slice(d);
                    if bytes.len() > RESPONSE_BYTES_MAX {
                        return false;
                    }
                }
                if started.elapsed() > STREAM_WAIT {
                    return false;
                }
            }
            true
        }
        .await;
        (status, headers, bytes, read)
    });
    let (status, headers, bytes, complete) = answer;
    let what = format!("{method} {path} -> {status}");
    assert_ne!(status, 500, "{what}: {}", String::from_utf8_lossy(&bytes));
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(&f.owner), "{what}: the owner token leaked");
    assert!(!text.contains(&f.cap), "{what}: the capability leaked");
    let mut code = String::new();
    if status >= 400 && complete {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {text}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()) && v["code"].is_string(),
            "{what}: error body {v}"
        );
        code = v["code"].as_str().unwrap_or_default().to_owned();
    }
    if status == 401 {
        assert_eq!(
            headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{what}"
        );
    }
    // Rate limits and 503s say when to come back; a quota's 429 says what to close instead.
    if code == "rate_limited" || status == 503 {
        assert!(
            headers.contains_key("retry-after"),
            "{what}: no Retry-After"
        );
    }
    if method == Method::GET
        && (200..300).contains(&status)
        && auth_values.iter().any(|a| a.contains(&f.cap))
        && !auth_values.iter().any(|a| a.contains(&f.owner))
        && path.starts_with("/v1/slots/")
    {
        panic!("{what}: a capability read something");
    }
    Some(status)
}
