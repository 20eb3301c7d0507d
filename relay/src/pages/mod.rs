//! The relay's own web pages: the landing page (`/`), live stats (`/stats`, with its data at
//! `/stats/history.json`) and the phonebook (`/phonebook`), plus the assets they use.
//!
//! Everything is served from the binary: the stylesheet and the one script are embedded with
//! `include_str!` and served under content-hashed names, so they can be cached forever. Pages
//! load nothing from anywhere else, which the Content-Security-Policy on every response
//! enforces; all text from the directory goes through [`escape`].

mod render;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wire_log::identity::check_handle;
use wire_log::{Character, Did};

use crate::app::App;
use crate::error::ApiError;
use crate::store::HandleRecord;

/// Sent with every page and asset. Nothing but this relay's own scripts, styles and images
/// (plus `data:` images) may load; no frames, no plugins, no form posts elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Entries on one phonebook page by default, and at most.
pub const PHONEBOOK_PAGE: usize = 25;
pub const PHONEBOOK_PAGE_MAX: usize = 100;
/// Longest search text, in characters.
pub const SEARCH_CHARS_MAX: usize = 64;
/// Handles one phonebook request looks at before it stops and offers the next page, so a
/// search on a large directory costs a bounded amount of work.
pub const PHONEBOOK_SCAN_MAX: usize = 5_000;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "wire.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/wire.css"),
    },
    Asset {
        name: "stats.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/stats.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/icon.svg"),
    },
];

/// Each asset under its served name, `stem.<12 hex of BLAKE3>.ext`.
static SERVED: LazyLock<HashMap<String, &'static Asset>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| (hashed_name(a), a))
        .collect::<HashMap<_, _>>()
});

fn hashed_name(a: &Asset) -> String {
    let hash = blake3::hash(a.body.as_bytes()).to_hex();
    let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
    format!("{stem}.{}.{ext}", &hash[..12])
}

/// The URL path of an embedded asset, by its plain name.
pub(crate) fn asset_url(name: &str) -> String {
    let asset = ASSETS.iter().find(|a| a.name == name);
    // Every caller names one of ASSETS; a typo shows up as a broken link in the page tests.
    asset.map_or_else(
        || format!("/assets/{name}"),
        |a| format!("/assets/{}", hashed_name(a)),
    )
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// A page: HTML, revalidated on every visit (its figures are live).
fn html(body: String) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    resp
}

pub(crate) async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let Some(a) = SERVED.get(&file) else {
        return Err(ApiError::not_found(
            "unknown_asset",
            "no such asset on this relay (asset names change with each release; reload the page)",
        ));
    };
    let mut resp = (StatusCode::OK, a.body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    // The name carries the content's hash, so it never changes under a cached copy.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    security_headers(h);
    Ok(resp)
}

pub(crate) async fn landing(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let totals = blocking(&app, |app| app.store.totals()).await??;
    Ok(html(render::landing(&app, &totals)))
}

pub(crate) async fn stats_page(State(app): State<Arc<App>>) -> Response {
    html(render::stats(&app))
}

pub(crate) async fn history_json(State(app): State<Arc<App>>) -> Response {
    let (now_ms, hour, day) = app.history.read();
    let refresh_ms = app.config.history.hour_step_ms.clamp(1_000, 10_000);
    let mut resp = axum::Json(json!({
        "now_ms": now_ms,
        "refresh_ms": refresh_ms,
        "hour": hour,
        "day": day,
    }))
    .into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    resp
}

/// What a phonebook request asks for, checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PhonebookQuery {
    /// Lower-cased search text; empty lists everyone.
    pub q: String,
    /// Start after this handle (name order).
    pub after: String,
    pub limit: usize,
}

/// Parses `?q=&after=&limit=`; anything else, or anything malformed, is a 400.
pub fn parse_phonebook_query(q: &HashMap<String, String>) -> Result<PhonebookQuery, ApiError> {
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "q" | "after" | "limit"))
    {
        // Quote the key only when it is short and plain: a query key is request text, and an
        // error never reflects it wholesale (the `relay_request` fuzz target found an owner
        // token pasted as a key coming back in the 400).
        const QUOTED_KEY_MAX: usize = 24;
        let plain = k.len() <= QUOTED_KEY_MAX
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let what = if plain {
            format!("{k:?}")
        } else {
            "a parameter it does not know".to_owned()
        };
        return Err(ApiError::bad_request(
            "bad_query",
            format!("the phonebook takes ?q=, ?after= and ?limit=, not {what}"),
        ));
    }
    let text = q.get("q").map(|s| s.trim()).unwrap_or_default();
    if text.chars().count() > SEARCH_CHARS_MAX {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("search text has at most {SEARCH_CHARS_MAX} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_query",
            "search text cannot contain control characters",
        ));
    }
    let after = q.get("after").cloned().unwrap_or_default();
    if !after.is_empty() {
        check_handle(&after).map_err(|e| {
            ApiError::bad_request("bad_query", format!("after= must be a handle: {e}"))
        })?;
    }
    let limit = match q.get("limit") {
        None => PHONEBOOK_PAGE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=PHONEBOOK_PAGE_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("limit= must be a whole number from 1 to {PHONEBOOK_PAGE_MAX}"),
                ));
            }
        },
    };
    Ok(PhonebookQuery {
        // The search text comes back in the page's links; a token-shaped run in it is cut to its
        // prefix first, as in every error body (`token::redact`): a request that pasted a secret
        // into the search box never gets it back.
        q: crate::token::redact(text).to_lowercase(),
        after,
        limit,
    })
}

/// One listed handle, ready to show.
#[derive(Debug, Clone)]
pub struct Entry {
    pub nick: String,
    pub did: String,
    pub character: Character,
    pub profile: String,
}

/// A page of the phonebook: its entries, and where the next page starts.
#[derive(Debug)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub next: Option<String>,
    /// The scan stopped at its bound before the page filled.
    pub scan_capped: bool,
}

fn entry_of(rec: &HandleRecord) -> Entry {
    let did = Did::from_key(&wire_log::AuthorKey(rec.key));
    Entry {
        nick: rec.nick.clone(),
        character: Character::of(&did),
        did: did.to_string(),
        profile: rec.profile.clone(),
    }
}

fn matches(e: &Entry, q: &str) -> bool {
    q.is_empty()
        || e.nick.contains(q)
        || e.character.nickname.to_lowercase().contains(q)
        || e.profile.to_lowercase().contains(q)
}

/// Listed handles matching `query`, in name order.
pub fn phonebook(app: &App, query: &PhonebookQuery) -> Result<Listing, crate::store::StoreError> {
    scan(
        |after, n| app.store.handles_after(after, n),
        query,
        PHONEBOOK_SCAN_MAX,
    )
}

/// The phonebook's walk over the directory: chunks of 100 from `fetch(after, n)`, at most
/// `scan_max` handles looked at.
fn scan<E>(
    mut fetch: impl FnMut(&str, usize) -> Result<Vec<HandleRecord>, E>,
    query: &PhonebookQuery,
    scan_max: usize,
) -> Result<Listing, E> {
    let mut entries = Vec::new();
    let mut cursor = query.after.clone();
    let mut scanned = 0;
    loop {
        let chunk = fetch(&cursor, 100)?;
        let Some(last) = chunk.last() else {
            return Ok(Listing {
                entries,
                next: None,
                scan_capped: false,
            });
        };
        cursor = last.nick.clone();
        for rec in &chunk {
            scanned += 1;
            if !rec.listed {
                continue;
            }
            let e = entry_of(rec);
            if matches(&e, &query.q) {
                if entries.len() == query.limit {
                    let next = entries.last().map(|e: &Entry| e.nick.clone());
                    return Ok(Listing {
                        entries,
                        next,
                        scan_capped: false,
                    });
                }
                entries.push(e);
            }
        }
        if scanned >= scan_max {
            return Ok(Listing {
                entries,
                next: Some(cursor),
                scan_capped: true,
            });
        }
    }
}

pub(crate) async fn phonebook_page(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if app.config.local_only {
        return Err(ApiError::not_found(
            "not_listed",
            "this relay is local-only and has no phonebook",
        ));
    }
    let query = parse_phonebook_query(&q)?;
    let (listing, query) = blocking(&app, move |app| {
        phonebook(app, &query).map(|listing| (listing, query))
    })
    .await??;
    // What was typed is shown back in the search box and in "Nobody listed matches …";
    // redacted like the links (the `relay_request` fuzz target found the owner token searched
    // for coming back in the 200).
    let typed = q.get("q").map(|t| crate::token::redact(t).into_owned());
    Ok(html(render::phonebook(
        &app,
        &query,
        &listing,
        typed.as_ref(),
    )))
}

/// Runs storage work off the async workers.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    Ok(tokio::task::spawn_blocking(move || f(&app)).await?)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An xterm 256-colour index as `#rrggbb` (Characters use the 6×6×6 cube; greys and the
/// 16 system colours map to their usual values).
pub fn xterm_hex(i: u8) -> String {
    const SYSTEM: [(u8, u8, u8); 16] = [
        (0, 0, 0),
        (128, 0, 0),
        (0, 128, 0),
        (128, 128, 0),
        (0, 0, 128),
        (128, 0, 128),
        (0, 128, 128),
        (192, 192, 192),
        (128, 128, 128),
        (255, 0, 0),
        (0, 255, 0),
        (255, 255, 0),
        (0, 0, 255),
        (255, 0, 255),
        (0, 255, 255),
        (255, 255, 255),
    ];
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    let (r, g, b) = match i {
        0..=15 => SYSTEM[usize::from(i)],
        16..=231 => {
            let c = i - 16;
            (
                LEVELS[usize::from(c / 36)],
                LEVELS[usize::from((c / 6) % 6)],
                LEVELS[usize::from(c % 6)],
            )
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            (v, v, v)
        }
    };
    format!("#{r:02x}{g:02x}{b:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_makes_markup_inert() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn xterm_colours() {
        assert_eq!(xterm_hex(16), "#000000");
        assert_eq!(xterm_hex(67), "#5f87af");
        assert_eq!(xterm_hex(231), "#ffffff");
        assert_eq!(xterm_hex(244), "#808080");
        assert_eq!(xterm_hex(9), "#ff0000");
    }

    #[test]
    fn asset_names_carry_their_hash() {
        let url = asset_url("stats.js");
        assert!(url.starts_with("/assets/stats.") && url.ends_with(".js"));
        assert!(SERVED.contains_key(url.trim_start_matches("/assets/")));
        assert_eq!(SERVED.len(), ASSETS.len());
    }

    fn record(nick: &str, listed: bool) -> HandleRecord {
        HandleRecord {
            nick: nick.into(),
            key: [7; 32],
            slot: crate::token::SlotId([1; 16]),
            card: String::new(),
            issued_ms: 1,
            claimed_ms: 1,
            listed,
            profile: format!("profile of {nick}"),
        }
    }

    #[test]
    fn the_scan_pages_and_stops_at_its_bound() {
        // 1,000 handles, every third one listed.
        let all: Vec<HandleRecord> = (0..1000)
            .map(|i| record(&format!("h{i:04}"), i % 3 == 0))
            .collect();
        let fetches = std::cell::Cell::new(0);
        let mut fetch = |after: &str, n: usize| -> Result<Vec<HandleRecord>, ()> {
            fetches.set(fetches.get() + 1);
            Ok(all
                .iter()
                .filter(|r| r.nick.as_str() > after)
                .take(n)
                .cloned()
                .collect())
        };
        let q = |text: &str, after: &str, limit: usize| PhonebookQuery {
            q: text.into(),
            after: after.into(),
            limit,
        };
        let page = scan(&mut fetch, &q("", "", 5), 10_000).expect("scan");
        let nicks: Vec<&str> = page.entries.iter().map(|e| e.nick.as_str()).collect();
        assert_eq!(nicks, ["h0000", "h0003", "h0006", "h0009", "h0012"]);
        assert_eq!(page.next.as_deref(), Some("h0012"));
        let page = scan(&mut fetch, &q("", "h0012", 5), 10_000).expect("scan");
        assert_eq!(page.entries[0].nick, "h0015");
        // The last page has no next.
        let page = scan(&mut fetch, &q("", "h0990", 5), 10_000).expect("scan");
        assert_eq!(page.entries.len(), 3);
        assert_eq!(page.next, None);
        assert!(!page.scan_capped);
        // A search that matches nothing stops at the bound and offers to go on from there.
        fetches.set(0);
        let page = scan(&mut fetch, &q("zzz", "", 5), 300).expect("scan");
        assert!(page.entries.is_empty() && page.scan_capped);
        assert_eq!(page.next.as_deref(), Some("h0299"));
        assert_eq!(fetches.get(), 3);
        let page = scan(&mut fetch, &q("h0999", "h0299", 5), 10_000).expect("scan");
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].profile, "profile of h0999");
    }

    #[test]
    fn phonebook_queries_are_checked() {
        let q = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            parse_phonebook_query(&map)
        };
        assert_eq!(
            q(&[("q", " Bear ")]).expect("ok"),
            PhonebookQuery {
                q: "bear".into(),
                after: String::new(),
                limit: PHONEBOOK_PAGE
            }
        );
        for bad in [
            vec![("page", "2")],
            vec![("limit", "0")],
            vec![("limit", "-1")],
            vec![("limit", "101")],
            vec![("limit", "ten")],
            vec![("after", "Not A Handle")],
            vec![("q", "a\u{7}")],
        ] {
            let e = q(&bad).expect_err("bad query");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let long = "x".repeat(SEARCH_CHARS_MAX + 1);
        assert!(q(&[("q", &long)]).is_err());
    }
}
