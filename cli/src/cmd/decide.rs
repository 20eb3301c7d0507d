//! `wire accept`, `wire reject`, `wire forget`: the decisions about a peer.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use serde::Serialize;
use wire_engine::PeerState;
use wire_log::AuthorKey;

use super::{Ctx, PeerJson};
use crate::agent::push::Why;
use crate::agent::{Live, PushOutcome};
use crate::names::{Found, resolve};

#[derive(Debug, clap::Args)]
pub struct AcceptArgs {
    /// The requester's nickname, handle or DID, as `wire pending` shows it, or an invite URL
    /// (`wire://pair?…`, from `wire invite`) to pair with its issuer.
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct RejectArgs {
    /// The requester's nickname, handle or DID.
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The peer's nickname, handle or DID.
    name: String,
}

#[derive(Debug, Serialize)]
struct Decided {
    status: &'static str,
    peer: PeerJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<PushOutcome>,
}

pub fn accept(ctx: &Ctx, args: AcceptArgs) -> anyhow::Result<ExitCode> {
    if wire_log::invite::Invite::looks_like_url(&args.name) {
        return super::invite::accept_url(ctx, &args.name);
    }
    let (live, _) = ctx.open()?;
    let _ = ctx.agent.poll_intros(&live);
    let state = live.session.state()?;
    match resolve(&state, &args.name)? {
        Found::Pending(p) => accept_key(ctx, &live, &p.key),
        Found::Peer(p) if p.state == PeerState::Paired => {
            bail!("already paired with {}", p.handle)
        }
        Found::Peer(p) => bail!(
            "{} has no request waiting; `wire pending` lists the requests",
            p.handle
        ),
    }
}

/// Accepts the pending request from `key`: mints its capability on our newest slot, records
/// the decision and our endpoint offer, and pushes the offer.
pub fn accept_key(ctx: &Ctx, live: &Arc<Live>, key: &AuthorKey) -> anyhow::Result<ExitCode> {
    let (peer, outcome) = accept_quietly(ctx, live, key)?;
    ctx.out.print(
        &Decided {
            status: "paired",
            peer: PeerJson::of(&peer),
            delivery: Some(outcome.clone()),
        },
        || {
            let mut s = format!(
                "Paired with {} ({}). `wire send {} <message>` talks to them.\n",
                ctx.out.face(&peer.character),
                peer.handle,
                peer.character.nickname
            );
            if let PushOutcome::Queued { reason } | PushOutcome::Refused { reason } = &outcome {
                s.push_str(&format!(
                    "Your acceptance has not reached them yet: {reason}. It is retried.\n"
                ));
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// The accept itself, printing nothing: mints the capability, records the decision and the
/// offer, and pushes it. Returns the peer and how the offer went.
pub fn accept_quietly(
    ctx: &Ctx,
    live: &Arc<Live>,
    key: &AuthorKey,
) -> anyhow::Result<(wire_engine::Peer, PushOutcome)> {
    let minted = ctx.agent.block_on(ctx.agent.mint_caps(live))?;
    let (peer, _offer) = live.session.accept_with_grant(key, &minted)?;
    let agent = ctx.agent.clone();
    let outcome = ctx.agent.block_on(agent.push(live, key, Why::Send))?;
    Ok((peer, outcome))
}

pub fn reject(ctx: &Ctx, args: RejectArgs) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let _ = ctx.agent.poll_intros(&live);
    let state = live.session.state()?;
    let key = match resolve(&state, &args.name)? {
        Found::Pending(p) => p.key,
        Found::Peer(p) => bail!(
            "{} has no request waiting; `wire forget {}` drops a peer",
            p.handle,
            p.character.nickname
        ),
    };
    let peer = live.session.reject(&key)?;
    ctx.out.print(
        &Decided {
            status: "rejected",
            peer: PeerJson::of(&peer),
            delivery: None,
        },
        || {
            format!(
                "Rejected {} ({}). Their requests stay refused.\n",
                ctx.out.face(&peer.character),
                peer.handle
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

pub fn forget(ctx: &Ctx, args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let state = live.session.state()?;
    let (key, json) = match resolve(&state, &args.name)? {
        Found::Peer(p) => {
            // Revoke first: once forgotten we no longer know which capabilities were theirs.
            for g in &p.grants {
                let token = live.session.slot_token(&g.endpoint)?;
                let client = ctx.agent.client(&g.endpoint.relay)?;
                match ctx
                    .agent
                    .block_on(client.revoke_cap(&g.endpoint.slot, &token, &g.cap_id))
                {
                    Ok(()) => {}
                    Err(e) if e.code() == Some("unknown_cap") => {}
                    Err(e) => {
                        return Err(anyhow::Error::from(e).context(format!(
                            "could not revoke {}'s capability, so they were not forgotten; try again when the relay answers",
                            p.handle
                        )));
                    }
                }
            }
            (p.key, PeerJson::of(&p))
        }
        Found::Pending(p) => (
            p.key,
            PeerJson {
                nickname: p.character.nickname.clone(),
                emoji: p.character.emoji.clone(),
                tag: p.character.tag.clone(),
                handle: p.handle.clone(),
                did: p.did.clone(),
                key: p.key.to_hex(),
                state: PeerState::Dialed,
                since_ms: p.received_ms,
                endpoints: Vec::new(),
            },
        ),
    };
    live.session.forget(&key)?;
    ctx.out.print(
        &Decided {
            status: "forgotten",
            peer: json,
            delivery: None,
        },
        || "Forgotten: their capability is revoked and they can no longer write to you.\n".into(),
    );
    Ok(ExitCode::SUCCESS)
}
