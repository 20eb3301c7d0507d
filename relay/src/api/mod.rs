//! The HTTP API (normative description in `docs/PROTOCOL.md`, "Relay HTTP API").
//!
//! Every handler checks, in order: the path and its ids, the credential's syntax, the content
//! type and declared length, then (only then) storage. Failures are JSON `{"error", "code"}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use wire_log::card::SignedCard;
use wire_log::identity::check_handle;
use wire_log::intro::{INTRO_BYTES_MAX, Intro};
use wire_log::{Character, Did};

use crate::a2a::{self, A2aCardInput};
use crate::app::{App, LimitKey, now_ms};
use crate::error::ApiError;
use crate::frames::{self, BLOBS_CONTENT_TYPE, RECORDS_CONTENT_TYPE};
use crate::hub::SubscribeError;
use crate::limits::{Limit, Source};
use crate::pages;
use crate::store::{
    AckOutcome, AppendItem, AppendOutcome, ClaimOutcome, Credential, HandleRecord, IntroOutcome,
    MintOutcome, SlotInfo,
};
use crate::token::{CapId, SlotId, Token, TokenKind};

pub const INTRO_CONTENT_TYPE: &str = "application/vnd.wire.intro";
const JSON_BODY_MAX: usize = 8 * 1024;
const HEARTBEAT: Duration = Duration::from_secs(15);
const STREAM_PAGE_BLOBS: usize = 512;
const STREAM_PAGE_BYTES: usize = 1 << 20;
const HANDLES_PAGE_MAX: usize = 100;

type ApiResult = Result<Response, ApiError>;

mod directory;
mod info;
mod pairs;
mod slots;

pub use directory::{ClaimBody, PROFILE_CHARS_MAX, check_profile, decode_claim};
pub use slots::{AckBody, decode_ack};

use directory::*;
use info::*;
use pairs::*;
use slots::*;

/// The whole API as an axum router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::landing))
        .route("/stats", get(pages::stats_page))
        .route("/stats/history.json", get(pages::history_json))
        .route("/phonebook", get(pages::phonebook_page))
        .route("/assets/{file}", get(pages::asset))
        .route("/healthz", get(healthz))
        .route("/stats.json", get(stats))
        .route("/metrics", get(metrics))
        .route("/v1/relay", get(relay_info))
        .route("/v1/slots", post(allocate_slot))
        .route("/v1/slots/{slot}", get(slot_info))
        .route("/v1/slots/{slot}/caps", post(mint_cap).get(list_caps))
        .route("/v1/slots/{slot}/caps/{cap}", delete(revoke_cap))
        .route("/v1/slots/{slot}/blobs", post(append_one).get(read_blobs))
        .route("/v1/slots/{slot}/batch", post(append_batch))
        .route("/v1/slots/{slot}/ack", post(ack))
        .route("/v1/slots/{slot}/stream", get(stream))
        .route("/v1/slots/{slot}/intros", get(read_intros))
        .route("/v1/slots/{slot}/intros/ack", post(ack_intros))
        .route("/v1/handles", get(list_handles))
        .route("/v1/handles/{nick}", put(claim).delete(release))
        .route("/v1/handles/{nick}/intro", post(leave_intro))
        .route(
            "/v1/pair/{slot}/{side}/{index}",
            put(put_cell).get(get_cell),
        )
        .route("/v1/pair/{slot}", delete(close_slot))
        .route("/.well-known/wire/agent", get(wire_agent))
        .route("/.well-known/agent-card.json", get(a2a_card))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(source))
        .with_state(app)
}

// ---------------------------------------------------------------------------------------------
// Middleware

/// Tags each request with its [`Source`] for rate limits: the peer address over TCP, `Local`
/// over a Unix socket or in-process.
async fn source(mut req: Request, next: Next) -> Response {
    let src = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(Source::Local, |c| Source::of(c.0.ip()));
    req.extensions_mut().insert(src);
    next.run(req).await
}

/// Turns any non-JSON failure (an extractor's rejection) into the API's JSON error shape.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "bad_content_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "error",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "not_found",
        "no such route; see /v1/relay and docs/PROTOCOL.md for the API",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see docs/PROTOCOL.md",
    )
}

// ---------------------------------------------------------------------------------------------
// Request checks

fn parse_slot(s: &str) -> Result<SlotId, ApiError> {
    SlotId::parse(s)
        .ok_or_else(|| ApiError::bad_request("bad_id", "a slot id is 32 lower-case hex characters"))
}

fn parse_nick(s: &str) -> Result<(), ApiError> {
    check_handle(s).map_err(|e| ApiError::bad_request("bad_handle", e))
}

/// The bearer token, if the header is present once and well-formed. The scheme is matched
/// without regard to case. Two `Authorization` headers are refused whatever they hold: which
/// one counts would be a guess (and a proxy that adds its own could make it the wrong one).
fn bearer(headers: &HeaderMap) -> Result<Token, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::unauthorized(
            "missing_token",
            "this route needs 'Authorization: Bearer <token>'",
        ));
    };
    if values.next().is_some() {
        return Err(ApiError::unauthorized(
            "bad_token",
            "the request carries more than one Authorization header; send exactly one",
        ));
    }
    let value = value.to_str().unwrap_or_default().trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "bad_token",
            "the Authorization scheme must be Bearer",
        ));
    }
    Token::parse(rest.trim()).ok_or_else(|| {
        ApiError::unauthorized(
            "bad_token",
            "the bearer token is not a wire owner token (wot1_…) or capability (wac1_…)",
        )
    })
}

/// A media type quoted back in an error, only when it is short and looks like one: an error
/// never reflects arbitrary header text (a client that put a token in the wrong header would
/// get it back in a body it may log; found by the `relay_request` fuzz target).
fn quoted_media_type(essence: &str) -> String {
    const QUOTED_BYTES_MAX: usize = 40;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        _ if essence.is_empty() => "none".into(),
        Some((a, b)) if essence.len() <= QUOTED_BYTES_MAX && token(a) && token(b) => {
            format!("{essence:?}")
        }
        _ => "a value that is not a short media type".into(),
    }
}

fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let actual = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = actual.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            format!(
                "this route takes Content-Type {expected}, not {}",
                quoted_media_type(essence)
            ),
        ))
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is over this route's limit of {max} bytes"),
    )
}

/// Refuses early on a declared length over `max`; the read itself is capped too.
fn check_length(headers: &HeaderMap, max: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max as u64 => Err(too_large(max)),
        _ => Ok(()),
    }
}

async fn read_body(body: Body, max: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("length limit") {
            too_large(max)
        } else {
            ApiError::bad_request(
                "bad_body",
                format!("could not read the request body: {text}"),
            )
        }
    })
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("bad_json", format!("the JSON body is not valid: {e}")))
}

fn query_u64(q: &HashMap<String, String>, key: &str, default: u64) -> Result<u64, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ApiError::bad_request("bad_query", format!("{key} must be a non-negative integer"))
        }),
    }
}

/// The slot's row, if `token` is its owner token. A capability never passes.
async fn owner(app: &Arc<App>, slot: SlotId, headers: &HeaderMap) -> Result<SlotInfo, ApiError> {
    let token = bearer(headers)?;
    if token.kind == TokenKind::Cap {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an append capability can only append; reading and managing a slot needs its owner token",
        ));
    }
    let info = blocking(app, move |app| app.store.slot_info(slot)).await??;
    let Some(info) = info else {
        return Err(unknown_slot());
    };
    if !info.owner.ct_eq(&token.hash()) {
        return Err(ApiError::unauthorized(
            "bad_token",
            "this owner token does not own the slot",
        ));
    }
    Ok(info)
}

fn unknown_slot() -> ApiError {
    ApiError::not_found("unknown_slot", "no such slot on this relay")
}

/// Runs storage work off the async workers.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    Ok(tokio::task::spawn_blocking(move || f(&app)).await?)
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

fn character_of(did: &Did) -> String {
    Character::of(did).label(true)
}

fn source_of(req: &Request) -> Source {
    req.extensions()
        .get::<Source>()
        .copied()
        .unwrap_or(Source::Local)
}

/// A token of `limit` for `key` (with `peek`: only whether one is there), counted across
/// every instance when the store shares buckets (decision (ah)): `Ok(Err(secs))` when
/// limited. The store is asked off the async workers; memory buckets are asked here.
async fn take_limit(
    app: &Arc<App>,
    limit: Limit,
    key: LimitKey,
    peek: bool,
) -> Result<Result<(), u64>, ApiError> {
    if app.config.rates.of(limit).is_unlimited() || !app.store.shares_rate_limits() {
        return Ok(app.take_limit(limit, &key, peek)?);
    }
    Ok(blocking(app, move |app| app.take_limit(limit, &key, peek)).await??)
}

fn limited(app: &App, wait: u64, what: &str) -> ApiError {
    app.metrics
        .rate_limited
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ApiError::rate_limited(wait, format!("{what}; retry in {wait} s"))
}
