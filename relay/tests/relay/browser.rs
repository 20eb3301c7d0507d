//! The relay's pages in a real browser: Debian's chromium, driven headless by
//! `relay/tests/browser/pages.mjs` (playwright-core, installed by `scripts/browser-env`),
//! against a relay on loopback with real clients putting traffic on it. Screenshots land in
//! `target/test-artifacts/pages/` (or `$WIRE_TEST_ARTIFACTS`).
//!
//! The browser is required: without chromium or playwright-core the test fails and says how
//! to install them. `WIRE_SKIP_BROWSER=1` skips it, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use wire_log::SecretKey;
use wire_log::card::SignedCard;
use wire_net::RelayClient;
use wire_relay::history::HistoryConfig;

use crate::pages::{LiveRelay, scan_for_external_urls};

const HOUR_STEP_MS: u64 = 1000;
const DAY_STEP_MS: u64 = 2000;
// The chart geometry stats.js draws with (viewBox 600 × 230, margins L R T B).
const W: f64 = 600.0;
const H: f64 = 230.0;
const L: f64 = 62.0;
const R: f64 = 12.0;
const T: f64 = 28.0;
const B: f64 = 34.0;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn artifacts_dir() -> PathBuf {
    std::env::var_os("WIRE_TEST_ARTIFACTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/pages"),
        PathBuf::from,
    )
}

/// Fails loudly unless chromium and playwright-core are there (or the test is skipped).
fn browser_ready() -> bool {
    if std::env::var("WIRE_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: the browser test (WIRE_SKIP_BROWSER=1)");
        return false;
    }
    let chromium = std::env::var("WIRE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser test needs chromium at {chromium}: run scripts/browser-env \
         (apt-get install -y chromium), or set WIRE_SKIP_BROWSER=1 to skip it"
    );
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "the browser test needs playwright-core in relay/tests/browser/node_modules: run scripts/browser-env"
    );
    true
}

fn card(key: &SecretKey, nick: &str, domain: &str) -> String {
    let c = SignedCard::sign(key, &format!("{nick}@{domain}"), wire_relay::app::now_ms())
        .expect("sign");
    serde_json::to_string(&c).expect("json")
}

const XSS: &str =
    "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"> & 'quotes'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    let relay = LiveRelay::start(None, |c| {
        c.history = HistoryConfig {
            hour_step_ms: HOUR_STEP_MS,
            day_step_ms: DAY_STEP_MS,
        };
    })
    .await;
    let client = RelayClient::new(&relay.url).expect("client");

    // Three agents claim handles; two choose the phonebook.
    let mut slots = Vec::new();
    for (i, (nick, listing)) in [
        ("alice", Some("Tends the garden of shared notes")),
        ("bob", Some(XSS)),
        ("carol", None),
    ]
    .into_iter()
    .enumerate()
    {
        let grant = client.allocate_slot().await.expect("slot");
        let key = SecretKey::from_seed(&[i as u8 + 1; 32]);
        let card = card(&key, nick, &relay.domain);
        match listing {
            Some(profile) => client
                .claim_listed(nick, &grant.slot, &grant.token, &card, profile)
                .await
                .expect("claim listed"),
            None => client
                .claim(nick, &grant.slot, &grant.token, &card)
                .await
                .expect("claim"),
        };
        slots.push(grant);
    }
    // An open stream for the "open streams" chart, held for the whole test.
    let mut stream = client
        .stream(&slots[0].slot, &slots[0].token, 0)
        .await
        .expect("stream");
    // Traffic: appends through capabilities, in the background, all along.
    let mut caps = Vec::new();
    for s in &slots {
        caps.push((
            s.slot.clone(),
            client.mint_cap(&s.slot, &s.token).await.expect("cap").cap,
        ));
    }
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let traffic = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                for (slot, cap) in &caps {
                    let blob = Bytes::from(format!("sealed blob {n} {}", "x".repeat(200)));
                    client.append(slot, cap, blob).await.expect("append");
                    n += 1;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stop_rx.changed() => return n,
                }
            }
        })
    };
    let drain = tokio::spawn(async move {
        let mut got = 0u64;
        while let Some(Ok(_)) = stream.next().await {
            got += 1;
        }
        got
    });
    // Wait for a few points with traffic in both series.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let h = relay.get_json("/stats/history.json").await;
        let busy = |s: &str| {
            h[s]["points"].as_array().is_some_and(|p| {
                p.iter()
                    .filter(|p| p["appends_per_s"].as_f64() > Some(0.0))
                    .count()
                    >= 2
            })
        };
        if busy("hour") && busy("day") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no traffic in the history after 30 s: {h}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The served pages themselves name no URL but this relay's own.
    for path in ["/", "/stats", "/phonebook"] {
        let (_, _, body) = relay.get(path).await;
        scan_for_external_urls(path, &body, &relay.url);
    }

    let artifacts = artifacts_dir();
    let url = relay.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(browser_dir().join("pages.mjs"))
            .arg(&url)
            .arg(&artifacts)
            .output()
    })
    .await
    .expect("join")
    .expect("run node (is Node.js installed?)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pages.mjs failed ({}):\n{stderr}",
        out.status
    );
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pages.mjs printed no JSON ({e}); stderr:\n{stderr}"));

    let _ = stop_tx.send(true);
    let appended = traffic.await.expect("traffic");
    assert!(appended > 0);
    drop(relay);
    let _ = drain.await;

    check_network_and_console(&seen);
    check_landing(&seen["landing"]);
    check_stats(&seen["stats"]);
    check_phonebook(&seen["phonebook"]);
    for shot in seen["screenshots"].as_array().expect("screenshots") {
        let path = shot.as_str().expect("path");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("screenshot {path}: {e}"));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 2000,
            "{path} is not a real screenshot"
        );
    }
    assert!(seen["screenshots"].as_array().map(Vec::len) >= Some(10));
}

fn check_network_and_console(seen: &Value) {
    let origin = seen["origin"].as_str().expect("origin");
    assert_eq!(
        seen["blocked"],
        Value::Array(vec![]),
        "requests off loopback"
    );
    let requests = seen["requests"].as_array().expect("requests");
    assert!(requests.len() >= 8, "{requests:?}");
    for r in requests {
        let r = r.as_str().expect("url");
        assert!(
            r.starts_with(&format!("{origin}/")) || r.starts_with("data:"),
            "a request left this relay: {r}"
        );
    }
    assert_eq!(seen["console"], Value::Array(vec![]), "console errors");
    assert_eq!(seen["pageErrors"], Value::Array(vec![]), "page errors");
    // Leaving /stats may cancel its refresh in flight; that is the browser's doing, not a
    // failure. Anything else that failed is.
    let failed: Vec<&Value> = seen["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .filter(|f| {
            !(f["error"] == "net::ERR_ABORTED"
                && f["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("/stats/history.json")))
        })
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
}

fn check_landing(l: &Value) {
    let commands = l["commands"].as_str().expect("commands");
    assert!(
        commands.contains("wire init <handle> --relay http://127.0.0.1:"),
        "{commands}"
    );
    assert!(commands.contains("wire claim"), "{commands}");
    let limits = l["limits"].to_string();
    for word in [
        "Body cap",
        "1 MiB",
        "Mailbox quota",
        "Claims, per address",
        "unlimited",
    ] {
        assert!(limits.contains(word), "{word} missing from {limits}");
    }
    let links = l["links"].to_string();
    assert!(
        links.contains("\"/stats\"") && links.contains("\"/phonebook\""),
        "{links}"
    );
    assert_eq!(
        l["phoneOverflow"], false,
        "the landing page scrolls sideways on a phone"
    );
}

/// Every point a chart drew is the JSON's point at that time, at the right place; every JSON
/// point in the window the chart covers was drawn.
fn check_charts(dom: &Value, json: &Value, range: &str) {
    assert_eq!(dom["range"], range);
    let series = &json[range];
    let step = series["step_ms"].as_f64().expect("step");
    let max = series["points_max"].as_f64().expect("points_max");
    let json_points = series["points"].as_array().expect("points");
    let first_json_t = json_points
        .first()
        .and_then(|p| p["t_ms"].as_f64())
        .unwrap_or(0.0);
    let generated = dom["generated"].as_f64().expect("generated");
    let charts = dom["charts"].as_array().expect("charts");
    let ids: Vec<&str> = charts.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(
        ids,
        ["appends", "bytes", "slots", "streams", "batch", "latency"]
    );
    let mut nonzero_appends = 0;
    let mut active = 0;
    for chart in charts {
        let id = chart["id"].as_str().expect("id");
        let x0 = chart["x0"].as_f64().expect("x0");
        let x1 = chart["x1"].as_f64().expect("x1");
        let y_max = chart["yMax"].as_f64().expect("yMax");
        assert_eq!(x1, generated, "{id}");
        assert!(
            ((x1 - x0) - step * max).abs() < 1e-6,
            "{id}: the window is points_max steps"
        );
        let texts = chart["texts"].to_string();
        assert!(texts.contains("local time"), "{id}: no x axis title");
        let series_keys: Vec<&str> = chart["series"]
            .as_array()
            .expect("series")
            .iter()
            .filter_map(|s| s["key"].as_str())
            .collect();
        let expected_keys: &[&str] = match id {
            "appends" => &["appends_per_s"],
            "bytes" => &["bytes_per_s"],
            "slots" => &["slots", "active_slots"],
            "streams" => &["streams"],
            "batch" => &["batch_mean"],
            _ => &["commit_p50_ms", "commit_p90_ms", "commit_p99_ms"],
        };
        assert_eq!(series_keys, expected_keys, "{id}");
        let unit = match id {
            "appends" => "appends/s",
            "bytes" => "bytes/s",
            "slots" => "slots",
            "streams" => "streams",
            "batch" => "appends/commit",
            _ => "ms",
        };
        assert!(
            texts.contains(&format!("\"text\":\"{unit}\"")),
            "{id}: no unit {unit} in {texts}"
        );
        let legends = chart["texts"]
            .as_array()
            .expect("texts")
            .iter()
            .filter(|t| t["cls"] == "legend")
            .count();
        assert_eq!(
            legends,
            expected_keys.len(),
            "{id}: one legend entry per series"
        );
        let ticks = chart["texts"]
            .as_array()
            .expect("texts")
            .iter()
            .filter(|t| t["cls"] == "tick")
            .count();
        assert_eq!(ticks, 10, "{id}: five y and five x tick labels");
        // Compare where both the drawing and the later JSON can hold a point.
        let from = x0.max(first_json_t);
        for s in chart["series"].as_array().expect("series") {
            let key = s["key"].as_str().expect("key");
            let drawn: Vec<(f64, f64)> = s["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|p| {
                    let t = p["t"].as_f64().expect("t");
                    let v = p["v"].as_f64().expect("v");
                    let cx = L + (t - x0) / (x1 - x0) * (W - L - R);
                    let cy = T + (1.0 - v / y_max) * (H - T - B);
                    assert!(
                        (p["cx"].as_f64().expect("cx") - cx).abs() < 0.06,
                        "{id}/{key}: cx of {p}"
                    );
                    assert!(
                        (p["cy"].as_f64().expect("cy") - cy).abs() < 0.06,
                        "{id}/{key}: cy of {p}"
                    );
                    assert!(v <= y_max, "{id}/{key}: {v} above the axis ({y_max})");
                    (t, v)
                })
                .filter(|(t, _)| *t >= from)
                .collect();
            let expected: Vec<(f64, f64)> = json_points
                .iter()
                .filter_map(|p| {
                    let t = p["t_ms"].as_f64()?;
                    let v = p[key].as_f64()?; // null: no point drawn
                    (t >= from && t <= x1).then_some((t, v))
                })
                .collect();
            assert_eq!(
                drawn, expected,
                "{id}/{key} ({range}): drawn points differ from the JSON"
            );
            if key == "active_slots" {
                active += drawn.iter().filter(|(_, v)| *v >= 1.0).count();
            }
            if id == "appends" {
                assert!(drawn.len() >= 2, "{id}: too few points drawn: {drawn:?}");
                nonzero_appends += drawn.iter().filter(|(_, v)| *v > 0.0).count();
            }
            if id == "streams" {
                assert!(
                    drawn.iter().any(|(_, v)| *v >= 1.0),
                    "the open stream is not charted"
                );
            }
            if id == "latency" || id == "batch" {
                assert!(!drawn.is_empty(), "{id}/{key}: no commit figures drawn");
            }
        }
    }
    assert!(nonzero_appends >= 1, "no traffic charted ({range})");
    assert!(active >= 1, "no active slot charted ({range})");
}

fn check_stats(s: &Value) {
    check_charts(&s["hourDom"], &s["hourJson"], "hour");
    check_charts(&s["afterRefresh"], &s["afterJson"], "hour");
    check_charts(&s["dayDom"], &s["dayJson"], "day");
    assert!(
        s["afterRefresh"]["generated"].as_f64() > s["hourDom"]["generated"].as_f64(),
        "the charts did not refresh"
    );
    assert_eq!(s["sameDocument"], true, "the page reloaded to refresh");
    assert_eq!(
        s["phoneOverflow"], false,
        "the stats page scrolls sideways on a phone"
    );
}

fn handles(book: &Value) -> Vec<String> {
    book["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["handle"].as_str().expect("handle").to_owned())
        .collect()
}

fn check_phonebook(p: &Value) {
    let all = &p["all"];
    let names = handles(all);
    assert!(
        names.len() == 2 && names[0].starts_with("alice@") && names[1].starts_with("bob@"),
        "{names:?}"
    );
    let bob = &all["entries"][1];
    assert_eq!(
        bob["profile"], XSS,
        "the profile line is shown as text, exactly"
    );
    let tags = bob["elements"].to_string();
    assert!(
        !tags.contains("\"script\"") && !tags.contains("\"img\""),
        "markup from a profile came alive: {tags}"
    );
    assert_eq!(all["injected"], false);
    for e in all["entries"].as_array().expect("entries") {
        assert!(
            e["fill"]
                .as_str()
                .is_some_and(|f| f.len() == 7 && f.starts_with('#')),
            "{e}"
        );
        assert!(
            e["nickname"].as_str().is_some_and(|n| n.contains('-')),
            "{e}"
        );
        assert!(e["emoji"].as_str().is_some_and(|n| !n.is_empty()), "{e}");
    }
    let search = &p["search"];
    assert_eq!(handles(search).len(), 1, "{search}");
    assert!(handles(search)[0].starts_with("alice@"));
    assert!(
        search["url"]
            .as_str()
            .is_some_and(|u| u.contains("/phonebook?q=garden")),
        "{search}"
    );
    assert_eq!(
        p["phoneOverflow"], false,
        "the phonebook scrolls sideways on a phone"
    );
    let none = &p["none"];
    assert!(handles(none).is_empty());
    assert!(
        none["empty"]
            .as_str()
            .is_some_and(|t| t.contains("nobody-by-this-name")),
        "{none}"
    );
}
