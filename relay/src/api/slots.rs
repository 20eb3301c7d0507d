//! Slots, capabilities, appends, reads, acknowledgements and streams.

use super::*;

pub(super) async fn allocate_slot(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let src = source_of(&req);
    if let Err(wait) = take_limit(&app, Limit::Slots, LimitKey::Source(src), false).await? {
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

pub(super) async fn slot_info(
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

pub(super) async fn mint_cap(
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

pub(super) async fn list_caps(
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

pub(super) async fn revoke_cap(
    State(app): State<Arc<App>>,
    Path((slot, cap)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let slot = parse_slot(&slot)?;
    let id = CapId::parse(&cap).ok_or_else(|| {
        ApiError::bad_request("bad_id", "a capability id is 16 lower-case hex characters")
    })?;
    owner(&app, slot, &headers).await?;
    let revoked = blocking(&app, move |app| app.store.revoke_cap(slot, id)).await??;
    // Whether or not this one was known here: the pre-check looks every capability up again.
    app.seen.forget_caps();
    if revoked {
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
pub(super) async fn append_credential(
    app: &Arc<App>,
    slot: SlotId,
    headers: &HeaderMap,
) -> Result<Credential, ApiError> {
    let token = bearer(headers)?;
    let hash = token.hash();
    match token.kind {
        TokenKind::Owner => {
            let owner = match app.seen.owner(slot) {
                Some(owner) => owner,
                None => {
                    let info = blocking(app, move |app| app.store.slot_info(slot)).await??;
                    let Some(info) = info else {
                        return Err(unknown_slot());
                    };
                    app.seen.note_owner(slot, info.owner);
                    info.owner
                }
            };
            if owner.ct_eq(&hash) {
                Ok(Credential::Owner(hash))
            } else {
                Err(ApiError::unauthorized(
                    "bad_token",
                    "this token does not own the slot",
                ))
            }
        }
        TokenKind::Cap => {
            if app.seen.cap_grants(hash, slot) {
                return Ok(Credential::Cap(hash));
            }
            let found = blocking(app, move |app| app.store.cap_slot(hash)).await??;
            match found {
                Some((s, _)) if s == slot => {
                    app.seen.note_cap(hash, slot);
                    Ok(Credential::Cap(hash))
                }
                _ => {
                    if blocking(app, move |app| app.store.slot_info(slot))
                        .await??
                        .is_none()
                    {
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

pub(super) fn refused(outcome: AppendOutcome) -> ApiError {
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

pub(super) fn outcome_json(outcome: AppendOutcome, blob: &[u8]) -> Value {
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

pub(super) async fn append_one(
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

pub(super) async fn append_batch(
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

pub(super) fn records_response(items: &[(u64, Bytes)], last_seq: u64, more: bool) -> Response {
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

pub(super) async fn read_blobs(
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

pub(super) async fn ack_common(
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
    let outcome = if !intros && app.store.acks_in_groups() {
        app.committer.ack(slot, through).await?
    } else {
        blocking(app, move |app| {
            if intros {
                app.store.ack_intros(slot, through)
            } else {
                app.store.ack(slot, through)
            }
        })
        .await??
    };
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

pub(super) async fn ack(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    ack_common(&app, &slot, &headers, body, false).await
}

pub(super) async fn ack_intros(
    State(app): State<Arc<App>>,
    Path(slot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    ack_common(&app, &slot, &headers, body, true).await
}

pub(super) async fn read_intros(
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

pub(super) async fn stream(
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

pub(super) fn subscribe_error(e: SubscribeError) -> ApiError {
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

pub(super) struct StreamState {
    app: Arc<App>,
    slot: SlotId,
    after: u64,
    sub: Option<crate::hub::Subscription>,
    caught_up: bool,
}

/// One step of a stream: backlog pages from storage until caught up, then live blobs from the
/// subscription, with a heartbeat when idle. Ends when the subscription is cut or closed.
pub(super) async fn next_chunk(
    mut st: StreamState,
) -> Option<(Result<Bytes, Infallible>, StreamState)> {
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
                // Then registered where other instances' appends must be announced to us,
                // before the read that follows (a store of one process does nothing).
                let (app, slot) = (st.app.clone(), st.slot);
                tokio::task::spawn_blocking(move || app.store.watch(slot))
                    .await
                    .ok()?
                    .ok()?;
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
                if seq > st.after + 1 {
                    // Another relay instance on the same database committed the blobs between
                    // (their wake-up comes later, or came before we subscribed): read them from
                    // storage first, so that the stream stays in order and without a gap.
                    st.caught_up = false;
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
