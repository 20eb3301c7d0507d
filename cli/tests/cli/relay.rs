//! `wire relay-server` as a real process on real sockets: appends and reads over TCP and a Unix
//! socket, clean shutdown on SIGTERM, recovery after restarts and after SIGKILL at random
//! instants, `--local-only`, live streams, and bounded memory under a subscriber that never reads.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wire_relay::frames;

use crate::http::{self, Response, Target};

/// Generous: these bound waits for things that normally take milliseconds.
const START_DEADLINE: Duration = Duration::from_secs(60);
const EXIT_DEADLINE: Duration = Duration::from_secs(20);
const POLL_DEADLINE: Duration = Duration::from_secs(60);
const RECORD_MAX: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The relay process

/// A running `wire relay-server`, killed (SIGKILL) on drop if still running.
#[derive(Debug)]
struct Relay {
    child: Child,
    addr: SocketAddr,
    info: Value,
    log: PathBuf,
}

/// The command for a relay whose home and data live under `dir`; stderr goes to `dir/relay.log`.
fn relay_command(dir: &Path, args: &[&str]) -> (Command, PathBuf) {
    let home = dir.join("home");
    let data = dir.join("data");
    std::fs::create_dir_all(&home).expect("home dir");
    let log = dir.join("relay.log");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire"));
    cmd.arg("relay-server")
        .arg("--json")
        .arg("--data")
        .arg(&data)
        .args(args);
    crate::line::clean_env(&mut cmd, &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    (cmd, log)
}

impl Relay {
    /// Starts a relay on a free loopback port (unless `args` has its own `--bind`) and waits for
    /// its JSON start line.
    fn start(dir: &Path, args: &[&str]) -> Relay {
        Relay::start_with(dir, args, &[])
    }

    /// [`Relay::start`] with `vars` in the relay's environment.
    fn start_with(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Relay {
        let mut all = args.to_vec();
        if !all.contains(&"--bind") {
            all.extend(["--bind", "127.0.0.1:0"]);
        }
        let (mut cmd, log) = relay_command(dir, &all);
        cmd.envs(vars.iter().copied());
        let mut child = cmd.spawn().expect("spawn wire relay-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so that the relay never writes into a closed pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let line = rx.recv_timeout(START_DEADLINE).unwrap_or_default();
        let info: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "the relay did not announce itself (start line {line:?}, exit {status:?}); stderr:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let listening = info["listening"].as_str().unwrap_or_default();
        let addr: SocketAddr = listening
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad start line: {info}"));
        Relay {
            child,
            addr,
            info,
            log,
        }
    }

    fn tcp(&self) -> Target {
        Target::Tcp(self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits for the process to end, or `None` after `deadline`.
    fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM; asserts a clean exit (status 0) within [`EXIT_DEADLINE`].
    fn stop(mut self) {
        self.signal("TERM");
        let status = self.wait_exit(EXIT_DEADLINE);
        assert!(
            status.is_some(),
            "the relay did not exit within {EXIT_DEADLINE:?} of SIGTERM; stderr:\n{}",
            self.stderr()
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "the relay did not exit 0 after SIGTERM ({status:?}); stderr:\n{}",
            self.stderr()
        );
    }

    /// SIGKILL, and reap.
    fn crash(mut self) {
        self.signal("KILL");
        let status = self.wait_exit(EXIT_DEADLINE);
        assert!(status.is_some(), "the relay survived SIGKILL");
    }

    /// A field of /proc/<pid>/status, in KiB (VmRSS, VmHWM).
    fn proc_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The API, as a client

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get(t: &Target, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http::request(t, "GET", path, &headers, b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn healthz(t: &Target) {
    let r = get(t, "/healthz", None);
    assert_eq!((r.status, r.text().trim()), (200, "ok"), "GET /healthz");
}

fn stats(t: &Target) -> Value {
    let r = get(t, "/stats.json", None);
    assert_eq!(r.status, 200, "GET /stats.json: {}", r.text());
    r.json()
}

/// A new slot: (slot id, owner token).
fn allocate(t: &Target) -> (String, String) {
    let r = http::request(t, "POST", "/v1/slots", &[], b"").expect("POST /v1/slots");
    assert_eq!(r.status, 201, "POST /v1/slots: {}", r.text());
    let v = r.json();
    let slot = v["slot"].as_str().expect("slot").to_owned();
    let token = v["token"].as_str().expect("token").to_owned();
    (slot, token)
}

/// A new append capability for `slot`.
fn mint_cap(t: &Target, slot: &str, owner: &str) -> String {
    let auth = bearer(owner);
    let r = http::request(
        t,
        "POST",
        &format!("/v1/slots/{slot}/caps"),
        &[("Authorization", &auth)],
        b"",
    )
    .expect("POST caps");
    assert_eq!(r.status, 201, "POST caps: {}", r.text());
    let v = r.json();
    assert!(v["cap_id"].is_string(), "{v}");
    v["cap"].as_str().expect("cap").to_owned()
}

fn append(t: &Target, slot: &str, cred: &str, blob: &[u8]) -> std::io::Result<Response> {
    let auth = bearer(cred);
    http::request(
        t,
        "POST",
        &format!("/v1/slots/{slot}/blobs"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/octet-stream"),
        ],
        blob,
    )
}

fn append_batch(
    t: &Target,
    slot: &str,
    cred: &str,
    blobs: &[Vec<u8>],
) -> std::io::Result<Response> {
    let auth = bearer(cred);
    let body = frames::encode_blobs(blobs.iter().map(Vec::as_slice));
    http::request(
        t,
        "POST",
        &format!("/v1/slots/{slot}/batch"),
        &[
            ("Authorization", &auth),
            ("Content-Type", frames::BLOBS_CONTENT_TYPE),
        ],
        &body,
    )
}

/// Appends one blob that must be new; returns its seq.
fn append_new(t: &Target, slot: &str, cred: &str, blob: &[u8]) -> u64 {
    let r = append(t, slot, cred, blob).expect("append");
    assert_eq!(r.status, 201, "append: {}", r.text());
    let v = r.json();
    assert_eq!(v["stored"], true, "{v}");
    let hash = v["hash"].as_str().unwrap_or_default();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    v["seq"].as_u64().expect("seq")
}

/// Appends a batch of blobs that must all be new; returns their seqs.
fn append_batch_new(t: &Target, slot: &str, cred: &str, blobs: &[Vec<u8>]) -> Vec<u64> {
    let r = append_batch(t, slot, cred, blobs).expect("batch");
    assert_eq!(r.status, 200, "batch: {}", r.text());
    let v = r.json();
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), blobs.len(), "{v}");
    results
        .iter()
        .map(|r| {
            assert_eq!(r["stored"], true, "{r}");
            r["seq"].as_u64().expect("seq")
        })
        .collect()
}

/// Every blob in the slot, in order, page by page.
fn read_all(t: &Target, slot: &str, owner: &str) -> Vec<(u64, Vec<u8>)> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut after = 0;
    loop {
        let r = get(
            t,
            &format!("/v1/slots/{slot}/blobs?after={after}&limit=4096"),
            Some(owner),
        );
        assert_eq!(r.status, 200, "read: {}", r.text());
        assert_eq!(r.header("content-type"), Some(frames::RECORDS_CONTENT_TYPE));
        let page = frames::decode_records(&r.body, RECORD_MAX)
            .unwrap_or_else(|e| panic!("records body after={after}: {e}"));
        let more = r.header("wire-more") == Some("1");
        let last_seq: u64 = r
            .header("wire-last-seq")
            .and_then(|v| v.parse().ok())
            .expect("wire-last-seq header");
        for (seq, blob) in page.iter() {
            assert!(*seq > after, "seq {seq} is not after {after}");
            assert!(
                *seq <= last_seq,
                "seq {seq} beyond wire-last-seq {last_seq}"
            );
            after = *seq;
            out.push((*seq, blob.to_vec()));
        }
        if !more || page.is_empty() {
            return out;
        }
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after [`POLL_DEADLINE`].
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + POLL_DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "gave up after {POLL_DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// xorshift64*: enough randomness for kill instants and blob sizes, seeded per run (printed;
/// set WIRE_TEST_SEED to replay).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("WIRE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                t ^ (u64::from(std::process::id()) << 32)
            });
        eprintln!("random seed {seed} (WIRE_TEST_SEED={seed} replays it)");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// `len` bytes that depend on `tag`, so that blobs with different tags differ throughout.
fn filler(tag: &str, len: usize) -> Vec<u8> {
    let mut x = tag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let mut out = Vec::with_capacity(len + tag.len());
    out.extend_from_slice(tag.as_bytes());
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len.max(tag.len()));
    out
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn relay_serves_a_real_socket_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]);
    let t = relay.tcp();
    assert_eq!(relay.info["local_only"], false, "{}", relay.info);
    assert_eq!(
        relay.info["data"].as_str(),
        Some(dir.path().join("data").to_str().expect("utf-8")),
        "{}",
        relay.info
    );
    healthz(&t);

    let (slot, owner) = allocate(&t);
    let cap = mint_cap(&t, &slot, &owner);
    let text = b"hello, wire".to_vec();
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert_eq!(append_new(&t, &slot, &cap, &text), 1);
    assert_eq!(append_new(&t, &slot, &cap, &every_byte), 2);

    // A capability appends but cannot read.
    let r = get(&t, &format!("/v1/slots/{slot}/blobs"), Some(&cap));
    assert_eq!(r.status, 403, "reading with a capability: {}", r.text());

    let got = read_all(&t, &slot, &owner);
    assert_eq!(got, vec![(1, text), (2, every_byte)]);

    // A SIGHUP (a service manager's reload) does not stop a relay with no certificate.
    relay.signal("HUP");
    poll("the SIGHUP note in the relay's stderr", || {
        relay.stderr().contains("nothing to reload").then_some(())
    });
    healthz(&t);
    assert_eq!(read_all(&t, &slot, &owner).len(), 2);

    relay.stop();
}

#[test]
fn relay_keeps_every_blob_and_idempotency_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]);
    let t = relay.tcp();
    let (slot, owner) = allocate(&t);
    let cap = mint_cap(&t, &slot, &owner);

    let mut expected: Vec<(u64, Vec<u8>)> = Vec::new();
    for i in 0..40 {
        if i % 4 == 3 {
            let blobs: Vec<Vec<u8>> = (0..7)
                .map(|j| filler(&format!("batch {i}.{j} "), 10 + 97 * j))
                .collect();
            let seqs = append_batch_new(&t, &slot, &cap, &blobs);
            expected.extend(seqs.into_iter().zip(blobs));
        } else {
            let blob = filler(&format!("single {i} "), 1 + 531 * i);
            let seq = append_new(&t, &slot, &cap, &blob);
            expected.push((seq, blob));
        }
    }
    let seqs: Vec<u64> = expected.iter().map(|(s, _)| *s).collect();
    let dense: Vec<u64> = (1..=expected.len() as u64).collect();
    assert_eq!(seqs, dense, "seqs are assigned densely from 1");
    assert_eq!(read_all(&t, &slot, &owner), expected);
    relay.stop();

    let relay = Relay::start(dir.path(), &[]);
    let t = relay.tcp();
    healthz(&t);
    assert_eq!(
        read_all(&t, &slot, &owner),
        expected,
        "the blobs read after a restart differ from those appended before it"
    );

    // Re-appending an old blob, alone or in a batch, finds it at its old seq.
    let (old_seq, old) = expected[4].clone();
    let r = append(&t, &slot, &cap, &old).expect("append");
    assert_eq!(r.status, 200, "re-append after restart: {}", r.text());
    let v = r.json();
    assert_eq!(
        (v["stored"].clone(), v["seq"].as_u64()),
        (Value::Bool(false), Some(old_seq)),
        "a blob appended before the restart must be a duplicate at its old seq: {v}"
    );
    let (batch_old_seq, batch_old) = expected[10].clone();
    let fresh = filler("after restart ", 300);
    let r = append_batch(&t, &slot, &cap, &[batch_old, fresh.clone()]).expect("batch");
    assert_eq!(r.status, 200, "batch after restart: {}", r.text());
    let v = r.json();
    let next = expected.len() as u64 + 1;
    assert_eq!(v["results"][0]["stored"], false, "{v}");
    assert_eq!(v["results"][0]["seq"].as_u64(), Some(batch_old_seq), "{v}");
    assert_eq!(v["results"][1]["stored"], true, "{v}");
    assert_eq!(v["results"][1]["seq"].as_u64(), Some(next), "{v}");

    expected.push((next, fresh));
    assert_eq!(read_all(&t, &slot, &owner), expected);
    relay.stop();
}

/// One client thread of the crash test: appends distinct blobs until the relay goes away,
/// recording every acknowledged one.
fn crash_writer(
    t: &Target,
    slot: &str,
    cap: &str,
    tag: &str,
    stop: &AtomicBool,
    acks: &Mutex<Vec<(u64, Vec<u8>)>>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let size = |k: usize| 1 + (k * 7919) % 3000;
        if i.is_multiple_of(5) {
            let blobs: Vec<Vec<u8>> = (0..1 + i % 8)
                .map(|j| filler(&format!("{tag} n{i}.{j} "), size(i + j)))
                .collect();
            let Ok(r) = append_batch(t, slot, cap, &blobs) else {
                return;
            };
            if r.status == 200 {
                let v = r.json();
                let results = v["results"].as_array().cloned().unwrap_or_default();
                assert_eq!(results.len(), blobs.len(), "{v}");
                let mut acks = acks.lock().expect("acks");
                for (res, blob) in results.iter().zip(blobs) {
                    if let Some(seq) = res["seq"].as_u64() {
                        assert!(res.get("error").is_none(), "{res}");
                        acks.push((seq, blob));
                    }
                }
            }
        } else {
            let blob = filler(&format!("{tag} n{i} "), size(i));
            let Ok(r) = append(t, slot, cap, &blob) else {
                return;
            };
            if r.is_success() {
                let seq = r.json()["seq"].as_u64().expect("seq in a 2xx reply");
                acks.lock().expect("acks").push((seq, blob));
            }
        }
    }
}

/// Asserts every acknowledged blob is at its seq with its bytes, and no blob is stored twice.
fn check_acked(t: &Target, slot: &str, owner: &str, acked: &BTreeMap<u64, Vec<u8>>, when: &str) {
    let stored: BTreeMap<u64, Vec<u8>> = read_all(t, slot, owner).into_iter().collect();
    let mut lost = Vec::new();
    for (seq, blob) in acked {
        match stored.get(seq) {
            Some(b) if b == blob => {}
            Some(b) => panic!(
                "{when}: seq {seq} holds {} bytes starting {:?}, not the acknowledged {} bytes starting {:?}",
                b.len(),
                String::from_utf8_lossy(&b[..b.len().min(24)]),
                blob.len(),
                String::from_utf8_lossy(&blob[..blob.len().min(24)])
            ),
            None => lost.push(*seq),
        }
    }
    assert!(
        lost.is_empty(),
        "{when}: {} acknowledged blobs are missing, seqs {:?}…",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let mut seen = HashSet::new();
    for (seq, blob) in &stored {
        assert!(
            seen.insert(blob),
            "{when}: seq {seq} repeats an earlier blob"
        );
    }
}

/// A relay on `dir` for one crash round, and the slot, owner token and capability of the
/// rounds (made by the first).
fn start_round(
    dir: &Path,
    creds: &mut Option<(String, String, String)>,
) -> (Relay, Target, (String, String, String)) {
    let relay = Relay::start(dir, &[]);
    let t = relay.tcp();
    healthz(&t);
    let creds = creds
        .get_or_insert_with(|| {
            let (slot, owner) = allocate(&t);
            let cap = mint_cap(&t, &slot, &owner);
            (slot, owner, cap)
        })
        .clone();
    (relay, t, creds)
}

#[test]
fn relay_keeps_every_acknowledged_blob_through_sigkill() {
    const ROUNDS: usize = 5;
    const WRITERS: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::seeded();
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut creds: Option<(String, String, String)> = None;

    for round in 0..ROUNDS {
        let (relay, t, (slot, owner, cap)) = start_round(dir.path(), &mut creds);
        check_acked(&t, &slot, &owner, &acked, &format!("after crash {round}"));

        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (t, slot, cap) = (t.clone(), slot.clone(), cap.clone());
                let (stop, acks) = (stop.clone(), acks.clone());
                let tag = format!("r{round} w{w}");
                std::thread::spawn(move || crash_writer(&t, &slot, &cap, &tag, &stop, &acks))
            })
            .collect();
        // The kill lands at a random instant once appends are flowing.
        poll("the first acknowledged append", || {
            (!acks.lock().expect("acks").is_empty()).then_some(())
        });
        let delay = rng.range(50, 600);
        std::thread::sleep(Duration::from_millis(delay));
        relay.crash();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer thread panicked");
        }

        let acks = std::mem::take(&mut *acks.lock().expect("acks"));
        let n = acks.len();
        for (seq, blob) in acks {
            if let Some(prev) = acked.insert(seq, blob.clone()) {
                assert_eq!(
                    prev, blob,
                    "the relay acknowledged two different blobs at seq {seq}"
                );
            }
        }
        eprintln!(
            "crash round {round}: SIGKILL {delay} ms after the first ack; {n} blobs acknowledged this round, {} in all",
            acked.len()
        );
    }

    let relay = Relay::start(dir.path(), &[]);
    let t = relay.tcp();
    healthz(&t);
    let (slot, owner, cap) = creds.expect("credentials");
    check_acked(&t, &slot, &owner, &acked, "after the last crash");
    let last = *acked
        .keys()
        .next_back()
        .expect("some blob was acknowledged");
    let seq = append_new(&t, &slot, &cap, b"after every crash");
    assert!(
        seq > last,
        "new seq {seq} is not after the last acked {last}"
    );
    let r = get(&t, &format!("/v1/slots/{slot}"), Some(&owner));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["last_seq"].as_u64(), Some(seq), "{}", r.text());
    relay.stop();
}

/// Acknowledges `slot` through `through`; returns the answer's JSON.
fn ack(t: &Target, slot: &str, owner: &str, through: u64) -> Value {
    let auth = bearer(owner);
    let body = format!("{{\"through\":{through}}}");
    let r = http::request(
        t,
        "POST",
        &format!("/v1/slots/{slot}/ack"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .expect("POST ack");
    assert_eq!(r.status, 200, "ack through {through}: {}", r.text());
    r.json()
}

/// An acknowledgement is durable once answered, as an append is: acknowledgements share the
/// appends' log (ARCHITECTURE decision (am)), and a SIGKILL at a random instant while both flow
/// never brings an acknowledged blob back nor loses one after it.
#[test]
fn answered_acknowledgements_survive_sigkill_and_their_blobs_never_come_back() {
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::seeded();
    let mut kept: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut acked_through = 0u64;
    let mut creds: Option<(String, String, String)> = None;
    for round in 0..ROUNDS {
        let (relay, t, (slot, owner, cap)) = start_round(dir.path(), &mut creds);
        let stored: BTreeMap<u64, Vec<u8>> = read_all(&t, &slot, &owner).into_iter().collect();
        assert!(
            stored.keys().all(|seq| *seq > acked_through),
            "round {round}: blobs acknowledged through {acked_through} came back: {:?}",
            stored.keys().take(5).collect::<Vec<_>>()
        );
        check_acked(&t, &slot, &owner, &kept, &format!("after crash {round}"));
        let info = get(&t, &format!("/v1/slots/{slot}"), Some(&owner)).json();
        assert_eq!(
            info["blobs"].as_u64(),
            Some(stored.len() as u64),
            "round {round}: {info}"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let appended = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let (t, slot, cap) = (t.clone(), slot.clone(), cap.clone());
            let (stop, appended) = (stop.clone(), appended.clone());
            let tag = format!("ack round {round}");
            std::thread::spawn(move || crash_writer(&t, &slot, &cap, &tag, &stop, &appended))
        };
        // The reader acknowledges what it has read, in steps, until the kill.
        let kill_at = Instant::now() + Duration::from_millis(rng.range(200, 700));
        while Instant::now() < kill_at {
            let have = read_all(&t, &slot, &owner);
            if let Some(&(last, _)) = have.get(have.len() / 2) {
                let v = ack(&t, &slot, &owner, last);
                assert_eq!(v["acked_through"].as_u64(), Some(last), "{v}");
                acked_through = acked_through.max(last);
            }
            std::thread::sleep(Duration::from_millis(rng.range(1, 30)));
        }
        relay.crash();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer thread panicked");
        for (seq, blob) in std::mem::take(&mut *appended.lock().expect("appended")) {
            kept.insert(seq, blob);
        }
        kept.retain(|seq, _| *seq > acked_through);
        eprintln!(
            "ack round {round}: acknowledged through {acked_through}, {} blobs kept after it",
            kept.len()
        );
    }
    let relay = Relay::start(dir.path(), &[]);
    let t = relay.tcp();
    healthz(&t);
    let (slot, owner, cap) = creds.expect("credentials");
    let stored = read_all(&t, &slot, &owner);
    assert!(
        stored.iter().all(|(seq, _)| *seq > acked_through),
        "blobs acknowledged through {acked_through} came back"
    );
    check_acked(&t, &slot, &owner, &kept, "after the last crash");
    let info = get(&t, &format!("/v1/slots/{slot}"), Some(&owner)).json();
    assert_eq!(info["blobs"].as_u64(), Some(stored.len() as u64), "{info}");
    assert_eq!(
        info["acked_through"].as_u64(),
        Some(acked_through),
        "{info}"
    );
    let seq = append_new(&t, &slot, &cap, b"after the acknowledgements");
    assert!(seq > acked_through);
    relay.stop();
}

#[test]
fn relay_serves_the_same_api_on_a_private_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("relay.sock");
    let relay = Relay::start(dir.path(), &["--uds", sock.to_str().expect("utf-8 path")]);
    assert_eq!(
        relay.info["uds"].as_str(),
        Some(sock.to_str().expect("utf-8")),
        "{}",
        relay.info
    );
    let meta = std::fs::symlink_metadata(&sock).expect("socket file exists");
    assert!(meta.file_type().is_socket(), "{sock:?} is not a socket");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "the socket must be mode 0600"
    );

    let u = Target::Unix(sock.clone());
    healthz(&u);
    let (slot, owner) = allocate(&u);
    let cap = mint_cap(&u, &slot, &owner);
    let one = filler("over the unix socket ", 5000);
    let two = filler("over tcp ", 700);
    assert_eq!(append_new(&u, &slot, &cap, &one), 1);
    // Same relay, same store: TCP sees what the socket wrote, and the other way round.
    assert_eq!(append_new(&relay.tcp(), &slot, &cap, &two), 2);
    let both = vec![(1, one), (2, two)];
    assert_eq!(read_all(&u, &slot, &owner), both);
    assert_eq!(read_all(&relay.tcp(), &slot, &owner), both);

    relay.stop();
    assert!(
        std::fs::symlink_metadata(&sock).is_err(),
        "the socket file {sock:?} is still there after SIGTERM"
    );
}

#[test]
fn local_only_refuses_a_non_loopback_bind_and_hides_the_handle_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cmd, log) = relay_command(dir.path(), &["--local-only", "--bind", "0.0.0.0:0"]);
    let mut child = cmd.spawn().expect("spawn");
    let until = Instant::now() + EXIT_DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("--local-only --bind 0.0.0.0:0 did not refuse; it kept running");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("loopback"), "stderr: {stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON error document");
    assert!(
        doc["error"]
            .as_str()
            .unwrap_or_default()
            .contains("loopback"),
        "{doc}"
    );

    let relay = Relay::start(dir.path(), &["--local-only", "--bind", "127.0.0.1:0"]);
    assert_eq!(relay.info["local_only"], true, "{}", relay.info);
    let t = relay.tcp();
    healthz(&t);
    let r = get(&t, "/v1/handles", None);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["code"], "not_listed", "{}", r.text());
    let r = get(&t, "/v1/relay", None);
    assert_eq!(r.json()["local_only"], true, "{}", r.text());
    relay.stop();
}

/// Reads records off a stream until `n` have arrived.
fn read_records(s: &mut http::Streaming, n: usize) -> Vec<(u64, Vec<u8>)> {
    let mut reader = frames::RecordReader::new(RECORD_MAX);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while out.len() < n {
        while let Some((seq, blob)) = reader.next_record().expect("well-formed records") {
            out.push((seq, blob.to_vec()));
        }
        if out.len() >= n {
            break;
        }
        let got = s
            .body
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("stream read after {} records: {e}", out.len()));
        assert!(got > 0, "the stream ended after {} records", out.len());
        reader.feed(&buf[..got]);
    }
    assert!(
        reader.is_clean(),
        "a partial record beyond the {n} expected"
    );
    out
}

#[test]
fn a_stream_delivers_the_backlog_then_live_blobs_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]);
    let t = relay.tcp();
    let (slot, owner) = allocate(&t);
    let cap = mint_cap(&t, &slot, &owner);
    let blobs: Vec<Vec<u8>> = (0..5)
        .map(|i| filler(&format!("live {i} "), 100 + 40_000 * i))
        .collect();
    append_new(&t, &slot, &cap, &blobs[0]);
    append_new(&t, &slot, &cap, &blobs[1]);

    let auth = bearer(&owner);
    let mut s = http::open_stream(
        &t,
        "GET",
        &format!("/v1/slots/{slot}/stream?after=0"),
        &[("Authorization", &auth)],
    )
    .expect("open stream");
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some(frames::RECORDS_CONTENT_TYPE));
    assert_eq!(
        read_records(&mut s, 2),
        vec![(1, blobs[0].clone()), (2, blobs[1].clone())],
        "backlog"
    );

    // Live: appended while the stream is open, one single and a batch of two.
    append_new(&t, &slot, &cap, &blobs[2]);
    append_batch_new(&t, &slot, &cap, &blobs[3..]);
    let live = read_records(&mut s, 3);
    let expected: Vec<(u64, Vec<u8>)> = (3..=5).zip(blobs[2..].iter().cloned()).collect();
    assert_eq!(live, expected, "live records");

    // SIGTERM ends the open stream cleanly (its last chunk) and the relay exits 0.
    relay.stop();
    let mut rest = Vec::new();
    let end = s.body.read_to_end(&mut rest);
    assert!(
        end.is_ok(),
        "the stream did not end cleanly at shutdown: {end:?}"
    );
    let rest = frames::decode_records(&rest, RECORD_MAX).expect("records");
    assert!(rest.is_empty(), "records after the last append: {rest:?}");
}

/// The slow subscriber's flood: 240 distinct blobs of 256 KiB (60 MiB), in batches of 8.
const FLOOD_BLOBS: usize = 240;
const FLOOD_BLOB: usize = 256 * 1024;

/// A relay with one subscriber that asked for a slot's stream and never read a byte, after
/// [`FLOOD_BLOBS`] blobs were appended to the slot: far more than socket buffers hold.
#[derive(Debug)]
struct Stalled {
    relay: Relay,
    /// The subscriber's connection, kept open and never read.
    conn: http::Conn,
    slot: String,
    owner: String,
    /// VmRSS (KiB) once the subscriber registered, before the flood.
    baseline_kib: u64,
    _dir: tempfile::TempDir,
}

fn stall_a_subscriber() -> Stalled {
    const PER_BATCH: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]);
    let t = relay.tcp();
    let (slot, owner) = allocate(&t);
    let cap = mint_cap(&t, &slot, &owner);

    let mut conn = t.connect().expect("connect");
    let auth = bearer(&owner);
    http::send_request(
        &mut conn,
        "GET",
        &format!("/v1/slots/{slot}/stream?after=0"),
        &[("Authorization", &auth)],
        b"",
    )
    .expect("stream request");
    poll("the slow subscriber to register", || {
        (stats(&t)["subscribers"] == 1).then_some(())
    });
    let baseline_kib = relay.proc_kib("VmRSS");

    let mut seq = 0;
    for b in 0..FLOOD_BLOBS / PER_BATCH {
        let blobs: Vec<Vec<u8>> = (0..PER_BATCH)
            .map(|j| filler(&format!("flood {b}.{j} "), FLOOD_BLOB))
            .collect();
        let seqs = append_batch_new(&t, &slot, &cap, &blobs);
        assert_eq!(seqs[0], seq + 1);
        seq = *seqs.last().expect("seqs");
    }
    assert_eq!(seq, FLOOD_BLOBS as u64);
    Stalled {
        relay,
        conn,
        slot,
        owner,
        baseline_kib,
        _dir: dir,
    }
}

#[test]
fn a_subscriber_that_never_reads_is_cut_off_and_memory_stays_bounded() {
    /// RSS growth over the relay's baseline that would mean it holds what it cannot deliver
    /// (the flood is 60 MiB; a well-behaved relay grew by 25–28 MiB: page cache, batch bodies,
    /// one subscriber queue).
    const GROWTH_MAX_MIB: u64 = 40;
    let Stalled {
        relay,
        conn,
        slot,
        owner,
        baseline_kib: baseline,
        _dir,
    } = stall_a_subscriber();
    let t = relay.tcp();
    let flood_mib = (FLOOD_BLOBS * FLOOD_BLOB) >> 20;

    let v = poll("/stats.json to show the slow subscriber cut off", || {
        let v = stats(&t);
        (v["subscribers"] == 0).then_some(v)
    });
    let metrics = get(&t, "/metrics", None).text();
    let cut = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wire_relay_subscribers_cut_total "))
        .and_then(|n| n.trim().parse::<f64>().ok());
    assert_eq!(cut, Some(1.0), "subscribers cut, from /metrics");

    let rss = relay.proc_kib("VmRSS");
    let peak = relay.proc_kib("VmHWM");
    eprintln!(
        "slow subscriber: {flood_mib} MiB appended; relay RSS {} MiB before, {} MiB after, peak {} MiB; stats {v}",
        baseline >> 10,
        rss >> 10,
        peak >> 10
    );
    assert!(
        peak.saturating_sub(baseline) < GROWTH_MAX_MIB << 10,
        "the relay's RSS peaked at {} MiB from {} MiB while {flood_mib} MiB went to a subscriber \
         that never read: it holds what it cannot deliver",
        peak >> 10,
        baseline >> 10,
    );
    assert!(
        peak < 150 << 10,
        "the relay's RSS peaked at {} MiB",
        peak >> 10
    );

    // Everything is stored, whatever happened to the stream.
    let r = get(&t, &format!("/v1/slots/{slot}"), Some(&owner));
    assert_eq!(
        r.json()["blobs"].as_u64(),
        Some(FLOOD_BLOBS as u64),
        "{}",
        r.text()
    );
    drop(conn);
    relay.stop();
}

#[test]
fn sigterm_ends_the_relay_even_while_a_subscriber_is_stalled() {
    let Stalled {
        mut relay, conn, ..
    } = stall_a_subscriber();
    relay.signal("TERM");
    let status = relay.wait_exit(EXIT_DEADLINE);
    if status.is_none() {
        // Diagnose: does the relay stop once the stalled client hangs up?
        drop(conn);
        let after_hangup = relay.wait_exit(EXIT_DEADLINE);
        panic!(
            "RELAY BUG: the relay did not exit within {EXIT_DEADLINE:?} of SIGTERM while one client \
             held a stream open without reading it ({}). Graceful shutdown (relay/src/server.rs, \
             serve) waits without limit for every connection to finish, and a response that \
             cannot be written never finishes: anyone who can open a stream can keep the relay \
             from stopping.",
            match after_hangup {
                Some(s) => format!("it exited ({s}) only once the client closed its socket"),
                None => "it kept running even after the client closed its socket".to_owned(),
            }
        );
    }
    drop(conn);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", relay.stderr());
}

#[test]
fn two_relay_processes_on_one_postgres_database_are_one_relay() {
    let url = crate::pg::fresh_database();
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = Relay::start(dir_a.path(), &["--store", &url]);
    let b = Relay::start(dir_b.path(), &["--store", &url]);
    assert_eq!(a.info["store"], url.as_str(), "{}", a.info);
    let (ta, tb) = (a.tcp(), b.tcp());
    // A slot made through A is known to B; B's appends are read through A.
    let (slot, owner) = allocate(&ta);
    let cap = mint_cap(&tb, &slot, &owner);
    append_new(&tb, &slot, &cap, b"first, through B");
    let auth = bearer(&owner);
    let mut s = http::open_stream(
        &ta,
        "GET",
        &format!("/v1/slots/{slot}/stream?after=0"),
        &[("Authorization", &auth)],
    )
    .expect("open stream");
    assert_eq!(s.status, 200);
    assert_eq!(
        read_records(&mut s, 1),
        vec![(1, b"first, through B".to_vec())],
        "backlog"
    );
    // Live through B, then through both in turn: the stream on A has each, in order.
    let blobs: Vec<Vec<u8>> = (2..=7)
        .map(|i| filler(&format!("live {i} "), 200))
        .collect();
    for (i, blob) in blobs.iter().enumerate() {
        let via = if i % 3 == 0 { &ta } else { &tb };
        append_new(via, &slot, &cap, blob);
    }
    let live = read_records(&mut s, blobs.len());
    let expected: Vec<(u64, Vec<u8>)> = (2..=7).zip(blobs.iter().cloned()).collect();
    assert_eq!(live, expected, "live records through both relays");
    // The same bytes through A are the blob B stored.
    let r = append(&ta, &slot, &cap, &blobs[1]).expect("append");
    assert_eq!(r.json()["seq"], 3, "{}", r.text());
    assert_eq!(r.json()["stored"], false, "{}", r.text());
    drop(s);
    a.stop();
    b.stop();
}

/// Runs `wire relay-server args` with `env` and asserts that it does not start; its stderr.
fn refused_at_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cmd, log) = relay_command(dir.path(), args);
    let status = cmd
        .envs(env.iter().copied())
        .status()
        .expect("run wire relay-server");
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !status.success(),
        "{args:?} {env:?}: the relay started ({status}); stderr:\n{stderr}"
    );
    stderr
}

#[test]
fn a_postgres_relay_takes_its_append_connections_from_the_environment_and_refuses_a_bad_count() {
    let url = crate::pg::fresh_database();
    for bad in ["0", "9", "two"] {
        let stderr = refused_at_start(
            &["--store", &url, "--bind", "127.0.0.1:0"],
            &[("WIRE_RELAY_PG_APPEND_LANES", bad)],
        );
        assert!(
            stderr.contains(&format!("WIRE_RELAY_PG_APPEND_LANES=\"{bad}\""))
                && stderr.contains("from 1 to 8")
                && stderr.contains("unset it"),
            "{bad}: the error names the variable, the range and what to do:\n{stderr}"
        );
    }
    // One append connection: appends and reads go on as with the default two.
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start_with(
        dir.path(),
        &["--store", &url],
        &[("WIRE_RELAY_PG_APPEND_LANES", "1")],
    );
    twenty_appends_at_once_are_stored_once_each(&relay, "lane");
    relay.stop();
}

/// Twenty appends at once through a capability to a new slot on `relay`: each gets a seq of
/// its own, 1 to 20, and reads back as sent.
fn twenty_appends_at_once_are_stored_once_each(relay: &Relay, label: &str) {
    let t = relay.tcp();
    let (slot, owner) = allocate(&t);
    let cap = mint_cap(&t, &slot, &owner);
    let blobs: Vec<Vec<u8>> = (1..=20)
        .map(|i| filler(&format!("{label} {i} "), 300))
        .collect();
    let seqs: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = blobs
            .iter()
            .map(|b| s.spawn(|| append_new(&t, &slot, &cap, b)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("append"))
            .collect()
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=20).collect::<Vec<u64>>(), "one seq each");
    let read: BTreeMap<u64, Vec<u8>> = read_all(&t, &slot, &owner).into_iter().collect();
    for (seq, blob) in seqs.iter().zip(&blobs) {
        assert_eq!(read.get(seq), Some(blob), "blob {seq}");
    }
}

/// `--group-wait-us` out of its range (or not a number) is refused with the range, and a relay
/// on PostgreSQL with the wait off (0) stores concurrent appends once each, in order per slot.
#[test]
fn a_postgres_relay_refuses_a_bad_group_wait_and_appends_with_the_wait_off() {
    let url = crate::pg::fresh_database();
    for bad in ["100001", "-1", "soon"] {
        let flag = format!("--group-wait-us={bad}");
        let stderr = refused_at_start(&["--store", &url, "--bind", "127.0.0.1:0", &flag], &[]);
        assert!(
            stderr.contains("--group-wait-us") && stderr.contains(bad),
            "{bad}: the error names the flag and the value:\n{stderr}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start_with(dir.path(), &["--store", &url, "--group-wait-us", "0"], &[]);
    twenty_appends_at_once_are_stored_once_each(&relay, "no wait");
    relay.stop();
}

// ---------------------------------------------------------------------------------------------
// Failover: two instances on one PostgreSQL database behind a load balancer

/// A TCP proxy standing in for a load balancer: each connection goes to the first of
/// `upstreams` that accepts it (so to the second once the first is gone), bytes pumped both
/// ways until either side closes.
struct Proxy {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstreams: Vec<SocketAddr>) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Some(upstream) = upstreams
                    .iter()
                    .find_map(|a| std::net::TcpStream::connect(a).ok())
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let pump = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    })
                };
                let (c2, u2) = (
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                pump(client, upstream);
                pump(u2, c2);
            }
        });
        Proxy { addr, stopping }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees `stopping`.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// What the test's threads collect.
type Shared<T> = Arc<Mutex<Vec<T>>>;

#[test]
fn sigkill_of_one_instance_under_load_loses_and_duplicates_nothing_and_streams_go_on() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 120;
    let url = crate::pg::fresh_database();
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = Relay::start(dir_a.path(), &["--store", &url, "--no-rate-limits"]);
    let b = Relay::start(dir_b.path(), &["--store", &url, "--no-rate-limits"]);
    let proxy = Proxy::start(vec![a.addr, b.addr]);
    let front = Target::Tcp(proxy.addr);
    let (slot, owner) = allocate(&front);
    let cap = mint_cap(&front, &slot, &owner);

    // A reader streams through the proxy and reconnects after its last seq whenever the
    // stream breaks; it keeps every record it got, in order.
    let streamed: Shared<(u64, Vec<u8>)> = Arc::default();
    let reconnects = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    {
        let (front, slot, owner) = (front.clone(), slot.clone(), owner.clone());
        let (streamed, reconnects, done) = (streamed.clone(), reconnects.clone(), done.clone());
        std::thread::spawn(move || {
            let auth = bearer(&owner);
            let mut buf = vec![0u8; 64 * 1024];
            while !done.load(Ordering::Relaxed) {
                let after = streamed.lock().expect("lock").last().map_or(0, |(s, _)| *s);
                let path = format!("/v1/slots/{slot}/stream?after={after}");
                let Ok(mut s) =
                    http::open_stream(&front, "GET", &path, &[("Authorization", &auth)])
                else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                if s.status != 200 {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let mut reader = frames::RecordReader::new(RECORD_MAX);
                loop {
                    match s.body.read(&mut buf) {
                        Ok(n) if n > 0 => reader.feed(&buf[..n]),
                        _ => break,
                    }
                    while let Ok(Some((seq, blob))) = reader.next_record() {
                        if seq != 0 {
                            streamed.lock().expect("lock").push((seq, blob.to_vec()));
                        }
                    }
                }
                reconnects.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    // Writers append distinct blobs through the proxy; a request that fails (its instance
    // died under it) is sent again with the same bytes until some instance answers 2xx.
    let acked: Shared<(Vec<u8>, u64)> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (front, slot, cap, acked) =
                (front.clone(), slot.clone(), cap.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    let blob = filler(&format!("writer {w} blob {i} "), 300);
                    let until = Instant::now() + POLL_DEADLINE;
                    let seq = loop {
                        match append(&front, &slot, &cap, &blob) {
                            Ok(r) if r.status == 200 || r.status == 201 => {
                                break r.json()["seq"].as_u64().expect("seq");
                            }
                            _ if Instant::now() < until => {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            other => panic!("writer {w} blob {i}: no instance took it: {other:?}"),
                        }
                    };
                    acked.lock().expect("lock").push((blob, seq));
                }
            })
        })
        .collect();

    // Mid-load, instance A dies without a word.
    poll("a third of the appends acknowledged", || {
        (acked.lock().expect("lock").len() >= WRITERS * PER_WRITER / 3).then_some(())
    });
    let before_kill = acked.lock().expect("lock").iter().map(|(_, s)| *s).max();
    a.crash();
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(acked.len(), WRITERS * PER_WRITER);

    // Storage, read through B: each blob once, at the seq it was acknowledged with, gapless.
    let tb = b.tcp();
    let stored = read_all(&tb, &slot, &owner);
    let seqs: Vec<u64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "gapless"
    );
    let by_blob: BTreeMap<&[u8], u64> = stored.iter().map(|(s, b)| (b.as_slice(), *s)).collect();
    assert_eq!(by_blob.len(), stored.len(), "a blob stored twice");
    assert_eq!(stored.len(), WRITERS * PER_WRITER, "stored blobs");
    for (blob, seq) in &acked {
        assert_eq!(
            by_blob.get(blob.as_slice()),
            Some(seq),
            "acknowledged blob {:?} lost or moved",
            String::from_utf8_lossy(&blob[..24])
        );
    }

    // The stream went on through B after A died: it holds every blob, in order, once.
    let total = stored.len();
    poll("the stream caught up through B", || {
        (streamed.lock().expect("lock").len() >= total).then_some(())
    });
    done.store(true, Ordering::Relaxed);
    let got = streamed.lock().expect("lock").clone();
    assert_eq!(
        got, stored,
        "the stream: every blob in order, no gap, none twice"
    );
    assert!(
        reconnects.load(Ordering::Relaxed) >= 1,
        "the stream through A never broke"
    );
    assert!(before_kill.is_some_and(|s| (s as usize) < total));
    drop(proxy);
    b.stop();
}
