//! `wire tail [peer] [--follow] [--limit N]`: verified messages, oldest first; `--follow`
//! keeps printing them as they arrive (one JSON object per line in JSON mode).

use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use wire_engine::{MessageView, Peer, PeerState};
use wire_log::AuthorKey;

use super::{Ctx, printable};
use crate::names::{Found, resolve};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this peer (nickname, handle or DID).
    peer: Option<String>,
    /// Keep printing new messages as they arrive.
    #[arg(long, short)]
    follow: bool,
    /// How many of the latest messages to show first.
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: usize,
}

#[derive(Debug, Serialize)]
pub struct MessageJson {
    pub position: u64,
    pub peer: String,
    pub peer_nickname: String,
    pub peer_handle: String,
    /// The peer's Character emoji and ASCII tag, and the pairing state as of this read.
    pub peer_emoji: String,
    pub peer_tag: String,
    pub peer_state: String,
    pub outgoing: bool,
    pub from: String,
    pub seq: u64,
    pub kind: u32,
    pub ts_ms: u64,
    pub id: String,
    /// The body as text when it is UTF-8, else `body_base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Signature and chain checked when read back.
    pub verified: bool,
    /// The broadcast this message was one of (`wire mesh broadcast`), as 32 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<String>,
}

/// A message's kind and body as shown: a broadcast's inner message, with its id.
pub fn shown(e: &wire_log::Event) -> (wire_log::Kind, std::borrow::Cow<'_, [u8]>, Option<String>) {
    use wire_log::body::Body as _;
    if e.kind == wire_log::Kind::MESSAGE_BROADCAST
        && let Ok(b) = wire_log::body::BroadcastMessage::decode(&e.body)
        && let Some(kind) = wire_log::Kind::new(b.kind)
    {
        return (
            kind,
            std::borrow::Cow::Owned(b.body),
            Some(hex::encode(b.id)),
        );
    }
    (e.kind, std::borrow::Cow::Borrowed(&e.body), None)
}

pub fn message_json(m: &MessageView, peers: &[Peer]) -> MessageJson {
    let peer = peers.iter().find(|p| p.key == m.peer);
    let e = m.event.event();
    let (kind, body, broadcast) = shown(e);
    let text = std::str::from_utf8(&body).ok().map(str::to_owned);
    MessageJson {
        position: m.position,
        peer: m.peer.to_hex(),
        peer_nickname: peer
            .map(|p| p.character.nickname.clone())
            .unwrap_or_default(),
        peer_handle: peer.map(|p| p.handle.clone()).unwrap_or_default(),
        peer_emoji: peer.map(|p| p.character.emoji.clone()).unwrap_or_default(),
        peer_tag: peer.map(|p| p.character.tag.clone()).unwrap_or_default(),
        peer_state: match peer.map(|p| p.state) {
            Some(PeerState::Paired) => "paired",
            Some(PeerState::Dialed) => "dialed",
            Some(PeerState::Rejected) => "rejected",
            None => "unknown",
        }
        .to_owned(),
        outgoing: m.outgoing,
        from: wire_log::Did::from_key(&e.author).to_string(),
        seq: e.seq,
        kind: kind.number(),
        ts_ms: e.ts_ms,
        id: m.event.id().to_hex(),
        body_base64: text
            .is_none()
            .then(|| base64::engine::general_purpose::STANDARD.encode(&body)),
        body: text,
        verified: true,
        broadcast,
    }
}

fn prose_line(ctx: &Ctx, m: &MessageView, peers: &[Peer]) -> String {
    let peer = peers.iter().find(|p| p.key == m.peer);
    let who = peer.map_or_else(|| m.peer.to_string(), |p| ctx.out.face(&p.character));
    let e = m.event.event();
    let (kind, body, broadcast) = shown(e);
    let body = match std::str::from_utf8(&body) {
        Ok(t) => printable(t),
        Err(_) => format!("<{} bytes of kind {}>", body.len(), kind.number()),
    };
    let arrow = if m.outgoing { "you → " } else { "" };
    let mut kind = if kind == wire_log::Kind::MESSAGE {
        String::new()
    } else {
        format!(" [{}]", kind.number())
    };
    if broadcast.is_some() {
        kind.push_str(" (broadcast)");
    }
    format!("{arrow}{who}{kind}: {body}\n")
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    if !ctx.agent.is_daemon() {
        // Without a daemon nothing arrives in the background: pull first.
        if let Err(e) = ctx.agent.block_on(ctx.agent.pull_once(&live)) {
            ctx.out
                .note(&format!("wire: could not pull from the relay: {e:#}\n"));
        }
    }
    let state = live.session.state()?;
    let filter: Option<AuthorKey> = match &args.peer {
        None => None,
        Some(name) => Some(match resolve(&state, name)? {
            Found::Peer(p) => p.key,
            Found::Pending(p) => p.key,
        }),
    };
    let peers: Vec<Peer> = state.peers.into_values().collect();
    let messages = live.session.messages(filter.as_ref(), args.limit)?;
    let mut last = messages.last().map_or_else(
        || {
            live.session
                .store()
                .last_position()
                .ok()
                .flatten()
                .unwrap_or(0)
        },
        |m| m.position,
    );
    if !args.follow {
        let json: Vec<MessageJson> = messages.iter().map(|m| message_json(m, &peers)).collect();
        ctx.out.print(&serde_json::json!({ "messages": json }), || {
            if messages.is_empty() {
                return "No messages yet.\n".into();
            }
            messages
                .iter()
                .map(|m| prose_line(ctx, m, &peers))
                .collect()
        });
        return Ok(ExitCode::SUCCESS);
    }
    let emit = |m: &MessageView, peers: &[Peer]| -> bool {
        if ctx.out.json {
            ctx.out.json_line(&message_json(m, peers))
        } else {
            ctx.out.write_stdout(prose_line(ctx, m, peers).as_bytes())
        }
    };
    for m in &messages {
        if !emit(m, &peers) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut rx = live.appended.subscribe();
    loop {
        let woke = ctx.agent.block_on_until_close(async {
            tokio::time::timeout(Duration::from_millis(250), rx.changed()).await
        });
        if woke.is_none() {
            // The daemon is stopping: the stream ends here.
            return Ok(ExitCode::SUCCESS);
        }
        if !ctx.agent.is_daemon() {
            let _ = ctx.agent.block_on(ctx.agent.pull_once(&live));
        }
        let fresh = live.session.messages_after(last, filter.as_ref(), 4096)?;
        let peers: Vec<Peer> = if fresh.is_empty() {
            peers.clone()
        } else {
            live.session.peers()?
        };
        for m in &fresh {
            if !emit(m, &peers) {
                return Ok(ExitCode::SUCCESS);
            }
            last = m.position;
        }
        // Probe the client: an empty write fails once it has gone.
        if !ctx.out.write_stdout(b"") {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
