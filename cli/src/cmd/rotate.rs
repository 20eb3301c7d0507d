//! `wire rotate-slot`: move to a new mailbox slot. Every peer gets a capability for it (and
//! fresh ones for our other endpoints) and our new endpoints through its pair log; the slot it
//! replaces on that relay is read until every peer has moved and it is empty, then retired and
//! its capabilities revoked, so nothing is black-holed. A slot on another relay (a session
//! that receives at several, `wire session new --with-local`) is not replaced.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use wire_engine::PeerState;
use wire_log::body::Endpoint;

use super::Ctx;
use crate::agent::PushOutcome;
use crate::agent::push::Why;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Allocate the new slot on this relay (default: the relay of the current slot).
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
}

#[derive(Debug, Serialize)]
struct Rotated {
    relay: String,
    peers_told: usize,
    outcomes: Vec<PushOutcome>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let current = live.session.our_endpoints()?.into_iter().next();
    let relay = match (args.relay, current) {
        (Some(r), _) => r,
        (None, Some(c)) => c.relay,
        (None, None) => None.context("not attached to a relay; pass --relay URL")?,
    };
    let client = ctx.agent.client(&relay)?;
    let grant = ctx.agent.block_on(client.allocate_slot())?;
    let endpoint = Endpoint {
        relay: client.base_url().to_owned(),
        slot: grant.slot.clone(),
    };
    live.session.attach_slot(&endpoint, &grant.token)?;
    ctx.agent.ensure_readers(&live);
    let mut outcomes = Vec::new();
    let peers = live.session.peers()?;
    let mut told = 0;
    for p in peers.iter().filter(|p| p.state == PeerState::Paired) {
        let minted = ctx.agent.block_on(ctx.agent.mint_caps(&live))?;
        live.session.offer_endpoint(&p.key, &minted)?;
        let agent = ctx.agent.clone();
        outcomes.push(ctx.agent.block_on(agent.push(&live, &p.key, Why::Send))?);
        told += 1;
    }
    let rotated = Rotated {
        relay: endpoint.relay.clone(),
        peers_told: told,
        outcomes,
    };
    ctx.out.print(&rotated, || {
        format!(
            "Moved to a new slot at {}; told {told} peers. The old slot is read until every peer has moved.\n",
            rotated.relay
        )
    });
    Ok(ExitCode::SUCCESS)
}
