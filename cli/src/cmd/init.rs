//! `wire init <handle>`: create this session's identity and attach it to a relay.

use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::{Session, SystemClock};
use wire_log::SecretKey;
use wire_log::body::Endpoint;
use wire_net::RelayClient;

use super::{Chosen, Ctx, IdentityJson};
use crate::agent::{DEFAULT_RELAY, Live};

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

/// A relay a new session attaches to, and whether the operator named it (a default that does
/// not answer gets advice on starting one).
#[derive(Debug, Clone)]
pub struct Attach {
    pub relay: String,
    pub named: bool,
}

/// A session just created.
pub struct Made {
    pub live: Arc<Live>,
    /// The relays it receives at, in the order attached (the first carries the handle).
    pub relays: Vec<String>,
    pub claimed: Option<String>,
    pub claim_problem: Option<String>,
    /// Every handle claimed, one per relay that took it.
    pub handles: Vec<String>,
    pub claim_problems: Vec<String>,
}

/// Creates session `name` with `handle`: reaches every relay and allocates a slot on each
/// before creating anything (never a session that silently can't receive), then creates the
/// identity, attaches the slots and claims the handle on the first relay.
pub fn create(
    ctx: &Ctx,
    name: &str,
    handle: &str,
    key: Option<SecretKey>,
    relays: &[Attach],
) -> anyhow::Result<Made> {
    wire_log::identity::check_handle(handle)
        .map_err(|reason| anyhow::anyhow!("invalid handle `{handle}`: {reason}"))?;
    let home = ctx.home()?;
    if home.has_session(name) {
        bail!(
            "session `{name}` already exists; `wire session list` shows the sessions, `wire session destroy {name}` removes it"
        );
    }
    let mut attached = Vec::new();
    for a in relays {
        let client = ctx.agent.client(&a.relay)?;
        if attached
            .iter()
            .any(|(c, _, _): &(RelayClient, _, _)| c.base_url() == client.base_url())
        {
            continue;
        }
        if let Err(e) = ctx.agent.block_on(client.healthz()) {
            if !a.named {
                bail!(
                    "no relay answers at {}, and wire never creates a session that cannot receive. Start one with `wire relay-server` (in another terminal, or `wire service install --local-relay`), pass `--relay URL` for another relay, or `--offline` for a keypair-only session ({e})",
                    a.relay
                );
            }
            bail!("{e}; nothing was created");
        }
        let info = ctx.agent.block_on(client.info())?;
        let grant = ctx.agent.block_on(client.allocate_slot())?;
        attached.push((client, info, grant));
    }
    let session = Session::create(&home, name, handle, key, Box::new(SystemClock))?;
    let live = ctx.agent.adopt(session);
    let mut made = Made {
        live: live.clone(),
        relays: Vec::new(),
        claimed: None,
        claim_problem: None,
        handles: Vec::new(),
        claim_problems: Vec::new(),
    };
    // The handle is claimed on every relay: sisters dial the loopback one, others the first.
    for (client, info, grant) in &attached {
        let endpoint = Endpoint {
            relay: client.base_url().to_owned(),
            slot: grant.slot.clone(),
        };
        live.session.attach_slot(&endpoint, &grant.token)?;
        made.relays.push(endpoint.relay.clone());
        match super::claim::claim_at(ctx, &live, handle, &endpoint, &info.domain, None) {
            Ok(h) => made.handles.push(h),
            Err(e) => made.claim_problems.push(format!("{e:#}")),
        }
    }
    made.claimed = made.handles.first().cloned();
    made.claim_problem = made.claim_problems.first().cloned();
    if !attached.is_empty() {
        ctx.agent.ensure_readers(&live);
    }
    Ok(made)
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let key = args
        .key_file
        .as_deref()
        .map(|p| SecretKey::read(p).with_context(|| format!("cannot import {}", p.display())))
        .transpose()?;
    let chosen = ctx.chosen();
    let relays = if args.offline {
        Vec::new()
    } else {
        vec![Attach {
            named: args.relay.is_some(),
            relay: args.relay.unwrap_or_else(|| DEFAULT_RELAY.to_owned()),
        }]
    };
    let made = create(ctx, &chosen.name, &args.handle, key, &relays)?;
    let (live, claimed, claim_problem) = (made.live, made.claimed, made.claim_problem);
    let relay = made.relays.first().cloned();
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
