//! `wire mesh status` (every paired peer, sister sessions included, with its last contact) and
//! `wire mesh broadcast [kind] <body | @file | ->` (one signed, sealed message per paired peer,
//! all carrying one broadcast id, with each peer's outcome; decision (z)).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;
use wire_engine::{Peer, PeerState};
use wire_log::body::BROADCAST_ID_BYTES;
use wire_log::{EventKey, LogId};

use super::{Ctx, PeerJson};
use crate::agent::PushOutcome;
use crate::agent::push::{LastPush, Why};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every paired peer and sister session with its last contact: the last event received
    /// from it and the last of ours it acknowledged.
    Status,
    /// Send one message to every paired peer, all with one broadcast id; each peer's outcome.
    Broadcast(BroadcastArgs),
}

#[derive(Debug, clap::Args)]
pub struct BroadcastArgs {
    /// `[kind] body`, as `wire send` takes them: text, `@path` or `-` for stdin; the kind is
    /// `message` (the default) or a number from 1100 to 9999.
    #[arg(num_args = 1..=2, required = true, value_names = ["KIND", "BODY"])]
    rest: Vec<String>,
    /// Take the body as it is written: no `@file`, no `-` for stdin.
    #[arg(long, hide = true)]
    literal: bool,
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Status => status(ctx),
        Command::Broadcast(args) => broadcast(ctx, args),
    }
}

/// One event's place and time.
#[derive(Debug, Serialize)]
struct Contact {
    seq: u64,
    ts_ms: u64,
}

#[derive(Debug, Serialize)]
struct MeshPeer {
    peer: PeerJson,
    /// A session of this machine's daemon.
    sister: bool,
    /// The last event we hold from the peer in our pair log.
    received: Option<Contact>,
    /// The last event of ours the peer acknowledged holding (for a relay: ingested).
    acknowledged: Option<Contact>,
    /// Our chain in the pair log.
    our_head: u64,
    /// The newest of `received` and `acknowledged`.
    last_contact_ms: Option<u64>,
    /// The last push since the daemon started.
    last_push: Option<LastPush>,
    /// Why our messages to it wait, if they do.
    queued: Option<String>,
}

fn ago(now: u64, ts: u64) -> String {
    let s = now.saturating_sub(ts) / 1000;
    match s {
        0 => "just now".into(),
        1..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn status(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let me = live.key;
    let mut peers: Vec<Peer> = live
        .session
        .peers()?
        .into_iter()
        .filter(|p| p.state == PeerState::Paired)
        .collect();
    peers.sort_by(|a, b| a.character.nickname.cmp(&b.character.nickname));
    let queued = live.report.lock().expect("report lock").queued.clone();
    let store = live.session.store();
    let mut out = Vec::with_capacity(peers.len());
    for p in &peers {
        let line = live.session.line(&p.key)?;
        let log = LogId::pair_log(&me, &p.key);
        let at = |author, seq: u64| -> anyhow::Result<Option<Contact>> {
            if seq == 0 {
                return Ok(None);
            }
            Ok(store.get(&EventKey { log, author, seq })?.map(|e| Contact {
                seq,
                ts_ms: e.ts_ms,
            }))
        };
        let received = at(p.key, line.their_head)?;
        let acknowledged = at(me, line.acked)?;
        let last_contact_ms = received
            .as_ref()
            .map(|c| c.ts_ms)
            .max(acknowledged.as_ref().map(|c| c.ts_ms));
        out.push(MeshPeer {
            peer: PeerJson::of(p),
            sister: ctx.agent.sister(&p.key).is_some(),
            received,
            acknowledged,
            our_head: line.our_head,
            last_contact_ms,
            last_push: live.last_push(&p.key),
            queued: queued.get(&p.key.to_hex()).cloned(),
        });
    }
    let now = crate::agent::now_ms();
    ctx.out.print(&serde_json::json!({ "peers": out }), || {
        if out.is_empty() {
            return "No paired peers yet. `wire dial nick@relay`, `wire invite` or `wire session pair-all-local` makes one.\n".into();
        }
        let mut s = String::new();
        for (m, p) in out.iter().zip(&peers) {
            let _ = write!(
                s,
                "{} ({}){}\n  ",
                ctx.out.face(&p.character),
                super::printable(&p.handle),
                if m.sister { ", a session on this machine" } else { "" }
            );
            match &m.received {
                Some(c) => {
                    let _ = write!(s, "received #{} {}", c.seq, ago(now, c.ts_ms));
                }
                None => s.push_str("nothing received yet"),
            }
            match &m.acknowledged {
                Some(c) => {
                    let _ = write!(
                        s,
                        "; acknowledged #{} of {} ({})",
                        c.seq,
                        m.our_head,
                        ago(now, c.ts_ms)
                    );
                }
                None if m.our_head == 0 => s.push_str("; nothing sent yet"),
                None => {
                    let _ = write!(s, "; none of our {} acknowledged yet", m.our_head);
                }
            }
            s.push('\n');
            if let Some(lp) = &m.last_push {
                let how = match &lp.carried {
                    Some(PushOutcome::Stored { relay }) => format!("stored at {relay}"),
                    Some(PushOutcome::Delivered) => "delivered on this machine".into(),
                    _ => "an acknowledgement".into(),
                };
                let _ = writeln!(s, "  last push {}: {how}", ago(now, now - lp.ago_ms.min(now)));
            }
            if let Some(q) = &m.queued {
                let _ = writeln!(s, "  waiting: {q}");
            }
        }
        s
    });
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct PeerOutcome {
    peer: PeerJson,
    seq: u64,
    id: String,
    #[serde(flatten)]
    outcome: PushOutcome,
}

#[derive(Debug, Serialize)]
struct Broadcast {
    broadcast: String,
    kind: u32,
    bytes: usize,
    outcomes: Vec<PeerOutcome>,
    refused: usize,
}

fn broadcast(ctx: &Ctx, args: BroadcastArgs) -> anyhow::Result<ExitCode> {
    let (kind, body) = super::send::kind_and_body(
        &args.rest,
        args.literal,
        "usage: wire mesh broadcast [kind] <body | @file | ->",
    )?;
    let (live, _) = ctx.open()?;
    let mut peers: Vec<Peer> = live
        .session
        .peers()?
        .into_iter()
        .filter(|p| p.state == PeerState::Paired)
        .collect();
    if peers.is_empty() {
        bail!(
            "no paired peers to broadcast to; `wire peers` shows who is pending, and `wire session pair-all-local` pairs the sessions of this machine. Nothing was sent"
        );
    }
    peers.sort_by(|a, b| a.character.nickname.cmp(&b.character.nickname));
    let mut id = [0u8; BROADCAST_ID_BYTES];
    rand::fill(&mut id[..]);
    let keys: Vec<_> = peers.iter().map(|p| p.key).collect();
    let events = live.session.send_broadcast(&keys, id, kind, &body)?;
    if let Ok(Some(position)) = live.session.store().last_position() {
        live.appended.send_replace(position);
    }
    // Every peer's push at once: one slow relay does not hold up the others.
    let agent = ctx.agent.clone();
    let outcomes: Vec<PushOutcome> = ctx.agent.block_on(async {
        let pushes = keys.iter().map(|k| {
            let agent = agent.clone();
            let live = live.clone();
            let k = *k;
            async move {
                match agent.push(&live, &k, Why::Send).await {
                    Ok(o) => o,
                    Err(e) => PushOutcome::Queued {
                        reason: format!("{e:#}"),
                    },
                }
            }
        });
        futures_util::future::join_all(pushes).await
    });
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, PushOutcome::Refused { .. }))
        .count();
    let result = Broadcast {
        broadcast: hex::encode(id),
        kind: kind.number(),
        bytes: body.len(),
        outcomes: peers
            .iter()
            .zip(&events)
            .zip(outcomes)
            .map(|((p, e), outcome)| PeerOutcome {
                peer: PeerJson::of(p),
                seq: e.seq,
                id: e.id().to_hex(),
                outcome,
            })
            .collect(),
        refused,
    };
    ctx.out.print(&result, || {
        let mut s = format!(
            "Broadcast {} to {}:\n",
            result.broadcast,
            crate::output::count(peers.len() as u64, "peer", "peers")
        );
        for (p, o) in peers.iter().zip(&result.outcomes) {
            let to = format!(
                "{} ({})",
                ctx.out.face(&p.character),
                super::printable(&p.handle)
            );
            s.push_str("  ");
            s.push_str(&super::send::outcome_prose(&to, &o.outcome));
        }
        if refused > 0 {
            let _ = writeln!(
                s,
                "{} refused; each message is kept in your log.",
                crate::output::count(refused as u64, "peer", "peers")
            );
        }
        s
    });
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
