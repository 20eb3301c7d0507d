//! `wire status`: the daemon, this session's slots and lines, what waits aside and why, and
//! what replication refused.

use std::fmt::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::{Ctx, printable};
use crate::agent::Report;

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, Serialize)]
struct Status {
    daemon: bool,
    pid: u32,
    uptime_s: u64,
    session: String,
    relays: Vec<String>,
    /// Events held aside per peer until a gap is filled.
    held: std::collections::BTreeMap<String, usize>,
    report: Report,
}

pub fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<ExitCode> {
    let (live, chosen) = ctx.open()?;
    let id = live.session.identity()?;
    let status = Status {
        daemon: ctx.agent.is_daemon(),
        pid: std::process::id(),
        uptime_s: ctx.agent.started.elapsed().as_secs(),
        session: chosen.name.clone(),
        relays: id.slots.iter().rev().map(|s| s.relay.clone()).collect(),
        held: live.held(),
        report: live.report.lock().expect("report lock").clone(),
    };
    ctx.out.print(&status, || {
        let mut s = String::new();
        if status.daemon {
            let _ = writeln!(
                s,
                "Daemon running (pid {}, up {} s), session {}.",
                status.pid, status.uptime_s, status.session
            );
        } else {
            let _ = writeln!(
                s,
                "No daemon in use (--no-daemon); session {}.",
                status.session
            );
        }
        if status.relays.is_empty() {
            let _ = writeln!(s, "Not attached to a relay: nobody can reach this session.");
        } else {
            let _ = writeln!(s, "Receiving at {}.", status.relays.join(", "));
        }
        for (peer, reason) in &status.report.queued {
            let _ = writeln!(
                s,
                "Waiting: {}: {}",
                &peer[..peer.len().min(12)],
                printable(reason)
            );
        }
        for (peer, n) in &status.held {
            let _ = writeln!(
                s,
                "{n} events from {} wait aside for a missing one.",
                &peer[..12]
            );
        }
        let _ = writeln!(
            s,
            "Refused {} blobs or events, {} junk intros, {} dropped pair requests.",
            status.report.refused_total, status.report.junk_intros, status.report.dropped_requests
        );
        for r in status.report.refused.iter().rev().take(5) {
            let _ = writeln!(s, "  {}: {}", r.what, printable(&r.reason));
        }
        s
    });
    Ok(ExitCode::SUCCESS)
}
