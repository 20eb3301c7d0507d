//! `PUT|GET /v1/pair/{slot}/{side}/{index}` and `DELETE /v1/pair/{slot}`: the pair slots of a
//! pairing by code (PROTOCOL.md §25.3). The bytes are opaque; the relay checks only the path,
//! the size and the write-once rule.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiResult, check_length, limited, read_body, source_of, take_limit};
use crate::app::{App, LimitKey};
use crate::error::ApiError;
use crate::limits::Limit;
use crate::pairs::{Cell, PAIR_CELL_BYTES_MAX, PAIR_POLL, PAIR_WAIT_MAX, PairError, Written};

fn parse_slot(slot: &str) -> Result<[u8; 16], ApiError> {
    let bad = || ApiError::bad_request("bad_id", "a pair slot id is 32 lower-case hex characters");
    if slot.len() != 32 || slot.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let v = hex::decode(slot).map_err(|_| bad())?;
    <[u8; 16]>::try_from(v.as_slice()).map_err(|_| bad())
}

fn parse_cell(side: &str, index: &str) -> Result<Cell, ApiError> {
    let join = match side {
        "host" => false,
        "join" => true,
        _ => return Err(ApiError::bad_request("bad_id", "the side is host or join")),
    };
    let index = match index {
        "0" => 0,
        "1" => 1,
        _ => {
            return Err(ApiError::bad_request(
                "bad_id",
                "the message index is 0 or 1",
            ));
        }
    };
    Ok(Cell { join, index })
}

fn pair_error(e: PairError) -> ApiError {
    match e {
        PairError::Unknown => ApiError::not_found(
            "unknown_pair_slot",
            "no pairing is waiting under this code here: it was never started, it timed out, the other side gave up, or the relay restarted; start again with `wire pair-host`",
        ),
        PairError::Taken => ApiError::new(
            StatusCode::CONFLICT,
            "pair_slot_taken",
            "this message of the pairing was already sent with other bytes: another pairing uses the same code number, or someone else joined first; start again with a new code",
        ),
        PairError::Full => ApiError::quota(
            "too_many_pairings",
            "the relay holds as many pairings as it can; try again in a minute",
        ),
    }
}

pub(super) async fn put_cell(
    State(app): State<Arc<App>>,
    Path((slot, side, index)): Path<(String, String, String)>,
    req: Request,
) -> ApiResult {
    let id = parse_slot(&slot)?;
    let cell = parse_cell(&side, &index)?;
    check_length(req.headers(), PAIR_CELL_BYTES_MAX)?;
    // Opening a pairing spends the same per-address budget as allocating a slot, so nobody
    // fills the relay's pair slots from one address.
    if cell
        == (Cell {
            join: false,
            index: 0,
        })
        && let Err(wait) =
            take_limit(&app, Limit::Slots, LimitKey::Source(source_of(&req)), false).await?
    {
        return Err(limited(
            &app,
            wait,
            "too many pairings opened from your address",
        ));
    }
    let body = read_body(req.into_body(), PAIR_CELL_BYTES_MAX).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_blob",
            "a pairing message has bytes",
        ));
    }
    let written = if app.store.shares_pair_slots() {
        let store = app.store.clone();
        tokio::task::spawn_blocking(move || store.pair_put(id, cell, body)).await??
    } else {
        app.pairs.put(id, cell, body)
    };
    match written.map_err(pair_error)? {
        Written::Stored => Ok((StatusCode::CREATED, Json(json!({"stored": true}))).into_response()),
        Written::Unchanged => Ok((StatusCode::OK, Json(json!({"stored": false}))).into_response()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WaitQuery {
    wait_ms: Option<u64>,
}

pub(super) async fn get_cell(
    State(app): State<Arc<App>>,
    Path((slot, side, index)): Path<(String, String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult {
    let id = parse_slot(&slot)?;
    let cell = parse_cell(&side, &index)?;
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0));
    let got = if app.store.shares_pair_slots() {
        shared_get(&app, id, cell, wait).await?
    } else {
        app.pairs.get(id, cell, wait).await
    };
    match got.map_err(pair_error)? {
        Some(bytes) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from(bytes),
        )
            .into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// A read of a pair cell in the shared store: the first look counts as use of the slot, then
/// it looks again every [`PAIR_POLL`] until the cell is written or `wait` is over (a write
/// through another instance wakes nothing here).
async fn shared_get(
    app: &Arc<App>,
    id: [u8; 16],
    cell: Cell,
    wait: Duration,
) -> Result<Result<Option<bytes::Bytes>, PairError>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait.min(PAIR_WAIT_MAX);
    let mut touch = true;
    loop {
        let store = app.store.clone();
        let got = tokio::task::spawn_blocking(move || store.pair_get(id, cell, touch)).await??;
        if !matches!(got, Ok(None)) {
            return Ok(got);
        }
        touch = false;
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Ok(None));
        }
        tokio::time::sleep((deadline - now).min(PAIR_POLL)).await;
    }
}

pub(super) async fn close_slot(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_slot(&slot)?;
    let closed = if app.store.shares_pair_slots() {
        let store = app.store.clone();
        tokio::task::spawn_blocking(move || store.pair_close(id)).await??
    } else {
        app.pairs.close(id)
    };
    if closed {
        Ok(Json(json!({"closed": true})).into_response())
    } else {
        Err(pair_error(PairError::Unknown))
    }
}
