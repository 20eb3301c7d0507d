//! `wire bench-relay` (hidden): the relay measured over HTTP, printed as the Markdown rows of
//! `docs/BENCHMARKS.md`, each beside a floor measured in the same run.
//!
//! The relay runs as a separate process (this same binary, `relay-server`), so that its resident
//! memory can be read from `/proc/<pid>/status` and the load generator does not share its
//! runtime. The client is tokio + hyper 1 over HTTP/1.1 keep-alive, one connection per client
//! task. Three relays are started one after another, each on a fresh data directory: one for
//! throughput (single and batched appends, the `/healthz` floor), one for latency as one slot
//! grows, one for memory with many slots. Each throughput client appends to a slot of its own
//! with the slot's owner token. Progress goes to stderr; stdout is the report.
//!
//! With `--postgres-server URL` it measures relay instances on PostgreSQL instead (one, then
//! two on one database, and wake-ups across them; `relay_pg_bench.rs`, run by
//! `scripts/bench-relay-pg`).
//!
//! Beside each load it reads the relay's `/metrics` (group-commit size and time), its CPU (whole
//! process and the commit thread) and its writes (`/proc/<pid>/io`), so a result comes with
//! the reason for it.

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::output::Out;

#[path = "relay_bench_load.rs"]
mod load;
/// `wire bench-relay --postgres-server URL`: instances on one PostgreSQL database (a child
/// module, so that it shares this one's client, load generator and floors).
#[path = "relay_pg_bench.rs"]
mod pg;

use self::load::*;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each throughput run lasts (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients, one keep-alive connection each, for single appends and /healthz.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Blobs per batched request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent clients sending batches.
    #[arg(long, default_value_t = 4)]
    batch_clients: usize,
    /// Bytes per blob.
    #[arg(long, default_value_t = 500)]
    blob_bytes: usize,
    /// Largest slot size the latency points go to (1k, 10k, 100k, 1M; stop early with 100000).
    #[arg(long, default_value_t = 1_000_000)]
    max_blobs: u64,
    /// Reads timed at each latency point (appends: half as many).
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Slots in the memory measurement.
    #[arg(long, default_value_t = 100_000)]
    mem_slots: u64,
    /// Blobs in the memory measurement, spread evenly over its slots [default: --max-blobs].
    #[arg(long)]
    mem_blobs: Option<u64>,
    /// Work here instead of a temporary directory (kept; each relay's data is removed once
    /// its part is measured).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop after the throughput part (healthz floor, single and batched appends).
    #[arg(long)]
    throughput_only: bool,
    /// Instead of the redb measurements: relay instances on PostgreSQL. The URL of a server
    /// (`postgres://user@host:port/postgres`) on which the bench may create databases; see
    /// `scripts/bench-relay-pg`, which starts a durable private one.
    #[arg(long, value_name = "URL")]
    postgres_server: Option<String>,
    /// With `--postgres-server`: wake-ups timed across instances (and on one instance).
    #[arg(long, default_value_t = 1000)]
    wake_samples: usize,
}

/// Blobs per request when filling a slot between latency points.
const FILL_BATCH: u64 = 4000;
const FILL_CLIENTS: usize = 4;

pub fn run(_out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("wire-relay-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let result = match &args.postgres_server {
        Some(server) => runtime.block_on(pg::bench(&args, server, &root)),
        None => runtime.block_on(bench(&args, &root)),
    };
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    result.map(|()| ExitCode::SUCCESS)
}

async fn bench(args: &Args, root: &Path) -> anyhow::Result<()> {
    if args.clients == 0 || args.batch_clients == 0 || args.batch == 0 || args.blob_bytes == 0 {
        bail!("--clients, --batch-clients, --batch and --blob-bytes must be at least 1");
    }
    let machine = machine();
    println!("{machine}");
    println!();
    println!("| measurement | result | floor in the same run |");
    println!("|---|---|---|");

    // Floor: one fsync of a small write, in the data directory's file system.
    let fsync = fsync_floor(root)?;
    row("floor: fsync of a 4 KiB write (p50 of 200)", &us(fsync), "");

    let warmup = Duration::from_secs(1);
    let window = Duration::from_secs(args.seconds.max(1));
    let clk = clock_ticks();

    // ---- Relay A: throughput.
    let relay = Relay::spawn(&root.join("a"))?;
    let addr = relay.addr;
    progress(&format!("relay A (throughput) pid {} on {addr}", relay.pid));

    progress("GET /healthz floor");
    let health_rate = healthz_floor(addr, args.clients, warmup, window, "").await?;

    progress("single appends");
    let mut owners = Vec::new();
    {
        let mut c = Client::connect(addr).await?;
        for _ in 0..args.clients {
            owners.push(c.alloc_slot().await?);
        }
    }
    let owners = Arc::new(owners);
    let blob_bytes = args.blob_bytes;
    let probe = Probe::of(&relay, clk);
    let single = timed(
        addr,
        args.clients,
        warmup,
        window,
        Some(probe),
        move |mut c, worker, i| {
            let owners = owners.clone();
            async move {
                let (slot, token) = &owners[worker];
                let blob = random_blob(worker as u64, i, blob_bytes);
                c.append_one(slot, token, blob).await?;
                Ok((c, 1))
            }
        },
    )
    .await?;
    row(
        &format!(
            "single-blob append, {} B, {} clients, durable: appends/s; ack p50 / p99",
            args.blob_bytes, args.clients
        ),
        &format!(
            "{}/s; {} / {}",
            thousands(single.rate()),
            ms(single.pct(0.5)),
            ms(single.pct(0.99))
        ),
        &format!(
            "healthz {} req/s; fsync {}",
            thousands(health_rate),
            us(fsync)
        ),
    );
    if let Some(w) = &single.window {
        w.row("the commits in that run");
    }

    progress("batched appends");
    let mut batch_owners = Vec::new();
    {
        let mut c = Client::connect(addr).await?;
        for _ in 0..args.batch_clients {
            batch_owners.push(c.alloc_slot().await?);
        }
    }
    let batch_owners = Arc::new(batch_owners);
    let batch = args.batch;
    let batched = timed(
        addr,
        args.batch_clients,
        warmup,
        window,
        Some(probe),
        move |mut c, worker, i| {
            let owners = batch_owners.clone();
            async move {
                let (slot, token) = &owners[worker];
                let body = random_batch(worker as u64, i, batch, blob_bytes);
                let stored = c.append_batch(slot, token, body).await?;
                Ok((c, stored))
            }
        },
    )
    .await?;
    row(
        &format!(
            "batched append, {} × {} B per request, {} clients: blobs/s; request p50 / p99",
            args.batch, args.blob_bytes, args.batch_clients
        ),
        &format!(
            "{}/s; {} / {}",
            thousands(batched.rate()),
            ms(batched.pct(0.5)),
            ms(batched.pct(0.99))
        ),
        &format!("fsync {}", us(fsync)),
    );
    if let Some(w) = &batched.window {
        w.row("the commits in that run");
    }
    let rss_a = relay.rss()?;
    row("relay RSS after the throughput runs", &mem(rss_a), "");
    drop(relay);
    let _ = std::fs::remove_dir_all(root.join("a"));
    if args.throughput_only {
        return Ok(());
    }

    // ---- Relay B: latency as one slot grows.
    let relay = Relay::spawn(&root.join("b"))?;
    let addr = relay.addr;
    progress(&format!(
        "relay B (latency by size) pid {} on {addr}",
        relay.pid
    ));
    let probe = Probe::of(&relay, clk);
    let mut c = Client::connect(addr).await?;
    let (slot, token) = c.alloc_slot().await?;
    let points: Vec<u64> = [1_000u64, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&p| p <= args.max_blobs)
        .collect();
    let mut flat: Vec<(u64, Duration, Duration, Duration, Duration)> = Vec::new();
    let mut counter = 0u64;
    for &point in &points {
        let have = c.slot_blobs(&slot, &token).await?;
        if have < point {
            let n = point - have;
            progress(&format!("filling to {point}"));
            let before = Snapshot::take(&mut c, probe).await?;
            let t = Instant::now();
            fill(addr, &slot, &token, n, blob_bytes, point).await?;
            let rate = n as f64 / t.elapsed().as_secs_f64();
            let after = Snapshot::take(&mut c, probe).await?;
            row(
                &format!(
                    "fill one slot {} → {} blobs, {FILL_BATCH} per request, {FILL_CLIENTS} clients",
                    thousands(have as f64),
                    thousands(point as f64)
                ),
                &format!("{}/s", thousands(rate)),
                "",
            );
            Delta::between(&before, &after, probe).row("the commits of that fill");
        }
        let last = c.slot_last_seq(&slot, &token).await?;
        let stored = c.slot_blobs(&slot, &token).await?;
        let mut reads = Vec::with_capacity(args.samples);
        for i in 0..args.samples as u64 {
            let after = last.saturating_sub(1 + i % 1000);
            let t = Instant::now();
            c.read_one(&slot, &token, after).await?;
            reads.push(t.elapsed());
        }
        let mut appends = Vec::with_capacity(args.samples / 2);
        for _ in 0..(args.samples / 2).max(1) {
            counter += 1;
            let blob = random_blob(u64::MAX, counter, blob_bytes);
            let t = Instant::now();
            c.append_one(&slot, &token, blob).await?;
            appends.push(t.elapsed());
        }
        reads.sort();
        appends.sort();
        let (ap50, ap99) = (pick(&appends, 0.5), pick(&appends, 0.99));
        let (rp50, rp99) = (pick(&reads, 0.5), pick(&reads, 0.99));
        row(
            &format!(
                "slot holding {} blobs: single append (1 client) p50 / p99; read after=<recent>&limit=1 p50 / p99",
                thousands(stored as f64)
            ),
            &format!(
                "append {} / {}; read {} / {}",
                ms(ap50),
                ms(ap99),
                ms(rp50),
                ms(rp99)
            ),
            &format!("fsync {}", us(fsync)),
        );
        flat.push((stored, ap50, ap99, rp50, rp99));
    }
    if let (Some(first), Some(last)) = (flat.first(), flat.last())
        && flat.len() > 1
    {
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
        let worst = |f: fn(&(u64, Duration, Duration, Duration, Duration)) -> Duration| {
            let base = f(first).as_secs_f64().max(1e-9);
            flat.iter()
                .map(|p| f(p).as_secs_f64() / base)
                .fold(0.0f64, f64::max)
        };
        row(
            &format!(
                "flatness, {} vs {} blobs (largest point / smallest point; worst point in brackets)",
                thousands(last.0 as f64),
                thousands(first.0 as f64)
            ),
            &format!(
                "append p50 {:.2}× ({:.2}×), p99 {:.2}× ({:.2}×); read p50 {:.2}× ({:.2}×), p99 {:.2}× ({:.2}×)",
                ratio(first.1, last.1),
                worst(|p| p.1),
                ratio(first.2, last.2),
                worst(|p| p.2),
                ratio(first.3, last.3),
                worst(|p| p.3),
                ratio(first.4, last.4),
                worst(|p| p.4)
            ),
            "target ≤ 2×",
        );
    }
    let rss_b = relay.rss()?;
    let held = flat.last().map_or(0, |p| p.0);
    row(
        &format!(
            "relay RSS holding one slot of {} blobs",
            thousands(held as f64)
        ),
        &mem(rss_b),
        &file_note(&root.join("b"), held, blob_bytes),
    );
    drop(c);
    drop(relay);
    let _ = std::fs::remove_dir_all(root.join("b"));

    // ---- Relay C: memory with many slots.
    let relay = Relay::spawn(&root.join("c"))?;
    let addr = relay.addr;
    progress(&format!("relay C (memory) pid {} on {addr}", relay.pid));
    let fresh = relay.rss()?;
    let probe = Probe::of(&relay, clk);
    let mut watch = Client::connect(addr).await?;
    let n_slots = args.mem_slots.max(1) as usize;
    let per_slot = (args.mem_blobs.unwrap_or(args.max_blobs) / n_slots as u64).max(1) as usize;
    progress(&format!("allocating {n_slots} slots"));
    let before = Snapshot::take(&mut watch, probe).await?;
    let t = Instant::now();
    let owners = parallel(addr, args.clients, n_slots, |mut c, _| async move {
        let o = c.alloc_slot().await?;
        Ok((c, o))
    })
    .await?;
    let alloc_rate = n_slots as f64 / t.elapsed().as_secs_f64();
    let after = Snapshot::take(&mut watch, probe).await?;
    let d = Delta::between(&before, &after, probe);
    row(
        &format!(
            "allocate {n_slots} slots, {} clients (one write transaction per slot, outside group commit)",
            args.clients
        ),
        &format!(
            "{}/s; relay writes {} / {} per slot; relay CPU {:.0}%",
            thousands(alloc_rate),
            kib(after.relay_io.0.saturating_sub(before.relay_io.0) as f64 / n_slots as f64),
            kib(after.relay_io.1.saturating_sub(before.relay_io.1) as f64 / n_slots as f64),
            d.relay_cpu * 100.0
        ),
        &format!("fsync {}", us(fsync)),
    );
    progress(&format!("{per_slot} blobs into each slot"));
    let owners = Arc::new(owners);
    let before = Snapshot::take(&mut watch, probe).await?;
    let t = Instant::now();
    let o = owners.clone();
    let stored: Vec<u64> = parallel(addr, args.clients, n_slots, move |mut c, i| {
        let o = o.clone();
        async move {
            let (slot, token) = &o[i];
            let body = random_batch(i as u64, 0, per_slot, blob_bytes);
            let n = c.append_batch(slot, token, body).await?;
            Ok((c, n))
        }
    })
    .await?;
    let total: u64 = stored.iter().sum();
    let fill_rate = total as f64 / t.elapsed().as_secs_f64();
    let after = Snapshot::take(&mut watch, probe).await?;
    row(
        &format!(
            "fill {n_slots} slots with {per_slot} blobs each, one batch per slot, {} clients",
            args.clients
        ),
        &format!(
            "{}/s ({} requests/s)",
            thousands(fill_rate),
            thousands(fill_rate / per_slot as f64)
        ),
        "",
    );
    Delta::between(&before, &after, probe).row("the commits of that fill");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let filled = relay.rss()?;
    progress("reading every slot once");
    let t = Instant::now();
    let o = owners.clone();
    let read: Vec<usize> = parallel(addr, args.clients, n_slots, move |mut c, i| {
        let o = o.clone();
        async move {
            let (slot, token) = &o[i];
            let n = c.read_all(slot, token).await?;
            Ok((c, n))
        }
    })
    .await?;
    let read_total: usize = read.iter().sum();
    let read_rate = n_slots as f64 / t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_read = relay.rss()?;
    row(
        "relay RSS, fresh (no slots)",
        &mem(fresh),
        "redb page cache configured: 16 MiB",
    );
    row(
        &format!(
            "relay RSS holding {} slots and {} blobs, after filling",
            thousands(n_slots as f64),
            thousands(total as f64)
        ),
        &mem(filled),
        &file_note(&root.join("c"), total, blob_bytes),
    );
    row(
        &format!(
            "relay RSS after reading every slot once ({} blobs read at {} slots/s)",
            thousands(read_total as f64),
            thousands(read_rate)
        ),
        &mem(after_read),
        "target ≤ 64 MiB",
    );
    drop(watch);
    drop(relay);
    let _ = std::io::stdout().flush();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The relay process

/// A relay started as a child process; killed when dropped.
struct Relay {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

impl Relay {
    fn spawn(data: &Path) -> anyhow::Result<Relay> {
        Relay::spawn_with(data, &[])
    }

    /// A relay on `data` with `extra` arguments (`--store URL`).
    fn spawn_with(data: &Path, extra: &[&str]) -> anyhow::Result<Relay> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut child = Command::new(exe)
            .args(["relay-server", "--bind", "127.0.0.1:0", "--data"])
            .arg(data)
            .args([
                "--json",
                "--no-rate-limits",
                "--slot-blobs-max",
                "100000000",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the relay")?;
        let pid = child.id();
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the relay's stdout is not a pipe");
        };
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let announced = reader.read_line(&mut line);
        let addr = announced
            .ok()
            .and_then(|_| serde_json::from_str::<serde_json::Value>(&line).ok())
            .and_then(|v| v.get("listening")?.as_str().map(str::to_owned))
            .and_then(|url| url.strip_prefix("http://")?.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the relay did not announce a listening address (got {line:?})");
        };
        // Keep draining stdout so the relay never writes into a full or closed pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Ok(Relay { child, pid, addr })
    }

    /// Resident and peak resident memory, KiB, and the number of threads.
    fn rss(&self) -> anyhow::Result<(u64, u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("cannot read the relay's /proc status")?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:"), field("Threads:")))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let at = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    at(11) + at(12)
}

/// `wchar` (bytes passed to write calls) and `write_bytes` (bytes sent to storage) of a process.
fn io(pid: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("wchar:"), field("write_bytes:"))
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------------
// Floors, machine, formatting

fn fsync_floor(dir: &Path) -> anyhow::Result<Duration> {
    use std::fs::OpenOptions;
    let path = dir.join("fsync-probe");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&[0u8; 4096])?;
        f.sync_data()?;
        times.push(t.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    times.sort();
    Ok(pick(&times, 0.5))
}

/// The size of `relay.redb` beside the payload it holds.
fn file_note(dir: &Path, blobs: u64, blob_bytes: usize) -> String {
    let file = std::fs::metadata(dir.join("relay.redb")).map_or(0, |m| m.len());
    let payload = blobs * blob_bytes as u64;
    format!(
        "relay.redb {} for {} of blobs ({:.1}×)",
        mib(file / 1024),
        mib(payload / 1024),
        file as f64 / payload.max(1) as f64
    )
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| {
            format!(", {:.0} GiB RAM", kib as f64 / (1024.0 * 1024.0))
        });
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!(
        "Machine: {} CPUs (nproc), {cpu}{mem}, Linux {kernel}. Date: {date}. Relay and load generator share the machine.",
        cores()
    )
}

fn progress(what: &str) {
    eprintln!("bench-relay: {what}");
}

fn row(what: &str, result: &str, floor: &str) {
    println!("| {what} | {result} | {floor} |");
    let _ = std::io::stdout().flush();
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    ms_f(d.as_secs_f64())
}

fn ms_f(s: f64) -> String {
    format!("{:.2} ms", s * 1e3)
}

/// Resident memory, peak and threads as one cell.
fn mem(m: (u64, u64, u64)) -> String {
    format!("{} (peak {}; {} threads)", mib(m.0), mib(m.1), m.2)
}

fn kib(bytes: f64) -> String {
    format!("{:.0} KiB", bytes / 1024.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A whole number with thousands separators.
fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
