//! `wire pending`: pair requests waiting for a decision, in prose ("🛡 noble-creek (bob)
//! wants to pair with you") or JSON.

use std::fmt::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::{Ctx, PendingJson, printable};

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, Serialize)]
struct Listed {
    pending: Vec<PendingJson>,
    /// Pairings by code whose SAS waits for this operator (`wire pair-confirm`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pairings: Vec<super::pair::PairingJson>,
}

pub fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    // Fresh from the relay, so a request left a moment ago shows.
    if let Err(e) = ctx.agent.poll_intros(&live) {
        ctx.out
            .note(&format!("wire: could not check the intro queue: {e:#}\n"));
    }
    let mut pending = live.session.pending()?;
    pending.sort_by_key(|p| p.received_ms);
    // A detached pairing by code tells its operator here that its SAS waits for them.
    let pairings: Vec<super::pair::PairingJson> = crate::agent::pairing::pairings(&live.name)
        .iter()
        .map(|p| super::pair::PairingJson::of(p))
        .filter(|p| matches!(p.phase, crate::agent::pairing::Phase::Sas { .. }))
        .collect();
    let sas_lines: String = pairings
        .iter()
        .map(|p| super::pair::show(&ctx.out, p))
        .collect();
    ctx.out.print(
        &Listed {
            pending: pending.iter().map(PendingJson::of).collect(),
            pairings,
        },
        || {
            if pending.is_empty() {
                return format!("{sas_lines}No pair requests waiting.\n");
            }
            let mut s = sas_lines;
            for p in &pending {
                let _ = writeln!(
                    s,
                    "{} ({}) wants to pair with you.",
                    ctx.out.face(&p.character),
                    printable(&p.handle)
                );
            }
            let first = &pending[0].character.nickname;
            let _ = writeln!(
                s,
                "`wire accept {first}` pairs; `wire reject {first}` refuses for good."
            );
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}
