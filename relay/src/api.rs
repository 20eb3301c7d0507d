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
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use wire_log::card::SignedCard;
use wire_log::identity::check_handle;
use wire_log::intro::{INTRO_BYTES_MAX, Intro};
use wire_log::{Character, Did};

use crate::a2a::{self, A2aCardInput};
use crate::app::{App, now_ms};
use crate::error::ApiError;
use crate::frames::{self, BLOBS_CONTENT_TYPE, RECORDS_CONTENT_TYPE};
use crate::hub::SubscribeError;
use crate::limits::Source;
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

/// The whole API as an axum router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(landing))
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

/// The bearer token, if the header is present and well-formed. The scheme is matched without
/// regard to case.
fn bearer(headers: &HeaderMap) -> Result<Token, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing_token",
            "this route needs 'Authorization: Bearer <token>'",
        ));
    };
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
                "this route takes Content-Type {expected}, not {:?}",
                if actual.is_empty() { "(none)" } else { actual }
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

// ---------------------------------------------------------------------------------------------
// Informational routes

async fn landing(State(app): State<Arc<App>>) -> Html<String> {
    let domain = html_escape(&app.config.domain);
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>wire relay · {domain}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>\
         <h1>wire relay</h1><p>This is a <a href=\"https://example.invalid/wire\">wire</a> relay for \
         <code>{domain}</code>. It stores and forwards sealed messages between AI agents; it can read or \
         forge none of them.</p><p>Agents reach each other here as <code>nick@{domain}</code>. \
         Run <code>wire init &lt;nick&gt; --relay {url}</code> to get a mailbox.</p>\
         <p><a href=\"/healthz\">health</a> · <a href=\"/stats.json\">stats</a> · <a href=\"/metrics\">metrics</a></p>\
         </body></html>",
        url = html_escape(&app.config.public_url),
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn stats(State(app): State<Arc<App>>) -> ApiResult {
    use std::sync::atomic::Ordering::Relaxed;
    let g = blocking(&app, |app| app.gauges()).await??;
    let m = &app.metrics;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "domain": app.config.domain,
            "uptime_s": app.started.elapsed().as_secs(),
            "slots": g.slots,
            "blobs": g.blobs,
            "bytes": g.bytes,
            "handles": g.handles,
            "intros_pending": g.intros,
            "subscribers": m.subscribers.load(Relaxed),
            "commits": m.commits.load(Relaxed),
            "appends_stored": m.appends_stored.load(Relaxed),
            "appends_duplicate": m.appends_duplicate.load(Relaxed),
            "appends_refused": m.appends_refused.load(Relaxed),
            "blobs_served": m.blobs_served.load(Relaxed),
            "intros_queued": m.intros_queued.load(Relaxed),
            "intros_refused": m.intros_refused.load(Relaxed),
            "rate_limited": m.rate_limited.load(Relaxed),
        }),
    ))
}

async fn metrics(State(app): State<Arc<App>>) -> ApiResult {
    let g = blocking(&app, |app| app.gauges()).await??;
    let text = app.metrics.render(&g);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

async fn relay_info(State(app): State<Arc<App>>) -> Response {
    let c = &app.config;
    json_response(
        StatusCode::OK,
        json!({
            "software": "wire-relay",
            "version": env!("CARGO_PKG_VERSION"),
            "domain": c.domain,
            "public_url": c.public_url,
            "local_only": c.local_only,
            "limits": {
                "blob_bytes_max": c.blob_bytes_max,
                "batch_bytes_max": c.batch_bytes_max,
                "batch_blobs_max": c.batch_blobs_max,
                "read_blobs_max": c.read_blobs_max,
                "slot_blobs_max": c.quotas.slot_blobs_max,
                "slot_bytes_max": c.quotas.slot_bytes_max,
                "intro_bytes_max": INTRO_BYTES_MAX,
            },
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Slots and capabilities

async fn allocate_slot(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let src = source_of(&req);
    if let Err(wait) = app.limiters.slots.take(&src) {
        return Err(limited(
            &app,
            wait,
            "too many slots allocated from your address",
        ));
    }
    let slot = SlotId::generate();
    let token = Token::generate(TokenKind::Owner);
    let hash = token.hash();
    blocking(&app, move |app| app.store.create_slot(slot, hash, now_ms())).await??;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "slot": slot.to_string(), "token": token.reveal() }),
    ))
}

fn source_of(req: &Request) -> Source {
    req.extensions()
        .get::<Source>()
        .copied()
        .unwrap_or(Source::Local)
}

fn limited(app: &App, wait: u64, what: &str) -> ApiError {
    app.metrics
        .rate_limited
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ApiError::rate_limited(wait, format!("{what}; retry in {wait} s"))
}

async fn slot_info(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    let info = owner(&app, slot, &headers).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "slot": slot.to_string(),
            "blobs": info.blobs,
            "bytes": info.bytes,
            "last_seq": info.last_seq,
            "acked_through": info.acked_through,
            "caps": info.caps,
            "created_ms": info.created_ms,
        }),
    ))
}

async fn mint_cap(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    owner(&app, slot, &headers).await?;
    let id = CapId::generate();
    let cap = Token::generate(TokenKind::Cap);
    let hash = cap.hash();
    match blocking(&app, move |app| app.store.mint_cap(slot, id, hash)).await?? {
        MintOutcome::Minted => Ok(json_response(
            StatusCode::CREATED,
            json!({ "cap_id": id.to_string(), "cap": cap.reveal() }),
        )),
        MintOutcome::UnknownSlot => Err(unknown_slot()),
        MintOutcome::TooMany { max } => Err(ApiError::quota(
            "too_many_caps",
            format!("the slot already has {max} capabilities; revoke some first"),
        )),
    }
}

async fn list_caps(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    owner(&app, slot, &headers).await?;
    let caps = blocking(&app, move |app| app.store.list_caps(slot)).await??;
    let ids: Vec<String> = caps.iter().map(ToString::to_string).collect();
    Ok(json_response(StatusCode::OK, json!({ "caps": ids })))
}

async fn revoke_cap(
    State(app): State<Arc<App>>,
    Path((slot, cap)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    let id = CapId::parse(&cap).ok_or_else(|| {
        ApiError::bad_request("bad_id", "a capability id is 16 lower-case hex characters")
    })?;
    owner(&app, slot, &headers).await?;
    if blocking(&app, move |app| app.store.revoke_cap(slot, id)).await?? {
        Ok(json_response(
            StatusCode::OK,
            json!({ "revoked": id.to_string() }),
        ))
    } else {
        Err(ApiError::not_found(
            "unknown_cap",
            "the slot has no capability with that id",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Appending

/// Checks an append credential against storage before the body is read, so that strangers
/// cannot make the relay buffer bodies. The commit re-checks inside its transaction, so a
/// capability revoked in between does not slip through.
async fn append_credential(
    app: &Arc<App>,
    slot: SlotId,
    headers: &HeaderMap,
) -> Result<Credential, ApiError> {
    let token = bearer(headers)?;
    let hash = token.hash();
    match token.kind {
        TokenKind::Owner => {
            let info = blocking(app, move |app| app.store.slot_info(slot)).await??;
            match info {
                None => Err(unknown_slot()),
                Some(info) if info.owner.ct_eq(&hash) => Ok(Credential::Owner(hash)),
                Some(_) => Err(ApiError::unauthorized(
                    "bad_token",
                    "this token does not own the slot",
                )),
            }
        }
        TokenKind::Cap => {
            let found = app.store.cap_slot(hash)?;
            match found {
                Some((s, _)) if s == slot => Ok(Credential::Cap(hash)),
                _ => {
                    if app.store.slot_info(slot)?.is_none() {
                        Err(unknown_slot())
                    } else {
                        Err(ApiError::unauthorized(
                            "bad_token",
                            "this capability does not grant appending to the slot (unknown or revoked)",
                        ))
                    }
                }
            }
        }
    }
}

fn refused(outcome: AppendOutcome) -> ApiError {
    match outcome {
        AppendOutcome::UnknownSlot => unknown_slot(),
        AppendOutcome::Unauthorized => ApiError::unauthorized(
            "bad_token",
            "this capability does not grant appending to the slot (unknown or revoked)",
        ),
        AppendOutcome::SlotFull { blobs, bytes } => ApiError::quota(
            "slot_full",
            format!(
                "the slot holds {blobs} blobs ({bytes} bytes), its quota; its owner must read and acknowledge before more fit"
            ),
        ),
        AppendOutcome::Stored { .. } | AppendOutcome::Duplicate { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an append was reported as refused and stored at once",
        ),
    }
}

fn outcome_json(outcome: AppendOutcome, blob: &[u8]) -> Value {
    match outcome {
        AppendOutcome::Stored { seq } => {
            json!({ "seq": seq, "stored": true, "hash": blake3::hash(blob).to_hex().as_str() })
        }
        AppendOutcome::Duplicate { seq } => {
            json!({ "seq": seq, "stored": false, "hash": blake3::hash(blob).to_hex().as_str() })
        }
        other => {
            let e = refused(other);
            json!({ "error": e.message, "code": e.code })
        }
    }
}

async fn append_one(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    bearer(&headers)?;
    require_content_type(&headers, "application/octet-stream")?;
    let max = app.config.blob_bytes_max;
    check_length(&headers, max)?;
    let credential = append_credential(&app, slot, &headers).await?;
    let blob = read_body(body, max).await?;
    if blob.is_empty() {
        return Err(ApiError::bad_request(
            "empty_blob",
            "a blob has at least one byte",
        ));
    }
    let item = AppendItem {
        slot,
        credential,
        blob: blob.clone(),
    };
    let outcome = app
        .committer
        .append(vec![item])
        .await?
        .first()
        .copied()
        .unwrap_or(AppendOutcome::UnknownSlot);
    match outcome {
        AppendOutcome::Stored { .. } => Ok(json_response(
            StatusCode::CREATED,
            outcome_json(outcome, &blob),
        )),
        AppendOutcome::Duplicate { .. } => {
            Ok(json_response(StatusCode::OK, outcome_json(outcome, &blob)))
        }
        other => Err(refused(other)),
    }
}

async fn append_batch(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    bearer(&headers)?;
    require_content_type(&headers, BLOBS_CONTENT_TYPE)?;
    let max = app.config.batch_bytes_max;
    check_length(&headers, max)?;
    let credential = append_credential(&app, slot, &headers).await?;
    let body = read_body(body, max).await?;
    let blobs = frames::decode_blobs(&body, app.config.blob_bytes_max, app.config.batch_blobs_max)
        .map_err(|e| ApiError::bad_request("bad_batch", e.to_string()))?;
    let items: Vec<AppendItem> = blobs
        .iter()
        .map(|blob| AppendItem {
            slot,
            credential,
            blob: blob.clone(),
        })
        .collect();
    let outcomes = app.committer.append(items).await?;
    let accepted = outcomes.iter().any(|o| {
        matches!(
            o,
            AppendOutcome::Stored { .. } | AppendOutcome::Duplicate { .. }
        )
    });
    if !accepted && let Some(first) = outcomes.first() {
        return Err(refused(*first));
    }
    let results: Vec<Value> = outcomes
        .iter()
        .zip(&blobs)
        .map(|(o, b)| outcome_json(*o, b))
        .collect();
    Ok(json_response(StatusCode::OK, json!({ "results": results })))
}

// ---------------------------------------------------------------------------------------------
// Reading, acknowledging, streaming

fn records_response(items: &[(u64, Bytes)], last_seq: u64, more: bool) -> Response {
    let body = frames::encode_records(items);
    let mut resp = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(RECORDS_CONTENT_TYPE),
        )],
        body,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert("wire-last-seq", HeaderValue::from(last_seq));
    h.insert(
        "wire-more",
        HeaderValue::from_static(if more { "1" } else { "0" }),
    );
    resp
}

async fn read_blobs(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    let after = query_u64(&q, "after", 0)?;
    let limit = query_u64(&q, "limit", app.config.read_blobs_max as u64)?
        .clamp(1, app.config.read_blobs_max as u64) as usize;
    owner(&app, slot, &headers).await?;
    let bytes_max = app.config.read_bytes_max;
    let page = blocking(&app, move |app| {
        app.store.read_after(slot, after, limit, bytes_max)
    })
    .await??;
    app.metrics.blobs_served.fetch_add(
        page.items.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let more = page.items.last().is_some_and(|(s, _)| *s < page.last_seq);
    Ok(records_response(&page.items, page.last_seq, more))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub through: u64,
}

/// Decodes an acknowledgement body (also the fuzz target's entry point).
pub fn decode_ack(bytes: &[u8]) -> Result<AckBody, ApiError> {
    if bytes.len() > JSON_BODY_MAX {
        return Err(too_large(JSON_BODY_MAX));
    }
    parse_json(bytes)
}

async fn ack_common(
    app: &Arc<App>,
    slot: &str,
    headers: &HeaderMap,
    body: Body,
    intros: bool,
) -> ApiResult {
    let slot = parse_slot(slot)?;
    bearer(headers)?;
    require_content_type(headers, "application/json")?;
    check_length(headers, JSON_BODY_MAX)?;
    owner(app, slot, headers).await?;
    let body = read_body(body, JSON_BODY_MAX).await?;
    let AckBody { through } = decode_ack(&body)?;
    let outcome = blocking(app, move |app| {
        if intros {
            app.store.ack_intros(slot, through)
        } else {
            app.store.ack(slot, through)
        }
    })
    .await??;
    match outcome {
        AckOutcome::Acked {
            removed,
            blobs,
            bytes,
            acked_through,
        } => Ok(json_response(
            StatusCode::OK,
            json!({ "acked_through": acked_through, "removed": removed, "remaining": blobs, "remaining_bytes": bytes }),
        )),
        AckOutcome::UnknownSlot => Err(unknown_slot()),
        AckOutcome::BeyondLast { last_seq } => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ack_beyond_last",
            format!("through={through} is past the last sequence number the slot has assigned ({last_seq}); acknowledge only what you have read"),
        )
        .with("last_seq", json!(last_seq))),
    }
}

async fn ack(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    ack_common(&app, &slot, &headers, body, false).await
}

async fn ack_intros(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    ack_common(&app, &slot, &headers, body, true).await
}

async fn read_intros(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    let after = query_u64(&q, "after", 0)?;
    let limit = query_u64(&q, "limit", 256)?.clamp(1, 1024) as usize;
    owner(&app, slot, &headers).await?;
    let page = blocking(&app, move |app| app.store.intros_after(slot, after, limit)).await??;
    let more = page.items.last().is_some_and(|(s, _)| *s < page.last_seq);
    Ok(records_response(&page.items, page.last_seq, more))
}

async fn stream(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    let after = query_u64(&q, "after", 0)?;
    owner(&app, slot, &headers).await?;
    // Refuse up front if the relay cannot take another subscriber.
    let probe = app.hub.subscribe(slot).map_err(subscribe_error)?;
    drop(probe);
    let state = StreamState {
        app: app.clone(),
        slot,
        after,
        sub: None,
        caught_up: false,
    };
    let body = futures_util::stream::unfold(state, next_chunk);
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(RECORDS_CONTENT_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn subscribe_error(e: SubscribeError) -> ApiError {
    match e {
        SubscribeError::SlotBusy { max } => ApiError::quota(
            "too_many_subscribers",
            format!("the slot already has {max} open streams; close one first"),
        ),
        SubscribeError::RelayBusy => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the relay has as many open streams as it allows; retry shortly or read in batches",
            );
            e.retry_after = Some(5);
            e
        }
        SubscribeError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the relay is shutting down",
        ),
    }
}

struct StreamState {
    app: Arc<App>,
    slot: SlotId,
    after: u64,
    sub: Option<crate::hub::Subscription>,
    caught_up: bool,
}

/// One step of a stream: backlog pages from storage until caught up, then live blobs from the
/// subscription, with a heartbeat when idle. Ends when the subscription is cut or closed.
async fn next_chunk(mut st: StreamState) -> Option<(Result<Bytes, Infallible>, StreamState)> {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        if !st.caught_up {
            let (slot, after) = (st.slot, st.after);
            let page = tokio::task::spawn_blocking({
                let app = st.app.clone();
                move || {
                    app.store
                        .read_after(slot, after, STREAM_PAGE_BLOBS, STREAM_PAGE_BYTES)
                }
            })
            .await
            .ok()?
            .ok()?;
            if let Some((last, _)) = page.items.last() {
                st.after = *last;
                st.app
                    .metrics
                    .blobs_served
                    .fetch_add(page.items.len() as u64, Relaxed);
                return Some((Ok(frames::encode_records(&page.items)), st));
            }
            if st.sub.is_none() {
                // Subscribe, then read once more: anything committed between the last read and
                // the subscription is in storage, anything after reaches the queue.
                st.sub = Some(st.app.hub.subscribe(st.slot).ok()?);
                continue;
            }
            st.caught_up = true;
        }
        let sub = st.sub.as_mut()?;
        match tokio::time::timeout(HEARTBEAT, sub.recv()).await {
            Ok(Some((seq, blob))) => {
                if seq <= st.after {
                    continue;
                }
                st.after = seq;
                st.app.metrics.blobs_served.fetch_add(1, Relaxed);
                return Some((Ok(frames::encode_records(&[(seq, blob)])), st));
            }
            Ok(None) => return None,
            Err(_) => return Some((Ok(frames::record_header(0, 0)), st)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Directory

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    pub slot: String,
    pub card: SignedCard,
}

/// Decodes a claim body (also the fuzz target's entry point).
pub fn decode_claim(bytes: &[u8]) -> Result<ClaimBody, ApiError> {
    if bytes.len() > JSON_BODY_MAX {
        return Err(too_large(JSON_BODY_MAX));
    }
    parse_json(bytes)
}

fn holder_json(app: &App, rec: &HandleRecord) -> Value {
    let did = Did::from_key(&wire_log::AuthorKey(rec.key));
    json!({
        "handle": format!("{}@{}", rec.nick, app.config.domain),
        "did": did.to_string(),
        "character": character_of(&did),
    })
}

async fn claim(State(app): State<Arc<App>>, Path(nick): Path<String>, req: Request) -> ApiResult {
    parse_nick(&nick)?;
    let src = source_of(&req);
    let headers = req.headers().clone();
    let token = bearer(&headers)?;
    require_content_type(&headers, "application/json")?;
    check_length(&headers, JSON_BODY_MAX)?;
    if let Err(wait) = app.limiters.claims.take(&src) {
        return Err(limited(&app, wait, "too many claims from your address"));
    }
    let body = read_body(req.into_body(), JSON_BODY_MAX).await?;
    let ClaimBody { slot, card } = decode_claim(&body)?;
    let slot = parse_slot(&slot)?;
    let verified = card
        .verify()
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_card", e.to_string()))?;
    if verified.nick != nick {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_card",
            format!("the card is for {:?}, not {nick:?}", verified.nick),
        ));
    }
    if verified.domain != app.config.domain {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_relay",
            format!(
                "the card is for relay {:?}; this relay is {:?}: sign a card for {nick}@{}",
                verified.domain, app.config.domain, app.config.domain
            ),
        ));
    }
    if token.kind == TokenKind::Cap {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "claiming a handle needs the slot's owner token, not a capability",
        ));
    }
    owner(&app, slot, &headers).await?;
    // Store the card itself, re-serialised, not the whole request body.
    let record = HandleRecord {
        nick: nick.clone(),
        key: verified.key.0,
        slot,
        card: serde_json::to_string(&verified.signed)
            .map_err(|e| ApiError::from(crate::store::StoreError(format!("card: {e}"))))?,
        issued_ms: verified.issued_ms,
        claimed_ms: now_ms(),
    };
    let did = verified.did.to_string();
    let character = character_of(&verified.did);
    let handle = format!("{nick}@{}", app.config.domain);
    let outcome = blocking(&app, move |app| app.store.claim(record)).await??;
    let ok = |status: StatusCode, what: &str| {
        Ok(json_response(
            status,
            json!({ "handle": handle, "did": did, "character": character, "status": what }),
        ))
    };
    match outcome {
        ClaimOutcome::Claimed => ok(StatusCode::CREATED, "claimed"),
        ClaimOutcome::Updated => ok(StatusCode::OK, "updated"),
        ClaimOutcome::Unchanged => ok(StatusCode::OK, "unchanged"),
        ClaimOutcome::Taken(held) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "handle_taken",
            format!(
                "{nick}@{} is held by {} ({}); pick another handle",
                app.config.domain,
                character_of(&Did::from_key(&wire_log::AuthorKey(held.key))),
                Did::from_key(&wire_log::AuthorKey(held.key))
            ),
        )
        .with("holder", holder_json(&app, &held))),
        ClaimOutcome::Stale { held_issued_ms } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_card",
            format!(
                "the relay holds a card for this handle issued at {held_issued_ms} ms; sign a newer one"
            ),
        )),
        ClaimOutcome::UnknownSlot => Err(unknown_slot()),
        ClaimOutcome::TooManyHandles { max } => Err(ApiError::quota(
            "too_many_handles",
            format!("the slot already holds {max} handles; release one first"),
        )),
    }
}

async fn release(
    State(app): State<Arc<App>>,
    Path(nick): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    parse_nick(&nick)?;
    bearer(&headers)?;
    let n = nick.clone();
    let held = blocking(&app, move |app| app.store.handle(&n)).await??;
    let Some(held) = held else {
        return Err(unknown_handle(&app, &nick));
    };
    owner(&app, held.slot, &headers).await?;
    let slot = held.slot;
    let n = nick.clone();
    if blocking(&app, move |app| app.store.release(&n, slot)).await?? {
        Ok(json_response(
            StatusCode::OK,
            json!({ "released": format!("{nick}@{}", app.config.domain) }),
        ))
    } else {
        Err(unknown_handle(&app, &nick))
    }
}

fn unknown_handle(app: &App, nick: &str) -> ApiError {
    ApiError::not_found(
        "unknown_handle",
        format!("nobody holds {nick}@{} on this relay", app.config.domain),
    )
}

async fn list_handles(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    if app.config.local_only {
        return Err(ApiError::not_found(
            "not_listed",
            "this relay is local-only and does not list its handles",
        ));
    }
    let after = q.get("after").cloned().unwrap_or_default();
    if !after.is_empty() {
        parse_nick(&after)?;
    }
    let limit = query_u64(&q, "limit", 50)?.clamp(1, HANDLES_PAGE_MAX as u64) as usize;
    let a = after.clone();
    let records = blocking(&app, move |app| app.store.handles_after(&a, limit)).await??;
    let next = (records.len() == limit)
        .then(|| records.last().map(|r| r.nick.clone()))
        .flatten();
    let handles: Vec<Value> = records.iter().map(|r| holder_json(&app, r)).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "handles": handles, "next": next }),
    ))
}

/// Looks up `?handle=nick` or `?handle=nick@domain` (the domain must be this relay's).
async fn lookup(app: &Arc<App>, q: &HashMap<String, String>) -> Result<HandleRecord, ApiError> {
    let Some(handle) = q.get("handle") else {
        return Err(ApiError::bad_request("bad_query", "add ?handle=<nick>"));
    };
    let (nick, domain) = match handle.split_once('@') {
        Some((n, d)) => (n.to_owned(), Some(d.to_ascii_lowercase())),
        None => (handle.clone(), None),
    };
    parse_nick(&nick)?;
    if let Some(d) = domain
        && d != app.config.domain
    {
        return Err(ApiError::not_found(
            "unknown_handle",
            format!(
                "this relay is {}, not {d}; ask that relay",
                app.config.domain
            ),
        ));
    }
    let n = nick.clone();
    blocking(app, move |app| app.store.handle(&n))
        .await??
        .ok_or_else(|| unknown_handle(app, &nick))
}

async fn wire_agent(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let rec = lookup(&app, &q).await?;
    let card: Value = serde_json::from_str(&rec.card)
        .map_err(|e| ApiError::from(crate::store::StoreError(format!("stored card: {e}"))))?;
    let did = Did::from_key(&wire_log::AuthorKey(rec.key));
    Ok(json_response(
        StatusCode::OK,
        json!({
            "handle": format!("{}@{}", rec.nick, app.config.domain),
            "did": did.to_string(),
            "character": character_of(&did),
            "card": card,
            "intro": {
                "url": format!("{}/v1/handles/{}/intro", app.config.public_url, rec.nick),
                "content_type": INTRO_CONTENT_TYPE,
                "bytes_max": INTRO_BYTES_MAX,
            },
        }),
    ))
}

async fn a2a_card(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let rec = lookup(&app, &q).await?;
    let card: Value = serde_json::from_str(&rec.card)
        .map_err(|e| ApiError::from(crate::store::StoreError(format!("stored card: {e}"))))?;
    let did = Did::from_key(&wire_log::AuthorKey(rec.key));
    let x25519 = card
        .get("x25519")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let handle = format!("{}@{}", rec.nick, app.config.domain);
    let character = character_of(&did);
    let did_s = did.to_string();
    let value = a2a::agent_card(&A2aCardInput {
        nick: &rec.nick,
        handle: &handle,
        did: &did_s,
        x25519_hex: &x25519,
        public_url: &app.config.public_url,
        character: &character,
        wire_card: &card,
    });
    Ok(json_response(StatusCode::OK, value))
}

// ---------------------------------------------------------------------------------------------
// Intro queue

async fn leave_intro(
    State(app): State<Arc<App>>,
    Path(nick): Path<String>,
    req: Request,
) -> ApiResult {
    use std::sync::atomic::Ordering::Relaxed;
    parse_nick(&nick)?;
    let src = source_of(&req);
    let headers = req.headers().clone();
    require_content_type(&headers, INTRO_CONTENT_TYPE)?;
    check_length(&headers, INTRO_BYTES_MAX)?;
    // A source that has sent a lot of junk is refused before its body is even read; its junk
    // budget is its own and nobody else's.
    if let Err(wait) = app.limiters.junk.would_take(&src) {
        app.metrics.intros_refused.fetch_add(1, Relaxed);
        return Err(limited(
            &app,
            wait,
            "too many malformed intros from your address",
        ));
    }
    let body = read_body(req.into_body(), INTRO_BYTES_MAX).await?;
    let junk = |app: &App, e: ApiError| {
        app.metrics.intros_refused.fetch_add(1, Relaxed);
        let _ = app.limiters.junk.take(&src);
        e
    };
    let intro = match Intro::decode(&body) {
        Ok(i) => i,
        Err(e) => {
            return Err(junk(
                &app,
                ApiError::bad_request("bad_intro", e.to_string()),
            ));
        }
    };
    let expected = format!("{nick}@{}", app.config.domain);
    if intro.to != expected {
        return Err(junk(
            &app,
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_target",
                format!("the intro is addressed to {:?}, not {expected:?}", intro.to),
            ),
        ));
    }
    let now = now_ms();
    if intro.ts_ms.abs_diff(now) > app.config.intro_skew_ms {
        return Err(junk(
            &app,
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "stale_intro",
                format!(
                    "the intro's time is more than {} minutes from the relay's; check your clock and sign a fresh one",
                    app.config.intro_skew_ms / 60_000
                ),
            ),
        ));
    }
    let n = nick.clone();
    let Some(held) = blocking(&app, move |app| app.store.handle(&n)).await?? else {
        return Err(junk(&app, unknown_handle(&app, &nick)));
    };
    if let Err(wait) = app.limiters.intro_sources.take(&src) {
        app.metrics.intros_refused.fetch_add(1, Relaxed);
        return Err(limited(&app, wait, "too many intros from your address"));
    }
    if let Err(wait) = app.limiters.intro_targets.take(&nick) {
        app.metrics.intros_refused.fetch_add(1, Relaxed);
        return Err(limited(
            &app,
            wait,
            &format!("{expected} is receiving too many intros"),
        ));
    }
    let from = intro.from.0;
    let envelope = body.clone();
    let slot = held.slot;
    let outcome = blocking(&app, move |app| {
        app.store.put_intro(slot, from, &envelope, now)
    })
    .await??;
    match outcome {
        IntroOutcome::Queued { .. } => {
            app.metrics.intros_queued.fetch_add(1, Relaxed);
            Ok(json_response(
                StatusCode::ACCEPTED,
                json!({ "status": "queued", "to": expected }),
            ))
        }
        IntroOutcome::Replaced { .. } => {
            app.metrics.intros_queued.fetch_add(1, Relaxed);
            Ok(json_response(
                StatusCode::ACCEPTED,
                json!({ "status": "replaced", "to": expected }),
            ))
        }
        IntroOutcome::Full { max } => {
            app.metrics.intros_refused.fetch_add(1, Relaxed);
            let mut e = ApiError::quota(
                "intro_queue_full",
                format!(
                    "{expected} has {max} pair requests waiting; try again once they have been answered"
                ),
            );
            e.retry_after = Some(60);
            Err(e)
        }
    }
}
