//! `wire whoami`: who this session is.

use std::process::ExitCode;

use serde::Serialize;

use super::{Chosen, Ctx, IdentityJson};

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, Serialize)]
struct Whoami<'a> {
    session: &'a Chosen,
    #[serde(flatten)]
    identity: IdentityJson<'a>,
}

pub fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<ExitCode> {
    let (live, chosen) = ctx.open()?;
    let session = &live.session;
    let id = session.identity()?;
    ctx.out.print(
        &Whoami {
            session: &chosen,
            identity: IdentityJson::of(&id),
        },
        || {
            format!(
                "{} ({})\n  {}\n  session {} (chosen by {})\n",
                ctx.out.face(&id.character),
                id.handle,
                id.did,
                chosen.name,
                chosen.why()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
