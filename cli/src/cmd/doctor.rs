//! `wire doctor [--json] [--stale-after AGE]`: every failure class we know of, each as PASS,
//! WARN or FAIL with the exact command that fixes it; exit 1 on any FAIL.
//!
//! It runs in the client process, so it can see what the daemon cannot: whether a daemon runs
//! at all (it never starts one), which binary the MCP hosts launch, the permissions of the
//! files on disk. The session's side comes from `wire status` — asked of the daemon when one
//! runs, computed here otherwise — and the doctor only judges that report.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use wire_engine::{Home, PeerState};

use super::Chosen;
use super::status::{Status, ago};
use crate::agent::Agent;
use crate::daemon;
use crate::output::{Out, Style};

/// A clock this far from a relay's is worth a warning.
const SKEW_WARN_MS: i64 = 60_000;
/// Intros and pairings are refused outside ±15 min (PROTOCOL §17): a failure.
const SKEW_FAIL_MS: i64 = 15 * 60_000;
/// Directory depth the permission walk follows under the state root.
const WALK_DEPTH_MAX: usize = 6;
/// Entries the permission walk looks at, at most.
const WALK_ENTRIES_MAX: usize = 20_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Warn about a peer that has not confirmed our events for this long (`2d`, `12h`, `30m`,
    /// `90s`).
    #[arg(long, default_value = "2d", value_parser = parse_age)]
    stale_after: Duration,
}

fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` needs a unit: s, m, h or d (as in 2d)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` does not start with a number (as in 2d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("unknown unit `{unit}`: use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked: `daemon`, `relay`, `slot`, `peer`, `permissions`, `mcp`, ...
    pub check: &'static str,
    pub level: Level,
    pub detail: String,
    /// The command that fixes it (WARN and FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn pass(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        level: Level::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        level: Level::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        level: Level::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    session: String,
    fails: usize,
    warns: usize,
    checks: Vec<Check>,
}

pub fn run(out: &Out, chosen: &Chosen, args: Args, no_daemon: bool) -> anyhow::Result<ExitCode> {
    let home = Home::from_env()?;
    let mut checks = Vec::new();
    let status = session_status(&home, chosen, no_daemon, &mut checks);
    if let Some(st) = &status {
        judge(st, &args, &mut checks);
    }
    checks.extend(daemon_processes(&home, status.as_ref()));
    checks.extend(permissions(&home));
    checks.extend(mcp_hosts());
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warns = checks.iter().filter(|c| c.level == Level::Warn).count();
    let report = Report {
        ok: fails == 0,
        session: chosen.name.clone(),
        fails,
        warns,
        checks,
    };
    out.print(&report, || prose(&report));
    Ok(if fails > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn prose(r: &Report) -> String {
    let mut s = String::new();
    for c in &r.checks {
        let tag = match c.level {
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        let _ = writeln!(s, "{tag}  {}: {}", c.check, super::printable(&c.detail));
        if let Some(fix) = &c.fix {
            let _ = writeln!(s, "      fix: {fix}");
        }
    }
    let _ = match (r.fails, r.warns) {
        (0, 0) => writeln!(s, "All {} checks pass.", r.checks.len()),
        (0, w) => writeln!(
            s,
            "No failures; {}.",
            crate::output::count(w as u64, "warning", "warnings")
        ),
        (f, w) => writeln!(
            s,
            "{}, {}.",
            crate::output::count(f as u64, "failure", "failures"),
            crate::output::count(w as u64, "warning", "warnings")
        ),
    };
    s
}

/// The session's report: from the daemon when one runs, else computed in this process.
fn session_status(
    home: &Home,
    chosen: &Chosen,
    no_daemon: bool,
    checks: &mut Vec<Check>,
) -> Option<Status> {
    if !home.has_session(&chosen.name) {
        checks.push(fail(
            "session",
            format!(
                "there is no session `{}` in {}",
                chosen.name,
                home.root().display()
            ),
            "`wire init <handle>` creates one (`wire session list` shows the others)",
        ));
        return None;
    }
    let running = daemon::connect(home).is_some();
    if running && !no_daemon {
        let request = daemon::Request {
            v: 1,
            argv: vec![
                "wire".into(),
                "--json".into(),
                "--session".into(),
                chosen.name.clone(),
                "status".into(),
            ],
            style: Style {
                json: true,
                emoji: false,
                colour: false,
                chatter: false,
            },
            chosen: chosen.clone(),
            cwd: None,
        };
        return match daemon::capture(home, &request) {
            Ok((stdout, _, 0)) => match serde_json::from_str::<Status>(&stdout) {
                Ok(st) => {
                    checks.push(pass(
                        "daemon",
                        format!(
                            "running (pid {}, up {} s)",
                            st.pid.unwrap_or(0),
                            st.uptime_s.unwrap_or(0)
                        ),
                    ));
                    Some(st)
                }
                Err(e) => {
                    checks.push(fail(
                        "daemon",
                        format!(
                            "the daemon's status is unreadable ({e}); it may run an older wire"
                        ),
                        "`wire upgrade --local` restarts it on this binary",
                    ));
                    None
                }
            },
            Ok((_, stderr, _)) => {
                checks.push(fail(
                    "daemon",
                    format!("the daemon could not report: {}", stderr.trim()),
                    format!(
                        "see {} ; `wire daemon stop && wire daemon` restarts it",
                        daemon::log_path(home).display()
                    ),
                ));
                None
            }
            Err(e) => {
                checks.push(fail(
                    "daemon",
                    format!("the daemon does not answer: {e:#}"),
                    "`wire daemon stop && wire daemon` restarts it",
                ));
                None
            }
        };
    }
    if running {
        checks.push(warn(
            "daemon",
            "a daemon runs, but --no-daemon asked the doctor not to use it; its view is not checked",
            "run `wire doctor` without --no-daemon",
        ));
        return None;
    }
    if !no_daemon {
        checks.push(fail(
            "daemon",
            "no daemon is running: nothing is received or pushed in the background",
            "`wire daemon` starts one; `wire service install` keeps one running across logins",
        ));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            checks.push(fail(
                "session",
                format!("cannot start the async runtime: {e}"),
                "free some memory or threads and run `wire doctor` again",
            ));
            return None;
        }
    };
    let agent = Agent::new(home.clone(), rt.handle().clone(), false);
    let opened = agent
        .session(&chosen.name)
        .and_then(|live| super::status::collect(&agent, &live, &chosen.name, None));
    match opened {
        Ok(st) => Some(st),
        Err(e) => {
            checks.push(fail(
                "session",
                format!("cannot open session `{}`: {e:#}", chosen.name),
                "`wire verify` says what is damaged",
            ));
            None
        }
    }
}

/// Judges the session's report.
fn judge(st: &Status, args: &Args, checks: &mut Vec<Check>) {
    if st.receiving.is_empty() {
        checks.push(fail(
            "slot",
            "this session receives nowhere: nobody can reach it",
            "`wire init --relay URL` (or `wire rotate-slot --relay URL`) attaches a relay",
        ));
    }
    for slot in &st.receiving {
        match slot.read {
            Some(false) => checks.push(fail(
                "slot",
                format!("the daemon does not read the slot at {}", slot.relay),
                "`wire daemon stop && wire daemon` restarts its readers",
            )),
            _ => {
                if slot.error.is_none() {
                    checks.push(pass(
                        "slot",
                        match slot.read {
                            Some(true) => {
                                format!("receiving at {}, and the daemon reads it", slot.relay)
                            }
                            _ => format!("receiving at {}", slot.relay),
                        },
                    ));
                }
            }
        }
    }
    for slot in &st.retired {
        checks.push(fail(
            "slot",
            format!(
                "a slot we retired at {} still holds {} written to it after we stopped reading",
                slot.relay,
                crate::output::count(slot.unread.unwrap_or(0), "blob", "blobs")
            ),
            "`wire sync --retired` reads them once",
        ));
    }
    let ours: Vec<&str> = st.receiving.iter().map(|s| s.relay.as_str()).collect();
    for r in &st.relays {
        let mine = ours.contains(&r.url.as_str());
        if !r.reachable {
            let why = r.error.as_deref().unwrap_or("no answer");
            if mine {
                checks.push(fail(
                    "relay",
                    format!("{} (where we receive) is unreachable: {why}", r.url),
                    relay_fix(&r.url, why),
                ));
            } else {
                let who: Vec<&str> = st
                    .peers
                    .iter()
                    .filter(|p| p.endpoints.contains(&r.url))
                    .map(|p| p.handle.as_str())
                    .collect();
                checks.push(warn(
                    "relay",
                    format!(
                        "{} (where {} receives) is unreachable: {why}; messages to them wait in our log",
                        r.url,
                        who.join(", ")
                    ),
                    if is_trust_problem(why) {
                        relay_fix(&r.url, why)
                    } else {
                        "nothing is lost; `wire sync` retries now, or ask them whether their relay moved".into()
                    },
                ));
            }
            continue;
        }
        checks.push(pass(
            "relay",
            format!("{} answers in {:.1} ms", r.url, r.latency_ms.unwrap_or(0.0)),
        ));
        if let Some(skew) = r.skew_ms {
            let off = format!(
                "our clock is {:.0} s {} {}'s",
                skew.unsigned_abs() as f64 / 1000.0,
                if skew > 0 { "behind" } else { "ahead of" },
                r.url
            );
            let fix =
                "sync the clock: `sudo timedatectl set-ntp true` (or `sudo chronyc makestep`)";
            if skew.abs() >= SKEW_FAIL_MS {
                checks.push(fail(
                    "clock",
                    format!("{off}: pair requests and invites are refused beyond 15 min"),
                    fix,
                ));
            } else if skew.abs() >= SKEW_WARN_MS {
                checks.push(warn("clock", off, fix));
            }
        }
    }
    let stale_ms = u64::try_from(args.stale_after.as_millis()).unwrap_or(u64::MAX);
    for p in &st.peers {
        if p.state != PeerState::Paired {
            continue;
        }
        let mut fine = true;
        if let Some(t) = p.oldest_unacked_ms
            && p.unacked > 0
            && st.now_ms.saturating_sub(t) >= stale_ms
        {
            fine = false;
            checks.push(warn(
                "peer",
                format!(
                    "{} ({}) has not confirmed {} of ours; the oldest was written {}: they may not be reading their mail",
                    p.nickname,
                    p.handle,
                    crate::output::count(p.unacked, "event", "events"),
                    ago(st.now_ms, t)
                ),
                format!(
                    "ask them to run `wire sync`; if they are gone for good, `wire forget {}`",
                    p.nickname
                ),
            ));
        }
        if p.held > 0 {
            fine = false;
            checks.push(warn(
                "peer",
                format!(
                    "{} from {} {} aside for seq {}, which has not arrived",
                    crate::output::count(p.held as u64, "event", "events"),
                    p.nickname,
                    if p.held == 1 { "waits" } else { "wait" },
                    p.held_waits_for.unwrap_or(0)
                ),
                "`wire sync` asks them to resend; they arrive when their daemon runs",
            ));
        }
        if let Some(q) = &p.queued {
            fine = false;
            checks.push(warn(
                "peer",
                format!("our outbox for {} waits: {q}", p.nickname),
                "`wire sync` retries now; `wire status --peer NAME` shows the line",
            ));
        }
        if fine {
            checks.push(pass(
                "peer",
                format!(
                    "{} ({}): confirms what we send, nothing waits aside or queued",
                    p.nickname, p.handle
                ),
            ));
        }
    }
    if !st.pending.is_empty() {
        let names: Vec<String> = st
            .pending
            .iter()
            .map(|w| format!("{} ({})", w.nickname, w.handle))
            .collect();
        checks.push(warn(
            "pending",
            format!(
                "{} waiting for your decision: {}",
                crate::output::count(st.pending.len() as u64, "pair request", "pair requests"),
                names.join(", ")
            ),
            "`wire pending` shows them; `wire accept NAME` or `wire reject NAME`",
        ));
    }
}

/// A relay error that is wire-net's TLS refusal (`NetError::Certificate`, `NetError::Trust`):
/// the network is fine, the trust is not.
fn is_trust_problem(why: &str) -> bool {
    why.starts_with("the certificate of ") || why.starts_with(wire_net::tls::CA_FILE_VAR)
}

fn relay_fix(url: &str, why: &str) -> String {
    if is_trust_problem(why) {
        return format!(
            "if the relay uses your own CA, set {}=/path/to/ca.pem (PEM) and run `wire daemon stop` so the daemon reads it; else its operator must fix its certificate",
            wire_net::tls::CA_FILE_VAR
        );
    }
    let loopback =
        url.contains("://127.") || url.contains("://localhost") || url.contains("://[::1]");
    match url.split_once("://").map(|(_, rest)| rest.trim_end_matches('/')) {
        Some(addr) if loopback => format!(
            "start it: `wire relay-server --bind {addr}` (`wire service install` keeps it running)"
        ),
        _ if url.starts_with("unix:") => format!(
            "start the relay that serves {url} (`wire relay-server --uds PATH`)"
        ),
        _ => "check the network; if the relay is gone for good, `wire rotate-slot --relay URL` moves to another".into(),
    }
}

/// The `wire daemon` processes of this state root other than the one that holds the lock,
/// and whether the daemon runs this binary.
fn daemon_processes(home: &Home, status: Option<&Status>) -> Vec<Check> {
    let mut checks = Vec::new();
    let root = std::fs::canonicalize(home.root()).unwrap_or_else(|_| home.root().to_owned());
    let pids = daemons_of(&root);
    let holder = status.and_then(|s| s.pid);
    let others: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| Some(*p) != holder)
        .collect();
    if holder.is_some() && !others.is_empty() {
        let list: Vec<String> = others.iter().map(u32::to_string).collect();
        checks.push(fail(
            "daemon",
            format!(
                "{} more daemon processes for {} besides pid {}: {}",
                others.len(),
                root.display(),
                holder.unwrap_or(0),
                list.join(", ")
            ),
            format!(
                "`kill {}` (the daemon holding the lock stays)",
                list.join(" ")
            ),
        ));
    }
    if let Some(st) = status
        && let Some(exe) = &st.daemon_exe
        && let Ok(mine) = std::env::current_exe()
    {
        let same = std::fs::canonicalize(exe).ok() == std::fs::canonicalize(&mine).ok();
        if !same {
            checks.push(warn(
                "daemon",
                format!("the daemon runs {exe}, not this wire ({})", mine.display()),
                "`wire upgrade --local` restarts it on this binary",
            ));
        }
    }
    checks
}

/// Pids of `wire daemon --foreground` processes whose WIRE_HOME is `root` (Linux: `/proc`).
fn daemons_of(root: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !is_daemon_cmdline(&cmdline) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if let Some(h) = env_value(&environ, b"WIRE_HOME") {
            let h = PathBuf::from(String::from_utf8_lossy(h).into_owned());
            if std::fs::canonicalize(&h).unwrap_or(h) == root {
                pids.push(pid);
            }
        }
    }
    pids
}

fn is_daemon_cmdline(cmdline: &[u8]) -> bool {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let Some(arg0) = args.first() else {
        return false;
    };
    let name = Path::new(std::str::from_utf8(arg0).unwrap_or(""))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    name.starts_with("wire")
        && args.iter().any(|a| *a == b"daemon")
        && args.iter().any(|a| *a == b"--foreground")
}

fn env_value<'a>(environ: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    environ.split(|b| *b == 0).find_map(|kv| {
        let rest = kv.strip_prefix(name)?;
        rest.strip_prefix(b"=")
    })
}

/// Keys, tokens, stores and sockets must be ours and closed to group and others.
fn permissions(home: &Home) -> Vec<Check> {
    let mut bad: Vec<(PathBuf, u32, bool)> = Vec::new();
    let me = std::fs::metadata(home.root()).map(|m| m.uid()).ok();
    let mut seen = 0usize;
    let mut stack = vec![(home.root().to_owned(), 0usize)];
    while let Some((path, depth)) = stack.pop() {
        seen += 1;
        if seen > WALK_ENTRIES_MAX {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.mode() & 0o777;
        let foreign = me.is_some_and(|uid| uid != meta.uid());
        if mode & 0o077 != 0 || foreign {
            bad.push((path.clone(), mode, meta.is_dir()));
        }
        if meta.is_dir()
            && depth < WALK_DEPTH_MAX
            && let Ok(rd) = std::fs::read_dir(&path)
        {
            for e in rd.flatten() {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    if bad.is_empty() {
        return vec![pass(
            "permissions",
            format!(
                "everything under {} is private (0700 directories, 0600 files)",
                home.root().display()
            ),
        )];
    }
    bad.sort();
    bad.into_iter()
        .map(|(path, mode, is_dir)| {
            let want = if is_dir { "700" } else { "600" };
            fail(
                "permissions",
                format!(
                    "{} is mode {mode:03o}: other users may read {}",
                    path.display(),
                    if is_dir { "what it holds" } else { "it" }
                ),
                format!("chmod {want} '{}'", path.display()),
            )
        })
        .collect()
}

/// Every MCP host config with a wire entry must launch this binary.
fn mcp_hosts() -> Vec<Check> {
    let entries = match super::setup::host_entries() {
        Ok(e) => e,
        Err(e) => {
            return vec![warn(
                "mcp",
                format!("cannot look for MCP host configs: {e:#}"),
                "set HOME and run `wire doctor` again",
            )];
        }
    };
    let mine = std::env::current_exe().ok();
    let mut checks = Vec::new();
    for e in entries {
        match e.command {
            Ok(None) => {}
            Ok(Some(cmd)) => {
                let same = mine.as_ref().is_some_and(|m| {
                    std::fs::canonicalize(&cmd).ok() == std::fs::canonicalize(m).ok()
                });
                if same {
                    checks.push(pass("mcp", format!("{} runs this wire", e.host)));
                } else if !Path::new(&cmd).exists() {
                    checks.push(fail(
                        "mcp",
                        format!(
                            "{} ({}) launches {cmd}, which does not exist: its wire tools fail to start",
                            e.host,
                            e.file.display()
                        ),
                        "`wire setup --apply` points it at this binary",
                    ));
                } else {
                    checks.push(warn(
                        "mcp",
                        format!(
                            "{} ({}) launches {cmd}, not this wire ({})",
                            e.host,
                            e.file.display(),
                            mine.as_ref()
                                .map_or_else(String::new, |m| m.display().to_string())
                        ),
                        "`wire setup --apply` points it at this binary",
                    ));
                }
            }
            Err(why) => checks.push(warn(
                "mcp",
                format!("{} ({}) cannot be read: {why}", e.host, e.file.display()),
                "fix the file by hand, then `wire setup --apply`",
            )),
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_units_only() {
        assert_eq!(parse_age("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert!(parse_age("12").is_err());
        assert!(parse_age("d").is_err());
        assert!(parse_age("3w").is_err());
    }

    #[test]
    fn daemon_command_lines_are_recognised() {
        assert!(is_daemon_cmdline(b"/usr/bin/wire\0daemon\0--foreground\0"));
        assert!(is_daemon_cmdline(
            b"wire-0.9\0--json\0daemon\0--foreground\0"
        ));
        assert!(!is_daemon_cmdline(b"/usr/bin/wire\0daemon\0status\0"));
        assert!(!is_daemon_cmdline(b"/usr/bin/vim\0daemon\0--foreground\0"));
        assert!(!is_daemon_cmdline(b""));
        assert_eq!(
            env_value(b"A=1\0WIRE_HOME=/x\0", b"WIRE_HOME"),
            Some(&b"/x"[..])
        );
        assert_eq!(env_value(b"WIRE_HOMEX=/y\0", b"WIRE_HOME"), None);
    }
}
