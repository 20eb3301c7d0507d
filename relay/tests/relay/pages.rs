//! The relay's web pages, in process: headers (content types, caching, the
//! Content-Security-Policy), no external URL anywhere, the landing page's facts, the
//! phonebook's listing rule, search, pagination, escaping and refusals, and the metrics
//! history surviving a restart of a real relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use wire_log::SecretKey;
use wire_log::card::SignedCard;
use wire_relay::app::{App, Config, Rates};
use wire_relay::history::HistoryConfig;
use wire_relay::pages::CSP;
use wire_relay::server;

use crate::harness::{DOMAIN, Relay, Resp, URL};

/// A relay served by `wire_relay::server` on 127.0.0.1 (any port), rate limits off. Dropping
/// it starts the relay's shutdown; [`LiveRelay::stop`] waits for it.
pub struct LiveRelay {
    pub url: String,
    pub domain: String,
    pub dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        axum::body::Body,
    >,
}

impl LiveRelay {
    pub async fn start(
        dir: Option<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
    ) -> LiveRelay {
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let bound = server::bind(any, None, false).await.expect("bind");
        let url = format!("http://{}", bound.addr);
        let mut config = crate::harness::config(&url, dir.path().join("data"));
        config.rates = Rates::unlimited();
        tweak(&mut config);
        let domain = config.domain.clone();
        let (app, commit) = App::open(config).expect("open relay");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            server::serve(app, bound, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
            let _ = tokio::task::spawn_blocking(move || commit.join()).await;
        });
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        LiveRelay {
            url,
            domain,
            dir: Some(dir),
            stop: Some(stop),
            served: Some(served),
            http,
        }
    }

    /// Stops the relay, waits for it to drain, and hands back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.expect("relay task");
        }
        self.dir.take().expect("dir")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        use http_body_util::BodyExt;
        let req = axum::http::Request::get(format!("{}{path}", self.url))
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = self.http.request(req).await.expect("GET");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let (status, _, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).expect("json")
    }
}

impl Drop for LiveRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts that `body` names no URL but `own` (the relay's public URL). XML namespace names
/// (`http://www.w3.org/2000/svg`) are identifiers that nothing fetches, and are allowed.
pub fn scan_for_external_urls(what: &str, body: &str, own: &str) {
    const NAMESPACES: &[&str] = &["http://www.w3.org/2000/svg"];
    let lower = body.to_ascii_lowercase();
    for scheme in ["http://", "https://"] {
        for (at, _) in lower.match_indices(scheme) {
            let rest = &body[at..];
            let ok = rest.starts_with(own) || NAMESPACES.iter().any(|n| rest.starts_with(n));
            assert!(
                ok,
                "{what}: an external URL: {}",
                &rest[..rest.len().min(80)]
            );
        }
    }
    // Protocol-relative and other-origin references are caught here: every src and href is a
    // path on this relay or a fragment.
    for attr in ["src=\"", "href=\""] {
        for (i, _) in lower.match_indices(attr) {
            let v = &body[i + attr.len()..];
            let v = &v[..v.find('"').unwrap_or(v.len())];
            assert!(
                v.starts_with('/') && !v.starts_with("//") || v.starts_with('#'),
                "{what}: {attr}{v}\" is not a path on this relay"
            );
        }
    }
}

fn check_page_headers(r: &Resp, content_type: &str, cache: &str) {
    let h = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(h("content-type"), content_type);
    assert_eq!(h("cache-control"), cache);
    assert_eq!(h("content-security-policy"), CSP);
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert_eq!(h("referrer-policy"), "no-referrer");
}

#[test]
fn the_csp_is_strict() {
    // The policy the issue asks for, or stricter: nothing from elsewhere, no inline code.
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(CSP.contains(part), "{part} missing from {CSP}");
    }
    for loose in ["unsafe-inline", "unsafe-eval", "*", "http:", "https:"] {
        assert!(!CSP.contains(loose), "{loose} in {CSP}");
    }
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

async fn claim(relay: &Relay, nick: &str, n: u8, extra: Value) -> Resp {
    let (slot, owner) = relay.slot().await;
    claim_in(relay, nick, n, &slot, &owner, 1, extra).await
}

async fn claim_in(
    relay: &Relay,
    nick: &str,
    n: u8,
    slot: &str,
    owner: &str,
    issued_ms: u64,
    extra: Value,
) -> Resp {
    let card = SignedCard::sign(&key(n), &format!("{nick}@{DOMAIN}"), issued_ms).expect("sign");
    let mut body = json!({ "slot": slot, "card": card });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    relay
        .req(Method::PUT, &format!("/v1/handles/{nick}"))
        .bearer(owner)
        .json(&body)
        .send(relay)
        .await
}

async fn get(relay: &Relay, path: &str) -> Resp {
    relay.req(Method::GET, path).send(relay).await
}

/// The `data-handle`s on a phonebook page, in order.
fn listed(page: &str) -> Vec<String> {
    page.match_indices("data-handle=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            rest[..rest.find('"').expect("quote")].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn pages_and_assets_carry_types_caching_and_the_csp_and_no_external_url() {
    let relay = Relay::new();
    for path in ["/", "/stats", "/phonebook"] {
        let r = get(&relay, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        check_page_headers(&r, "text/html; charset=utf-8", "no-cache");
        let body = r.text();
        assert!(body.starts_with("<!doctype html>"), "{path}");
        assert!(
            !body.contains("<script>") && !body.contains(" style="),
            "{path}: inline code"
        );
        scan_for_external_urls(path, &body, URL);
        // Every asset the page names is served, with its own type and a long cache life.
        for (i, _) in body.match_indices("/assets/") {
            let rest = &body[i..];
            let asset = &rest[..rest.find('"').expect("quote")];
            let a = get(&relay, asset).await;
            assert_eq!(a.status, StatusCode::OK, "{asset}");
            let ty = match asset.rsplit('.').next() {
                Some("css") => "text/css; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("svg") => "image/svg+xml",
                other => panic!("unexpected asset {other:?}"),
            };
            check_page_headers(&a, ty, "public, max-age=31536000, immutable");
            scan_for_external_urls(asset, &a.text(), URL);
        }
    }
    let r = get(&relay, "/stats/history.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["content-security-policy"], CSP);
    let v = r.json();
    assert_eq!(v["hour"]["points_max"], 60);
    assert_eq!(v["hour"]["step_ms"], 60_000);
    assert_eq!(v["day"]["points_max"], 96);
    assert_eq!(v["day"]["step_ms"], 900_000);
    assert!(v["now_ms"].as_u64().is_some() && v["refresh_ms"].as_u64() == Some(10_000));
    // A stale or made-up asset name is a clear 404, never a panic.
    for bad in [
        "/assets/stats.js",
        "/assets/stats.000000000000.js",
        "/assets/..%2Fsecret",
        "/assets/%00",
    ] {
        let r = get(&relay, bad).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
    }
}

#[tokio::test]
async fn the_landing_page_says_how_to_join_and_what_the_limits_are() {
    let relay = Relay::new();
    let body = get(&relay, "/").await.text();
    assert!(
        body.contains(&format!(
            "wire init &lt;handle&gt; --relay {URL}\nwire claim"
        )),
        "{body}"
    );
    assert!(body.contains(env!("CARGO_PKG_VERSION")));
    for fact in [
        "Uptime",
        "Body cap (one message)</th><td>1 MiB",
        "Mailbox quota</th><td>2000000 messages or 2 GiB waiting per slot",
        "Claims, per address</th><td>1 per second, bursts of 30",
        "Intros, per address</th><td>1 every 5 s, bursts of 20",
        "href=\"/stats\"",
        "href=\"/phonebook\"",
        "wire claim --listed",
    ] {
        assert!(body.contains(fact), "{fact} missing");
    }
}

#[tokio::test]
async fn local_only_relays_have_no_phonebook() {
    let relay = Relay::with(|c| c.local_only = true);
    get(&relay, "/phonebook")
        .await
        .error(StatusCode::NOT_FOUND, "not_listed");
    get(&relay, "/phonebook?q=x")
        .await
        .error(StatusCode::NOT_FOUND, "not_listed");
    for path in ["/", "/stats"] {
        let body = get(&relay, path).await.text();
        assert!(!body.contains("/phonebook"), "{path} links the phonebook");
        assert!(!body.contains("--listed"), "{path} offers a listing");
    }
}

#[tokio::test]
async fn the_phonebook_lists_only_who_chose_it_searches_pages_and_escapes() {
    let relay = Relay::new();
    let xss = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    let r = claim(
        &relay,
        "alice",
        1,
        json!({ "listed": true, "profile": "  gardens & notes " }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    claim(&relay, "bob", 2, json!({ "listed": true, "profile": xss })).await;
    claim(&relay, "carol", 3, json!({})).await;
    claim(
        &relay,
        "dave",
        4,
        json!({ "listed": false, "profile": "hidden" }),
    )
    .await;
    claim(&relay, "erin", 5, json!({ "listed": true })).await;

    let page = get(&relay, "/phonebook").await.text();
    assert_eq!(
        listed(&page),
        [
            format!("alice@{DOMAIN}"),
            format!("bob@{DOMAIN}"),
            format!("erin@{DOMAIN}")
        ]
    );
    assert!(
        page.contains("gardens &amp; notes"),
        "the profile is trimmed and escaped"
    );
    assert!(
        page.contains(
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        ),
        "{page}"
    );
    assert!(
        !page.contains("<script") && !page.contains("<img"),
        "markup from a profile came through"
    );
    // Each entry shows its Character, derived from the DID.
    let alice = wire_log::Character::of(&wire_log::Did::from_key(&key(1).author()));
    assert!(page.contains(&alice.nickname) && page.contains(&alice.emoji));
    assert!(page.contains(&format!(
        "fill=\"{}\"",
        wire_relay::pages::xterm_hex(alice.colour)
    )));

    // Search: handle, Character nickname or profile, without regard to case.
    let found = |q: &str| {
        let relay = &relay;
        let q = q.to_owned();
        async move { listed(&get(relay, &format!("/phonebook?q={q}")).await.text()) }
    };
    assert_eq!(found("GARDEN").await, [format!("alice@{DOMAIN}")]);
    assert_eq!(found("bo").await, [format!("bob@{DOMAIN}")]);
    assert_eq!(
        found(&alice.nickname.to_uppercase()).await.first(),
        Some(&format!("alice@{DOMAIN}"))
    );
    assert!(
        found("hidden").await.is_empty(),
        "unlisted profiles are not searched"
    );
    assert!(found("carol").await.is_empty());
    let none = get(&relay, "/phonebook?q=%3Cb%3Ezzz").await.text();
    assert!(
        none.contains("Nobody listed matches “&lt;b&gt;zzz”"),
        "{none}"
    );
    assert!(
        none.contains("value=\"&lt;b&gt;zzz\""),
        "the search box keeps the text, escaped"
    );

    // Pages of two, linked by a cursor.
    let first = get(&relay, "/phonebook?limit=2").await.text();
    assert_eq!(listed(&first).len(), 2);
    assert!(
        first.contains("href=\"/phonebook?after=bob&amp;limit=2\""),
        "{first}"
    );
    let second = get(&relay, "/phonebook?after=bob&limit=2").await.text();
    assert_eq!(listed(&second), [format!("erin@{DOMAIN}")]);
    assert!(!second.contains("rel=\"next\""));
    assert!(second.contains("rel=\"first\""));

    // Bad input: a clear 400 in the API's error shape, never a panic.
    for bad in [
        "/phonebook?page=2",
        "/phonebook?limit=0",
        "/phonebook?limit=999",
        "/phonebook?limit=-3",
        "/phonebook?limit=1e3",
        "/phonebook?after=..%2F..",
        "/phonebook?after=%3Cscript%3E",
        "/phonebook?q=%07bell",
        &format!("/phonebook?q={}", "x".repeat(65)),
    ] {
        get(&relay, bad)
            .await
            .error(StatusCode::BAD_REQUEST, "bad_query");
    }
    // Invalid UTF-8 in the query string decodes lossily; either way it is no server error.
    let r = get(&relay, "/phonebook?q=%FF%FE").await;
    assert!(
        r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn a_listing_is_part_of_each_claim() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let r = claim_in(
        &relay,
        "alice",
        1,
        &slot,
        &owner,
        1,
        json!({ "listed": true, "profile": "one" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // The same card again, listing unchanged: nothing to do.
    let r = claim_in(
        &relay,
        "alice",
        1,
        &slot,
        &owner,
        1,
        json!({ "listed": true, "profile": "one" }),
    )
    .await;
    assert_eq!(r.json()["status"], "unchanged");
    // The same card with another profile: the holder's own slot may restate its listing.
    let r = claim_in(
        &relay,
        "alice",
        1,
        &slot,
        &owner,
        1,
        json!({ "listed": true, "profile": "two" }),
    )
    .await;
    assert_eq!(r.json()["status"], "updated");
    assert!(get(&relay, "/phonebook").await.text().contains(">two<"));
    // Claiming without a listing takes the handle out of the phonebook.
    let r = claim_in(&relay, "alice", 1, &slot, &owner, 2, json!({})).await;
    assert_eq!(r.json()["status"], "updated");
    assert!(listed(&get(&relay, "/phonebook").await.text()).is_empty());
    // Profiles are one short line.
    for bad in [
        json!("x".repeat(121)),
        json!("two\nlines"),
        json!("\u{1b}[31mred"),
    ] {
        claim_in(
            &relay,
            "alice",
            1,
            &slot,
            &owner,
            3,
            json!({ "listed": true, "profile": bad }),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "bad_profile");
    }
    claim_in(
        &relay,
        "alice",
        1,
        &slot,
        &owner,
        3,
        json!({ "listed": "yes" }),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "bad_json");
    // Someone else's slot cannot change alice's listing.
    let (slot2, owner2) = relay.slot().await;
    claim_in(
        &relay,
        "alice",
        9,
        &slot2,
        &owner2,
        5,
        json!({ "listed": true }),
    )
    .await
    .error(StatusCode::CONFLICT, "handle_taken");
    // Listings survive a restart.
    claim_in(
        &relay,
        "alice",
        1,
        &slot,
        &owner,
        4,
        json!({ "listed": true, "profile": "kept" }),
    )
    .await;
    let relay = relay.restart();
    assert!(get(&relay, "/phonebook").await.text().contains(">kept<"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_history_is_bounded_and_survives_a_restart() {
    let steps = |c: &mut Config| {
        c.history = HistoryConfig {
            hour_step_ms: 100,
            day_step_ms: 200,
        }
    };
    let relay = LiveRelay::start(None, steps).await;
    let client = wire_net::RelayClient::new(&relay.url).expect("client");
    let grant = client.allocate_slot().await.expect("slot");
    // Enough steps to fill the hour series past its bound, with traffic in it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0u64;
    let before = loop {
        client
            .append(
                &grant.slot,
                &grant.token,
                bytes::Bytes::from(format!("blob {n}")),
            )
            .await
            .expect("append");
        n += 1;
        let h = relay.get_json("/stats/history.json").await;
        if h["hour"]["points"].as_array().map(Vec::len) == Some(60)
            && h["day"]["points"].as_array().map(Vec::len) >= Some(30)
        {
            break h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the history did not fill: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let points = before["hour"]["points"].as_array().expect("points");
    assert!(
        points
            .iter()
            .any(|p| p["appends_per_s"].as_f64() > Some(0.0))
    );
    assert_eq!(points.last().expect("a point")["slots"], 1);
    assert!(
        points
            .windows(2)
            .all(|w| w[0]["t_ms"].as_u64() < w[1]["t_ms"].as_u64())
    );
    let dir = relay.stop().await;
    let file: PathBuf = dir.path().join("data").join("history.json");
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("history file")).expect("json");
    assert_eq!(on_disk["hour"]["points"].as_array().map(Vec::len), Some(60));
    let size = std::fs::metadata(&file).expect("meta").len();
    assert!(size < 64 * 1024, "the history file is {size} bytes");

    // A restart keeps every point, then adds new ones without growing past the bound.
    let relay = LiveRelay::start(Some(dir), steps).await;
    let after = relay.get_json("/stats/history.json").await;
    let kept = after["hour"]["points"].as_array().expect("points");
    let last_before = points.last().expect("a point")["t_ms"].as_u64();
    assert!(
        kept.iter().any(|p| p["t_ms"].as_u64() == last_before),
        "points lost in the restart"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = relay.get_json("/stats/history.json").await;
    let later = later["hour"]["points"].as_array().expect("points");
    assert_eq!(later.len(), 60);
    assert!(
        later.last().expect("a point")["t_ms"].as_u64() > last_before,
        "no new points after the restart"
    );
    let dir = relay.stop().await;

    // A corrupt history file stops the relay from starting, with a way out.
    std::fs::write(
        dir.path().join("data").join("history.json"),
        b"{\"v\":1,\"hour\":",
    )
    .expect("write");
    let mut config = crate::harness::config("http://127.0.0.1:1", dir.path().join("data"));
    steps(&mut config);
    let e = App::open(config).expect_err("a corrupt history is an error");
    assert!(e.to_string().contains("move it aside"), "{e}");
}
