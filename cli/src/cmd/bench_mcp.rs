//! `wire bench-mcp` (hidden): `wire mcp` as a host runs it, measured (docs/BENCHMARKS.md).
//!
//! Two agents on a relay on loopback, each with its daemon, paired through real `wire`
//! processes. Then: how long a freshly spawned `wire mcp` takes to answer `initialize` (the
//! daemon warm), and the round trip of `tools/call` for `wire_peers` (a read) and `wire_send`
//! (a send, stored at the peer's relay) through one running server, p50/p99.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tool calls timed per tool.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Server spawns timed.
    #[arg(long, default_value_t = 50)]
    spawns: usize,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    n: usize,
    p50: u64,
    p99: u64,
    max: u64,
}

fn percentiles(mut v: Vec<u64>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Percentiles {
        n: v.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: *v.last().unwrap_or(&0),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    ready_us: Percentiles,
    wire_peers_us: Percentiles,
    wire_send_us: Percentiles,
    /// The same send as a whole `wire send` process (daemon warm), in the same run: the floor
    /// the tool call is compared with.
    send_process_us: Percentiles,
    /// Floors: an fsync of 512 B in place (a journal frame, p50) and an empty request to the
    /// relay (p50). A `wire_send` is the daemon's journaled append and the relay's, in series.
    fsync_overwrite_us_p50: u64,
    healthz_us_p50: u64,
}

struct Procs {
    relay: Child,
    exe: PathBuf,
    homes: Vec<PathBuf>,
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

fn wire(exe: &Path, home: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(exe)
        .args(args)
        .arg("--json")
        .env("WIRE_HOME", home)
        .env_remove("WIRE_SESSION")
        .env_remove("WIRE_NO_DAEMON")
        .output()?;
    if !out.status.success() {
        bail!(
            "wire {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

/// One `wire mcp` child on pipes.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next: u64,
}

impl Server {
    fn spawn(exe: &Path, home: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(exe)
            .arg("mcp")
            .env("WIRE_HOME", home)
            .env_remove("WIRE_SESSION")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot spawn wire mcp")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        Ok(Server {
            child,
            stdin,
            stdout,
            next: 0,
        })
    }

    fn ask(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next += 1;
        let id = self.next;
        let line = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        loop {
            let mut l = String::new();
            if self.stdout.read_line(&mut l)? == 0 {
                bail!("wire mcp closed its stdout");
            }
            let v: Value = serde_json::from_str(&l)?;
            if v["id"] == id {
                if v.get("error").is_some() {
                    bail!("{method}: {v}");
                }
                return Ok(v["result"].clone());
            }
        }
    }

    fn initialize(&mut self) -> anyhow::Result<()> {
        self.ask(
            "initialize",
            json!({ "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": { "name": "bench", "version": "0" } }),
        )?;
        writeln!(
            self.stdin,
            r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
        )?;
        Ok(())
    }

    fn call(&mut self, name: &str, arguments: Value) -> anyhow::Result<Value> {
        let r = self.ask(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )?;
        if r["isError"] == true {
            bail!("{name}: {r}");
        }
        Ok(r)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let root = tempfile::Builder::new()
        .prefix("wire-bench-mcp-")
        .tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (ha, hb) = (root.path().join("a"), root.path().join("b"));
    let relay = Command::new(&exe)
        .args([
            "relay-server",
            "--no-rate-limits",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(root.path().join("relay"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _procs = Procs {
        relay,
        exe: exe.clone(),
        homes: vec![ha.clone(), hb.clone()],
    };
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end {
            bail!("the relay did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    wire(&exe, &ha, &["init", "alice", "--relay", &url])?;
    wire(&exe, &hb, &["init", "bob", "--relay", &url])?;
    let bob = format!("bob@127.0.0.1:{port}");
    wire(&exe, &ha, &["dial", &bob])?;
    let end = Instant::now() + Duration::from_secs(20);
    let nick = loop {
        let p = wire(&exe, &hb, &["pending"])?;
        if let Some(n) = p["pending"][0]["nickname"].as_str() {
            break n.to_owned();
        }
        if Instant::now() > end {
            bail!("bob got no request");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    wire(&exe, &hb, &["accept", &nick])?;
    let end = Instant::now() + Duration::from_secs(20);
    while wire(&exe, &ha, &["peers"])?["peers"][0]["state"] != "paired" {
        if Instant::now() > end {
            bail!("alice never saw bob accept");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    eprintln!("bench-mcp: ready after spawn");
    let mut ready = Vec::with_capacity(args.spawns);
    for _ in 0..args.spawns {
        let t = Instant::now();
        let mut s = Server::spawn(&exe, &ha)?;
        s.initialize()?;
        ready.push(t.elapsed().as_micros() as u64);
    }

    let mut s = Server::spawn(&exe, &ha)?;
    s.initialize()?;
    // Warm up the connection paths once.
    s.call("wire_peers", json!({}))?;
    eprintln!("bench-mcp: wire_peers");
    let mut peers = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let t = Instant::now();
        s.call("wire_peers", json!({}))?;
        peers.push(t.elapsed().as_micros() as u64);
    }
    eprintln!("bench-mcp: wire_send");
    let mut sends = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let t = Instant::now();
        let r = s.call(
            "wire_send",
            json!({ "peer": bob, "body": format!("bench {i}") }),
        )?;
        sends.push(t.elapsed().as_micros() as u64);
        let outcome = &r["structuredContent"]["outcome"];
        if outcome != "stored" {
            bail!("send {i} was not stored: {r}");
        }
    }
    eprintln!("bench-mcp: wire send processes");
    let mut procs = Vec::with_capacity(args.spawns);
    for i in 0..args.spawns {
        let t = Instant::now();
        let v = wire(&exe, &ha, &["send", &bob, &format!("process {i}")])?;
        procs.push(t.elapsed().as_micros() as u64);
        if v["outcome"] != "stored" {
            bail!("process send {i} was not stored: {v}");
        }
    }
    let fsync_overwrite_us_p50 =
        super::bench_line::fsync_overwrite_floor(&root.path().join("fsync-overwrite"), 300)?.p50;
    let healthz_us_p50 = healthz_floor(&url)?;
    let report = Report {
        machine: super::relay_bench::machine(),
        ready_us: percentiles(ready),
        wire_peers_us: percentiles(peers),
        wire_send_us: percentiles(sends),
        send_process_us: percentiles(procs),
        fsync_overwrite_us_p50,
        healthz_us_p50,
    };
    out.print(&report, || {
        format!(
            "{}\nready after spawn: p50 {} µs, p99 {} µs ({} spawns)\nwire_peers: p50 {} µs, p99 {} µs\nwire_send (stored): p50 {} µs, p99 {} µs ({} calls each)\n`wire send` process: p50 {} µs, p99 {} µs\nfloors: fsync in place p50 {} µs, healthz p50 {} µs\n",
            report.machine,
            report.ready_us.p50,
            report.ready_us.p99,
            report.ready_us.n,
            report.wire_peers_us.p50,
            report.wire_peers_us.p99,
            report.wire_send_us.p50,
            report.wire_send_us.p99,
            report.wire_peers_us.n,
            report.send_process_us.p50,
            report.send_process_us.p99,
            report.fsync_overwrite_us_p50,
            report.healthz_us_p50,
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// p50 of an empty `GET /healthz` on one kept-alive connection to the relay at `url`.
fn healthz_floor(url: &str) -> anyhow::Result<u64> {
    use std::io::Read;
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut v = Vec::with_capacity(500);
    let mut buf = vec![0u8; 4096];
    for _ in 0..500 {
        let t = Instant::now();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        let mut got = Vec::new();
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                bail!("the relay closed the connection");
            }
            got.extend_from_slice(&buf[..n]);
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                break;
            }
        }
        v.push(t.elapsed().as_micros() as u64);
    }
    Ok(percentiles(v).p50)
}
