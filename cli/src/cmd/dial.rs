//! `wire dial <nick@domain>`: resolve the handle on its relay, verify the card, and leave a
//! sealed pair request in its intro queue. The peer shows as dialed until it accepts.

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_log::card::SignedCard;

use super::{Ctx, PeerJson};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whom to call: `nick@relay-domain` (a loopback domain with a port, such as
    /// `bob@127.0.0.1:8771`, is reached over plain HTTP; any other over HTTPS).
    handle: String,
}

#[derive(Debug, Serialize)]
struct Dialed {
    status: &'static str,
    peer: PeerJson,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let (nick, base) = wire_net::resolver_url(&args.handle)?;
    let client = ctx.agent.client(&base)?;
    let resolved = ctx.agent.block_on(client.resolve(&nick)).map_err(|e| {
        if e.code() == Some("unknown_handle") {
            anyhow::anyhow!(
                "{} is not claimed on that relay; check the spelling",
                args.handle
            )
        } else {
            e.into()
        }
    })?;
    let card = SignedCard::from_json(resolved.card.as_bytes())
        .and_then(|c| c.verify())
        .with_context(|| {
            format!(
                "the card the relay serves for {} does not verify; not dialing",
                args.handle
            )
        })?;
    let (_, want_domain) = args
        .handle
        .split_once('@')
        .context("a handle is nick@domain")?;
    if !card.nick.eq_ignore_ascii_case(&nick) || !card.domain.eq_ignore_ascii_case(want_domain) {
        bail!(
            "the relay answered for {} with a card for {}; not dialing",
            args.handle,
            card.signed.handle
        );
    }
    let state = live.session.state()?;
    // They asked first: dialing back is consent, so it is an accept.
    if state.pending.contains_key(&card.key) {
        return super::decide::accept_key(ctx, &live, &card.key);
    }
    let our_handle = live.session.identity()?.claimed.first().cloned().context(
        "claim a handle first (`wire claim`), so the peer can see who is calling and answer",
    )?;
    let minted = ctx.agent.block_on(ctx.agent.mint_caps(&live))?;
    let peer = live.session.record_dialed(&card, &minted)?;
    let our_card = live.session.sign_card(&our_handle)?;
    let intro = live.session.pair_intro(&our_card, &card, &minted)?;
    ctx.agent
        .block_on(client.send_intro(&nick, bytes::Bytes::copy_from_slice(intro.signed_bytes())))
        .with_context(|| format!("the pair request could not be left for {}", args.handle))?;
    ctx.out.print(
        &Dialed {
            status: "dialed",
            peer: PeerJson::of(&peer),
        },
        || {
            format!(
                "Dialed {} ({}). They see your request in `wire pending`; you are paired once they run `wire accept`.\n",
                ctx.out.face(&peer.character),
                peer.handle
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
