//! `wire claim [nick]`: publish `nick@relay-domain` in the relay's directory, bound to our
//! signed card, so others can `wire dial` us.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use super::Ctx;
use crate::agent::Live;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The nick to claim (default: the handle chosen at `wire init`).
    nick: Option<String>,
}

#[derive(Debug, Serialize)]
struct Claimed {
    handle: String,
}

/// Claims `nick` on the relay of our newest slot; returns the full handle.
pub fn claim(ctx: &Ctx, live: &Arc<Live>, nick: &str, domain: &str) -> anyhow::Result<String> {
    let slot = live.session.our_endpoints()?.into_iter().next().context(
        "this session is not attached to a relay; create one with `wire init <handle> --relay URL`",
    )?;
    claim_at(ctx, live, nick, &slot, domain)
}

/// Claims `nick` on the relay of `slot`, one of ours.
pub fn claim_at(
    ctx: &Ctx,
    live: &Arc<Live>,
    nick: &str,
    slot: &wire_log::body::Endpoint,
    domain: &str,
) -> anyhow::Result<String> {
    let token = live.session.slot_token(slot)?;
    let client = ctx.agent.client(&slot.relay)?;
    let handle = format!("{nick}@{domain}");
    let card = live.session.sign_card(&handle)?;
    let card_json = serde_json::to_string(&card)?;
    match ctx
        .agent
        .block_on(client.claim(nick, &slot.slot, &token, &card_json))
    {
        Ok(_) => {}
        Err(e) if e.code() == Some("handle_taken") => {
            anyhow::bail!(
                "{handle} is taken by someone else; pick another nick with `wire claim <nick>`"
            )
        }
        Err(e) => return Err(e.into()),
    }
    live.session.record_claim(&handle)?;
    Ok(handle)
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let id = live.session.identity()?;
    let nick = args.nick.unwrap_or(id.handle.clone());
    let slot = live
        .session
        .our_endpoints()?
        .into_iter()
        .next()
        .context("this session is not attached to a relay, so no handle can point at it")?;
    let client = ctx.agent.client(&slot.relay)?;
    let info = ctx.agent.block_on(client.info())?;
    let handle = claim(ctx, &live, &nick, &info.domain)?;
    ctx.out.print(
        &Claimed {
            handle: handle.clone(),
        },
        || {
            format!(
                "{} is yours: others reach you with `wire dial {handle}`.\n",
                handle
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
