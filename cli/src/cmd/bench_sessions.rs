//! `wire bench-sessions` (hidden): many sessions on one machine, measured (docs/BENCHMARKS.md).
//!
//! A `--local-only` relay on loopback and one state root with `--sessions` sessions created
//! through the daemon, as an operator would. Then: `wire session pair-all-local` as a whole
//! process (every pair made, then a second run that makes none), and a sister-to-sister message
//! through the daemon's runtime in this process (the daemon stopped first, so this process owns
//! the stores): send → committed in the sister's store, p50/p99, with the floors measured in the
//! same run (an fsync of the same disk, a durable empty redb commit).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::Home;
use wire_log::Kind;

use super::bench_line::{
    Percentiles, Procs, fsync_floor, fsync_overwrite_floor, percentiles, start_relay, wire,
};
use crate::agent::push::Why;
use crate::agent::{Agent, PushOutcome};
use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sessions on the machine.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Sister-to-sister messages timed.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    sessions: usize,
    pairs: usize,
    /// `wire session pair-all-local`, the whole process, making every pair.
    pair_all_local_ms: f64,
    /// The time the daemon reported for the same command (without process start-up).
    pair_all_local_daemon_ms: f64,
    /// A second run, which finds every pair made.
    pair_all_local_again_ms: f64,
    /// Send → committed in the sister's store, in the daemon's runtime.
    sister_send_us: Percentiles,
    /// Of which: the sender's own append (signed, committed relaxed and synced).
    sister_append_us: Percentiles,
    fsync_us: Percentiles,
    /// In place over synced zeros, as the session journal writes.
    fsync_overwrite_us: Percentiles,
    redb_commit_us: Percentiles,
}

pub fn run(out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    if args.sessions < 2 {
        bail!("--sessions must be at least 2");
    }
    let exe = std::env::current_exe()?;
    let root = tempfile::Builder::new()
        .prefix("wire-bench-sessions-")
        .tempdir()?;
    let home = root.path().join("home");
    let (relay, port) = start_relay(&exe, &root.path().join("relay"), &["--local-only"])?;
    let url = format!("http://127.0.0.1:{port}");
    let procs = Procs {
        relay,
        exe: exe.clone(),
        homes: vec![home.clone()],
    };
    eprintln!("bench-sessions: creating {} sessions", args.sessions);
    for i in 0..args.sessions {
        wire(
            &exe,
            &home,
            &[
                "session",
                "new",
                &format!("s{i}"),
                "--local-only",
                "--local-relay",
                &url,
                "--no-bind",
            ],
        )?;
    }
    let t = Instant::now();
    let made = wire(&exe, &home, &["session", "pair-all-local"])?;
    let pair_all_local_ms = t.elapsed().as_secs_f64() * 1e3;
    let pairs = args.sessions * (args.sessions - 1) / 2;
    if made["paired"].as_u64() != Some(pairs as u64) {
        bail!("pair-all-local made {made} instead of {pairs} pairs");
    }
    let t = Instant::now();
    let again = wire(&exe, &home, &["session", "pair-all-local"])?;
    let pair_all_local_again_ms = t.elapsed().as_secs_f64() * 1e3;
    if again["paired"].as_u64() != Some(0) {
        bail!("a second pair-all-local made pairs: {again}");
    }
    wire(&exe, &home, &["daemon", "stop"])?;

    // Floors, on the same disk.
    let fsync_us = fsync_floor(&root.path().join("fsync"), 500)?;
    let fsync_overwrite_us = fsync_overwrite_floor(&root.path().join("fsync-overwrite"), 500)?;
    let redb_commit_us = percentiles(
        wire_engine::floor::durable_commits(&root.path().join("floor.redb"), 500)?
            .into_iter()
            .map(|d| d.as_micros() as u64)
            .collect(),
    );

    // The daemon's runtime, in this process.
    eprintln!("bench-sessions: {} sister messages", args.messages);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let agent = Agent::new(Home::new(&home), rt.handle().clone(), true);
    let a = agent.session("s0")?;
    let b = agent.session("s1")?;
    let mut lat = Vec::with_capacity(args.messages);
    let mut appended = Vec::with_capacity(args.messages);
    for i in 0..args.messages {
        let body = format!("sister message {i}").into_bytes();
        let t = Instant::now();
        // `Agent::send_now` in its stages: the relaxed append and its sync, then the push.
        a.session.send_relaxed(&b.key, Kind::MESSAGE, body)?;
        rt.block_on(a.durable())?;
        appended.push(t.elapsed().as_micros() as u64);
        let outcome = rt.block_on(agent.push(&a, &b.key, Why::Send))?;
        lat.push(t.elapsed().as_micros() as u64);
        if outcome != PushOutcome::Delivered {
            bail!("message {i} was not delivered in-process: {outcome:?}");
        }
    }
    let line = b.session.line(&a.key)?;
    if line.their_head < args.messages as u64 {
        bail!(
            "the sister holds {} of {} messages",
            line.their_head,
            args.messages
        );
    }
    let report = Report {
        machine: super::relay_bench::machine(),
        sessions: args.sessions,
        pairs,
        pair_all_local_ms,
        pair_all_local_daemon_ms: made["ms"].as_f64().context("pair-all-local ms")?,
        pair_all_local_again_ms,
        sister_send_us: percentiles(lat),
        sister_append_us: percentiles(appended),
        fsync_us,
        fsync_overwrite_us,
        redb_commit_us,
    };
    drop(procs);
    out.print(&report, || {
        format!(
            "{} sessions, {} pairs: pair-all-local {:.0} ms (daemon {:.0} ms), again {:.0} ms\nsister send → committed: p50 {} µs, p99 {} µs (n={}; the append alone p50 {} µs)\nfloors: fsync p50 {} µs (in place {} µs), durable redb commit p50 {} µs\n",
            report.sessions,
            report.pairs,
            report.pair_all_local_ms,
            report.pair_all_local_daemon_ms,
            report.pair_all_local_again_ms,
            report.sister_send_us.p50,
            report.sister_send_us.p99,
            report.sister_send_us.n,
            report.sister_append_us.p50,
            report.fsync_us.p50,
            report.fsync_overwrite_us.p50,
            report.redb_commit_us.p50,
        )
    });
    Ok(ExitCode::SUCCESS)
}
