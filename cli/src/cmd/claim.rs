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
    /// List the handle in the relay's public phonebook (`<relay>/phonebook`). Without it,
    /// claiming again takes a listed handle out of the phonebook.
    #[arg(long)]
    listed: bool,
    /// A one-line profile shown beside the handle in the phonebook (at most 120 characters).
    #[arg(long, requires = "listed", value_name = "TEXT")]
    profile: Option<String>,
}

#[derive(Debug, Serialize)]
struct Claimed {
    handle: String,
    listed: bool,
}

/// Claims `nick` on the relay of our newest slot, listed in its phonebook with a profile line
/// when `listing` is `Some`; returns the full handle.
pub fn claim(
    ctx: &Ctx,
    live: &Arc<Live>,
    nick: &str,
    domain: &str,
    listing: Option<&str>,
) -> anyhow::Result<String> {
    let slot = live.session.our_endpoints()?.into_iter().next().context(
        "this session is not attached to a relay; create one with `wire init <handle> --relay URL`",
    )?;
    claim_at(ctx, live, nick, &slot, domain, listing)
}

/// Claims `nick` on the relay of `slot`, one of ours, listed as for [`claim`].
pub fn claim_at(
    ctx: &Ctx,
    live: &Arc<Live>,
    nick: &str,
    slot: &wire_log::body::Endpoint,
    domain: &str,
    listing: Option<&str>,
) -> anyhow::Result<String> {
    let token = live.session.slot_token(slot)?;
    let client = ctx.agent.client(&slot.relay)?;
    let handle = format!("{nick}@{domain}");
    let card = live.session.sign_card(&handle)?;
    let card_json = serde_json::to_string(&card)?;
    let sent = match listing {
        None => ctx
            .agent
            .block_on(client.claim(nick, &slot.slot, &token, &card_json)),
        Some(profile) => ctx
            .agent
            .block_on(client.claim_listed(nick, &slot.slot, &token, &card_json, profile)),
    };
    match sent {
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
    let listing = args
        .listed
        .then(|| args.profile.clone().unwrap_or_default());
    let handle = claim(ctx, &live, &nick, &info.domain, listing.as_deref())?;
    ctx.out.print(
        &Claimed {
            handle: handle.clone(),
            listed: args.listed,
        },
        || {
            let mut s = format!(
                "{} is yours: others reach you with `wire dial {handle}`.\n",
                handle
            );
            if args.listed {
                s.push_str(&format!(
                    "It is listed in the phonebook at {}/phonebook.\n",
                    slot.relay.trim_end_matches('/')
                ));
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}
