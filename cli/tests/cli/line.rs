//! Agents on a line, as real processes: a `wire relay-server` on loopback, a daemon per agent
//! (each with its own `WIRE_HOME`), and the CLI driving them exactly as an operator would.
//! Pairing only with consent, a rejected stranger kept out, a flood of junk intros and strangers
//! while a conversation goes on, SIGKILL of the relay and of daemons mid-conversation, tampered
//! and replayed blobs in a mailbox, and a relay data directory that holds no message text.
//!
//! Every wait polls against a deadline; no test asserts on timing. A [`Rig`] stops every daemon
//! it started (and SIGKILLs any that does not stop) and kills the relay when dropped, also when
//! a test panics.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wire_log::SecretKey;
use wire_log::line::LINE_BOX_VERSION;
use wire_log::seal::{self, Purpose};
use wire_log::segment::Segment;
use wire_log::{AuthorKey, Event, EventId, Kind, LogId};

use crate::http::{self, Target};

/// How long a condition that normally holds within milliseconds may take.
pub(crate) const POLL_DEADLINE: Duration = Duration::from_secs(20);
/// How long one `wire` command may take before the test gives up on it (and kills it).
pub(crate) const COMMAND_DEADLINE: Duration = Duration::from_secs(60);
pub(crate) const EXE: &str = env!("CARGO_BIN_EXE_wire");
/// Largest record the relay sends (its blob cap).
const RECORD_MAX: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Running `wire`

/// One finished `wire` command.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) argv: String,
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn describe(&self) -> String {
        format!(
            "`wire {}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.argv, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts exit 0.
    pub(crate) fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{}", self.describe());
        self
    }

    /// Stdout as the one JSON document it must be.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e}): {}", self.describe())
        })
    }
}

/// Runs `wire args` for `home` with a clean environment (stdout piped, so JSON), giving up and
/// killing it after `deadline`.
fn run_wire(
    home: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
    deadline: Duration,
) -> Result<Run, String> {
    run_wire_in(home, None, args, vars, deadline)
}

/// [`run_wire`] in working directory `cwd` (the test's own when `None`).
pub(crate) fn run_wire_in(
    home: &Path,
    cwd: Option<&Path>,
    args: &[&str],
    vars: &[(&str, &str)],
    deadline: Duration,
) -> Result<Run, String> {
    run_wire_with(&[], None, home, cwd, args, vars, deadline)
}

/// The `wire` command, run through `wrapper` when it is not empty (as
/// `["ip", "netns", "exec", "NS"]`, which execs `wire` in that network namespace).
pub(crate) fn wire_command(wrapper: &[&str]) -> Command {
    match wrapper.split_first() {
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(EXE);
            cmd
        }
        None => Command::new(EXE),
    }
}

/// [`run_wire_in`] through `wrapper` (see [`wire_command`]).
pub(crate) fn run_wire_via(
    wrapper: &[&str],
    home: &Path,
    cwd: Option<&Path>,
    args: &[&str],
    vars: &[(&str, &str)],
    deadline: Duration,
) -> Result<Run, String> {
    run_wire_with(wrapper, None, home, cwd, args, vars, deadline)
}

/// [`run_wire_in`], started under `umask` (octal, through `sh -c 'umask …; exec wire …'`) when
/// given, as an operator's shell with a permissive umask would start it.
pub(crate) fn run_wire_under(
    home: &Path,
    cwd: Option<&Path>,
    umask: Option<&str>,
    args: &[&str],
    vars: &[(&str, &str)],
    deadline: Duration,
) -> Result<Run, String> {
    run_wire_with(&[], umask, home, cwd, args, vars, deadline)
}

#[allow(clippy::too_many_arguments)]
fn run_wire_with(
    wrapper: &[&str],
    umask: Option<&str>,
    home: &Path,
    cwd: Option<&Path>,
    args: &[&str],
    vars: &[(&str, &str)],
    deadline: Duration,
) -> Result<Run, String> {
    let mut cmd = match umask {
        None => wire_command(wrapper),
        Some(mask) => {
            let mut sh = Command::new("sh");
            sh.args(["-c", &format!("umask {mask} && exec \"$0\" \"$@\"")]);
            sh.args(wrapper).arg(EXE);
            sh
        }
    };
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    clean_env(cmd.args(args), home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let argv = args.join(" ");
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run wire {argv}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(Ok(out)) => Ok(Run {
            argv,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(format!("wire {argv}: {e}")),
        Err(_) => {
            kill9(pid);
            Err(format!("`wire {argv}` did not finish within {deadline:?}"))
        }
    }
}

/// `cmd` with the only environment the tests run `wire` under: `WIRE_HOME`, `PATH`, `LANG`.
pub(crate) fn clean_env<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    cmd.env_clear()
        .env("WIRE_HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
}

pub(crate) fn wire(home: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    run_wire(home, args, vars, COMMAND_DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn kill9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` runs (a zombie no longer does: it holds no locks or sockets).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Daemons (`wire daemon --foreground`) whose `WIRE_HOME` is `home`: ours, found by id.
pub(crate) fn daemons_of(home: &Path) -> Vec<u32> {
    let want = format!("WIRE_HOME={}", home.display());
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if !args.iter().any(|a| *a == b"daemon") || !args.iter().any(|a| *a == b"--foreground") {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|v| v == want.as_bytes()) && alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Stops the daemon of `home` the way an operator would, then SIGKILLs whatever is left.
/// Never panics (it runs in `Drop`, also while a test panics).
pub(crate) fn stop_daemon(home: &Path) {
    if !home.join("daemon.sock").exists() && daemons_of(home).is_empty() {
        return;
    }
    let _ = run_wire(home, &["daemon", "stop"], &[], Duration::from_secs(15));
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = daemons_of(home);
        if left.is_empty() {
            return;
        }
        if Instant::now() > until {
            for pid in left {
                kill9(pid);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it returns `Ok`, or panics with `what` and `f`'s last `Err` after `deadline`.
pub(crate) fn poll_for<T>(
    what: &str,
    deadline: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < until,
                    "gave up after {deadline:?} waiting for {what}; last seen: {last}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn poll<T>(what: &str, f: impl FnMut() -> Result<T, String>) -> T {
    poll_for(what, POLL_DEADLINE, f)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// xorshift64*: enough randomness for junk bytes. The seed is printed (WIRE_TEST_SEED replays).
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded(test: &str) -> Rng {
        let seed = std::env::var("WIRE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("{test}: WIRE_TEST_SEED={seed}");
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn bytes(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let len = lo + (self.next() as usize) % (hi - lo + 1);
        (0..len).map(|_| (self.next() >> 32) as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The rig: a relay and the agents around it

/// A temporary root holding a relay (data under `relay/`) and one home per agent. Dropping it
/// stops every daemon (then SIGKILLs stragglers) and kills the relay.
#[derive(Debug)]
pub(crate) struct Rig {
    root: tempfile::TempDir,
    relay: Option<Child>,
    addr: SocketAddr,
    relay_args: Vec<String>,
    homes: Mutex<Vec<PathBuf>>,
}

/// Starts `wire relay-server` bound to `bind` with its data in `root/relay`; returns it and its
/// address once it has announced itself, or why it did not start.
pub(crate) fn spawn_relay(
    root: &Path,
    bind: &str,
    args: &[String],
) -> Result<(Child, SocketAddr), String> {
    spawn_relay_via(&[], root, bind, args)
}

/// [`spawn_relay`] through `wrapper` (see [`wire_command`]); the relay may serve `http://` or
/// `https://`.
pub(crate) fn spawn_relay_via(
    wrapper: &[&str],
    root: &Path,
    bind: &str,
    args: &[String],
) -> Result<(Child, SocketAddr), String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("relay.log"))
        .map_err(|e| e.to_string())?;
    let relay_home = root.join("relay-home");
    std::fs::create_dir_all(&relay_home).map_err(|e| e.to_string())?;
    let mut child = wire_command(wrapper)
        .args(["relay-server", "--json", "--bind", bind, "--data"])
        .arg(root.join("relay"))
        .args(args)
        .env_clear()
        .env("WIRE_HOME", &relay_home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot spawn the relay: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    let line = rx.recv_timeout(COMMAND_DEADLINE).unwrap_or_default();
    let addr = serde_json::from_str::<Value>(&line).ok().and_then(|v| {
        let url = v["listening"].as_str()?;
        url.strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))?
            .parse::<SocketAddr>()
            .ok()
    });
    match addr {
        Some(addr) => Ok((child, addr)),
        None => {
            let _ = child.kill();
            let status = child.wait();
            Err(format!(
                "the relay did not start (start line {line:?}, exit {status:?}); log:\n{}",
                std::fs::read_to_string(root.join("relay.log")).unwrap_or_default()
            ))
        }
    }
}

impl Rig {
    pub(crate) fn new(relay_args: &[&str]) -> Rig {
        let root = tempfile::tempdir().expect("tempdir");
        let relay_args: Vec<String> = relay_args.iter().map(|s| (*s).to_owned()).collect();
        let (child, addr) =
            spawn_relay(root.path(), "127.0.0.1:0", &relay_args).unwrap_or_else(|e| panic!("{e}"));
        Rig {
            root,
            relay: Some(child),
            addr,
            relay_args,
            homes: Mutex::new(Vec::new()),
        }
    }

    /// A relay listening on every address of both families (`[::]`, dual stack), named
    /// `http://127.0.0.1:<port>`: clients reach it over IPv4 and over IPv6 (`[::1]`), which it
    /// counts as two sources for its rate limits.
    pub(crate) fn dual_stack(relay_args: &[&str]) -> Rig {
        let root = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("[::]:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut args: Vec<String> = vec!["--public-url".into(), format!("http://{addr}")];
        args.extend(relay_args.iter().map(|s| (*s).to_owned()));
        let (child, listening) = spawn_relay(root.path(), &format!("[::]:{port}"), &args)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listening.port(), port, "{listening}");
        Rig {
            root,
            relay: Some(child),
            addr,
            relay_args: args,
            homes: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn addr_str(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn target(&self) -> Target {
        Target::Tcp(self.addr)
    }

    fn relay_data(&self) -> PathBuf {
        self.root.path().join("relay")
    }

    pub(crate) fn relay_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("relay.log")).unwrap_or_default()
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill_relay(&mut self) {
        let mut child = self.relay.take().expect("the relay runs");
        child.kill().expect("kill the relay");
        child.wait().expect("reap the relay");
    }

    /// Starts the relay again on the same port and data directory.
    pub(crate) fn restart_relay(&mut self) {
        assert!(self.relay.is_none(), "the relay still runs");
        let bind = self.addr.to_string();
        let (child, addr) = poll("the relay to start again on its port", || {
            spawn_relay(self.root.path(), &bind, &self.relay_args)
        });
        assert_eq!(addr, self.addr);
        self.relay = Some(child);
    }

    pub(crate) fn home(&self, nick: &str) -> PathBuf {
        let home = self.root.path().join(nick);
        self.homes.lock().expect("homes lock").push(home.clone());
        home
    }

    /// `wire init <nick> --relay <url>` in a fresh home, through its daemon.
    pub(crate) fn agent(&self, nick: &str) -> Agent {
        self.init(nick, &[], &[])
    }

    /// [`Rig::agent`], with variables for `init` (and so for the daemon it starts).
    pub(crate) fn agent_with(&self, nick: &str, vars: &[(&str, &str)]) -> Agent {
        self.init(nick, &[], vars)
    }

    /// The same, without a daemon (for the many strangers of the flood).
    pub(crate) fn agent_without_daemon(&self, nick: &str) -> Agent {
        self.init(nick, &["--no-daemon"], &[])
    }

    fn init(&self, nick: &str, extra: &[&str], vars: &[(&str, &str)]) -> Agent {
        let home = self.home(nick);
        let url = self.url();
        let mut args = vec!["init", nick, "--relay", &url];
        args.extend_from_slice(extra);
        let v = wire(&home, &args, vars).ok().json();
        let handle = format!("{nick}@{}", self.addr);
        assert_eq!(v["claimed"], handle.as_str(), "init claimed: {v}");
        assert_eq!(v["relay"], url.as_str(), "{v}");
        assert_eq!(v["identity"]["claimed"][0], handle.as_str(), "{v}");
        let id = &v["identity"];
        let s = |k: &str| id[k].as_str().expect("identity field").to_owned();
        Agent {
            home,
            handle,
            nickname: s("nickname"),
            did: s("did"),
            key: s("key"),
            x25519: s("x25519"),
            no_daemon: !extra.is_empty(),
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let homes = match self.homes.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for home in &homes {
            stop_daemon(home);
        }
        if let Some(mut relay) = self.relay.take() {
            let _ = relay.kill();
            let _ = relay.wait();
        }
    }
}

/// One agent: its home and who it is.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub(crate) home: PathBuf,
    /// `nick@127.0.0.1:port`, as claimed.
    pub(crate) handle: String,
    /// The Character nickname others see.
    pub(crate) nickname: String,
    pub(crate) did: String,
    pub(crate) key: String,
    pub(crate) x25519: String,
    pub(crate) no_daemon: bool,
}

impl Agent {
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        if self.no_daemon {
            let mut all = args.to_vec();
            all.push("--no-daemon");
            wire(&self.home, &all, &[])
        } else {
            wire(&self.home, args, &[])
        }
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        self.run(args).ok().json()
    }

    fn list(&self, args: &[&str], field: &str) -> Vec<Value> {
        let v = self.json(args);
        v[field]
            .as_array()
            .unwrap_or_else(|| panic!("no `{field}` array in `wire {}`: {v}", args.join(" ")))
            .clone()
    }

    pub(crate) fn peers(&self) -> Vec<Value> {
        self.list(&["peers"], "peers")
    }

    /// Our row for `other` in `wire peers`, if any.
    pub(crate) fn peer(&self, other: &Agent) -> Option<Value> {
        self.peers()
            .into_iter()
            .find(|p| p["key"] == other.key.as_str())
    }

    pub(crate) fn peer_state(&self, other: &Agent) -> String {
        self.peer(other).map_or_else(
            || "absent".into(),
            |p| p["state"].as_str().unwrap_or("?").into(),
        )
    }

    pub(crate) fn pending(&self) -> Vec<Value> {
        self.list(&["pending"], "pending")
    }

    pub(crate) fn tail(&self, n: usize) -> Vec<Value> {
        self.list(&["tail", "-n", &n.to_string()], "messages")
    }

    pub(crate) fn status(&self) -> Value {
        self.json(&["status"])
    }

    /// `wire send <peer> <body>`; the caller checks the outcome.
    pub(crate) fn send(&self, to: &Agent, body: &str) -> Run {
        self.run(&["send", &to.handle, body])
    }

    /// Sends and requires `stored` (exit 0).
    pub(crate) fn send_stored(&self, to: &Agent, body: &str) {
        let r = self.send(to, body).ok();
        assert_eq!(r.json()["outcome"], "stored", "{}", r.describe());
    }

    pub(crate) fn daemon_pid(&self) -> Option<u32> {
        let r = self.run(&["daemon", "status", "--json"]);
        let v = r.json();
        if v["running"] == true {
            Some(u32::try_from(v["pid"].as_u64().expect("pid")).expect("pid fits"))
        } else {
            None
        }
    }

    /// `wire daemon stop`, and the daemon process is gone (it may take a moment to exit after
    /// its socket has gone, which is when `stop` returns).
    pub(crate) fn stop_daemon(&self) {
        self.run(&["daemon", "stop"]).ok();
        poll(
            "the daemon process to exit after `wire daemon stop`",
            || match daemons_of(&self.home).as_slice() {
                [] => Ok(()),
                left => Err(format!("{left:?} still run")),
            },
        );
    }

    /// SIGKILL the daemon (its pid from `wire daemon status`).
    pub(crate) fn crash_daemon(&self) {
        let pid = self.daemon_pid().expect("a daemon runs");
        kill9(pid);
        poll("the daemon to die", || {
            if alive(pid) {
                Err(format!("pid {pid} alive"))
            } else {
                Ok(())
            }
        });
    }

    pub(crate) fn verify_clean(&self) {
        let r = self.run(&["verify"]);
        assert_eq!(r.code, 0, "verify: {}", r.describe());
        assert_eq!(r.json()["ok"], true, "{}", r.describe());
    }

    /// This agent's slot and owner token, from its `keys/slot-*.token` file.
    pub(crate) fn slot(&self) -> (String, String) {
        let keys = self.home.join("sessions/default/keys");
        let file = std::fs::read_dir(&keys)
            .expect("keys dir")
            .flatten()
            .find(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("slot-") && n.ends_with(".token")
            })
            .expect("a slot token file");
        let v: Value =
            serde_json::from_slice(&std::fs::read(file.path()).expect("read token")).expect("json");
        (
            v["slot"].as_str().expect("slot").to_owned(),
            v["token"].as_str().expect("token").to_owned(),
        )
    }

    pub(crate) fn author_key(&self) -> AuthorKey {
        AuthorKey::from_hex(&self.key).expect("key hex")
    }

    pub(crate) fn x25519_bytes(&self) -> [u8; 32] {
        hex::decode(&self.x25519)
            .expect("x25519 hex")
            .try_into()
            .expect("32 bytes")
    }
}

/// `a` dials `b`, `b` accepts by the nickname `pending` shows, and `a` sees `b` paired.
pub(crate) fn pair(a: &Agent, b: &Agent) {
    let dialed = a.json(&["dial", &b.handle]);
    assert_eq!(dialed["status"], "dialed", "{dialed}");
    let nick = poll(
        &format!("{} to see {}'s request", b.handle, a.handle),
        || {
            let p = b.pending();
            p.iter()
                .find(|r| r["key"] == a.key.as_str())
                .map(|r| r["nickname"].as_str().unwrap_or("").to_owned())
                .ok_or_else(|| format!("{p:?}"))
        },
    );
    let accepted = b.json(&["accept", &nick]);
    assert_eq!(accepted["status"], "paired", "{accepted}");
    poll(
        &format!("{} to see {} paired", a.handle, b.handle),
        || match a.peer_state(b).as_str() {
            "paired" => Ok(()),
            other => Err(other.to_owned()),
        },
    );
}

/// The bodies of the messages in `tail` that `from` wrote.
pub(crate) fn bodies_from(tail: &[Value], from: &Agent) -> Vec<String> {
    tail.iter()
        .filter(|m| m["from"] == from.did.as_str())
        .map(|m| m["body"].as_str().unwrap_or("<not text>").to_owned())
        .collect()
}

/// Waits until `reader`'s tail holds `want` from `from`, in that order, and then checks that
/// nothing else from `from` with `prefix` is there (no duplicate, nothing unexpected).
pub(crate) fn await_messages(
    reader: &Agent,
    from: &Agent,
    prefix: &str,
    want: &[String],
    deadline: Duration,
) {
    let n = want.len() + 200;
    let got = poll_for(
        &format!(
            "{} message(s) {prefix}… from {} at {}",
            want.len(),
            from.handle,
            reader.handle
        ),
        deadline,
        || {
            let got: Vec<String> = bodies_from(&reader.tail(n), from)
                .into_iter()
                .filter(|b| b.starts_with(prefix))
                .collect();
            let have: BTreeSet<&String> = got.iter().collect();
            if want.iter().all(|w| have.contains(w)) {
                Ok(got)
            } else {
                let missing: Vec<&String> = want.iter().filter(|w| !have.contains(w)).collect();
                Err(format!(
                    "{} of {} arrived; first missing: {:?}",
                    want.len() - missing.len(),
                    want.len(),
                    missing.iter().take(5).collect::<Vec<_>>()
                ))
            }
        },
    );
    if got != want {
        let mut seen = BTreeMap::new();
        for b in &got {
            *seen.entry(b).or_insert(0) += 1;
        }
        let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        panic!(
            "{} holds the messages {prefix}… from {} but not exactly once in send order: {} held for {} sent; duplicates {:?}; first held {:?}",
            reader.handle,
            from.handle,
            got.len(),
            want.len(),
            dups,
            got.iter().take(10).collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The relay's HTTP API, directly

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(crate) fn get(rig: &Rig, path: &str, token: Option<&str>) -> http::Response {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http::request(&rig.target(), "GET", path, &headers, b"")
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub(crate) fn append(rig: &Rig, slot: &str, token: &str, blob: &[u8]) -> http::Response {
    let auth = bearer(token);
    http::request(
        &rig.target(),
        "POST",
        &format!("/v1/slots/{slot}/blobs"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/octet-stream"),
        ],
        blob,
    )
    .unwrap_or_else(|e| panic!("append to {slot}: {e}"))
}

/// Every record in `slot`, read with its owner token.
pub(crate) fn read_slot(rig: &Rig, slot: &str, token: &str) -> Vec<(u64, Vec<u8>)> {
    let r = get(
        rig,
        &format!("/v1/slots/{slot}/blobs?after=0&limit=4096"),
        Some(token),
    );
    assert_eq!(r.status, 200, "read {slot}: {}", r.text());
    wire_relay::frames::decode_records(&r.body, RECORD_MAX)
        .expect("records body")
        .into_iter()
        .map(|(seq, b)| (seq, b.to_vec()))
        .collect()
}

pub(crate) fn slot_info(rig: &Rig, slot: &str, token: &str) -> Value {
    let r = get(rig, &format!("/v1/slots/{slot}"), Some(token));
    assert_eq!(r.status, 200, "slot info: {}", r.text());
    r.json()
}

/// Waits until the owner has acknowledged everything in its slot (the relay deleted it).
pub(crate) fn await_drained(rig: &Rig, slot: &str, token: &str) {
    poll("the mailbox to be acknowledged", || {
        let v = slot_info(rig, slot, token);
        if v["acked_through"] == v["last_seq"] {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
}

pub(crate) fn post_intro(rig: &Rig, nick: &str, body: &[u8]) -> http::Response {
    http::request(
        &rig.target(),
        "POST",
        &format!("/v1/handles/{nick}/intro"),
        &[("Content-Type", "application/vnd.wire.intro")],
        body,
    )
    .unwrap_or_else(|e| panic!("POST intro: {e}"))
}

// A little deterministic CBOR, to build envelopes wire's own encoder would refuse to sign.

fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.push(m | 24);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len() as u64, out);
    out.extend_from_slice(b);
}

// ---------------------------------------------------------------------------------------------
// 1. Consent

#[test]
fn two_agents_pair_only_with_consent_and_talk_both_ways() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("qwertyalice");
    let bob = rig.agent("qwertybob");
    let who = alice.json(&["whoami"]);
    assert_eq!(who["claimed"][0], alice.handle.as_str(), "{who}");
    assert_eq!(who["relays"][0], rig.url().as_str(), "{who}");

    let dialed = alice.json(&["dial", &bob.handle]);
    assert_eq!(dialed["status"], "dialed", "{dialed}");
    assert_eq!(dialed["peer"]["state"], "dialed", "{dialed}");
    assert_eq!(dialed["peer"]["did"], bob.did.as_str(), "{dialed}");

    // bob sees who asks, in JSON and in prose.
    let request = poll("bob to see alice's request", || {
        let p = bob.pending();
        p.iter()
            .find(|r| r["key"] == alice.key.as_str())
            .cloned()
            .ok_or_else(|| format!("{p:?}"))
    });
    assert_eq!(request["handle"], alice.handle.as_str(), "{request}");
    assert_eq!(request["did"], alice.did.as_str(), "{request}");
    assert_eq!(request["nickname"], alice.nickname.as_str(), "{request}");
    let prose = wire(&bob.home, &["pending"], &[("WIRE_NO_AUTO_JSON", "1")]).ok();
    assert!(
        prose.stdout.contains("wants to pair with you") && prose.stdout.contains(&alice.handle),
        "{}",
        prose.describe()
    );

    // Before bob decides, alice has dialed but is not paired, and cannot send.
    assert_eq!(alice.peer_state(&bob), "dialed");
    let early = alice.send(&bob, "too early");
    assert_eq!(early.code, 2, "{}", early.describe());
    assert!(
        early.stderr.contains("has not accepted"),
        "{}",
        early.describe()
    );
    assert!(
        bob.peers().is_empty(),
        "bob has decided nothing, so he has no peer yet"
    );

    let accepted = bob.json(&["accept", &alice.nickname]);
    assert_eq!(accepted["status"], "paired", "{accepted}");
    assert_eq!(accepted["peer"]["did"], alice.did.as_str(), "{accepted}");
    poll("alice to see bob paired", || {
        match alice.peer_state(&bob).as_str() {
            "paired" => Ok(()),
            other => Err(other.to_owned()),
        }
    });
    assert_eq!(bob.peer_state(&alice), "paired");

    let from_alice: Vec<String> = (0..3).map(|i| format!("alice to bob {i}")).collect();
    let from_bob: Vec<String> = (0..3).map(|i| format!("bob to alice {i}")).collect();
    for (a, b) in from_alice.iter().zip(&from_bob) {
        alice.send_stored(&bob, a);
        bob.send_stored(&alice, b);
    }
    for (reader, other) in [(&alice, &bob), (&bob, &alice)] {
        await_messages(reader, &alice, "alice to bob", &from_alice, POLL_DEADLINE);
        await_messages(reader, &bob, "bob to alice", &from_bob, POLL_DEADLINE);
        let tail = reader.tail(50);
        assert_eq!(tail.len(), 6, "{tail:?}");
        for m in tail {
            assert_eq!(m["verified"], true, "{m}");
            let mine = m["from"] == reader.did.as_str();
            assert!(mine || m["from"] == other.did.as_str(), "{m}");
            assert_eq!(m["outgoing"], mine, "direction at {}: {m}", reader.handle);
            assert_eq!(m["peer_handle"], other.handle.as_str(), "{m}");
        }
    }
    // Everything each sent is confirmed by the other in the end.
    for (me, them) in [(&alice, &bob), (&bob, &alice)] {
        poll(
            &format!("{} to see all it sent confirmed", me.handle),
            || {
                let p = me.peer(them).ok_or("no peer row")?;
                if p["acked"] == p["sent"] && p["received"].as_u64() >= Some(3) {
                    Ok(())
                } else {
                    Err(p.to_string())
                }
            },
        );
    }
    alice.verify_clean();
    bob.verify_clean();
}

// ---------------------------------------------------------------------------------------------
// 2. A stranger

#[test]
fn a_rejected_stranger_stays_out_and_can_neither_write_nor_read() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("qwertyalice");
    let bob = rig.agent("qwertybob");
    let mallory = rig.agent("qwertymallory");
    pair(&alice, &bob);

    mallory.json(&["dial", &bob.handle]);
    poll("mallory's request in bob's pending", || {
        let p = bob.pending();
        if p.iter().any(|r| r["key"] == mallory.key.as_str()) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });
    let rejected = bob.json(&["reject", &mallory.did]);
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert!(bob.pending().is_empty());
    assert_eq!(bob.peer_state(&mallory), "rejected");

    // She calls again: the relay takes the request (it cannot know), bob's agent drops it.
    let dropped_before = bob.status()["report"]["dropped_requests"]
        .as_u64()
        .expect("dropped_requests");
    let again = mallory.json(&["dial", &bob.handle]);
    assert_eq!(again["status"], "dialed", "{again}");
    poll("bob's agent to drop mallory's second request", || {
        let s = bob.status();
        if s["report"]["dropped_requests"].as_u64() > Some(dropped_before) {
            Ok(())
        } else {
            Err(s["report"].to_string())
        }
    });
    let pending = bob.pending();
    assert!(
        pending.is_empty(),
        "a rejected caller is back in pending: {pending:?}"
    );
    assert_eq!(bob.peer_state(&mallory), "rejected");

    // She cannot send: she holds no capability for bob's mailbox, only a dialed peer without
    // an endpoint.
    let sent = mallory.send(&bob, "let me in");
    assert_eq!(sent.code, 2, "{}", sent.describe());
    assert!(
        sent.stderr.contains("has not accepted"),
        "{}",
        sent.describe()
    );
    let row = mallory.peer(&bob).expect("mallory's row for bob");
    assert_eq!(row["state"], "dialed", "{row}");
    assert_eq!(row["endpoints"], serde_json::json!([]), "{row}");

    // The relay publishes no slot for bob, and her credentials open nothing of his even when
    // she knows the slot id.
    let (bob_slot, bob_token) = bob.slot();
    let (_, mallory_token) = mallory.slot();
    let card = get(
        &rig,
        &format!("/.well-known/wire/agent?handle={}", bob.handle),
        None,
    );
    assert_eq!(card.status, 200, "{}", card.text());
    assert!(
        !card.text().contains(&bob_slot),
        "the directory leaks bob's slot: {}",
        card.text()
    );
    assert!(!card.text().contains(&bob_token));
    for token in [Some(mallory_token.as_str()), None] {
        let read = get(&rig, &format!("/v1/slots/{bob_slot}/blobs?after=0"), token);
        assert_eq!(read.status, 401, "read with {token:?}: {}", read.text());
        let stream = get(&rig, &format!("/v1/slots/{bob_slot}/intros?after=0"), token);
        assert_eq!(
            stream.status,
            401,
            "intros with {token:?}: {}",
            stream.text()
        );
    }
    let forged = append(&rig, &bob_slot, &mallory_token, b"from mallory");
    assert_eq!(
        forged.status,
        401,
        "append with her token: {}",
        forged.text()
    );

    // Nothing of hers reached bob; alice still gets through.
    alice.send_stored(&bob, "still here");
    await_messages(
        &bob,
        &alice,
        "still here",
        &["still here".to_owned()],
        POLL_DEADLINE,
    );
    let tail = bob.tail(100);
    assert!(
        bodies_from(&tail, &mallory).is_empty(),
        "a message from the rejected stranger reached bob: {tail:?}"
    );
    bob.verify_clean();
}

// ---------------------------------------------------------------------------------------------
// 3. A flood

/// 2,000 junk intros and 50 strangers hit bob's handle while alice sends him 1,500 messages:
/// every message arrives once and in order, and every stranger waits in bob's pending.
#[test]
fn a_flood_of_junk_and_strangers_loses_no_message() {
    const MESSAGES: usize = 1500;
    const STRANGERS: usize = 50;
    let started = Instant::now();
    let rig = Rig::new(&["--no-rate-limits"]);
    let alice = rig.agent("qwertyalice");
    let bob = rig.agent("qwertybob");
    pair(&alice, &bob);
    let bob_nick = bob.handle.split('@').next().expect("nick").to_owned();
    let domain = rig.addr.to_string();

    let (junk_codes, strangers) = std::thread::scope(|s| {
        // Junk at the intro route: random bytes, intros for someone else, stale intros, and
        // well-signed intros whose sealed request is garbage (from 25 keys, so the queue of 256
        // never fills and real strangers still get in).
        let junk = s.spawn(|| {
            let mut rng = Rng::seeded("flood");
            let keys: Vec<SecretKey> = (0..25).map(|_| SecretKey::generate()).collect();
            let mut codes: BTreeMap<(&str, u16), usize> = BTreeMap::new();
            for i in 0..2000 {
                let (what, body) = match i % 8 {
                    0..=3 => ("random bytes", rng.bytes(1, 8704)),
                    4 => (
                        "for another handle",
                        wire_log::Intro::sign(
                            &SecretKey::generate(),
                            &format!("qwertyalice@{domain}"),
                            now_ms(),
                            rng.bytes(1, 512),
                        )
                        .expect("sign")
                        .signed_bytes()
                        .to_vec(),
                    ),
                    5 => (
                        "stale",
                        wire_log::Intro::sign(
                            &SecretKey::generate(),
                            &format!("{bob_nick}@{domain}"),
                            now_ms() - 3_600_000,
                            rng.bytes(1, 512),
                        )
                        .expect("sign")
                        .signed_bytes()
                        .to_vec(),
                    ),
                    _ => (
                        "signed garbage",
                        wire_log::Intro::sign(
                            &keys[i % keys.len()],
                            &format!("{bob_nick}@{domain}"),
                            now_ms(),
                            rng.bytes(1, 8192),
                        )
                        .expect("sign")
                        .signed_bytes()
                        .to_vec(),
                    ),
                };
                let r = post_intro(&rig, &bob_nick, &body);
                *codes.entry((what, r.status)).or_default() += 1;
            }
            codes
        });
        // Strangers, each its own home and key, dialing without a daemon.
        let strangers = s.spawn(|| {
            (0..STRANGERS)
                .map(|i| {
                    let st = rig.agent_without_daemon(&format!("zstranger{i:02}"));
                    let d = st.json(&["dial", &bob.handle]);
                    assert_eq!(d["status"], "dialed", "{d}");
                    st
                })
                .collect::<Vec<Agent>>()
        });
        // And the conversation goes on.
        let mut queued = 0;
        let sent: Vec<String> = (0..MESSAGES).map(|i| format!("flood {i:04}")).collect();
        let t = Instant::now();
        for body in &sent {
            let r = alice.send(&bob, body);
            match r.code {
                0 => {}
                3 => queued += 1,
                _ => panic!("{}", r.describe()),
            }
        }
        eprintln!(
            "flood: {MESSAGES} sends took {:?} ({queued} reported queued)",
            t.elapsed()
        );
        (
            junk.join().expect("junk thread"),
            strangers.join().expect("strangers thread"),
        )
    });
    eprintln!("flood: junk answers {junk_codes:?}");
    let expect = [
        (("random bytes", 400), 1000),
        (("for another handle", 422), 250),
        (("stale", 422), 250),
        (("signed garbage", 202), 500),
    ];
    assert_eq!(
        junk_codes,
        expect.into_iter().collect::<BTreeMap<_, _>>(),
        "the relay's answers to junk"
    );

    let sent: Vec<String> = (0..MESSAGES).map(|i| format!("flood {i:04}")).collect();
    await_messages(&bob, &alice, "flood ", &sent, Duration::from_secs(60));

    let want: BTreeSet<String> = strangers.iter().map(|s| s.key.clone()).collect();
    poll("bob's pending to list all 50 strangers", || {
        let got: BTreeSet<String> = bob
            .pending()
            .iter()
            .map(|p| p["key"].as_str().unwrap_or("").to_owned())
            .collect();
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{} of {} listed; extra {:?}",
                got.intersection(&want).count(),
                want.len(),
                got.difference(&want).collect::<Vec<_>>()
            ))
        }
    });
    // The signed garbage that reached bob's queue is counted as junk, not as a request.
    let status = poll("bob to count the signed garbage", || {
        let s = bob.status();
        if s["report"]["junk_intros"].as_u64() >= Some(25) {
            Ok(s)
        } else {
            Err(s["report"].to_string())
        }
    });
    eprintln!(
        "flood: bob counted {} junk intros; done in {:?}",
        status["report"]["junk_intros"],
        started.elapsed()
    );
    assert_eq!(bob.peer_state(&alice), "paired");
    bob.verify_clean();
    alice.verify_clean();
}

// ---------------------------------------------------------------------------------------------
// 4. Crashes

/// The relay is SIGKILLed mid-conversation and restarted on the same port and data; alice's and
/// bob's daemons are SIGKILLed too. Sends report honestly, and every message arrives exactly once.
#[test]
fn sigkill_of_the_relay_and_of_daemons_loses_and_duplicates_nothing() {
    let mut rig = Rig::new(&[]);
    let alice = rig.agent("qwertyalice");
    let bob = rig.agent("qwertybob");
    pair(&alice, &bob);
    let body = |i: usize| format!("crash {i:03}");
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut note = |r: &Run| {
        let v = r.json();
        let outcome = v["outcome"].as_str().unwrap_or("?").to_owned();
        match (r.code, outcome.as_str()) {
            (0, "stored") | (3, "queued") => {}
            _ => panic!("a send must be stored (0) or queued (3): {}", r.describe()),
        }
        *outcomes.entry(outcome).or_default() += 1;
    };

    for i in 0..10 {
        let r = alice.send(&bob, &body(i));
        assert_eq!(r.code, 0, "{}", r.describe());
        note(&r);
    }
    // Kill the relay while alice is sending.
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            (10..20)
                .map(|i| alice.send(&bob, &body(i)))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(100));
        rig.kill_relay();
        for r in sender.join().expect("sender") {
            note(&r);
        }
    });
    // With the relay down, a send is queued, and says so.
    for i in 20..25 {
        let r = alice.send(&bob, &body(i));
        assert_eq!(r.code, 3, "the relay is down: {}", r.describe());
        assert_eq!(r.json()["outcome"], "queued", "{}", r.describe());
        note(&r);
    }
    let st = alice.status();
    assert!(
        st["report"]["queued"]
            .as_object()
            .is_some_and(|q| q.contains_key(&bob.key)),
        "status shows no queue for bob: {st}"
    );
    // alice's daemon dies with the queue in her log; bob's dies too.
    alice.crash_daemon();
    bob.crash_daemon();
    rig.restart_relay();
    // The next commands start fresh daemons.
    for i in 25..35 {
        note(&alice.send(&bob, &body(i)));
    }
    bob.send_stored(&alice, "crash reply");
    eprintln!("crashes: send outcomes {outcomes:?}");

    let want: Vec<String> = (0..35).map(body).collect();
    await_messages(&bob, &alice, "crash ", &want, Duration::from_secs(60));
    await_messages(
        &alice,
        &bob,
        "crash reply",
        &["crash reply".to_owned()],
        POLL_DEADLINE,
    );
    poll("alice's messages all confirmed", || {
        let p = alice.peer(&bob).ok_or("no row")?;
        if p["acked"] == p["sent"] {
            Ok(())
        } else {
            Err(p.to_string())
        }
    });
    // Resends during the outage and after the crashes came back as duplicates to bob's slot;
    // none may show twice (checked above) and both stores stay sound.
    alice.verify_clean();
    bob.verify_clean();
    assert!(
        rig.relay_log().is_empty() || !rig.relay_log().contains("panicked"),
        "the relay panicked:\n{}",
        rig.relay_log()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Tampering

/// Blobs written into bob's mailbox behind the agents' backs (with his own owner token, which may
/// append): junk, a replay of a real segment, segments sealed to him by a stranger, misaddressed,
/// with a forged signature, and, signed with alice's real key, an event dated in the future and
/// a fork. Each is refused or ignored, the real message shows once, and the line goes on.
#[test]
fn tampered_and_replayed_blobs_are_refused_and_the_line_goes_on() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("qwertyalice");
    let bob = rig.agent("qwertybob");
    pair(&alice, &bob);
    alice.send_stored(&bob, "tamper before");
    await_messages(
        &bob,
        &alice,
        "tamper before",
        &["tamper before".to_owned()],
        POLL_DEADLINE,
    );
    let (slot, token) = bob.slot();
    await_drained(&rig, &slot, &token);
    // What alice holds of bob's chain, for the `have` of forged segments (any bob command
    // would start his daemon again, so ask now).
    let have = bob
        .peer(&alice)
        .map_or(0, |p| p["sent"].as_u64().unwrap_or(0));

    // bob is away; alice's message waits in his mailbox. Capture it.
    bob.stop_daemon();
    alice.send_stored(&bob, "tamper replayed");
    let captured = read_slot(&rig, &slot, &token);
    assert!(
        !captured.is_empty(),
        "alice's message is not in bob's mailbox"
    );

    // Junk and forgeries, appended while he is away.
    let mut rng = Rng::seeded("tamper");
    let bob_key = bob.author_key();
    let alice_key = alice.author_key();
    let bob_x = bob.x25519_bytes();
    let stranger = SecretKey::generate();
    let mut forged: Vec<(&str, Vec<u8>)> = vec![
        // At least the smallest sealed box, so the version byte is what fails first: not the
        // seal's nor the line box's (one seed in 128 drew one of them).
        ("random bytes", {
            let mut b = rng.bytes(49, 4096);
            if b[0] == seal::SEAL_VERSION || b[0] == LINE_BOX_VERSION {
                b[0] = 0xff;
            }
            b
        }),
        ("random bytes with the seal's version byte", {
            let mut b = rng.bytes(100, 2000);
            b[0] = 1;
            b
        }),
        ("alice's segment with one bit flipped", {
            let mut b = captured[0].1.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x10;
            b
        }),
        (
            "a stranger's segment sealed to bob",
            Segment::seal(
                &stranger,
                &bob_key,
                &bob_x,
                0,
                now_ms(),
                &[b"hello".as_slice()],
            )
            .expect("seal"),
        ),
        (
            "a segment for someone else sealed to bob",
            Segment::seal(
                &stranger,
                &SecretKey::generate().author(),
                &bob_x,
                0,
                now_ms(),
                &[],
            )
            .expect("seal"),
        ),
    ];
    // "From alice" without her key: the signature is 64 random bytes.
    {
        let mut unsigned = Vec::new();
        cbor_head(4, 7, &mut unsigned);
        cbor_head(0, 1, &mut unsigned);
        cbor_bytes(&alice_key.0, &mut unsigned);
        cbor_bytes(&bob_key.0, &mut unsigned);
        cbor_bytes(&LogId::pair_log(&alice_key, &bob_key).0, &mut unsigned);
        cbor_head(0, have, &mut unsigned);
        cbor_head(0, now_ms(), &mut unsigned);
        cbor_head(4, 1, &mut unsigned);
        cbor_bytes(&rng.bytes(100, 200), &mut unsigned);
        let mut signed = Vec::new();
        cbor_head(4, 2, &mut signed);
        cbor_bytes(&unsigned, &mut signed);
        cbor_bytes(&rng.bytes(64, 64), &mut signed);
        forged.push((
            "a segment from alice with a forged signature",
            seal::seal(&bob_x, Purpose::Segment, &signed).expect("seal"),
        ));
    }
    // With alice's real key (what a buggy or compromised sender could do): her next event dated
    // a day ahead, and a second, different event at the seq bob already holds (a fork).
    let alice_secret =
        SecretKey::read(&alice.home.join("sessions/default/keys/identity.key")).expect("key");
    let tail = alice.tail(5);
    let last = tail
        .iter()
        .rev()
        .find(|m| m["outgoing"] == true)
        .expect("alice's last message");
    let last_seq = last["seq"].as_u64().expect("seq");
    let last_id = EventId::from_hex(last["id"].as_str().expect("id")).expect("id hex");
    // The event before it, when that is a message too (then a fork at `last_seq` is well
    // formed and differs only in its body).
    let prev_of_last = tail
        .iter()
        .rev()
        .filter(|m| m["outgoing"] == true)
        .nth(1)
        .filter(|m| m["seq"].as_u64() == Some(last_seq - 1))
        .map(|m| EventId::from_hex(m["id"].as_str().expect("id")).expect("id hex"));
    let pair_log = LogId::pair_log(&alice_key, &bob_key);
    let event = |seq: u64, prev: Option<EventId>, ts_ms: u64, body: &str| {
        Event {
            author: alice_key,
            log: pair_log,
            seq,
            prev,
            ts_ms,
            kind: Kind::MESSAGE,
            body: body.as_bytes().to_vec(),
        }
        .sign(&alice_secret)
        .expect("sign")
    };
    let future = event(
        last_seq + 1,
        Some(last_id),
        now_ms() + 86_400_000,
        "tamper future",
    );
    forged.push((
        "alice's next event dated a day ahead",
        Segment::seal(
            &alice_secret,
            &bob_key,
            &bob_x,
            have,
            now_ms(),
            &[future.signed_bytes()],
        )
        .expect("seal"),
    ));
    if prev_of_last.is_some() {
        let fork = event(last_seq, prev_of_last, now_ms(), "tamper fork");
        forged.push((
            "a different event at a seq bob holds (a fork)",
            Segment::seal(
                &alice_secret,
                &bob_key,
                &bob_x,
                have,
                now_ms(),
                &[fork.signed_bytes()],
            )
            .expect("seal"),
        ));
    }
    for (what, blob) in &forged {
        let r = append(&rig, &slot, &token, blob);
        assert!(r.is_success(), "append {what}: {}", r.text());
    }

    // bob comes back (any command starts his daemon) and reads it all.
    let before = bob.tail(5);
    assert!(!before.is_empty());
    await_messages(
        &bob,
        &alice,
        "tamper replayed",
        &["tamper replayed".to_owned()],
        POLL_DEADLINE,
    );
    await_drained(&rig, &slot, &token);

    // Replay alice's captured blobs, twice, after bob consumed the originals.
    for round in 0..2 {
        for (_, blob) in &captured {
            let r = append(&rig, &slot, &token, blob);
            assert!(r.is_success(), "replay round {round}: {}", r.text());
        }
        await_drained(&rig, &slot, &token);
    }

    alice.send_stored(&bob, "tamper after");
    await_messages(
        &bob,
        &alice,
        "tamper after",
        &["tamper after".to_owned()],
        POLL_DEADLINE,
    );
    let tail = bob.tail(50);
    let from_alice: Vec<String> = bodies_from(&tail, &alice);
    assert_eq!(
        from_alice,
        ["tamper before", "tamper replayed", "tamper after"],
        "bob's tail from alice"
    );
    assert!(
        bodies_from(&tail, &bob).is_empty() && tail.iter().all(|m| m["verified"] == true),
        "{tail:?}"
    );

    let status = bob.status();
    let report = &status["report"];
    let refused: Vec<String> = report["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r["what"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    eprintln!(
        "tamper: bob refused {}:\n  {}",
        report["refused_total"],
        refused.join("\n  ")
    );
    let n = forged.len() as u64;
    assert!(
        report["refused_total"].as_u64() >= Some(n),
        "{n} forged blobs, but bob reports {} refusals: {refused:#?}",
        report["refused_total"]
    );
    let mut reasons = vec![
        ("random bytes", "version"),
        ("a flipped bit", "does not open"),
        ("the misaddressed segment", "not to us"),
        ("the forged signature", "signature does not verify"),
        ("the stranger's segment", "not a peer"),
        ("the future-dated event", "in the future"),
    ];
    if prev_of_last.is_some() {
        reasons.push(("the fork", "forked"));
    }
    for (what, reason) in reasons {
        assert!(
            refused.iter().any(|r| r.contains(reason)),
            "no refusal for {what} (`{reason}`) in bob's status: {refused:#?}"
        );
    }
    bob.verify_clean();
    alice.verify_clean();
}

// ---------------------------------------------------------------------------------------------
// 6. A blind relay

/// The relay's files never hold a message's text, neither while it waits in the mailbox nor
/// after delivery. What they hold of names and keys is printed for review.
#[test]
fn the_relay_never_holds_message_text() {
    const SECRET: &str = "zebra-quartz-7781";
    let rig = Rig::new(&[]);
    let alice = rig.agent("qwertyalice");
    let bob = rig.agent("qwertybob");
    pair(&alice, &bob);
    alice.send_stored(&bob, &format!("{SECRET} one"));
    bob.send_stored(&alice, &format!("{SECRET} two"));
    await_messages(
        &bob,
        &alice,
        SECRET,
        &[format!("{SECRET} one")],
        POLL_DEADLINE,
    );
    await_messages(
        &alice,
        &bob,
        SECRET,
        &[format!("{SECRET} two")],
        POLL_DEADLINE,
    );

    // A message waiting in the mailbox, and a long one with the text many times over.
    bob.stop_daemon();
    alice.send_stored(&bob, &format!("{SECRET} waiting"));
    alice.send_stored(&bob, &format!("{SECRET} ").repeat(2000));

    let scan = |when: &str| {
        let mut files = Vec::new();
        let mut stack = vec![rig.relay_data()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("read relay dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push((p.clone(), std::fs::read(&p).expect("read relay file")));
                }
            }
        }
        assert!(!files.is_empty(), "no relay files");
        let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, SECRET.as_bytes()),
                "{when}: {} holds the message text",
                path.display()
            );
        }
        // Names and keys: public in the directory by design; printed for the record.
        let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
        for a in [&alice, &bob] {
            let nick = a.handle.split('@').next().unwrap_or("").to_owned();
            needles.push((format!("nick {nick}"), nick.into_bytes()));
            needles.push((format!("DID of {}", a.handle), a.did.clone().into_bytes()));
            needles.push((
                format!("nickname {}", a.nickname),
                a.nickname.clone().into_bytes(),
            ));
            needles.push((
                format!("raw key of {}", a.handle),
                hex::decode(&a.key).expect("hex"),
            ));
        }
        for (what, needle) in &needles {
            let hits: Vec<String> = files
                .iter()
                .filter(|(_, b)| contains(b, needle))
                .map(|(p, _)| {
                    p.strip_prefix(rig.relay_data())
                        .unwrap_or(p)
                        .display()
                        .to_string()
                })
                .collect();
            eprintln!("relay files ({when}) holding the {what}: {hits:?}");
        }
    };
    scan("while a message waits");
    let (slot, token) = bob.slot();
    assert!(
        !read_slot(&rig, &slot, &token).is_empty(),
        "the messages should still wait in the mailbox"
    );
    await_messages(
        &bob,
        &alice,
        &format!("{SECRET} w"),
        &[format!("{SECRET} waiting")],
        POLL_DEADLINE,
    );
    await_drained(&rig, &slot, &token);
    scan("after delivery");
}

// ---------------------------------------------------------------------------------------------
// The relay's phonebook

#[test]
fn claim_listed_puts_the_handle_in_the_phonebook_and_a_plain_claim_takes_it_out() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("pbalice");
    let phonebook = || {
        http::request(&rig.target(), "GET", "/phonebook", &[], b"")
            .expect("GET /phonebook")
            .text()
    };
    let entry = format!("data-handle=\"{}\"", alice.handle);
    assert!(!phonebook().contains(&entry), "init does not list");
    let v = alice.json(&["claim", "--listed", "--profile", "Reads <b>logs</b>"]);
    assert_eq!(v["listed"], true, "{v}");
    assert_eq!(v["handle"], alice.handle.as_str(), "{v}");
    let page = phonebook();
    assert!(page.contains(&entry), "{page}");
    assert!(page.contains("Reads &lt;b&gt;logs&lt;/b&gt;"), "{page}");
    assert!(
        page.contains(&alice.nickname),
        "the Character is shown: {page}"
    );
    let v = alice.json(&["claim"]);
    assert_eq!(v["listed"], false, "{v}");
    assert!(!phonebook().contains(&entry), "a plain claim unlists");
    // A profile needs --listed, and the relay's rule on profiles reaches the user.
    let r = alice.run(&["claim", "--profile", "x"]);
    assert_ne!(r.code, 0, "{}", r.describe());
    let long = "x".repeat(121);
    let r = alice.run(&["claim", "--listed", "--profile", &long]);
    assert_ne!(r.code, 0, "{}", r.describe());
    assert!(r.stderr.contains("120 characters"), "{}", r.describe());
}

/// A daemon going away (killed, its last threads still closing its files) may take a
/// command's connection into its listener's queue and close it unread. The command never ran
/// there, so it is handed to a new daemon and succeeds, instead of failing with "lost the
/// wire daemon mid-command" (seen once under load, right after a `kill -9`). The dying daemon
/// is a listener on the control socket that accepts, waits, and closes without reading.
#[test]
fn a_command_a_dying_daemon_dropped_unread_goes_to_a_new_daemon() {
    let root = tempfile::tempdir().expect("tempdir");
    let home = root.path().join("phoenix");
    wire(&home, &["init", "phoenix", "--offline"], &[]).ok();
    wire(&home, &["daemon", "stop"], &[]).ok();
    let sock = home.join("daemon.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let dying = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        // The command wrote its request and waits for the answer.
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_file(&sock);
        drop(listener);
        drop(conn);
    });
    let who = wire(&home, &["whoami", "--json"], &[]).ok().json();
    dying.join().expect("the dying daemon");
    assert_eq!(
        who["handle"].as_str().map(|h| h.starts_with("phoenix")),
        Some(true),
        "{who}"
    );
    assert!(
        !daemons_of(&home).is_empty(),
        "a new daemon took the command"
    );
}

/// `wire daemon stop` while commands wait in the daemon (the MCP server's `wire watch`, a
/// `tail --follow`): their streams end, they exit 0, and the daemon stops without a panic
/// (their timers used to be polled on a runtime that was shutting down, a panic per waiting
/// command in `daemon.log`).
#[test]
fn the_daemon_stops_cleanly_under_waiting_commands() {
    let root = tempfile::tempdir().expect("tempdir");
    let home = root.path().join("waiter");
    wire(&home, &["init", "waiter", "--offline"], &[]).ok();
    let spawn = |args: &[&str]| {
        clean_env(Command::new(EXE).args(args), &home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wire")
    };
    let mut watch = spawn(&["watch"]);
    let mut follow = spawn(&["tail", "--follow"]);
    {
        use std::io::BufRead;
        let mut first = String::new();
        std::io::BufReader::new(watch.stdout.as_mut().expect("stdout"))
            .read_line(&mut first)
            .expect("read");
        assert!(first.contains("ready"), "watch began with {first:?}");
    }
    poll("both commands to wait in the daemon", || {
        let d = daemons_of(&home);
        if d.is_empty() {
            return Err("no daemon yet".into());
        }
        // `tail --follow` prints nothing for an empty log; give it a moment in its loop.
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    });
    wire(&home, &["daemon", "stop"], &[]).ok();
    for (what, child) in [("watch", &mut watch), ("tail --follow", &mut follow)] {
        let until = Instant::now() + POLL_DEADLINE;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < until,
                "`wire {what}` still runs after the daemon stopped"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "`wire {what}` exited {status}");
    }
    let log = std::fs::read_to_string(home.join("daemon.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "daemon.log:\n{log}");
}
