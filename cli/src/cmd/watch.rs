//! `wire watch` (hidden, for `wire mcp`): one JSON object per line for every change a client
//! may want pushed: `{"event":"ready","position":N}` once the stream is live, then
//! `{"event":"message","message":{…}}` for every message appended (theirs and ours, as
//! `tail --json` shows them) and `{"event":"peers","peers":[…],"pending":[…]}` whenever the
//! peers or the pair requests change (first sent right after `ready`). Runs until the client
//! hangs up.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use wire_engine::Peer;

use super::Ctx;
use super::tail::message_json;

/// Most messages read per wake-up; the rest follow on the next.
const SCAN_MAX: usize = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// What `peers` events carry: who, and where each pairing stands.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct Face {
    key: String,
    nickname: String,
    handle: String,
    state: String,
}

fn faces(live: &crate::agent::Live) -> anyhow::Result<(Vec<Face>, Vec<Face>)> {
    let mut peers: Vec<Face> = live
        .session
        .peers()?
        .iter()
        .map(|p| Face {
            key: p.key.to_hex(),
            nickname: p.character.nickname.clone(),
            handle: p.handle.clone(),
            state: format!("{:?}", p.state).to_lowercase(),
        })
        .collect();
    peers.sort_by(|a, b| a.key.cmp(&b.key));
    let mut pending: Vec<Face> = live
        .session
        .pending()?
        .iter()
        .map(|p| Face {
            key: p.key.to_hex(),
            nickname: p.character.nickname.clone(),
            handle: p.handle.clone(),
            state: "pending".into(),
        })
        .collect();
    pending.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((peers, pending))
}

pub fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    // Subscribe before reading the position, so nothing appended in between is missed.
    let mut rx = live.appended.subscribe();
    let mut last = live.session.store().last_position()?.unwrap_or(0);
    let mut seen = faces(&live)?;
    if !ctx
        .out
        .json_line(&json!({ "event": "ready", "position": last }))
    {
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx
        .out
        .json_line(&json!({ "event": "peers", "peers": seen.0, "pending": seen.1 }))
    {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        // Woken by every append (ingest, our own sends); the timeout also catches changes
        // that do not pass through `appended` (a pair request taken from the intro queue)
        // and lets us notice a client that hung up.
        let woke = ctx.agent.block_on_until_close(async {
            tokio::time::timeout(Duration::from_millis(250), rx.changed()).await
        });
        if woke.is_none() {
            // The daemon is stopping: the stream ends here.
            return Ok(ExitCode::SUCCESS);
        }
        // Everything up to `top` is covered by the scan that follows (unless it hits its
        // limit), so the next scan may start there even if no message was among it.
        let top = live.session.store().last_position()?.unwrap_or(0);
        let fresh = live.session.messages_after(last, None, SCAN_MAX)?;
        if !fresh.is_empty() {
            let peers: Vec<Peer> = live.session.peers()?;
            for m in &fresh {
                if !ctx
                    .out
                    .json_line(&json!({ "event": "message", "message": message_json(m, &peers) }))
                {
                    return Ok(ExitCode::SUCCESS);
                }
                last = m.position;
            }
        }
        if fresh.len() < SCAN_MAX {
            last = last.max(top);
        }
        let now = faces(&live)?;
        if now != seen {
            seen = now;
            if !ctx
                .out
                .json_line(&json!({ "event": "peers", "peers": seen.0, "pending": seen.1 }))
            {
                return Ok(ExitCode::SUCCESS);
            }
        }
        // Probe the client: an empty write fails once it has gone.
        if !ctx.out.write_stdout(b"") {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
