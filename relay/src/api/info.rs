//! Informational routes: health, stats, metrics, relay info (the pages are in `crate::pages`).

use super::*;

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

pub(super) async fn stats(State(app): State<Arc<App>>) -> ApiResult {
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

pub(super) async fn metrics(State(app): State<Arc<App>>) -> ApiResult {
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

pub(super) async fn relay_info(State(app): State<Arc<App>>) -> Response {
    let c = &app.config;
    json_response(
        StatusCode::OK,
        json!({
            "software": "wire-relay",
            "version": env!("CARGO_PKG_VERSION"),
            "domain": c.domain,
            "public_url": c.public_url,
            "local_only": c.local_only,
            // The relay's clock, so a client can tell its own is off (`wire doctor`).
            "now_ms": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
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
