//! `wire init <handle>`: create this session's identity.

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::{Session, SystemClock};
use wire_log::SecretKey;

use super::{Chosen, Ctx, IdentityJson};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The handle's local part, as in `alice` of `alice@relay.example`.
    handle: String,
    /// Create a keypair only, with no relay slot: nobody can reach this session until it is
    /// attached to a relay.
    #[arg(long)]
    offline: bool,
    /// Attach to this relay (arrives with the relay work; use --offline for now).
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
    identity: IdentityJson<'a>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.relay {
        bail!(
            "this build cannot attach to a relay yet ({url}); run `wire init {} --offline` for a keypair-only session",
            args.handle
        );
    }
    if !args.offline {
        bail!(
            "no relay to attach to: this build has no relay support yet, and wire never creates a session that silently cannot receive. Run `wire init {} --offline` for a keypair-only session",
            args.handle
        );
    }
    let key = args
        .key_file
        .as_deref()
        .map(|p| SecretKey::read(p).with_context(|| format!("cannot import {}", p.display())))
        .transpose()?;
    let chosen = ctx.chosen();
    let session = Session::create(
        &ctx.home()?,
        &chosen.name,
        &args.handle,
        key,
        Box::new(SystemClock),
    )?;
    let id = session.identity()?;
    let dir = session.dir().display().to_string();
    ctx.out.print(
        &Created {
            session: &chosen,
            dir: dir.clone(),
            offline: true,
            identity: IdentityJson::of(&id),
        },
        || {
            format!(
                "{} is ready: handle {}, session {} (offline).\n  {}\n  state in {dir}\nNobody can reach this session until it is attached to a relay.\n",
                ctx.out.face(&id.character),
                id.handle,
                chosen.name,
                id.did,
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
