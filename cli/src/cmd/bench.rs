//! `wire bench` (hidden): end-to-end measurements of the local engine on real files, printed as
//! the Markdown rows of `docs/BENCHMARKS.md`, each beside the floor measured in the same run.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use wire_engine::{Home, Session, SystemClock};
use wire_log::{Event, Kind, LogId, SecretKey};

use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the large log that verify and rebuild are measured on.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Single durable appends to time.
    #[arg(long, default_value_t = 500)]
    appends: usize,
    /// Work here instead of a temporary directory (kept afterwards).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn run(_out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    let tmp;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("wire-bench-{}", std::process::id()));
            tmp
        }
    };
    let home = Home::new(&root);
    println!("| measurement | result | floor in the same run |");
    println!("|---|---|---|");

    // Floors: one fsync of a small write, one signature, one verification.
    std::fs::create_dir_all(&root)?;
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(root.join("fsync-probe"))?;
    let fsync = median(
        (0..200)
            .map(|_| {
                let t = Instant::now();
                let _ = f.write_all(&[0u8; 4096]);
                let _ = f.sync_data();
                t.elapsed()
            })
            .collect(),
    );
    let key = SecretKey::from_seed(&[42; 32]);
    let ev = || Event {
        author: key.author(),
        log: LogId::self_log(&key.author()),
        seq: 1,
        prev: None,
        ts_ms: 0,
        kind: Kind::MESSAGE,
        body: vec![b'x'; 100],
    };
    let sign = median(
        (0..2000)
            .map(|_| {
                let e = ev();
                let t = Instant::now();
                let _ = e.sign(&key);
                t.elapsed()
            })
            .collect(),
    );
    let signed = ev().sign(&key).context("sign")?;
    let verify1 = median(
        (0..2000)
            .map(|_| {
                let d = wire_log::SignedEvent::decode(signed.signed_bytes());
                let t = Instant::now();
                let _ = d.map(|d| d.verify());
                t.elapsed()
            })
            .collect(),
    );
    println!("| floor: fsync of a 4 KiB write (p50) | {} | |", us(fsync));
    println!(
        "| floor: Ed25519 sign of one event incl. encoding (p50) | {} | |",
        us(sign)
    );
    println!(
        "| floor: decode + verify one event (p50) | {} | |",
        us(verify1)
    );

    // Single durable appends.
    let session = Session::create(
        &home,
        "bench",
        "bench",
        Some(SecretKey::from_seed(&[43; 32])),
        Box::new(SystemClock),
    )?;
    let log = session.self_log();
    let single: Vec<Duration> = (0..args.appends)
        .map(|_| {
            let t = Instant::now();
            let r = session.append(log, Kind::MESSAGE, vec![b'm'; 100]);
            let d = t.elapsed();
            r.map(|_| d)
        })
        .collect::<Result<_, _>>()?;
    println!(
        "| single durable append, 100 B body (p50 / p99) | {} / {} | fsync {} |",
        us(median(single.clone())),
        us(pct(single, 0.99)),
        us(fsync)
    );

    // Batched appends up to the large log.
    let batch = 1000u64;
    let mut left = args.events.saturating_sub(session.store().len()?);
    let t = Instant::now();
    let mut appended = 0u64;
    while left > 0 {
        let n = left.min(batch);
        session.append_batch(
            (0..n)
                .map(|_| (log, Kind::MESSAGE, vec![b'b'; 100]))
                .collect(),
        )?;
        left -= n;
        appended += n;
    }
    let batched = t.elapsed();
    println!(
        "| engine batched append (sign on all cores + store + project), 1,000 per transaction | {:.0} events/s | sign alone {:.0}/s on one core |",
        appended as f64 / batched.as_secs_f64(),
        1.0 / sign.as_secs_f64()
    );

    // Batched append at the store level (events signed beforehand).
    let other = SecretKey::from_seed(&[44; 32]);
    let store_path = root.join("store-only.redb");
    let store = wire_log::EventStore::create(&store_path, other.author())?;
    let olog = LogId::self_log(&other.author());
    let mut prev = None;
    let mut pre = Vec::with_capacity(args.events as usize);
    for seq in 1..=args.events.min(200_000) {
        let e = Event {
            author: other.author(),
            log: olog,
            seq,
            prev,
            ts_ms: seq,
            kind: Kind::MESSAGE,
            body: vec![b's'; 100],
        }
        .sign(&other)?;
        prev = Some(e.id());
        pre.push(e.signed_bytes().to_vec());
    }
    let t = Instant::now();
    for chunk in pre.chunks(batch as usize) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        store.append_batch(&refs)?;
    }
    let store_rate = pre.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "| store batched append (decode + batch verify + checks + store), 1,000 per transaction | {store_rate:.0} events/s | verify alone {:.0}/s on one core |",
        1.0 / verify1.as_secs_f64()
    );
    drop(store);

    // Verify and rebuild on the large log.
    let total = session.store().len()?;
    let t = Instant::now();
    let report = session
        .verify(&mut |_| {})
        .map_err(|f| anyhow::anyhow!("verify failed: {f}"))?;
    let verify_time = t.elapsed();
    println!(
        "| `wire verify` engine audit on {} events | {:.0} events/s ({:.2} s) | verify alone {:.0}/s on one core |",
        report.events,
        total as f64 / verify_time.as_secs_f64(),
        verify_time.as_secs_f64(),
        1.0 / verify1.as_secs_f64()
    );
    let t = Instant::now();
    session.rebuild()?;
    println!(
        "| projection rebuild from the log, {total} events | {:.2} s | |",
        t.elapsed().as_secs_f64()
    );
    drop(session);

    // whoami as a whole process.
    let exe = std::env::current_exe()?;
    let runs: Vec<Duration> = (0..30)
        .map(|_| {
            let t = Instant::now();
            let status = Command::new(&exe)
                .args(["whoami", "--json", "--session", "bench"])
                .env("WIRE_HOME", &root)
                .stdout(std::process::Stdio::null())
                .status();
            let d = t.elapsed();
            status.map(|s| (s.success(), d))
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(ok, d)| {
            if ok {
                Ok(d)
            } else {
                Err(anyhow::anyhow!("whoami failed"))
            }
        })
        .collect::<Result<_, _>>()?;
    let spawn: Vec<Duration> = (0..30)
        .map(|_| {
            let t = Instant::now();
            let _ = Command::new(&exe)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .status();
            t.elapsed()
        })
        .collect();
    println!(
        "| `wire whoami` as a whole process on a {total}-event store (p50) | {} | `wire --version` process {} |",
        ms(median(runs)),
        ms(median(spawn))
    );
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(ExitCode::SUCCESS)
}
