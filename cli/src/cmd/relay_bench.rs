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

/// `wire bench-relay --postgres-server URL`: instances on one PostgreSQL database (a child
/// module, so that it shares this one's client, load generator and floors).
#[path = "relay_pg_bench.rs"]
mod pg;

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
// The HTTP client

/// One keep-alive HTTP/1.1 connection.
struct Client {
    send: SendRequest<Full<Bytes>>,
    host: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

fn expect(r: &Reply, status: StatusCode, what: &str) -> anyhow::Result<()> {
    if r.status == status {
        Ok(())
    } else {
        bail!(
            "{what}: expected {status}, got {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        )
    }
}

impl Client {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the relay at {addr}"))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            send,
            host: addr.to_string(),
        })
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(body))?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers: parts.headers,
            body,
        })
    }

    async fn alloc_slot(&mut self) -> anyhow::Result<(String, String)> {
        let r = self
            .call(Method::POST, "/v1/slots", None, None, Bytes::new())
            .await?;
        expect(&r, StatusCode::CREATED, "POST /v1/slots")?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|s| s.as_str())
                .map(str::to_owned)
                .with_context(|| format!("POST /v1/slots: no {k:?} in the reply"))
        };
        Ok((field("slot")?, field("token")?))
    }

    async fn append_one(&mut self, slot: &str, token: &str, blob: Bytes) -> anyhow::Result<()> {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/slots/{slot}/blobs"),
                Some(token),
                Some("application/octet-stream"),
                blob,
            )
            .await?;
        expect(&r, StatusCode::CREATED, "POST blobs")
    }

    /// Appends a batch body; the number of blobs the relay stored.
    async fn append_batch(&mut self, slot: &str, token: &str, body: Bytes) -> anyhow::Result<u64> {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/slots/{slot}/batch"),
                Some(token),
                Some(wire_relay::frames::BLOBS_CONTENT_TYPE),
                body,
            )
            .await?;
        expect(&r, StatusCode::OK, "POST batch")?;
        Ok(count(&r.body, b"\"stored\":true"))
    }

    async fn slot_json(&mut self, slot: &str, token: &str) -> anyhow::Result<serde_json::Value> {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/slots/{slot}"),
                Some(token),
                None,
                Bytes::new(),
            )
            .await?;
        expect(&r, StatusCode::OK, "GET slot")?;
        Ok(serde_json::from_slice(&r.body)?)
    }

    async fn slot_last_seq(&mut self, slot: &str, token: &str) -> anyhow::Result<u64> {
        let v = self.slot_json(slot, token).await?;
        v.get("last_seq")
            .and_then(serde_json::Value::as_u64)
            .context("GET slot: no last_seq")
    }

    async fn slot_blobs(&mut self, slot: &str, token: &str) -> anyhow::Result<u64> {
        let v = self.slot_json(slot, token).await?;
        v.get("blobs")
            .and_then(serde_json::Value::as_u64)
            .context("GET slot: no blobs")
    }

    async fn read_one(&mut self, slot: &str, token: &str, after: u64) -> anyhow::Result<()> {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/slots/{slot}/blobs?after={after}&limit=1"),
                Some(token),
                None,
                Bytes::new(),
            )
            .await?;
        expect(&r, StatusCode::OK, "GET blobs")?;
        if r.body.len() < 13 {
            bail!("GET blobs after {after}: no record in the reply");
        }
        Ok(())
    }

    /// Reads a whole slot page by page; the number of blobs read.
    async fn read_all(&mut self, slot: &str, token: &str) -> anyhow::Result<usize> {
        let mut after = 0u64;
        let mut n = 0;
        loop {
            let r = self
                .call(
                    Method::GET,
                    &format!("/v1/slots/{slot}/blobs?after={after}"),
                    Some(token),
                    None,
                    Bytes::new(),
                )
                .await?;
            expect(&r, StatusCode::OK, "GET blobs")?;
            let records = wire_relay::frames::decode_records(&r.body, 1 << 20)
                .map_err(|e| anyhow::anyhow!("GET blobs: {e}"))?;
            n += records.len();
            let more = r.headers.get("wire-more").is_some_and(|v| v == "1");
            match records.last() {
                Some((seq, _)) if more => after = *seq,
                _ => return Ok(n),
            }
        }
    }
}

fn count(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len()).filter(|w| *w == needle).count() as u64
}

// ---------------------------------------------------------------------------------------------
// Load generation

/// A small, fast PRNG (splitmix64): distinct, incompressible blob contents without a dependency.
pub(super) struct Mix(u64);

impl Mix {
    pub(super) fn new(a: u64, b: u64) -> Mix {
        Mix(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.rotate_left(32) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A blob whose first 16 bytes are (stream, counter), so no two blobs of one run are equal; the
/// rest is random.
fn random_blob(stream: u64, counter: u64, len: usize) -> Bytes {
    let mut b = vec![0u8; len.max(16)];
    Mix::new(stream ^ nanos_now(), counter).fill(&mut b[16..]);
    b[..8].copy_from_slice(&stream.to_be_bytes());
    b[8..16].copy_from_slice(&counter.to_be_bytes());
    b.truncate(len.max(1));
    Bytes::from(b)
}

/// A batch body (`application/vnd.wire.blobs`) of `n` distinct random blobs.
fn random_batch(stream: u64, request: u64, n: usize, len: usize) -> Bytes {
    let mut mix = Mix::new(stream ^ nanos_now(), request);
    let mut out = Vec::with_capacity(n * (len + 4));
    let mut blob = vec![0u8; len.max(1)];
    for i in 0..n as u64 {
        mix.fill(&mut blob);
        let head = (request << 24 | i).to_be_bytes();
        let k = head.len().min(blob.len());
        blob[..k].copy_from_slice(&head[..k]);
        out.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        out.extend_from_slice(&blob);
    }
    Bytes::from(out)
}

/// Fills one slot with `n` more blobs in big batches from a few connections.
async fn fill(
    addr: SocketAddr,
    slot: &str,
    token: &str,
    n: u64,
    blob_bytes: usize,
    stream: u64,
) -> anyhow::Result<()> {
    let requests = n.div_ceil(FILL_BATCH) as usize;
    let (slot, token) = (Arc::new(slot.to_owned()), Arc::new(token.to_owned()));
    let stored = parallel(addr, FILL_CLIENTS, requests, move |mut c, i| {
        let (slot, token) = (slot.clone(), token.clone());
        async move {
            let size = FILL_BATCH.min(n - i as u64 * FILL_BATCH) as usize;
            let body = random_batch(stream, i as u64, size, blob_bytes);
            let stored = c.append_batch(&slot, &token, body).await?;
            Ok((c, stored))
        }
    })
    .await?;
    let total: u64 = stored.iter().sum();
    if total != n {
        bail!("filling stored {total} blobs of {n}");
    }
    Ok(())
}

/// Runs `n` jobs over `clients` connections, each job taking the next index; results in order.
async fn parallel<R, F, Fut>(
    addr: SocketAddr,
    clients: usize,
    n: usize,
    f: F,
) -> anyhow::Result<Vec<R>>
where
    R: Send + 'static,
    F: Fn(Client, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(Client, R)>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients.min(n.max(1)) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= n {
                    return anyhow::Ok(out);
                }
                let (back, r) = f(c, i).await?;
                c = back;
                out.push((i, r));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// What to watch on the relay during a timed run.
#[derive(Debug, Clone, Copy)]
struct Probe {
    pid: u32,
    /// The relay's commit threads (one, or with several append lanes one that starts them
    /// and one per lane).
    commit_tids: [Option<u32>; COMMIT_THREADS_MAX],
    clk: f64,
}

impl Probe {
    fn of(relay: &Relay, clk: f64) -> Probe {
        Probe {
            pid: relay.pid,
            commit_tids: commit_threads(relay.pid),
            clk,
        }
    }
}

/// Most commit threads a relay runs (one, plus one per append lane, at most 8).
const COMMIT_THREADS_MAX: usize = 9;

/// The relay's group-commit threads (named `wire-relay-commit…`, shown cut to 15 bytes).
fn commit_threads(pid: u32) -> [Option<u32>; COMMIT_THREADS_MAX] {
    let mut tids = [None; COMMIT_THREADS_MAX];
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return tids;
    };
    let found = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.starts_with("wire-relay-com"))
        });
    for (slot, tid) in tids.iter_mut().zip(found) {
        *slot = Some(tid);
    }
    tids
}

/// The relay's counters, I/O and both processes' CPU at one moment.
struct Snapshot {
    metrics: HashMap<String, f64>,
    relay_ticks: u64,
    commit_ticks: u64,
    self_ticks: u64,
    /// `wchar` and `write_bytes` of the relay, from `/proc/<pid>/io`.
    relay_io: (u64, u64),
    at: Instant,
}

impl Snapshot {
    async fn take(c: &mut Client, probe: Probe) -> anyhow::Result<Snapshot> {
        let pid = probe.pid.to_string();
        let (relay_ticks, self_ticks, relay_io) = (cpu_ticks(&pid), cpu_ticks("self"), io(&pid));
        let commit_ticks = probe
            .commit_tids
            .iter()
            .flatten()
            .map(|tid| cpu_ticks(&format!("{pid}/task/{tid}")))
            .sum();
        let at = Instant::now();
        let metrics = c.metrics().await?;
        Ok(Snapshot {
            metrics,
            relay_ticks,
            commit_ticks,
            self_ticks,
            relay_io,
            at,
        })
    }
}

/// What happened on the relay between two snapshots.
struct Delta {
    secs: f64,
    commits: f64,
    appends_per_commit: f64,
    commit_s: f64,
    queued_s: f64,
    relay_cpu: f64,
    commit_cpu: f64,
    self_cpu: f64,
    wchar_per_commit: f64,
    written_per_commit: f64,
}

impl Delta {
    fn between(a: &Snapshot, b: &Snapshot, probe: Probe) -> Delta {
        let d = |name: &str| {
            b.metrics.get(name).copied().unwrap_or(0.0)
                - a.metrics.get(name).copied().unwrap_or(0.0)
        };
        let secs = (b.at - a.at).as_secs_f64().max(1e-9);
        let commits = d("wire_relay_commit_batch_size_count");
        let per = commits.max(1.0);
        Delta {
            secs,
            commits,
            appends_per_commit: d("wire_relay_commit_batch_size_sum") / per,
            commit_s: d("wire_relay_commit_seconds_sum") / per,
            queued_s: d("wire_relay_append_seconds_sum")
                / d("wire_relay_append_seconds_count").max(1.0),
            relay_cpu: b.relay_ticks.saturating_sub(a.relay_ticks) as f64 / probe.clk / secs,
            commit_cpu: b.commit_ticks.saturating_sub(a.commit_ticks) as f64 / probe.clk / secs,
            self_cpu: b.self_ticks.saturating_sub(a.self_ticks) as f64 / probe.clk / secs,
            wchar_per_commit: b.relay_io.0.saturating_sub(a.relay_io.0) as f64 / per,
            written_per_commit: b.relay_io.1.saturating_sub(a.relay_io.1) as f64 / per,
        }
    }

    /// A row on the commits behind the row above it.
    fn row(&self, what: &str) {
        row(
            &format!(
                "  {what}: appends per commit; commit time; commits/s; queue-to-durable (means, /metrics); relay writes per commit (/proc io: write() / to storage); CPU (100% = one core)"
            ),
            &format!(
                "{:.1}; {}; {}/s; {}; {} / {}; relay {:.0}% (its commit threads {:.0}%), bench client {:.0}%",
                self.appends_per_commit,
                ms_f(self.commit_s),
                thousands(self.commits / self.secs),
                ms_f(self.queued_s),
                kib(self.wchar_per_commit),
                kib(self.written_per_commit),
                self.relay_cpu * 100.0,
                self.commit_cpu * 100.0,
                self.self_cpu * 100.0
            ),
            &format!("{} cores", cores()),
        );
    }
}

struct Load {
    items: u64,
    /// Sorted.
    lat: Vec<Duration>,
    elapsed: Duration,
    window: Option<Delta>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> Duration {
        pick(&self.lat, p)
    }
}

fn pick(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The floor of a run: `GET /healthz` from `clients` keep-alive connections for half the
/// window, reported as a row (`on` names the instance, if any); returns the rate.
async fn healthz_floor(
    addr: SocketAddr,
    clients: usize,
    warmup: Duration,
    window: Duration,
    on: &str,
) -> anyhow::Result<f64> {
    let health = timed(
        addr,
        clients,
        warmup,
        window / 2,
        None,
        |mut c, _, _| async {
            let r = c
                .call(Method::GET, "/healthz", None, None, Bytes::new())
                .await?;
            expect(&r, StatusCode::OK, "GET /healthz")?;
            Ok((c, 1))
        },
    )
    .await?;
    let rate = health.rate();
    row(
        &format!("floor: GET /healthz{on}, {clients} clients, keep-alive (p50 / p99)"),
        &format!(
            "{} req/s ({} / {})",
            thousands(rate),
            ms(health.pct(0.5)),
            ms(health.pct(0.99))
        ),
        "",
    );
    Ok(rate)
}

/// `clients` connections each repeat `f` for `warmup + dur`; requests that start and finish
/// inside the last `dur` count. `f` gets the connection, the worker index and an iteration
/// number, and returns how many items the request carried.
async fn timed<F, Fut>(
    addr: SocketAddr,
    clients: usize,
    warmup: Duration,
    dur: Duration,
    probe: Option<Probe>,
    f: F,
) -> anyhow::Result<Load>
where
    F: Fn(Client, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(Client, u64)>> + Send + 'static,
{
    timed_on(&[addr], clients, warmup, dur, probe, f).await
}

/// [`timed`] with client `i` connected to `addrs[i % addrs.len()]` (the probe reads the first).
async fn timed_on<F, Fut>(
    addrs: &[SocketAddr],
    clients: usize,
    warmup: Duration,
    dur: Duration,
    probe: Option<Probe>,
    f: F,
) -> anyhow::Result<Load>
where
    F: Fn(Client, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(Client, u64)>> + Send + 'static,
{
    let Some(&addr) = addrs.first() else {
        bail!("no relay to measure");
    };
    let f = Arc::new(f);
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        conns.push(Client::connect(addrs[i % addrs.len()]).await?);
    }
    let start = Instant::now() + warmup;
    let end = start + dur;
    let watcher = probe.map(|p| {
        tokio::spawn(async move {
            let mut m = Client::connect(addr).await?;
            tokio::time::sleep_until(start.into()).await;
            let before = Snapshot::take(&mut m, p).await?;
            tokio::time::sleep_until(end.into()).await;
            let after = Snapshot::take(&mut m, p).await?;
            anyhow::Ok(Delta::between(&before, &after, p))
        })
    });
    let mut tasks = Vec::with_capacity(clients);
    for (worker, conn) in conns.into_iter().enumerate() {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = conn;
            let mut items = 0u64;
            let mut lat = Vec::new();
            let mut i = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    return anyhow::Ok((items, lat));
                }
                let (back, n) = f(c, worker, i).await?;
                c = back;
                i += 1;
                let t1 = Instant::now();
                if t0 >= start && t1 <= end {
                    items += n;
                    lat.push(t1 - t0);
                }
            }
        }));
    }
    let mut items = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await??;
        items += n;
        lat.extend(l);
    }
    lat.sort();
    let window = match watcher {
        Some(w) => Some(w.await??),
        None => None,
    };
    Ok(Load {
        items,
        lat,
        elapsed: dur,
        window,
    })
}

impl Client {
    /// `/metrics` samples without labels, by name.
    async fn metrics(&mut self) -> anyhow::Result<HashMap<String, f64>> {
        let r = self
            .call(Method::GET, "/metrics", None, None, Bytes::new())
            .await?;
        expect(&r, StatusCode::OK, "GET /metrics")?;
        let text = String::from_utf8_lossy(&r.body);
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| {
                let (name, v) = l.rsplit_once(' ')?;
                Some((name.to_owned(), v.parse().ok()?))
            })
            .collect())
    }
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
