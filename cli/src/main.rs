//! `wire`: the command-line interface. One module per subcommand; all output goes through
//! [`output`], which knows prose from JSON and emoji from ASCII. Commands that touch a session
//! run inside the daemon ([`daemon`]), which owns every store; `--no-daemon` runs them here.

mod agent;
mod cmd;
mod daemon;
mod names;
mod notify;
mod output;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::agent::Agent;
use crate::output::Out;

/// A phone line for AI agents.
#[derive(Debug, Parser)]
#[command(name = "wire", version, about, propagate_version = true)]
struct Cli {
    /// Print one JSON document on stdout (the default when stdout is not a terminal,
    /// unless WIRE_NO_AUTO_JSON=1).
    #[arg(long, global = true)]
    json: bool,

    /// Use this session instead of the one the environment selects.
    #[arg(long, global = true, env = "WIRE_SESSION")]
    session: Option<String>,

    /// Open the store in this process instead of asking the daemon (nothing is received in
    /// the background; `wire sync` pulls).
    #[arg(
        long,
        global = true,
        env = "WIRE_NO_DAEMON",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0,
        default_missing_value = "true"
    )]
    no_daemon: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this session's identity and attach it to a relay.
    Init(cmd::init::Args),
    /// Publish a handle (nick@relay-domain) in the relay's directory.
    Claim(cmd::claim::Args),
    /// Who this session is.
    Whoami(cmd::whoami::Args),
    /// One screen: who you are, your peers, requests waiting, sessions on this machine.
    Here(cmd::here::Args),
    /// Look someone up: a peer by nickname, handle or DID, or nick@domain on its relay.
    Whois(cmd::whois::Args),
    /// Ask nick@domain to pair with you.
    Dial(cmd::dial::Args),
    /// Pair requests waiting for your decision.
    Pending(cmd::pending::Args),
    /// Accept a pair request: pin the peer and let it write to you.
    Accept(cmd::decide::AcceptArgs),
    /// Refuse a pair request; the refusal sticks.
    Reject(cmd::decide::RejectArgs),
    /// Mint a signed invite URL that pairs whoever presents it (`wire accept '<url>'`).
    Invite(cmd::invite::Args),
    /// Pair by a code read aloud: show a code, compare a short authentication string.
    PairHost(cmd::pair::HostArgs),
    /// Join a pairing by the code the host's operator read out.
    PairJoin(cmd::pair::JoinArgs),
    /// Where pairings by code stand (the SAS to compare, paired, failed).
    PairCheck(cmd::pair::CheckArgs),
    /// Answer a pairing by code: the SAS digits, yes, or no.
    PairConfirm(cmd::pair::ConfirmArgs),
    /// Your peers and where each line stands.
    Peers(cmd::peers::Args),
    /// Send a message to a peer.
    Send(cmd::send::Args),
    /// Show verified messages.
    Tail(cmd::tail::Args),
    /// Replicate now: pull our mailboxes and intro queue, push every outbox.
    Sync(cmd::sync::Args),
    /// Replication status: the daemon, queues, events waiting aside, refusals.
    Status(cmd::status::Args),
    /// Check every failure class we know of; PASS, WARN or FAIL each, with the fix.
    Doctor(cmd::doctor::Args),
    /// Desktop notifications: `wire quiet on` silences them, `off` brings them back.
    Quiet(cmd::quiet::Args),
    /// Audit the whole session: every signature, chain link and projection.
    Verify(cmd::verify::Args),
    /// Every peer's last contact (`status`), and one message to all of them (`broadcast`).
    #[command(subcommand)]
    Mesh(cmd::mesh::Command),
    /// The file contract for agents that cannot run a process: inbox and outbox files.
    #[command(subcommand)]
    Files(cmd::files::Command),
    /// Many agents on one machine: create, list, bind, destroy and mesh sessions.
    #[command(subcommand)]
    Session(cmd::session::Command),
    /// Show, rename or list identities.
    #[command(subcommand)]
    Identity(cmd::identity::Command),
    /// Run two agents and a relay in temporary homes, pair them and exchange a message.
    Demo(cmd::demo::Args),
    /// The background process that owns the stores and replicates.
    Daemon(cmd::daemon::Args),
    /// Run a relay: a blind, durable mailbox other agents reach you through.
    RelayServer(cmd::relay::Args),
    /// The MCP server on stdin/stdout, for Claude Code, Cursor and other hosts.
    Mcp(cmd::mcp::Args),
    /// Print a shell completion script: `wire completions bash > ~/.local/share/bash-completion/completions/wire`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Keep the daemon (and the local relay) running across logins: systemd or launchd.
    #[command(subcommand)]
    Service(cmd::service::Command),
    /// Restart this machine's daemon and local relay on the current binary (`--local`).
    Upgrade(cmd::service::UpgradeArgs),
    /// Add wire to the MCP hosts on this machine (shows the changes; `--apply` makes them).
    Setup(cmd::setup::Args),
    /// Stream changes as JSON lines (what `wire mcp` follows).
    #[command(hide = true)]
    Watch(cmd::watch::Args),
    /// Drop a peer and revoke its capability.
    #[command(hide = true)]
    Forget(cmd::decide::ForgetArgs),
    /// Move to a new mailbox slot and tell every peer.
    #[command(hide = true)]
    RotateSlot(cmd::rotate::Args),
    /// Deprecated: `wire accept`.
    #[command(hide = true)]
    PairAccept(cmd::decide::AcceptArgs),
    /// Deprecated: `wire reject`.
    #[command(hide = true)]
    PairReject(cmd::decide::RejectArgs),
    /// Deprecated: `wire pending`.
    #[command(hide = true)]
    PairListInbound(cmd::pending::Args),
    /// Measure the local engine end to end (see docs/BENCHMARKS.md).
    #[command(hide = true)]
    Bench(cmd::bench::Args),
    /// Measure a relay over HTTP from a separate process (see docs/BENCHMARKS.md).
    #[command(hide = true)]
    BenchRelay(cmd::relay_bench::Args),
    /// Measure two agents talking through a relay (see docs/BENCHMARKS.md).
    #[command(hide = true)]
    BenchLine(cmd::bench_line::Args),
    /// Measure `wire mcp`: start-up and tool calls (see docs/BENCHMARKS.md).
    #[command(hide = true)]
    BenchMcp(cmd::bench_mcp::Args),
    /// Measure many sessions on one machine: pair-all-local and sister sends.
    #[command(hide = true)]
    BenchSessions(cmd::bench_sessions::Args),
    /// The bounded load test: a relay under a thousand agent pairs' traffic (docs/BENCHMARKS.md).
    #[command(hide = true)]
    BenchLoad(cmd::bench_load::Args),
}

impl Command {
    /// The verb that replaced a deprecated one, with the deprecated spelling.
    fn deprecated(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Command::PairAccept(_) => Some(("pair-accept", "accept")),
            Command::PairReject(_) => Some(("pair-reject", "reject")),
            Command::PairListInbound(_) => Some(("pair-list-inbound", "pending")),
            _ => None,
        }
    }

    /// Commands that never touch a session store run in this process.
    /// Whether this command writes files meant for other programs (host configuration, service
    /// units), which keep the operator's own umask; every other command runs under 077.
    fn writes_foreign_files(&self) -> bool {
        matches!(
            self,
            Command::Setup(_) | Command::Service(_) | Command::Upgrade(_)
        )
    }

    fn is_local(&self) -> bool {
        matches!(
            self,
            Command::RelayServer(_)
                | Command::Bench(_)
                | Command::BenchRelay(_)
                | Command::BenchLine(_)
                | Command::BenchMcp(_)
                | Command::BenchSessions(_)
                | Command::BenchLoad(_)
                | Command::Demo(_)
                | Command::Daemon(_)
                | Command::Mcp(_)
                | Command::Setup(_)
                | Command::Service(_)
                | Command::Upgrade(_)
                | Command::Completions { .. }
                | Command::Doctor(_)
        )
    }
}

/// Sets the process umask to 077 before anything is created (ARCHITECTURE invariant 46).
///
/// wire's own code asks for its modes at creation (`OpenOptions::mode(0o600)`,
/// `DirBuilder::mode(0o700)`, a redb file created 0600 before redb opens it, sockets bound inside
/// a 0700 directory), so nothing it writes depends on this. The umask is the second line for
/// what wire does not create itself with a mode (a dependency's temporary file, the relay's data
/// files when run as `wire relay-server`, a future file someone forgets to give a mode): under
/// 077 none of them can ever be created readable by other users, whatever umask the operator's
/// shell has. The umask is process-wide, so it is set here, once, while the process has one
/// thread, and never changed again; `setup`, `service` and `upgrade`, which write files for
/// other programs, keep the operator's umask.
fn private_umask() {
    use rustix::fs::Mode;
    rustix::process::umask(Mode::from_raw_mode(0o077));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.writes_foreign_files() {
        private_umask();
    }
    let out = Out::from_env(cli.json);
    if let Some((old, new)) = cli.command.deprecated() {
        nag_deprecated(&out, old, new);
    }
    let home = wire_engine::Home::from_env();
    let cwd = std::env::current_dir().ok();
    let chosen = cmd::resolve_chosen(cli.session.clone(), home.as_ref().ok(), cwd.as_deref());
    if let Some(warning) = &chosen.warning {
        out.write_stderr(&format!("wire: {warning}\n"));
    }
    out.diagnostic(&format!(
        "session {} (chosen by {}), state root {}",
        chosen.name,
        chosen.why(),
        home.as_ref().map_or_else(
            |e| format!("unknown ({e})"),
            |h| h.root().display().to_string()
        )
    ));
    let started = std::time::Instant::now();
    if cli.command.is_local() {
        let result = match cli.command {
            Command::RelayServer(args) => cmd::relay::run(&out, args),
            Command::Bench(args) => cmd::bench::run(&out, args),
            Command::BenchRelay(args) => cmd::relay_bench::run(&out, args),
            Command::BenchLine(args) => cmd::bench_line::run(&out, args),
            Command::BenchMcp(args) => cmd::bench_mcp::run(&out, args),
            Command::BenchSessions(args) => cmd::bench_sessions::run(&out, args),
            Command::BenchLoad(args) => cmd::bench_load::run(&out, args),
            Command::Demo(args) => cmd::demo::run(&out, args),
            Command::Daemon(args) => cmd::daemon::run(&out, &chosen, args, cli.no_daemon),
            Command::Doctor(args) => cmd::doctor::run(&out, &chosen, args, cli.no_daemon),
            Command::Setup(args) => cmd::setup::run(&out, args),
            Command::Service(command) => cmd::service::run(&out, command),
            Command::Completions { shell } => {
                let mut command = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "wire", &mut std::io::stdout());
                Ok(ExitCode::SUCCESS)
            }
            Command::Upgrade(args) => cmd::service::upgrade(&out, args),
            // stdout belongs to JSON-RPC: the server reports its own failures on stderr.
            Command::Mcp(args) => return cmd::mcp::run(chosen, args),
            _ => unreachable!("is_local covers these"),
        };
        return finish(&out, result);
    }
    let home = match home {
        Ok(h) => h,
        Err(e) => return finish(&out, Err(e.into())),
    };
    // `pair-host`/`pair-join` on a terminal: the client talks to the operator and steers the
    // pairing (which runs in the daemon, or here with --no-daemon) through its detached form.
    let start = interactive_pairing(&cli.command);
    let detached = matches!(&cli.command, Command::PairHost(a) if a.detach)
        || matches!(&cli.command, Command::PairJoin(a) if a.detach);
    if cli.no_daemon && detached {
        return finish(
            &out,
            Err(anyhow::anyhow!(
                "--detach leaves the pairing to the daemon, and --no-daemon has none; drop one of the two"
            )),
        );
    }
    // `wire status` reports a daemon that is down rather than starting one.
    let no_daemon = cli.no_daemon
        || (matches!(cli.command, Command::Status(_)) && daemon::connect(&home).is_none());
    out.diagnostic(if no_daemon {
        "running in this process (no daemon)"
    } else {
        "handing the command to the daemon"
    });
    if no_daemon {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return finish(&out, Err(e.into())),
        };
        let agent = Agent::new(home, rt.handle().clone(), false);
        if let Some(start) = start {
            let call = |argv: &[String]| {
                let captured = Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
                let sink = {
                    let c = captured.clone();
                    output::Sink::Remote(Arc::new(move |is_err: bool, bytes: &[u8]| {
                        let mut c = c.lock().expect("capture lock");
                        if is_err { &mut c.1 } else { &mut c.0 }.extend_from_slice(bytes);
                        true
                    }))
                };
                let request = pairing_request(&out, &chosen, cwd.as_deref(), argv);
                let code = run_in_daemon(agent.clone(), request, sink);
                let c = captured.lock().expect("capture lock");
                captured_json(&c.0, &c.1, code)
            };
            return finish(&out, cmd::pair::drive(&out, start, &call));
        }
        let ctx = cmd::Ctx {
            chosen,
            out: out.clone(),
            agent,
            cwd,
        };
        let result = dispatch(&ctx, cli.command);
        return finish(&out, result);
    }
    if let Some(start) = start {
        let call = |argv: &[String]| {
            let (o, e, code) =
                daemon::capture(&home, &pairing_request(&out, &chosen, cwd.as_deref(), argv))?;
            captured_json(o.as_bytes(), e.as_bytes(), code)
        };
        return finish(&out, cmd::pair::drive(&out, start, &call));
    }
    let mut argv: Vec<String> = std::env::args().collect();
    if let Command::Session(cmd::session::Command::Destroy(args)) = &cli.command
        && let Err(e) = cmd::session::confirm_destroy(args, &mut argv)
    {
        return finish(&out, Err(e));
    }
    let request = daemon::Request {
        v: wire_net::control::CONTROL_VERSION,
        argv,
        style: out.style(),
        chosen,
        cwd: cwd.and_then(|d| d.to_str().map(str::to_owned)),
    };
    let code = finish(&out, daemon::forward(&home, &request));
    out.diagnostic(&format!(
        "done in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    code
}

/// The detached command line that starts an interactive `pair-host`/`pair-join`, if this is one.
fn interactive_pairing(command: &Command) -> Option<Vec<String>> {
    let argv = match command {
        Command::PairHost(a) if !a.detach => {
            let mut v = vec!["pair-host".to_owned(), "--detach".to_owned()];
            if a.require_sas {
                v.push("--require-sas".into());
            }
            if let Some(r) = &a.relay {
                v.extend(["--relay".into(), r.clone()]);
            }
            v
        }
        Command::PairJoin(a) if !a.detach => {
            let mut v = vec!["pair-join".to_owned(), "--detach".to_owned()];
            if let Some(r) = &a.relay {
                v.extend(["--relay".into(), r.clone()]);
            }
            v.extend(["--".into(), a.code.clone()]);
            v
        }
        _ => return None,
    };
    Some(argv)
}

/// A request for one step of an interactive pairing: JSON out, the chosen session.
fn pairing_request(
    out: &Out,
    chosen: &cmd::Chosen,
    cwd: Option<&std::path::Path>,
    argv: &[String],
) -> daemon::Request {
    let mut full = vec!["wire".to_owned(), "--json".to_owned()];
    full.extend_from_slice(argv);
    let mut style = out.style();
    style.json = true;
    daemon::Request {
        v: wire_net::control::CONTROL_VERSION,
        argv: full,
        style,
        chosen: chosen.clone(),
        cwd: cwd.and_then(|d| d.to_str().map(str::to_owned)),
    }
}

/// A step's JSON output, or its error as an error.
fn captured_json(stdout: &[u8], stderr: &[u8], code: u8) -> anyhow::Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| {
        anyhow::anyhow!(
            "the pairing step answered no JSON ({e}): {}",
            String::from_utf8_lossy(stderr).trim()
        )
    })?;
    if code != 0 {
        anyhow::bail!(
            "{}",
            v["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(stderr).trim().to_owned())
        );
    }
    Ok(v)
}

/// The variable that silences the note about `verb` for one shell session.
fn nagged_var(verb: &str) -> String {
    format!(
        "WIRE_DEPRECATION_NAGGED_{}",
        verb.replace('-', "_").to_ascii_uppercase()
    )
}

/// Tells the operator, once per shell session, that `old` is now `new`. Never in JSON mode,
/// where stderr may be parsed too, and never from the daemon (the client prints it). "Once"
/// is `WIRE_DEPRECATION_NAGGED_<VERB>=1` in the environment, or a marker for the parent
/// process (the shell) under the state root, since a command cannot set its shell's variables.
fn nag_deprecated(out: &Out, old: &str, new: &str) {
    let var = nagged_var(old);
    if out.style().json || std::env::var_os(&var).is_some_and(|v| !v.is_empty()) {
        return;
    }
    if let Ok(home) = wire_engine::Home::from_env() {
        let dir = home.root().join("nagged");
        let marker = dir.join(format!("{old}.{}", std::os::unix::process::parent_id()));
        if marker.exists() {
            return;
        }
        let _ =
            wire_log::keyfile::create_private_dir(&dir).and_then(|()| std::fs::write(&marker, b""));
    }
    out.write_stderr(&format!(
        "wire: `wire {old}` is deprecated; use `wire {new}` (it takes the same arguments). \
         `export {var}=1` hides this note for the rest of this shell session.\n"
    ));
}

fn finish(out: &Out, result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            out.error(&e);
            ExitCode::from(2)
        }
    }
}

/// Whether a command line the daemon received is `wire daemon stop` (whatever flags come
/// before it), after which the daemon stops.
pub fn is_daemon_stop(argv: &[String]) -> bool {
    matches!(parse_in_daemon(argv), Ok(Cli { command: Command::Daemon(a), .. }) if a.is_stop())
}

/// Parses a command line the daemon received with one `clap::Command` built once: building
/// wire's whole command tree took most of the daemon's parsing time for each request (8% of
/// its CPU under `bench-mcp`).
fn parse_in_daemon(argv: &[String]) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    static COMMAND: std::sync::OnceLock<std::sync::Mutex<clap::Command>> =
        std::sync::OnceLock::new();
    let matches = COMMAND
        .get_or_init(|| std::sync::Mutex::new(Cli::command()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .try_get_matches_from_mut(argv)?;
    Cli::from_arg_matches(&matches)
}

/// Runs a command the daemon received; returns its exit code.
pub fn run_in_daemon(agent: Arc<Agent>, request: daemon::Request, sink: output::Sink) -> u8 {
    let out = Out::remote(request.style, sink);
    let cli = match parse_in_daemon(&request.argv) {
        Ok(c) => c,
        Err(e) => {
            out.write_stderr(&e.to_string());
            return 2;
        }
    };
    let ctx = cmd::Ctx {
        chosen: request.chosen,
        out: out.clone(),
        agent,
        cwd: request.cwd.map(std::path::PathBuf::from),
    };
    match dispatch(&ctx, cli.command) {
        Ok(code) => exit_byte(code),
        Err(e) => {
            out.error(&e);
            2
        }
    }
}

fn exit_byte(code: ExitCode) -> u8 {
    if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(1) {
        1
    } else if code == ExitCode::from(3) {
        3
    } else {
        2
    }
}

fn dispatch(ctx: &cmd::Ctx, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init(args) => cmd::init::run(ctx, args),
        Command::Claim(args) => cmd::claim::run(ctx, args),
        Command::Whoami(args) => cmd::whoami::run(ctx, args),
        Command::Here(args) => cmd::here::run(ctx, args),
        Command::Whois(args) => cmd::whois::run(ctx, args),
        Command::Dial(args) => cmd::dial::run(ctx, args),
        Command::Pending(args) => cmd::pending::run(ctx, args),
        Command::Accept(args) | Command::PairAccept(args) => cmd::decide::accept(ctx, args),
        Command::Reject(args) | Command::PairReject(args) => cmd::decide::reject(ctx, args),
        Command::Invite(args) => cmd::invite::run(ctx, args),
        Command::PairHost(args) => cmd::pair::host(ctx, args),
        Command::PairJoin(args) => cmd::pair::join(ctx, args),
        Command::PairCheck(args) => cmd::pair::check(ctx, args),
        Command::PairConfirm(args) => cmd::pair::confirm(ctx, args),
        Command::PairListInbound(args) => cmd::pending::run(ctx, args),
        Command::Forget(args) => cmd::decide::forget(ctx, args),
        Command::Peers(args) => cmd::peers::run(ctx, args),
        Command::Send(args) => cmd::send::run(ctx, args),
        Command::Tail(args) => cmd::tail::run(ctx, args),
        Command::Sync(args) => cmd::sync::run(ctx, args),
        Command::Status(args) => cmd::status::run(ctx, args),
        Command::Quiet(args) => cmd::quiet::run(ctx, args),
        Command::Watch(args) => cmd::watch::run(ctx, args),
        Command::Verify(args) => cmd::verify::run(ctx, args),
        Command::Identity(command) => cmd::identity::run(ctx, command),
        Command::Session(command) => cmd::session::run(ctx, command),
        Command::Mesh(command) => cmd::mesh::run(ctx, command),
        Command::Files(command) => cmd::files::run(ctx, command),
        Command::RotateSlot(args) => cmd::rotate::run(ctx, args),
        Command::Daemon(args) => cmd::daemon::in_daemon(ctx, args),
        Command::RelayServer(_)
        | Command::Bench(_)
        | Command::BenchRelay(_)
        | Command::BenchLine(_)
        | Command::BenchMcp(_)
        | Command::BenchSessions(_)
        | Command::BenchLoad(_)
        | Command::Mcp(_)
        | Command::Setup(_)
        | Command::Service(_)
        | Command::Upgrade(_)
        | Command::Completions { .. }
        | Command::Doctor(_)
        | Command::Demo(_) => {
            anyhow::bail!("this command runs in its own process, not inside the daemon")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_daemon_stop;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn daemon_stop_is_recognised_whatever_flags_come_first() {
        assert!(is_daemon_stop(&argv(&["wire", "daemon", "stop"])));
        assert!(is_daemon_stop(&argv(&["wire", "--json", "daemon", "stop"])));
        assert!(is_daemon_stop(&argv(&[
            "wire",
            "--session",
            "x",
            "daemon",
            "stop"
        ])));
        assert!(!is_daemon_stop(&argv(&["wire", "daemon", "status"])));
        assert!(!is_daemon_stop(&argv(&["wire", "send", "daemon", "stop"])));
        assert!(!is_daemon_stop(&argv(&["wire", "--bogus"])));
    }
}
