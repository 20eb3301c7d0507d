//! `wire peers`: every peer and where its line stands.

use std::fmt::Write;
use std::process::ExitCode;

use serde::Serialize;
use wire_engine::PeerState;

use super::{Ctx, PeerJson, printable};

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, Serialize)]
struct Row {
    #[serde(flatten)]
    peer: PeerJson,
    /// Our events in the pair log / confirmed by them / theirs we hold.
    sent: u64,
    acked: u64,
    received: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued: Option<String>,
}

pub fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let mut peers = live.session.peers()?;
    peers.sort_by(|a, b| a.handle.cmp(&b.handle));
    let queued = live.report.lock().expect("report lock").queued.clone();
    let mut rows = Vec::new();
    for p in &peers {
        let line = live.session.line(&p.key)?;
        rows.push(Row {
            peer: PeerJson::of(p),
            sent: line.our_head,
            acked: line.acked,
            received: line.their_head,
            queued: queued.get(&p.key.to_hex()).cloned(),
        });
    }
    ctx.out.print(&serde_json::json!({ "peers": rows }), || {
        if peers.is_empty() {
            return "No peers yet. `wire dial nick@relay` asks someone to pair.\n".into();
        }
        let mut s = String::new();
        for (p, r) in peers.iter().zip(&rows) {
            let state = match p.state {
                PeerState::Paired => format!(
                    "paired; sent {} ({} confirmed), received {}",
                    r.sent, r.acked, r.received
                ),
                PeerState::Dialed => "dialed, waiting for them to accept".into(),
                PeerState::Rejected => "rejected".into(),
            };
            let _ = writeln!(
                s,
                "{} ({}): {state}",
                ctx.out.face(&p.character),
                printable(&p.handle)
            );
            if let Some(q) = &r.queued {
                let _ = writeln!(s, "  queued: {q}");
            }
        }
        s
    });
    Ok(ExitCode::SUCCESS)
}
