//! `wire init <handle>`: create this session's identity and attach it to a relay.

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::{Session, SystemClock};
use wire_log::SecretKey;
use wire_log::body::Endpoint;

use super::{Chosen, Ctx, IdentityJson};
use crate::agent::DEFAULT_RELAY;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The handle's local part, as in `alice` of `alice@relay.example`.
    handle: String,
    /// Create a keypair only, with no relay slot: nobody can reach this session until it is
    /// attached to a relay.
    #[arg(long, conflicts_with = "relay")]
    offline: bool,
    /// Attach to this relay (default: the local relay at 127.0.0.1:8771, if one answers).
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// Restore an identity from an existing wire key file instead of generating one.
    #[arg(long, value_name = "PATH")]
    key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct Created<'a> {
    session: &'a Chosen,
    dir: String,
    offline: bool,
    relay: Option<String>,
    claimed: Option<String>,
    claim_problem: Option<String>,
    identity: IdentityJson<'a>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let key = args
        .key_file
        .as_deref()
        .map(|p| SecretKey::read(p).with_context(|| format!("cannot import {}", p.display())))
        .transpose()?;
    wire_log::identity::check_handle(&args.handle)
        .map_err(|reason| anyhow::anyhow!("invalid handle `{}`: {reason}", args.handle))?;
    let chosen = ctx.chosen();
    let home = ctx.home()?;
    // Reach the relay before creating anything: never a session that silently can't receive.
    let attach = if args.offline {
        None
    } else {
        let url = args
            .relay
            .clone()
            .unwrap_or_else(|| DEFAULT_RELAY.to_owned());
        let client = ctx.agent.client(&url)?;
        if let Err(e) = ctx.agent.block_on(client.healthz()) {
            if args.relay.is_none() {
                bail!(
                    "no relay answers at {DEFAULT_RELAY}, and wire never creates a session that cannot receive. Start one with `wire relay-server` (in another terminal or as a service), pass `--relay URL` for another relay, or `--offline` for a keypair-only session ({e})"
                );
            }
            bail!("{e}; nothing was created");
        }
        let info = ctx.agent.block_on(client.info())?;
        let grant = ctx.agent.block_on(client.allocate_slot())?;
        Some((client, info, grant))
    };
    let session = Session::create(
        &home,
        &chosen.name,
        &args.handle,
        key,
        Box::new(SystemClock),
    )?;
    let live = ctx.agent.adopt(session);
    let mut relay = None;
    let mut claimed = None;
    let mut claim_problem = None;
    if let Some((client, info, grant)) = attach {
        let endpoint = Endpoint {
            relay: client.base_url().to_owned(),
            slot: grant.slot.clone(),
        };
        live.session.attach_slot(&endpoint, &grant.token)?;
        relay = Some(endpoint.relay.clone());
        match super::claim::claim(ctx, &live, &args.handle, &info.domain, None) {
            Ok(handle) => claimed = Some(handle),
            Err(e) => claim_problem = Some(format!("{e:#}")),
        }
        ctx.agent.ensure_readers(&live);
    }
    let id = live.session.identity()?;
    let dir = live.session.dir().display().to_string();
    ctx.out.print(
        &Created {
            session: &chosen,
            dir: dir.clone(),
            offline: relay.is_none(),
            relay: relay.clone(),
            claimed: claimed.clone(),
            claim_problem: claim_problem.clone(),
            identity: IdentityJson::of(&id),
        },
        || {
            let mut s = format!(
                "{} is ready: handle {}, session {}.\n  {}\n  state in {dir}\n",
                ctx.out.face(&id.character),
                id.handle,
                chosen.name,
                id.did,
            );
            match (&relay, &claimed, &claim_problem) {
                (None, _, _) => s.push_str(
                    "Offline: nobody can reach this session until it is attached to a relay.\n",
                ),
                (Some(r), Some(h), _) => s.push_str(&format!(
                    "Receiving at {r}. Others reach you as {h}: `wire dial {h}`.\n"
                )),
                (Some(r), None, Some(p)) => s.push_str(&format!(
                    "Receiving at {r}, but the handle was not published: {p}. Pick another with `wire claim <nick>`.\n"
                )),
                (Some(r), None, None) => s.push_str(&format!("Receiving at {r}.\n")),
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}
