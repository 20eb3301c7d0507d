//! `wire bench-line` (hidden): two agents talking through a relay on loopback, measured.
//!
//! 1. pairing through real `wire` processes (`--no-daemon`), then both agents run in this
//!    process with their background replication, as the daemon runs them;
//! 2. send → recipient committed: one message at a time, p50/p99;
//! 3. throughput: a burst of messages from four senders back to back, time until the last is
//!    committed, and a count; then an open-loop run, `--rate` sends a second for `--sustain`
//!    seconds, each started on its schedule, with how far behind it the recipient ended;
//! 4. catch-up: the recipient goes away, a backlog of single-message blobs piles up in its
//!    mailbox, then a fresh agent starts and ingests it all;
//! 5. `wire send` as a whole process with the daemon warm;
//!
//! and the floors measured in the same run: an empty request to the relay, an fsync.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::{Home, PeerState};
use wire_log::{AuthorKey, Kind, LogId};

use crate::agent::Agent;
use crate::agent::push::Why;
use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Messages for the latency run.
    #[arg(long, default_value_t = 2000)]
    latency: usize,
    /// Messages in the sustained burst.
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// Messages a second offered in the sustained run (open loop: each send starts on its
    /// schedule, whether or not the ones before it have finished).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds of the sustained run.
    #[arg(long, default_value_t = 10)]
    sustain: u32,
    /// Messages in the catch-up backlog.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// `wire send` processes timed.
    #[arg(long, default_value_t = 200)]
    processes: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    floors: Floors,
    latency_us: Percentiles,
    /// Where a send's time goes: the sender's durable append, the push until the relay's 2xx,
    /// and from there until the recipient's ingest committed.
    latency_stages: Stages,
    burst: Rate,
    sustained: Sustained,
    catch_up: Rate,
    send_process_us: Percentiles,
}

/// `--rate` messages a second for `--sustain` seconds, each send started on its schedule.
#[derive(Debug, Serialize)]
struct Sustained {
    offered_per_second: u32,
    messages: usize,
    /// Sends that did not report stored (none expected).
    failed: usize,
    received: u64,
    /// From the first send's start until the recipient committed the last message.
    seconds: f64,
    per_second: f64,
    /// How long after the last send was due the recipient had committed it: a run that keeps
    /// up ends within a few milliseconds of its schedule.
    behind_ms: f64,
    /// Each send from its start until it reported (durable here, stored at the relay).
    send_us: Percentiles,
    agents_cpu_seconds: f64,
    relay_cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Stages {
    /// The sender's relaxed append and its sync (signed, durable).
    append_us: Percentiles,
    /// The push until the relay's 2xx.
    push_us: Percentiles,
    /// The relay's 2xx until the recipient committed.
    deliver_us: Percentiles,
}

#[derive(Debug, Serialize)]
struct Floors {
    healthz_us_p50: u64,
    /// 512 B appended, then fdatasync.
    fsync_us_p50: u64,
    /// 512 B written in place over synced zeros, then fdatasync (what a journal frame costs).
    fsync_overwrite_us_p50: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) n: usize,
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
}

#[derive(Debug, Serialize)]
struct Rate {
    messages: usize,
    received: u64,
    seconds: f64,
    per_second: f64,
    /// CPU time (user + system) the agents (this process) and the relay spent meanwhile: on a
    /// shared machine, what the run cost rather than how long it waited for a core.
    agents_cpu_seconds: f64,
    relay_cpu_seconds: f64,
}

/// CPU seconds (user + system) of this process and of the relay so far.
fn cpu_now(relay_pid: u32) -> (f64, f64) {
    let tck = crate::cmd::relay_bench::clock_ticks();
    (
        crate::cmd::relay_bench::cpu_ticks("self") as f64 / tck,
        crate::cmd::relay_bench::cpu_ticks(&relay_pid.to_string()) as f64 / tck,
    )
}

pub(crate) fn percentiles(mut v: Vec<u64>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Percentiles {
        n: v.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: *v.last().unwrap_or(&0),
    }
}

pub(crate) struct Procs {
    pub(crate) relay: Child,
    pub(crate) exe: PathBuf,
    pub(crate) homes: Vec<PathBuf>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for h in &self.homes {
            let _ = Command::new(&self.exe)
                .args(["daemon", "stop"])
                .env("WIRE_HOME", h)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.relay.kill();
        let _ = self.relay.wait();
    }
}

pub(crate) fn wire(exe: &Path, home: &Path, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(exe)
        .args(args)
        .arg("--json")
        .env("WIRE_HOME", home)
        .env_remove("WIRE_SESSION")
        .output()?;
    if !out.status.success() {
        bail!(
            "wire {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
}

pub(crate) fn wait_for(
    what: &str,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let end = Instant::now() + deadline;
    while !done() {
        if Instant::now() > end {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Starts `wire relay-server` on a free loopback port without rate limits (plus `extra`
/// arguments), with its data in `data`; returns it and its port once it accepts connections.
pub(crate) fn start_relay(exe: &Path, data: &Path, extra: &[&str]) -> anyhow::Result<(Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut relay = Command::new(exe)
        .args(["relay-server", "--no-rate-limits"])
        .args(extra)
        .args(["--bind", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Err(e) = wait_for("the relay", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }) {
        let _ = relay.kill();
        let _ = relay.wait();
        return Err(e);
    }
    Ok((relay, port))
}

/// The fsync floor of the disk under `path` for writes in place, as the journals write
/// (`wire_log::journal`): the file is zero-filled and synced first, then `n` times a 512-byte
/// write over those zeros and an fdatasync. Cheaper than [`fsync_floor`] on a disk where an
/// fdatasync that extends the file must also write its size.
pub(crate) fn fsync_overwrite_floor(path: &Path, n: usize) -> anyhow::Result<Percentiles> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path)?;
    let zeros = [0u8; 4096];
    for i in 0..(n * 512).div_ceil(4096) {
        f.write_all_at(&zeros, (i * 4096) as u64)?;
    }
    f.sync_all()?;
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        f.write_all_at(&[1u8; 512], (i * 512) as u64)?;
        let t = Instant::now();
        f.sync_data()?;
        v.push(t.elapsed().as_micros() as u64);
    }
    Ok(percentiles(v))
}

/// The fsync floor of the disk under `path`: `n` times a 512-byte write appended to the file
/// and an fdatasync.
pub(crate) fn fsync_floor(path: &Path, n: usize) -> anyhow::Result<Percentiles> {
    let mut f = std::fs::File::create(path)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        std::io::Write::write_all(&mut f, &[0u8; 512])?;
        let t = Instant::now();
        f.sync_data()?;
        v.push(t.elapsed().as_micros() as u64);
    }
    Ok(percentiles(v))
}

pub fn run(out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let root = tempfile::Builder::new()
        .prefix("wire-bench-line-")
        .tempdir()?;
    let (relay, port) = start_relay(&exe, &root.path().join("relay"), &[])?;
    let url = format!("http://127.0.0.1:{port}");
    let (ha, hb) = (root.path().join("a"), root.path().join("b"));
    let relay_pid = relay.id();
    let procs = Procs {
        relay,
        exe: exe.clone(),
        homes: vec![ha.clone(), hb.clone()],
    };
    let progress = |s: &str| eprintln!("bench-line: {s}");
    wire(
        &exe,
        &ha,
        &["init", "alice", "--relay", &url, "--no-daemon"],
    )?;
    wire(&exe, &hb, &["init", "bob", "--relay", &url, "--no-daemon"])?;
    wire(
        &exe,
        &ha,
        &["dial", &format!("bob@127.0.0.1:{port}"), "--no-daemon"],
    )?;
    let pending = wire(&exe, &hb, &["pending", "--no-daemon"])?;
    let nick = pending["pending"][0]["nickname"]
        .as_str()
        .context("bob got no request")?
        .to_owned();
    wire(&exe, &hb, &["accept", &nick, "--no-daemon"])?;
    wire(&exe, &ha, &["sync", "--no-daemon"])?;

    // Floors.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = wire_net::RelayClient::new(&url)?;
    let mut floor = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        rt.block_on(client.healthz())?;
        floor.push(t.elapsed().as_micros() as u64);
    }
    let healthz = percentiles(floor);
    let fsync = fsync_floor(&root.path().join("fsync"), 500)?;
    let fsync_overwrite = fsync_overwrite_floor(&root.path().join("fsync-overwrite"), 500)?;

    // Both agents in this process, replicating in the background as the daemon does.
    let rt_b = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rt_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let alice_agent = Agent::new(Home::new(&ha), rt_a.handle().clone(), true);
    let bob_agent = Agent::new(Home::new(&hb), rt_b.handle().clone(), true);
    let alice = alice_agent.session("default")?;
    let bob = bob_agent.session("default")?;
    let bob_key: AuthorKey = bob.key;
    if alice
        .session
        .peers()?
        .iter()
        .all(|p| p.state != PeerState::Paired)
    {
        bail!("alice and bob did not pair");
    }
    let received = |bob: &crate::agent::Live| -> u64 {
        bob.session
            .line(&alice.key)
            .map(|l| l.their_head)
            .unwrap_or(0)
    };
    progress("latency");
    let mut lat = Vec::with_capacity(args.latency);
    // Bob's commits are observed through the watch his ingest bumps after each commit (what
    // `tail --follow` waits on), not by polling, so the figure carries no polling interval.
    let mut committed = bob.appended.subscribe();
    let mut stages: (Vec<u64>, Vec<u64>, Vec<u64>) = Default::default();
    for i in 0..args.latency {
        let before = received(&bob);
        committed.borrow_and_update();
        let t = Instant::now();
        // `Agent::send_now` in its stages: the relaxed append and its sync, then the push.
        alice
            .session
            .send_relaxed(&bob_key, Kind::MESSAGE, format!("latency {i}").into_bytes())?;
        alice_agent.block_on(alice.durable())?;
        let appended = t.elapsed();
        let outcome = alice_agent.block_on(alice_agent.push(&alice, &bob_key, Why::Send))?;
        if !outcome.is_done() {
            bail!("send {i}: {outcome:?}");
        }
        let pushed = t.elapsed();
        stages.0.push(appended.as_micros() as u64);
        stages.1.push((pushed - appended).as_micros() as u64);
        let end = Instant::now() + Duration::from_secs(10);
        while received(&bob) <= before {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out waiting for message {i} to commit");
            }
            let _ = rt_b.block_on(async { tokio::time::timeout(left, committed.changed()).await });
        }
        let total = t.elapsed();
        stages.2.push((total - pushed).as_micros() as u64);
        lat.push(total.as_micros() as u64);
    }
    let latency = percentiles(lat);
    let latency_stages = Stages {
        append_us: percentiles(stages.0),
        push_us: percentiles(stages.1),
        deliver_us: percentiles(stages.2),
    };

    progress("burst");
    let start = received(&bob);
    let cpu0 = cpu_now(relay_pid);
    let t = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let per = args.burst / 4;
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let alice = alice.clone();
                let agent = alice_agent.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    for i in 0..per {
                        let body = format!("burst {w} {i}").into_bytes();
                        let _ = agent.block_on(agent.send_now(
                            &alice,
                            &bob_key,
                            Kind::MESSAGE,
                            body,
                        ))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
        }
        Ok(())
    })?;
    let burst_n = (args.burst / 4) * 4;
    await_held(
        &rt_b,
        &mut committed,
        || received(&bob),
        start + burst_n as u64,
        "the burst",
    )?;
    let secs = t.elapsed().as_secs_f64();
    let cpu1 = cpu_now(relay_pid);
    let burst = Rate {
        messages: burst_n,
        received: received(&bob) - start,
        seconds: secs,
        per_second: burst_n as f64 / secs,
        agents_cpu_seconds: cpu1.0 - cpu0.0,
        relay_cpu_seconds: cpu1.1 - cpu0.1,
    };

    progress("sustained");
    let sustained = {
        let start = received(&bob);
        let n = (args.rate as usize) * (args.sustain as usize);
        let every = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
        let cpu0 = cpu_now(relay_pid);
        let t0 = Instant::now();
        let sends: Vec<(u64, bool)> = alice_agent.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                tokio::time::sleep_until((t0 + every * i as u32).into()).await;
                let (agent, alice) = (alice_agent.clone(), alice.clone());
                let body = format!("sustained {i}").into_bytes();
                set.spawn(async move {
                    let t = Instant::now();
                    let r = agent.send_now(&alice, &bob_key, Kind::MESSAGE, body).await;
                    let ok = matches!(&r, Ok((_, o)) if o.is_done());
                    (t.elapsed().as_micros() as u64, ok)
                });
            }
            let mut out = Vec::with_capacity(n);
            while let Some(done) = set.join_next().await {
                out.push(done.unwrap_or((0, false)));
            }
            out
        });
        await_held(
            &rt_b,
            &mut committed,
            || received(&bob),
            start + n as u64,
            "the sustained run",
        )?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu1 = cpu_now(relay_pid);
        let due = (every * n.saturating_sub(1) as u32).as_secs_f64();
        Sustained {
            offered_per_second: args.rate,
            messages: n,
            failed: sends.iter().filter(|(_, ok)| !ok).count(),
            received: received(&bob) - start,
            seconds: secs,
            per_second: n as f64 / secs,
            behind_ms: (secs - due) * 1e3,
            send_us: percentiles(sends.into_iter().map(|(us, _)| us).collect()),
            agents_cpu_seconds: cpu1.0 - cpu0.0,
            relay_cpu_seconds: cpu1.1 - cpu0.1,
        }
    };

    progress("catch-up: building the backlog");
    // Both go away; alice comes back without background work, so the backlog reaches bob's
    // mailbox only as the single-message blobs built below (her outbox would otherwise also
    // push it packed).
    drop(bob);
    drop(bob_agent);
    rt_b.shutdown_timeout(Duration::from_secs(5));
    drop(alice);
    drop(alice_agent);
    rt_a.shutdown_timeout(Duration::from_secs(5));
    let alice_agent = Agent::new(Home::new(&ha), rt.handle().clone(), false);
    let alice = alice_agent.session("default")?;
    let peer = alice
        .session
        .peers()?
        .into_iter()
        .find(|p| p.key == bob_key)
        .context("bob is not a peer")?;
    let endpoint = peer.endpoint.clone().context("no endpoint for bob")?;
    let ep = endpoint.endpoints[0].clone();
    let log = LogId::pair_log(&alice.key, &bob_key);
    let base = alice.session.line(&bob_key)?.our_head;
    let mut made = 0;
    while made < args.backlog {
        let n = (args.backlog - made).min(4096);
        let items = (0..n)
            .map(|i| {
                (
                    log,
                    Kind::MESSAGE,
                    format!("backlog {}", made + i).into_bytes(),
                )
            })
            .collect();
        let events = alice.session.append_batch(items)?;
        // One blob per message, as a day of single sends leaves them.
        let mut blobs = Vec::with_capacity(n);
        for e in &events {
            let seg = alice
                .session
                .seal_segments(&peer, 0, std::slice::from_ref(e))?;
            blobs.extend(seg.into_iter().map(|s| bytes::Bytes::from(s.bytes)));
        }
        let results = rt.block_on(client_for(&alice_agent, &ep.relay)?.append_batch(
            &ep.slot,
            &endpoint.cap,
            &blobs,
        ))?;
        if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
            bail!("backlog append refused: {e}");
        }
        made += n;
    }
    let _ = base;
    progress("catch-up: bob comes back");
    let rt_c = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cpu0 = cpu_now(relay_pid);
    let t = Instant::now();
    let bob_agent = Agent::new(Home::new(&hb), rt_c.handle().clone(), true);
    let bob = bob_agent.session("default")?;
    let target = alice.session.line(&bob_key)?.our_head;
    // Woken by each ingest commit, not polling (a poll would compete with the catch-up).
    let mut committed = bob.appended.subscribe();
    let end = Instant::now() + Duration::from_secs(600);
    while bob.session.line(&alice.key)?.their_head < target {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for the catch-up");
        }
        let _ = rt_c.block_on(async { tokio::time::timeout(left, committed.changed()).await });
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu1 = cpu_now(relay_pid);
    let catch_up = Rate {
        messages: args.backlog,
        received: args.backlog as u64,
        seconds: secs,
        per_second: args.backlog as f64 / secs,
        agents_cpu_seconds: cpu1.0 - cpu0.0,
        relay_cpu_seconds: cpu1.1 - cpu0.1,
    };
    drop(bob);
    drop(bob_agent);
    rt_c.shutdown_timeout(Duration::from_secs(5));
    drop(alice);
    drop(alice_agent);
    rt.shutdown_timeout(Duration::from_secs(5));

    progress("wire send as a process");
    wire(&exe, &ha, &["daemon"])?;
    wire(&exe, &hb, &["daemon"])?;
    let bob_nick = wire(&exe, &ha, &["peers"])?["peers"][0]["nickname"]
        .as_str()
        .context("no peer")?
        .to_owned();
    wire(&exe, &ha, &["send", &bob_nick, "warm-up"])?;
    let mut procs_us = Vec::new();
    for i in 0..args.processes {
        let t = Instant::now();
        let status = Command::new(&exe)
            .args(["send", &bob_nick, &format!("process {i}"), "--json"])
            .env("WIRE_HOME", &ha)
            .stdout(Stdio::null())
            .status()?;
        procs_us.push(t.elapsed().as_micros() as u64);
        if !status.success() {
            bail!("wire send {i} exited {status}");
        }
    }
    let send_process = percentiles(procs_us);
    drop(procs);

    let report = Report {
        machine: format!(
            "{} cores, {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::env::consts::ARCH
        ),
        floors: Floors {
            healthz_us_p50: healthz.p50,
            fsync_us_p50: fsync.p50,
            fsync_overwrite_us_p50: fsync_overwrite.p50,
        },
        latency_us: latency,
        latency_stages,
        burst,
        sustained,
        catch_up,
        send_process_us: send_process,
    };
    out.print(&report, || format!("{report:#?}\n"));
    Ok(ExitCode::SUCCESS)
}

/// Waits on `committed` (the recipient's commit watch) until `held()` reaches `count`, for at
/// most two minutes.
fn await_held(
    rt: &tokio::runtime::Runtime,
    committed: &mut tokio::sync::watch::Receiver<u64>,
    held: impl Fn() -> u64,
    count: u64,
    what: &str,
) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(120);
    while held() < count {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for {what}");
        }
        let _ = rt.block_on(async { tokio::time::timeout(left, committed.changed()).await });
    }
    Ok(())
}

fn client_for(agent: &Arc<Agent>, url: &str) -> anyhow::Result<wire_net::RelayClient> {
    agent.client(url)
}
