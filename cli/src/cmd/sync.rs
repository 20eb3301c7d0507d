//! `wire sync`: replicate now: pull every slot and the intro queue, push every outbox.

use std::process::ExitCode;

use serde::Serialize;

use super::Ctx;
use crate::agent::PushOutcome;
use crate::agent::pull::Pulled;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also read the slots this session retired, once (what `wire doctor` asks for when a
    /// retired slot still holds blobs).
    #[arg(long)]
    retired: bool,
}

#[derive(Debug, Serialize)]
struct Synced {
    pulled: Pulled,
    requests: u64,
    junk_intros: u64,
    pushed: Vec<Pushed>,
}

#[derive(Debug, Serialize)]
struct Pushed {
    peer: String,
    #[serde(flatten)]
    outcome: PushOutcome,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let mut pulled = ctx.agent.block_on(ctx.agent.pull_once(&live))?;
    if args.retired {
        let current = live.session.identity()?.slots;
        let retired: Vec<_> = super::status::retired_slots(&live.session)?
            .into_iter()
            .filter(|e| !current.contains(e))
            .collect();
        let more = ctx.agent.block_on(ctx.agent.pull_slots(&live, retired))?;
        pulled.records += more.records;
        pulled.stored += more.stored;
        pulled.refused += more.refused;
    }
    let (requests, junk) = ctx.agent.poll_intros(&live)?;
    let agent = ctx.agent.clone();
    let pushed = ctx.agent.block_on(agent.push_all(&live))?;
    let all_done = pushed.iter().all(|(_, o)| o.is_done());
    let synced = Synced {
        pulled,
        requests,
        junk_intros: junk,
        pushed: pushed
            .into_iter()
            .map(|(k, outcome)| Pushed {
                peer: k.to_hex(),
                outcome,
            })
            .collect(),
    };
    ctx.out.print(&synced, || {
        let mut s = format!(
            "Pulled {} blobs ({} new events, {} refused), {} new pair requests.\n",
            synced.pulled.records, synced.pulled.stored, synced.pulled.refused, requests
        );
        for p in &synced.pushed {
            if let PushOutcome::Queued { reason } | PushOutcome::Refused { reason } = &p.outcome {
                s.push_str(&format!("Waiting to reach {}: {reason}\n", &p.peer[..12]));
            }
        }
        s
    });
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
