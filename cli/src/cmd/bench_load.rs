//! `wire bench-load`: the bounded load test of issue 8, on loopback, stopping by itself. A relay
//! process (started here, or `--relay URL` on loopback) gets one mailbox per agent pair, an
//! append capability per mailbox, and one open stream per mailbox (the receiving agent's);
//! then the senders append `--rate` messages a second, spread evenly over the pairs, for
//! `--seconds`. Every message carries its pair, its number and when it was sent, so the
//! receivers measure delivery (append start to the stream handing it over) and find any loss
//! or duplicate. An append that fails is retried with the same bytes (appends are idempotent
//! by content), so "lost" means acknowledged by the relay and never delivered.
//!
//! The agents are emulated at the relay's protocol: a thousand daemons do not fit in two
//! cores, and what this measures is the relay under a thousand agents' traffic. The blobs are
//! opaque to the relay, as sealed segments are.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use serde::Serialize;
use wire_net::{ClientOptions, RelayClient};

use super::bench_line::{fsync_floor, start_relay};
use crate::output::Out;

/// The header every message starts with: pair (u32), number (u64), sent at (ns since the
/// run's epoch, u64).
const HEADER: usize = 20;

/// How often the senders release a slice of the rate.
const TICK: Duration = Duration::from_millis(5);

/// Attempts per message before it counts as failed.
const ATTEMPTS: usize = 6;

/// How long to wait after the last send for the streams to deliver what was stored.
const DRAIN: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent pairs (one mailbox, one capability and one open stream each).
    #[arg(long, default_value_t = 1000)]
    pairs: usize,
    /// Messages per second, across all pairs.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Bytes per message (at least the 20-byte header).
    #[arg(long, default_value_t = 512)]
    bytes: usize,
    /// Appends in flight at once, at most.
    #[arg(long, default_value_t = 256)]
    inflight: usize,
    /// A running relay on loopback instead of starting one (memory is then not sampled).
    #[arg(long)]
    relay: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    pairs: usize,
    streams_open: usize,
    seconds: u64,
    planned: u64,
    /// Acknowledged (2xx) by the relay.
    stored: u64,
    /// Gave up after every attempt.
    failed: u64,
    retries: u64,
    delivered: u64,
    /// Stored but never delivered.
    lost: u64,
    duplicates: u64,
    stream_reconnects: u64,
    rate_achieved: f64,
    delivery_us: Lat,
    append_us: Lat,
    relay_rss_peak_kib: Option<u64>,
    relay_rss_end_kib: Option<u64>,
    /// CPU seconds (user + system) spent while sending, by the relay and by this generator,
    /// against the wall-clock seconds of sending: on two shared cores they tell who is short.
    relay_cpu_s: Option<f64>,
    generator_cpu_s: f64,
    send_wall_s: f64,
    floor_fsync_us: u64,
    floor_healthz_us: u64,
}

#[derive(Debug, Default, Serialize)]
struct Lat {
    n: usize,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

fn lat(mut v: Vec<u64>) -> Lat {
    if v.is_empty() {
        return Lat::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Lat {
        n: v.len(),
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: v[v.len() - 1],
    }
}

/// What the receivers saw.
#[derive(Default)]
struct Seen {
    numbers: Vec<Mutex<HashSet<u64>>>,
    delivery_us: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    reconnects: AtomicU64,
}

struct Mailbox {
    slot: String,
    token: String,
    cap: String,
}

pub fn run(out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    if args.pairs == 0 || args.rate == 0 || args.seconds == 0 {
        bail!("--pairs, --rate and --seconds must each be at least 1");
    }
    if args.bytes < HEADER || args.bytes > 1 << 20 {
        bail!("--bytes must be between {HEADER} and 1 MiB");
    }
    let root = tempfile::Builder::new()
        .prefix("wire-bench-load-")
        .tempdir()?;
    let floor_fsync_us = fsync_floor(&root.path().join("fsync-probe"), 200)?.p50;
    let (mut relay, url) = match &args.relay {
        Some(url) => {
            if !(url.starts_with("http://127.") || url.starts_with("http://[::1]")) {
                bail!("the load test runs on loopback only: --relay must be http://127.x.x.x:PORT");
            }
            (None, url.clone())
        }
        None => {
            let exe = std::env::current_exe()?;
            let (child, port) = start_relay(&exe, &root.path().join("relay"), &[])?;
            (Some(child), format!("http://127.0.0.1:{port}"))
        }
    };
    let pid = relay.as_ref().map(std::process::Child::id);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(load(&args, &url, pid, floor_fsync_us));
    if let Some(r) = relay.as_mut() {
        let _ = r.kill();
        let _ = r.wait();
    }
    let report = result?;
    let ok = report.lost == 0 && report.duplicates == 0 && report.failed == 0;
    out.print(&report, || prose(&report));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn load(
    args: &Args,
    url: &str,
    pid: Option<u32>,
    floor_fsync_us: u64,
) -> anyhow::Result<Report> {
    let options = ClientOptions {
        connections_max: args.inflight.max(8),
        ..ClientOptions::default()
    };
    let client = RelayClient::with_options(url, options)?;
    let floor_healthz_us = {
        let mut v = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            client.healthz().await?;
            v.push(t.elapsed().as_micros() as u64);
        }
        lat(v).p50
    };

    // One mailbox and one capability per pair.
    let made = Arc::new(Mutex::new(Vec::with_capacity(args.pairs)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut makers = Vec::new();
    for _ in 0..16 {
        let (client, made, next, n) = (client.clone(), made.clone(), next.clone(), args.pairs);
        makers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let grant = client.allocate_slot().await?;
                let cap = client.mint_cap(&grant.slot, &grant.token).await?;
                made.lock().expect("made lock").push(Mailbox {
                    slot: grant.slot,
                    token: grant.token,
                    cap: cap.cap,
                });
            }
            anyhow::Ok(())
        }));
    }
    for m in makers {
        m.await.context("a slot maker stopped")??;
    }
    let boxes: Arc<Vec<Mailbox>> = Arc::new(std::mem::take(&mut *made.lock().expect("made lock")));

    // One stream per mailbox, and beside it a task acknowledging what it read once a second
    // (as a daemon does, from a task of its own: the stream is never held up by an ack).
    let epoch = Instant::now();
    let seen = Arc::new(Seen {
        numbers: (0..args.pairs)
            .map(|_| Mutex::new(HashSet::new()))
            .collect(),
        ..Seen::default()
    });
    let open = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for i in 0..args.pairs {
        let (client, boxes, seen, open) =
            (client.clone(), boxes.clone(), seen.clone(), open.clone());
        let read_through = Arc::new(AtomicU64::new(0));
        let (ack_client, ack_boxes, ack_through) =
            (client.clone(), boxes.clone(), read_through.clone());
        readers.push(tokio::spawn(async move {
            read(&client, &boxes[i], i, epoch, &seen, &open, &read_through).await;
        }));
        readers.push(tokio::spawn(async move {
            acknowledge(&ack_client, &ack_boxes[i], &ack_through).await;
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while open.load(Ordering::Relaxed) < args.pairs {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} streams opened within 60 s",
                open.load(Ordering::Relaxed),
                args.pairs
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let streams_open = open.load(Ordering::Relaxed);

    // Relay memory, sampled while the load runs.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = pid.map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    });

    // The senders: a slice of the rate every tick, round robin over the pairs.
    let planned = args.rate * args.seconds;
    let permits = Arc::new(tokio::sync::Semaphore::new(args.inflight));
    let stored = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let append_us = Arc::new(Mutex::new(Vec::with_capacity(planned as usize)));
    let counters: Vec<AtomicU64> = (0..args.pairs).map(|_| AtomicU64::new(0)).collect();
    let counters = Arc::new(counters);
    let started = Instant::now();
    let relay_cpu0 = pid.and_then(|p| cpu_s(&p.to_string()));
    let self_cpu0 = cpu_s("self").unwrap_or(0.0);
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    while sent < planned {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * args.rate as f64) as u64).min(planned);
        while sent < due {
            let permit = permits.clone().acquire_owned().await?;
            let pair = (sent % args.pairs as u64) as usize;
            let n = counters[pair].fetch_add(1, Ordering::Relaxed);
            let (client, boxes) = (client.clone(), boxes.clone());
            let (stored, failed, retries, append_us) = (
                stored.clone(),
                failed.clone(),
                retries.clone(),
                append_us.clone(),
            );
            let bytes = args.bytes;
            tasks.spawn(async move {
                let blob = message(pair, n, epoch, bytes);
                let t = Instant::now();
                for attempt in 0..ATTEMPTS {
                    match client
                        .append(&boxes[pair].slot, &boxes[pair].cap, blob.clone())
                        .await
                    {
                        Ok(_) => {
                            stored.fetch_add(1, Ordering::Relaxed);
                            append_us
                                .lock()
                                .expect("append lock")
                                .push(t.elapsed().as_micros() as u64);
                            drop(permit);
                            return;
                        }
                        Err(_) if attempt + 1 < ATTEMPTS => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                        }
                        Err(_) => {}
                    }
                }
                failed.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
            sent += 1;
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let send_secs = started.elapsed().as_secs_f64();
    let relay_cpu_s = pid
        .and_then(|p| cpu_s(&p.to_string()))
        .zip(relay_cpu0)
        .map(|(b, a)| b - a);
    let generator_cpu_s = cpu_s("self").unwrap_or(0.0) - self_cpu0;
    let stored_n = stored.load(Ordering::Relaxed);

    // Let the streams deliver what was stored.
    let drain_until = Instant::now() + DRAIN;
    while seen.delivered.load(Ordering::Relaxed) < stored_n && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in &readers {
        r.abort();
    }
    if let Some(s) = sampler {
        s.abort();
    }
    let delivered = seen.delivered.load(Ordering::Relaxed);
    let delivery = std::mem::take(&mut *seen.delivery_us.lock().expect("delivery lock"));
    let appends = std::mem::take(&mut *append_us.lock().expect("append lock"));
    Ok(Report {
        pairs: args.pairs,
        streams_open,
        seconds: args.seconds,
        planned,
        stored: stored_n,
        failed: failed.load(Ordering::Relaxed),
        retries: retries.load(Ordering::Relaxed),
        delivered,
        lost: stored_n.saturating_sub(delivered),
        duplicates: seen.duplicates.load(Ordering::Relaxed),
        stream_reconnects: seen.reconnects.load(Ordering::Relaxed),
        rate_achieved: stored_n as f64 / send_secs,
        delivery_us: lat(delivery),
        append_us: lat(appends),
        relay_rss_peak_kib: pid.map(|_| peak.load(Ordering::Relaxed)),
        relay_rss_end_kib: pid.and_then(rss_kib),
        relay_cpu_s,
        generator_cpu_s,
        send_wall_s: send_secs,
        floor_fsync_us,
        floor_healthz_us,
    })
}

fn message(pair: usize, n: u64, epoch: Instant, bytes: usize) -> Bytes {
    let mut b = Vec::with_capacity(bytes);
    b.extend_from_slice(&(pair as u32).to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    let sent = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    b.extend_from_slice(&sent.to_be_bytes());
    // Distinct bytes per message, so content-hash idempotency never merges two.
    let mut x = (pair as u64) << 32 ^ n ^ 0x9e37_79b9_7f4a_7c15;
    while b.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push(x as u8);
    }
    Bytes::from(b)
}

/// Acknowledges, once a second, what the stream of `mailbox` has read (`through`).
async fn acknowledge(client: &RelayClient, mailbox: &Mailbox, through: &AtomicU64) {
    let mut acked = 0u64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let last = through.load(Ordering::Relaxed);
        if last > acked
            && client
                .ack(&mailbox.slot, &mailbox.token, last)
                .await
                .is_ok()
        {
            acked = last;
        }
    }
}

/// Reads one mailbox's stream for as long as the test runs, reconnecting after the last seq
/// it saw, and publishing that seq in `read_through` for [`acknowledge`].
async fn read(
    client: &RelayClient,
    mailbox: &Mailbox,
    pair: usize,
    epoch: Instant,
    seen: &Seen,
    open: &AtomicUsize,
    read_through: &AtomicU64,
) {
    let mut last = 0u64;
    let mut first = true;
    loop {
        let mut stream = match client.stream(&mailbox.slot, &mailbox.token, last).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if first {
            open.fetch_add(1, Ordering::Relaxed);
            first = false;
        } else {
            seen.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            let next = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
            match next {
                Ok(Some(Ok(record))) => {
                    last = record.seq;
                    read_through.store(last, Ordering::Relaxed);
                    let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let b = &record.bytes;
                    if b.len() >= HEADER {
                        let got_pair = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                        let n = u64::from_be_bytes(b[4..12].try_into().unwrap_or([0; 8]));
                        let sent = u64::from_be_bytes(b[12..20].try_into().unwrap_or([0; 8]));
                        let fresh = got_pair == pair
                            && seen.numbers[pair].lock().expect("numbers lock").insert(n);
                        if fresh {
                            seen.delivered.fetch_add(1, Ordering::Relaxed);
                            seen.delivery_us
                                .lock()
                                .expect("delivery lock")
                                .push(now.saturating_sub(sent) / 1000);
                        } else {
                            seen.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Some(Err(_)) | None) => break,
                Err(_) => {}
            }
        }
    }
}

fn prose(r: &Report) -> String {
    let mib = |k: Option<u64>| {
        k.map_or("not sampled".into(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    format!(
        "Load: {} pairs, {} streams open, {} s at {} msg/s planned.\n\
         Stored {} of {} ({} failed after retries, {} retries), {:.0} msg/s achieved.\n\
         Delivered {}: lost {}, duplicates {}, stream reconnects {}.\n\
         Delivery p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms.\n\
         Append p50 {:.2} ms, p99 {:.2} ms.\n\
         Relay memory: peak {}, at the end {}.\n\
         CPU while sending ({:.1} s): relay {}, this generator {:.1} s.\n\
         Floors in this run: fsync {} µs, GET /healthz {} µs.\n",
        r.pairs,
        r.streams_open,
        r.seconds,
        r.planned / r.seconds.max(1),
        r.stored,
        r.planned,
        r.failed,
        r.retries,
        r.rate_achieved,
        r.delivered,
        r.lost,
        r.duplicates,
        r.stream_reconnects,
        r.delivery_us.p50 as f64 / 1000.0,
        r.delivery_us.p99 as f64 / 1000.0,
        r.delivery_us.p999 as f64 / 1000.0,
        r.delivery_us.max as f64 / 1000.0,
        r.append_us.p50 as f64 / 1000.0,
        r.append_us.p99 as f64 / 1000.0,
        mib(r.relay_rss_peak_kib),
        mib(r.relay_rss_end_kib),
        r.send_wall_s,
        r.relay_cpu_s
            .map_or("not sampled".into(), |c| format!("{c:.1} s")),
        r.generator_cpu_s,
        r.floor_fsync_us,
        r.floor_healthz_us,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_pair_number_and_are_distinct() {
        let epoch = Instant::now();
        let a = message(7, 1, epoch, 64);
        let b = message(7, 2, epoch, 64);
        assert_eq!(a.len(), 64);
        assert_ne!(a[HEADER..], b[HEADER..]);
        assert_eq!(u32::from_be_bytes([a[0], a[1], a[2], a[3]]), 7);
        assert_eq!(lat(vec![]).n, 0);
        assert_eq!(lat(vec![5, 1, 3]).p50, 3);
    }
}
