//! `wire send <peer> [kind] <body | @file | ->`: append a signed message to the pair log, seal
//! it and deliver it, and report one honest outcome.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::PeerState;
use wire_log::{BODY_BYTES_MAX, Kind};

use super::{Ctx, PeerJson};
use crate::agent::PushOutcome;
use crate::names::{Found, resolve};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The peer: nickname, handle or DID.
    peer: String,
    /// `[kind] body`: the body is text, `@path` for a file's contents, or `-` for stdin. The
    /// optional kind is `message` (the default) or a number from 1100 to 9999.
    #[arg(num_args = 1..=2, required = true, value_names = ["KIND", "BODY"])]
    rest: Vec<String>,
    /// Take the body as it is written: no `@file`, no `-` for stdin (what `wire mcp` uses).
    #[arg(long, hide = true)]
    literal: bool,
}

/// One outcome in prose, as `wire send` and `wire mesh broadcast` say it.
pub(crate) fn outcome_prose(to: &str, outcome: &PushOutcome) -> String {
    match outcome {
        PushOutcome::Stored { relay } => {
            format!("Sent to {to}: stored in their mailbox at {relay}.\n")
        }
        PushOutcome::Delivered => format!("Sent to {to}: delivered on this machine.\n"),
        PushOutcome::UpToDate => format!("Sent to {to}.\n"),
        PushOutcome::Queued { reason } => format!(
            "Queued for {to}: {reason}. It is kept in your log and retried; `wire status` shows the queue.\n"
        ),
        PushOutcome::Refused { reason } => {
            format!("Not delivered to {to}: {reason}. It is kept in your log.\n")
        }
    }
}

#[derive(Debug, Serialize)]
struct Sent {
    peer: PeerJson,
    seq: u64,
    id: String,
    kind: u32,
    bytes: usize,
    #[serde(flatten)]
    outcome: PushOutcome,
}

pub(crate) fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    if s == "message" {
        return Ok(Kind::MESSAGE);
    }
    let n: u32 = s.parse().ok().with_context(|| {
        format!("unknown kind `{s}`: use `message` or a number from 1100 to 9999")
    })?;
    match Kind::new(n) {
        Some(k) if n == 1000 || (1100..=9999).contains(&n) => Ok(k),
        _ => bail!("kind {n} is not one you can send: use `message` or a number from 1100 to 9999"),
    }
}

pub(crate) fn read_body(arg: &str) -> anyhow::Result<Vec<u8>> {
    let body = if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(BODY_BYTES_MAX as u64 + 1)
            .read_to_end(&mut buf)
            .context("cannot read the body from stdin")?;
        buf
    } else if let Some(path) = arg.strip_prefix('@') {
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {path}"))?;
        if meta.len() > BODY_BYTES_MAX as u64 {
            bail!(
                "{path} is {} bytes; a message holds at most {BODY_BYTES_MAX} (256 KiB). Nothing was sent",
                meta.len()
            );
        }
        std::fs::read(path).with_context(|| format!("cannot read {path}"))?
    } else {
        arg.as_bytes().to_vec()
    };
    check_size(body)
}

pub(crate) fn check_size(body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if body.len() > BODY_BYTES_MAX {
        bail!(
            "the body is {} bytes; a message holds at most {BODY_BYTES_MAX} (256 KiB). Nothing was sent",
            body.len()
        );
    }
    Ok(body)
}

/// `[kind] body` as `wire send` and `wire mesh broadcast` take them: the kind (default
/// `message`) and the body's bytes (text, `@file` or `-` unless `literal`), checked for size and,
/// for `message`, UTF-8.
pub(crate) fn kind_and_body(
    rest: &[String],
    literal: bool,
    usage: &str,
) -> anyhow::Result<(Kind, Vec<u8>)> {
    let (kind, body_arg) = match rest {
        [body] => (Kind::MESSAGE, body.as_str()),
        [kind, body] => (parse_kind(kind)?, body.as_str()),
        _ => bail!("{usage}"),
    };
    let body = if literal {
        check_size(body_arg.as_bytes().to_vec())?
    } else {
        read_body(body_arg)?
    };
    if kind == Kind::MESSAGE && std::str::from_utf8(&body).is_err() {
        bail!(
            "a `message` body must be UTF-8 text; send bytes with a numeric kind. Nothing was sent"
        );
    }
    Ok((kind, body))
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (kind, body) = kind_and_body(
        &args.rest,
        args.literal,
        "usage: wire send <peer> [kind] <body | @file | ->",
    )?;
    let (live, _) = ctx.open()?;
    let state = live.session.state()?;
    let found = match resolve(&state, &args.peer) {
        Ok(Found::Peer(p)) if p.state == PeerState::Paired => Ok(Found::Peer(p)),
        // An unpaired (or half-paired) sister session on this machine: pair first.
        other => match super::sisters::find_sister(ctx, &live, &args.peer)? {
            Some(sister) => {
                let r = super::sisters::pair_sisters(ctx, &live, &sister);
                if r.result == "skipped" {
                    bail!(
                        "{} is a session on this machine, but pairing with it failed: {}. Nothing was sent",
                        sister.name,
                        r.reason.unwrap_or_default()
                    );
                }
                let state = live.session.state()?;
                Ok(Found::Peer(Box::new(
                    state
                        .peers
                        .get(&sister.key)
                        .cloned()
                        .context("the sister was paired but is not a peer")?,
                )))
            }
            // A miss: suggest sister sessions too.
            None => other.map_err(|e| match e.downcast::<crate::names::Miss>() {
                Ok(miss) => crate::names::Miss {
                    candidates: crate::names::suggest_with(
                        &state,
                        &miss.name,
                        super::sisters::sister_names(ctx, &live),
                    ),
                    name: miss.name,
                }
                .into(),
                Err(e) => e,
            }),
        },
    };
    let peer = match found? {
        Found::Peer(p) => p,
        Found::Pending(p) => bail!(
            "{} asked to pair but you have not accepted; `wire accept {}` first. Nothing was sent",
            p.handle,
            p.character.nickname
        ),
    };
    match peer.state {
        PeerState::Paired => {}
        PeerState::Dialed => bail!(
            "{} has not accepted your request yet; nothing was sent. `wire peers` shows when they do",
            peer.handle
        ),
        PeerState::Rejected => bail!("you rejected {}; nothing was sent", peer.handle),
    }
    let len = body.len();
    let agent = ctx.agent.clone();
    let (event, outcome) = ctx
        .agent
        .block_on(agent.send_now(&live, &peer.key, kind, body))?;
    let done = outcome.is_done();
    ctx.out.print(
        &Sent {
            peer: PeerJson::of(&peer),
            seq: event.seq,
            id: event.id().to_hex(),
            kind: kind.number(),
            bytes: len,
            outcome: outcome.clone(),
        },
        || {
            let to = format!("{} ({})", ctx.out.face(&peer.character), peer.handle);
            outcome_prose(&to, &outcome)
        },
    );
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
