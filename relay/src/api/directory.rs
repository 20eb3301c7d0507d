//! The handle directory, discovery and the intro queue.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    pub slot: String,
    pub card: SignedCard,
    /// List the handle in the phonebook (`/phonebook`). Absent means not listed.
    #[serde(default)]
    pub listed: bool,
    /// A one-line profile for the phonebook.
    #[serde(default)]
    pub profile: Option<String>,
}

/// Longest profile line, in characters.
pub const PROFILE_CHARS_MAX: usize = 120;

/// A profile line: at most [`PROFILE_CHARS_MAX`] characters, no control characters (so one
/// line, no terminal escapes). Returned trimmed.
pub fn check_profile(profile: &str) -> Result<String, ApiError> {
    let p = profile.trim();
    if p.chars().count() > PROFILE_CHARS_MAX {
        return Err(ApiError::bad_request(
            "bad_profile",
            format!("a profile line has at most {PROFILE_CHARS_MAX} characters"),
        ));
    }
    if p.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_profile",
            "a profile line is one line of text, without control characters",
        ));
    }
    Ok(p.to_owned())
}

/// Decodes a claim body (also the fuzz target's entry point).
pub fn decode_claim(bytes: &[u8]) -> Result<ClaimBody, ApiError> {
    if bytes.len() > JSON_BODY_MAX {
        return Err(too_large(JSON_BODY_MAX));
    }
    parse_json(bytes)
}

pub(super) fn holder_json(app: &App, rec: &HandleRecord) -> Value {
    let did = Did::from_key(&wire_log::AuthorKey(rec.key));
    json!({
        "handle": format!("{}@{}", rec.nick, app.config.domain),
        "did": did.to_string(),
        "character": character_of(&did),
    })
}

pub(super) async fn claim(
    State(app): State<Arc<App>>,
    Path(nick): Path<String>,
    req: Request,
) -> ApiResult {
    parse_nick(&nick)?;
    let src = source_of(&req);
    let headers = req.headers().clone();
    let token = bearer(&headers)?;
    require_content_type(&headers, "application/json")?;
    check_length(&headers, JSON_BODY_MAX)?;
    if let Err(wait) = take_limit(&app, Limit::Claims, LimitKey::Source(src), false).await? {
        return Err(limited(&app, wait, "too many claims from your address"));
    }
    let body = read_body(req.into_body(), JSON_BODY_MAX).await?;
    let ClaimBody {
        slot,
        card,
        listed,
        profile,
    } = decode_claim(&body)?;
    let slot = parse_slot(&slot)?;
    let profile = check_profile(profile.as_deref().unwrap_or_default())?;
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
        listed,
        profile,
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

pub(super) async fn release(
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

pub(super) fn unknown_handle(app: &App, nick: &str) -> ApiError {
    ApiError::not_found(
        "unknown_handle",
        format!("nobody holds {nick}@{} on this relay", app.config.domain),
    )
}

pub(super) async fn list_handles(
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
pub(super) async fn lookup(
    app: &Arc<App>,
    q: &HashMap<String, String>,
) -> Result<HandleRecord, ApiError> {
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

pub(super) async fn wire_agent(
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

pub(super) async fn a2a_card(
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

pub(super) async fn leave_intro(
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
    if let Err(wait) = take_limit(&app, Limit::Junk, LimitKey::Source(src), true).await? {
        app.metrics.intros_refused.fetch_add(1, Relaxed);
        return Err(limited(
            &app,
            wait,
            "too many malformed intros from your address",
        ));
    }
    let body = read_body(req.into_body(), INTRO_BYTES_MAX).await?;
    // Junk spends its sender's junk budget (a storage error spending it is not the
    // sender's to hear about: the refusal stands).
    let junk = async |app: &Arc<App>, e: ApiError| {
        app.metrics.intros_refused.fetch_add(1, Relaxed);
        let _ = take_limit(app, Limit::Junk, LimitKey::Source(src), false).await;
        e
    };
    let intro = match Intro::decode(&body) {
        Ok(i) => i,
        Err(e) => {
            return Err(junk(&app, ApiError::bad_request("bad_intro", e.to_string())).await);
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
        )
        .await);
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
        )
        .await);
    }
    let n = nick.clone();
    let Some(held) = blocking(&app, move |app| app.store.handle(&n)).await?? else {
        return Err(junk(&app, unknown_handle(&app, &nick)).await);
    };
    if let Err(wait) = take_limit(&app, Limit::IntroSources, LimitKey::Source(src), false).await? {
        app.metrics.intros_refused.fetch_add(1, Relaxed);
        return Err(limited(&app, wait, "too many intros from your address"));
    }
    if let Err(wait) = take_limit(
        &app,
        Limit::IntroTargets,
        LimitKey::Handle(nick.clone()),
        false,
    )
    .await?
    {
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
