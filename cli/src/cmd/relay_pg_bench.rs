//! `wire bench-relay --postgres-server URL`: relay instances on one PostgreSQL database.
//!
//! Floors first, in the same run: one fsync of a small write (in the bench's directory, the
//! file system the script puts PostgreSQL's data on), a `SELECT 1` round trip to the server,
//! and `GET /healthz` on a relay instance. Then single appends (one blob per request, every
//! client its own slot, owner token) through one instance on a fresh database, and through two
//! instances on another fresh database with the clients split between them (and, between the
//! two, an open load on one instance with the groups' wait and without it); then wake-ups: a
//! stream held on instance A, appends sent through instance B (and, for comparison, through A),
//! timed from the send to the record on the stream.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{
    Args, Client, Mix, Probe, Relay, clock_ticks, cpu_ticks, fsync_floor, healthz_floor, machine,
    ms, pick, progress, random_blob, row, thousands, timed_on, us,
};

pub(super) async fn bench(args: &Args, server: &str, root: &Path) -> anyhow::Result<()> {
    if args.clients < 2 {
        bail!("--clients must be at least 2 (they are split between two instances)");
    }
    let shown = wire_relay::store::redact(server);
    println!("{}", machine());
    println!();
    println!("PostgreSQL server: {shown} ({})", server_version(server)?);
    println!();
    println!("| measurement | result | floor in the same run |");
    println!("|---|---|---|");
    let fsync = fsync_floor(root)?;
    row("floor: fsync of a 4 KiB write (p50 of 200)", &us(fsync), "");
    let (rt50, rt99) = select_one(server, 2000)?;
    row(
        "floor: `SELECT 1` round trip to the server, prepared (p50 / p99 of 2,000)",
        &format!("{} / {}", us(rt50), us(rt99)),
        "",
    );
    let (c50, c99) = durable_commit(
        server,
        &format!("wire_bench_{}_floor", std::process::id()),
        500,
    )?;
    row(
        "floor: a one-row INSERT committed durably (autocommit, synchronous_commit = on), one client (p50 / p99 of 500)",
        &format!("{} / {}", us(c50), us(c99)),
        "",
    );
    let warmup = Duration::from_secs(1);
    let window = Duration::from_secs(args.seconds.max(1));
    let clk = clock_ticks();
    let run = std::process::id();

    // ---- One instance.
    let db1 = fresh_database(server, &format!("wire_bench_{run}_one"))?;
    let a = Relay::spawn_with(&root.join("one-a"), &["--store", &db1])?;
    progress(&format!("one instance: pid {} on {}", a.pid, a.addr));
    let health_rate =
        healthz_floor(a.addr, args.clients, warmup, window, " on one instance").await?;
    let floors = format!(
        "healthz {} req/s; fsync {}; SELECT 1 {}; one-row commit {}",
        thousands(health_rate),
        us(fsync),
        us(rt50),
        us(c50)
    );
    let cpu = ServerCpu::start();
    let one = appends(args, &[a.addr], Some(Probe::of(&a, clk)), warmup, window).await?;
    row(
        &format!(
            "one instance: single-blob append, {} B, {} clients, durable: appends/s; ack p50 / p99",
            args.blob_bytes, args.clients
        ),
        &format!(
            "{}/s; {} / {}",
            thousands(one.rate()),
            ms(one.pct(0.5)),
            ms(one.pct(0.99))
        ),
        &floors,
    );
    if let Some(w) = &one.window {
        w.row("the commits in that run");
    }
    cpu.row(
        "  the PostgreSQL server's CPU in that run (warm-up included; 100% = one core)",
        &one,
        clk,
    );
    drop(a);

    // ---- An open load on one instance: the price of the groups' wait (decision (at)).
    let mut open_rows = Vec::new();
    for wait_us in ["1000", "0"] {
        let a = Relay::spawn_with(
            &root.join(format!("open-{wait_us}")),
            &["--store", &db1, "--group-wait-us", wait_us],
        )?;
        progress(&format!(
            "open load, group wait {wait_us} µs: pid {} on {}",
            a.pid, a.addr
        ));
        open_rows.push(open_load(args, a.addr, warmup, window).await?);
    }
    row(
        &format!(
            "one instance, an open load: {} clients each pausing 0–{} ms (uniform) after each ack: appends/s; ack p50 / p99, groups waiting up to 1 ms for the answered (the default)",
            args.clients,
            2 * OPEN_THINK_MEAN_MS
        ),
        &format!(
            "{}/s; {} / {}",
            thousands(open_rows[0].rate()),
            ms(open_rows[0].pct(0.5)),
            ms(open_rows[0].pct(0.99))
        ),
        &format!(
            "never waiting (`--group-wait-us 0`): {}/s; {} / {}",
            thousands(open_rows[1].rate()),
            ms(open_rows[1].pct(0.5)),
            ms(open_rows[1].pct(0.99))
        ),
    );

    // ---- Two instances on one database.
    let db2 = fresh_database(server, &format!("wire_bench_{run}_two"))?;
    let a = Relay::spawn_with(&root.join("two-a"), &["--store", &db2])?;
    let b = Relay::spawn_with(&root.join("two-b"), &["--store", &db2])?;
    progress(&format!(
        "two instances: pids {} and {} on {} and {}",
        a.pid, b.pid, a.addr, b.addr
    ));
    let cpu = ServerCpu::start();
    let two = appends(
        args,
        &[a.addr, b.addr],
        Some(Probe::of(&a, clk)),
        warmup,
        window,
    )
    .await?;
    row(
        &format!(
            "two instances, one database: single-blob append, {} B, {} clients split between them: appends/s (both); ack p50 / p99",
            args.blob_bytes, args.clients
        ),
        &format!(
            "{}/s; {} / {}",
            thousands(two.rate()),
            ms(two.pct(0.5)),
            ms(two.pct(0.99))
        ),
        &format!("one instance {}/s; {floors}", thousands(one.rate())),
    );
    if let Some(w) = &two.window {
        w.row("the commits of instance A in that run");
    }
    cpu.row(
        "  the PostgreSQL server's CPU in that run (warm-up included; 100% = one core)",
        &two,
        clk,
    );

    // ---- Wake-ups.
    let samples = args.wake_samples.max(1);
    progress(&format!("wake-ups, {samples} each way"));
    let across = wake(a.addr, b.addr, samples, args.blob_bytes).await?;
    let local = wake(a.addr, a.addr, samples, args.blob_bytes).await?;
    row(
        &format!(
            "wake-up across instances: append sent through B → the record on a stream held on A, p50 / p99 (n = {samples}); B's 2xx p50"
        ),
        &format!(
            "{} / {}; {}",
            ms(pick(&across.delivered, 0.5)),
            ms(pick(&across.delivered, 0.99)),
            ms(pick(&across.acked, 0.5))
        ),
        &format!(
            "same instance (through A, stream on A) {} / {}; SELECT 1 {}",
            ms(pick(&local.delivered, 0.5)),
            ms(pick(&local.delivered, 0.99)),
            us(rt50)
        ),
    );
    drop(a);
    drop(b);
    drop_database(server, &format!("wire_bench_{run}_one"))?;
    drop_database(server, &format!("wire_bench_{run}_two"))?;
    Ok(())
}

/// Single appends from `args.clients` clients, client `i` through `addrs[i % n]` to a slot of
/// its own made through the same instance.
async fn appends(
    args: &Args,
    addrs: &[SocketAddr],
    probe: Option<Probe>,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<super::Load> {
    let mut owners = Vec::new();
    for i in 0..args.clients {
        let mut c = Client::connect(addrs[i % addrs.len()]).await?;
        owners.push(c.alloc_slot().await?);
    }
    let owners = std::sync::Arc::new(owners);
    let blob_bytes = args.blob_bytes;
    timed_on(
        addrs,
        args.clients,
        warmup,
        window,
        probe,
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
    .await
}

/// The mean pause of a client of the open load after each acknowledgement.
const OPEN_THINK_MEAN_MS: u64 = 4;

/// Single appends from `args.clients` clients through `addr`, each pausing a random 0 to
/// 2 × [`OPEN_THINK_MEAN_MS`] after each acknowledgement (so that the clients just answered do
/// not come straight back, as in a closed loop); only the appends are timed.
async fn open_load(
    args: &Args,
    addr: SocketAddr,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<super::Load> {
    let start = Instant::now() + warmup;
    let end = start + window;
    let mut tasks = Vec::with_capacity(args.clients);
    for worker in 0..args.clients {
        let mut c = Client::connect(addr).await?;
        let (slot, token) = c.alloc_slot().await?;
        let blob_bytes = args.blob_bytes;
        tasks.push(tokio::spawn(async move {
            let (mut items, mut lat) = (0u64, Vec::new());
            let mut i = 0u64;
            // The same pauses in every run.
            let mut pauses = Mix::new(worker as u64, 0);
            while Instant::now() < end {
                let pause_us = pauses.next() % (2 * OPEN_THINK_MEAN_MS * 1000 + 1);
                tokio::time::sleep(Duration::from_micros(pause_us)).await;
                let t0 = Instant::now();
                c.append_one(&slot, &token, random_blob(worker as u64, i, blob_bytes))
                    .await?;
                let t1 = Instant::now();
                i += 1;
                if t0 >= start && t1 <= end {
                    items += 1;
                    lat.push(t1 - t0);
                }
            }
            anyhow::Ok((items, lat))
        }));
    }
    let (mut items, mut lat) = (0, Vec::new());
    for t in tasks {
        let (n, l) = t.await??;
        items += n;
        lat.extend(l);
    }
    lat.sort();
    Ok(super::Load {
        items,
        lat,
        elapsed: window,
        window: None,
    })
}

struct Wakes {
    /// Send → record on the stream, sorted.
    delivered: Vec<Duration>,
    /// Send → the append's 2xx, sorted.
    acked: Vec<Duration>,
}

/// A stream on `held` for a new slot; `samples` appends through `via`, one at a time.
async fn wake(
    held: SocketAddr,
    via: SocketAddr,
    samples: usize,
    blob_bytes: usize,
) -> anyhow::Result<Wakes> {
    let (slot, token) = Client::connect(held).await?.alloc_slot().await?;
    let mut stream = Stream::open(held, &slot, &token).await?;
    let mut c = Client::connect(via).await?;
    // The subscription is live once one blob came through it.
    let mut seq = 1u64;
    c.append_one(&slot, &token, random_blob(u64::MAX, 0, blob_bytes))
        .await?;
    stream.until(seq).await?;
    let (mut delivered, mut acked) = (Vec::new(), Vec::new());
    for i in 0..samples as u64 {
        seq += 1;
        let blob = random_blob(u64::MAX, i + 1, blob_bytes);
        let t0 = Instant::now();
        let (ack, got) = tokio::join!(
            async {
                c.append_one(&slot, &token, blob).await?;
                anyhow::Ok(t0.elapsed())
            },
            async {
                stream.until(seq).await?;
                anyhow::Ok(t0.elapsed())
            }
        );
        acked.push(ack?);
        delivered.push(got?);
        // Let the relays settle, so that samples do not queue behind each other.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    delivered.sort();
    acked.sort();
    Ok(Wakes { delivered, acked })
}

/// A `GET /v1/slots/{slot}/stream` response, read record by record.
struct Stream {
    body: Incoming,
    buf: BytesMut,
}

impl Stream {
    async fn open(addr: SocketAddr, slot: &str, token: &str) -> anyhow::Result<Stream> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the relay at {addr}"))?;
        tcp.set_nodelay(true)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("/v1/slots/{slot}/stream?after=0"))
            .header(header::HOST, addr.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::<Bytes>::new())?;
        let resp = send.send_request(req).await?;
        if resp.status() != StatusCode::OK {
            bail!("GET stream: {}", resp.status());
        }
        // The connection stays open as long as the body is read.
        std::mem::forget(send);
        Ok(Stream {
            body: resp.into_body(),
            buf: BytesMut::new(),
        })
    }

    /// Reads records until the one with `seq` (heartbeats and earlier records are skipped).
    async fn until(&mut self, seq: u64) -> anyhow::Result<()> {
        loop {
            while self.buf.len() >= 12 {
                let len = u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
                    as usize;
                if self.buf.len() < 12 + len {
                    break;
                }
                let got = self.buf.get_u64();
                self.buf.advance(4 + len);
                if got == seq {
                    return Ok(());
                }
                if got > seq {
                    bail!("the stream skipped seq {seq} (got {got})");
                }
            }
            let frame = match self.body.frame().await {
                Some(f) => f.context("reading the stream")?,
                None => bail!("the stream ended before seq {seq}"),
            };
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

/// The `postgres` client runs a runtime of its own: never on one of the bench's async workers.
fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| anyhow::anyhow!("the PostgreSQL helper thread panicked"))?
}

fn admin(server: &str) -> anyhow::Result<postgres::Client> {
    postgres::Client::connect(server, postgres::NoTls).with_context(|| {
        format!(
            "cannot connect to PostgreSQL at {}",
            wire_relay::store::redact(server)
        )
    })
}

fn server_version(server: &str) -> anyhow::Result<String> {
    let server = server.to_owned();
    on_thread(move || {
        let mut c = admin(&server)?;
        let mut settings = Vec::new();
        for name in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
        ] {
            let v: String = c.query_one(&format!("SHOW {name}"), &[])?.get(0);
            settings.push(format!("{name} = {v}"));
        }
        Ok(settings.join(", "))
    })
}

/// `n` prepared `SELECT 1`s one after another: (p50, p99).
fn select_one(server: &str, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let server = server.to_owned();
    on_thread(move || {
        let mut c = admin(&server)?;
        let stmt = c.prepare("SELECT 1")?;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            c.query_one(&stmt, &[])?;
            times.push(t.elapsed());
        }
        times.sort();
        Ok((pick(&times, 0.5), pick(&times, 0.99)))
    })
}

/// CPU ticks of every PostgreSQL process on this machine (`None`: none runs here, the server
/// is elsewhere). The relay instances' connections live through a load, so their backends'
/// time is all counted.
fn server_ticks() -> Option<u64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() == "postgres" {
            *total.get_or_insert(0) += cpu_ticks(pid);
        }
    }
    total
}

/// The server's CPU over a load: (cores busy, per append), from [`server_ticks`] before and
/// after it (its warm-up included).
struct ServerCpu {
    ticks: Option<u64>,
    at: Instant,
}

impl ServerCpu {
    fn start() -> ServerCpu {
        ServerCpu {
            ticks: server_ticks(),
            at: Instant::now(),
        }
    }

    fn row(self, what: &str, load: &super::Load, clk: f64) {
        let (Some(before), Some(after)) = (self.ticks, server_ticks()) else {
            row(
                what,
                "not measured (the server does not run on this machine)",
                "",
            );
            return;
        };
        let secs = (after.saturating_sub(before)) as f64 / clk;
        let busy = secs / self.at.elapsed().as_secs_f64();
        row(
            what,
            &format!(
                "{:.0}% of a core; {} µs per append",
                busy * 100.0,
                thousands(busy / load.rate().max(1.0) * 1e6)
            ),
            "",
        );
    }
}

/// `n` one-row INSERTs, each its own durable transaction, in a scratch database: (p50, p99).
fn durable_commit(server: &str, db: &str, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let url = fresh_database(server, db)?;
    let times = on_thread(move || {
        let mut c = admin(&url)?;
        c.batch_execute("SET synchronous_commit = on; CREATE TABLE floor (x bigint)")?;
        let stmt = c.prepare("INSERT INTO floor VALUES ($1)")?;
        let mut times = Vec::with_capacity(n);
        for i in 0..n as i64 {
            let t = Instant::now();
            c.execute(&stmt, &[&i])?;
            times.push(t.elapsed());
        }
        times.sort();
        Ok((pick(&times, 0.5), pick(&times, 0.99)))
    })?;
    drop_database(server, db)?;
    Ok(times)
}

/// A new, empty database `name` on `server`; its URL.
fn fresh_database(server: &str, name: &str) -> anyhow::Result<String> {
    let Some((scheme, rest)) = server.split_once("://") else {
        bail!("--postgres-server must be a postgres:// URL");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let url = format!("{scheme}://{authority}/{name}");
    let (server, db) = (server.to_owned(), name.to_owned());
    on_thread(move || {
        let mut c = admin(&server)?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))?;
        c.batch_execute(&format!("CREATE DATABASE {db}"))?;
        Ok(())
    })?;
    Ok(url)
}

fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let (server, db) = (server.to_owned(), name.to_owned());
    on_thread(move || {
        let mut c = admin(&server)?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
        Ok(())
    })
}
