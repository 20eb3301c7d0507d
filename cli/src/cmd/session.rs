//! `wire session …`: many agents on one machine. Each session has its own identity, store and
//! endpoints, all hosted by the one daemon of the state root; a directory binding makes every
//! command run under that directory use one session (`resolve_chosen` has the order).
//! `list-local` and `pair-all-local` mesh the sister sessions (`sisters.rs`).

use std::fmt::Write;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::{PeerState, binding_key, check_session_name};
use wire_log::identity::Character;

use super::init::{Attach, create};
use super::{Ctx, IdentityJson};
use crate::agent::DEFAULT_RELAY;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a session with its own identity and bind this directory to it.
    New(NewArgs),
    /// Every session under this state root.
    List,
    /// The shell line that selects a session: `eval "$(wire session env NAME)"`.
    Env(EnvArgs),
    /// Which session this directory uses, and the rule that chose it.
    Current,
    /// Make this directory (and everything under it) use session NAME.
    Bind(BindArgs),
    /// Remove this directory's own binding.
    Unbind,
    /// Remove a session: its keys, store, bindings and the capabilities it granted.
    Destroy(DestroyArgs),
    /// The sister sessions on this machine and whether each is paired with this one.
    ListLocal,
    /// Pair every session on this machine with every other; pairs already made are skipped.
    PairAllLocal,
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The session's name (default: this directory's name).
    name: Option<String>,
    /// The handle's local part (default: the session's name).
    #[arg(long)]
    handle: Option<String>,
    /// The relay others reach this session through (default: the local relay).
    #[arg(long, value_name = "URL", conflicts_with = "local_only")]
    relay: Option<String>,
    /// Also hold a slot on the local loopback relay, preferred between sessions on this machine.
    #[arg(long)]
    with_local: bool,
    /// Also hold a slot on a relay on this network (`--lan-relay`), preferred over federation.
    #[arg(long)]
    with_lan: bool,
    /// Also hold a slot on the local relay's Unix socket (`--uds-relay`), preferred over all.
    #[arg(long)]
    with_uds: bool,
    /// Only the local relay: a session that talks to the sessions on this machine and needs no
    /// federation relay.
    #[arg(long)]
    local_only: bool,
    /// The local relay's URL.
    #[arg(long, value_name = "URL", env = "WIRE_LOCAL_RELAY", default_value = DEFAULT_RELAY)]
    local_relay: String,
    /// The LAN relay's URL, for `--with-lan`.
    #[arg(long, value_name = "URL", env = "WIRE_LAN_RELAY")]
    lan_relay: Option<String>,
    /// The local relay's Unix socket, for `--with-uds` (`unix:/path` or a path).
    #[arg(long, value_name = "PATH", env = "WIRE_UDS_RELAY")]
    uds_relay: Option<String>,
    /// Do not bind this directory to the new session.
    #[arg(long)]
    no_bind: bool,
    /// Turn the file contract on (`wire files on`): inbox and outbox files in the session's
    /// directory, for an agent that cannot run a process.
    #[arg(long)]
    with_files: bool,
}

#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    /// The session (default: the one this directory uses).
    name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct BindArgs {
    /// The session this directory should use.
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    /// The session to remove.
    pub name: String,
    /// Do not ask.
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::New(args) => new(ctx, args),
        Command::List => list(ctx),
        Command::Env(args) => env(ctx, args),
        Command::Current => current(ctx),
        Command::Bind(args) => bind(ctx, &args.name),
        Command::Unbind => unbind(ctx),
        Command::Destroy(args) => destroy(ctx, args),
        Command::ListLocal => super::sisters::list_local(ctx),
        Command::PairAllLocal => super::sisters::pair_all_local(ctx),
    }
}

/// Asks on the terminal before a destroy; returns the argv to forward (with `--force` once the
/// operator confirmed). Without a terminal the daemon refuses and says to pass `--force`.
pub fn confirm_destroy(args: &DestroyArgs, argv: &mut Vec<String>) -> anyhow::Result<()> {
    if args.force || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(());
    }
    eprint!(
        "Destroy session `{}`? Its keys and messages are deleted for good and its peers can no longer reach it. Type its name to confirm: ",
        args.name
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if answer.trim() != args.name {
        bail!("not confirmed; nothing was removed");
    }
    argv.push("--force".into());
    Ok(())
}

fn cwd(ctx: &Ctx) -> anyhow::Result<&Path> {
    ctx.cwd
        .as_deref()
        .context("the working directory is unknown, so nothing can be bound to it")
}

/// A session name from a directory's name: lower-cased, other characters turned into '-'.
fn name_from_dir(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("session");
    let mut name: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches(['-', '_']).to_owned();
    name.truncate(28);
    let name = name.trim_end_matches(['-', '_']).to_owned();
    if name.is_empty() {
        "session".into()
    } else {
        name
    }
}

#[derive(Debug, Serialize)]
struct Created<'a> {
    session: String,
    dir: String,
    relays: Vec<String>,
    claimed: Option<String>,
    claim_problem: Option<String>,
    handles: Vec<String>,
    bound: Option<String>,
    /// The session this directory used before, when a binding on an ancestor chose it.
    shadowed: Option<String>,
    /// The file contract is on (`--with-files`).
    files: bool,
    identity: IdentityJson<'a>,
}

fn new(ctx: &Ctx, args: NewArgs) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    let dir = cwd(ctx).ok();
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            let base = name_from_dir(dir.context("name the session: `wire session new NAME`")?);
            let mut candidate = base.clone();
            let mut n = 2;
            while home.has_session(&candidate) {
                candidate = format!("{base}-{n}");
                n += 1;
            }
            candidate
        }
    };
    check_session_name(&name)?;
    let handle = args.handle.clone().unwrap_or_else(|| {
        // A session name may hold '_' or end oddly; a handle may not.
        let h: String = name
            .chars()
            .map(|c| if c == '_' { '-' } else { c })
            .collect();
        h.trim_matches('-').to_owned()
    });
    let mut relays = Vec::new();
    if args.local_only {
        relays.push(Attach {
            relay: args.local_relay.clone(),
            named: true,
        });
    } else {
        relays.push(Attach {
            named: args.relay.is_some(),
            relay: args
                .relay
                .clone()
                .unwrap_or_else(|| DEFAULT_RELAY.to_owned()),
        });
        if args.with_local {
            relays.push(Attach {
                relay: args.local_relay.clone(),
                named: true,
            });
        }
    }
    if args.with_lan {
        let lan = args.lan_relay.clone().context(
            "--with-lan needs the LAN relay: `--lan-relay http://<this machine's LAN address>:8771` (or WIRE_LAN_RELAY)",
        )?;
        relays.push(Attach {
            relay: lan,
            named: true,
        });
    }
    if args.with_uds {
        let uds = args.uds_relay.clone().context(
            "--with-uds needs the local relay's socket: `--uds-relay /path/relay.sock` (a relay started with `wire relay-server --uds PATH`, or WIRE_UDS_RELAY)",
        )?;
        let uds = if uds.starts_with("unix:") {
            uds
        } else {
            format!("unix:{uds}")
        };
        relays.push(Attach {
            relay: uds,
            named: true,
        });
    }
    let shadowed = dir.map(|d| super::resolve_chosen(None, Some(&home), Some(d)));
    let made = create(ctx, &name, &handle, None, &relays)?;
    if args.with_files {
        crate::agent::files::set_enabled(made.live.session.dir(), true)?;
        ctx.agent.start_files(&made.live);
    }
    let bound = match (dir, args.no_bind) {
        (Some(d), false) => Some(bind_dir(ctx, d, &name)?),
        _ => None,
    };
    let shadowed = shadowed
        .filter(|c| bound.is_some() && c.rule == "binding")
        .map(|c| c.name);
    let id = made.live.session.identity()?;
    let session_dir = made.live.session.dir().display().to_string();
    ctx.out.print(
        &Created {
            session: name.clone(),
            dir: session_dir.clone(),
            relays: made.relays.clone(),
            claimed: made.claimed.clone(),
            claim_problem: made.claim_problem.clone(),
            handles: made.handles.clone(),
            bound: bound.clone(),
            shadowed: shadowed.clone(),
            files: args.with_files,
            identity: IdentityJson::of(&id),
        },
        || {
            let mut s = format!(
                "Session {name} is {} ({}).\n  {}\n  state in {session_dir}\n",
                ctx.out.face(&id.character),
                id.handle,
                id.did
            );
            let _ = writeln!(s, "  receives at {}", made.relays.join(", "));
            if args.with_files {
                let _ = writeln!(
                    s,
                    "  file contract on: {session_dir}/inbox and {session_dir}/outbox (`wire files status`)"
                );
            }
            if !made.handles.is_empty() {
                let _ = writeln!(s, "  others reach it as {}", made.handles.join(" or "));
            }
            for p in &made.claim_problems {
                let _ = writeln!(s, "  a handle was not published: {p}");
            }
            match (&bound, &shadowed) {
                (Some(d), Some(old)) => {
                    let _ = writeln!(
                        s,
                        "Commands under {d} now use it (they used {old}, through a binding on a parent directory)."
                    );
                }
                (Some(d), None) => {
                    let _ = writeln!(s, "Commands under {d} now use it.");
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "Select it with `--session {name}` or `eval \"$(wire session env {name})\"`."
                    );
                }
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Binds `dir` to `name`; returns the key it is bound under.
fn bind_dir(ctx: &Ctx, dir: &Path, name: &str) -> anyhow::Result<String> {
    let home = ctx.home()?;
    let key = binding_key(dir)?;
    let k = key.clone();
    let n = name.to_owned();
    home.update_bindings(move |b| {
        b.bindings.insert(k, n);
        Ok(())
    })?;
    Ok(key)
}

#[derive(Debug, Serialize)]
struct Listed {
    session: String,
    current: bool,
    open: bool,
    nickname: Option<String>,
    emoji: Option<String>,
    tag: Option<String>,
    handle: Option<String>,
    did: Option<String>,
    relays: Vec<String>,
    peers: usize,
    bound: Vec<String>,
    problem: Option<String>,
    #[serde(skip)]
    character: Option<Character>,
}

fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    let bindings = home.bindings()?;
    let current = ctx.chosen();
    let open: Vec<String> = ctx.agent.lives().iter().map(|l| l.name.clone()).collect();
    let mut rows = Vec::new();
    for s in home.sessions()? {
        let was_open = open.contains(&s.name);
        let mut row = Listed {
            current: s.name == current.name,
            open: was_open,
            nickname: None,
            emoji: None,
            tag: None,
            handle: None,
            did: None,
            relays: Vec::new(),
            peers: 0,
            bound: bindings.dirs_of(&s.name),
            problem: None,
            character: None,
            session: s.name.clone(),
        };
        match ctx.agent.session(&s.name).and_then(|l| {
            let st = l.session.state()?;
            Ok((l, st))
        }) {
            Ok((live, state)) => {
                if let Some(i) = &state.identity {
                    row.nickname = Some(i.character.nickname.clone());
                    row.emoji = Some(i.character.emoji.clone());
                    row.tag = Some(i.character.tag.clone());
                    row.handle = Some(i.claimed.first().unwrap_or(&i.handle).clone());
                    row.did = Some(i.did.clone());
                    row.character = Some(i.character.clone());
                }
                row.relays = live
                    .session
                    .our_endpoints()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| e.relay)
                    .collect();
                row.peers = state
                    .peers
                    .values()
                    .filter(|p| p.state == PeerState::Paired)
                    .count();
                row.open = ctx.agent.is_daemon();
            }
            Err(e) => row.problem = Some(format!("{e:#}")),
        }
        rows.push(row);
    }
    ctx.out.print(&serde_json::json!({ "sessions": rows }), || {
        if rows.is_empty() {
            return "No sessions yet: `wire session new NAME` creates one (or `wire init <handle>` the default).\n".into();
        }
        let mut s = String::new();
        for r in &rows {
            let mark = if r.current { "*" } else { " " };
            let face = r
                .character
                .as_ref()
                .map_or_else(|| "(unreadable)".into(), |c| ctx.out.face(c));
            let _ = write!(s, "{mark} {:<16} {face}", r.session);
            if let Some(h) = &r.handle {
                let _ = write!(s, " ({h})");
            }
            let _ = write!(
                s,
                ", {}",
                crate::output::count(r.peers as u64, "peer", "peers")
            );
            if !r.relays.is_empty() {
                let _ = write!(s, ", at {}", r.relays.join(" + "));
            }
            s.push('\n');
            for d in &r.bound {
                let _ = writeln!(s, "    bound to {d}");
            }
            if let Some(p) = &r.problem {
                let _ = writeln!(s, "    cannot be read: {p}");
            }
        }
        let _ = writeln!(
            s,
            "* is the session here (chosen by {}).",
            current.why()
        );
        s
    });
    Ok(ExitCode::SUCCESS)
}

/// Quotes a value for a POSIX shell.
fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:@+".contains(&b))
    {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

fn env(ctx: &Ctx, args: EnvArgs) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    let name = args.name.unwrap_or_else(|| ctx.chosen().name);
    check_session_name(&name)?;
    if !home.has_session(&name) {
        bail!(
            "no session `{name}`; `wire session list` shows them, `wire session new {name}` creates it"
        );
    }
    let root = home
        .root()
        .to_str()
        .context("the state root is not UTF-8")?;
    let line = format!(
        "export WIRE_HOME={} WIRE_SESSION={}",
        shell_quote(root),
        shell_quote(&name)
    );
    ctx.out.print(
        &serde_json::json!({ "session": name, "home": root, "export": line }),
        || format!("{line}\n"),
    );
    Ok(ExitCode::SUCCESS)
}

fn current(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let chosen = ctx.chosen();
    let home = ctx.home()?;
    let exists = home.has_session(&chosen.name);
    let dir = home.session_dir(&chosen.name).display().to_string();
    ctx.out.print(
        &serde_json::json!({
            "session": chosen,
            "exists": exists,
            "dir": dir,
            "cwd": ctx.cwd.as_ref().map(|d| d.display().to_string()),
        }),
        || {
            let mut s = format!("{} (chosen by {})\n", chosen.name, chosen.why());
            if !exists {
                let _ = writeln!(
                    s,
                    "It does not exist yet: `wire session new {}` or `wire init <handle>` creates it.",
                    chosen.name
                );
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn bind(ctx: &Ctx, name: &str) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    check_session_name(name)?;
    if !home.has_session(name) {
        bail!(
            "no session `{name}`; `wire session list` shows them, `wire session new {name}` creates one"
        );
    }
    let dir = cwd(ctx)?;
    let before = super::resolve_chosen(None, Some(&home), Some(dir));
    let key = bind_dir(ctx, dir, name)?;
    ctx.out.print(
        &serde_json::json!({ "bound": key, "session": name, "before": before }),
        || {
            let mut s = format!("Commands under {key} now use session {name}.\n");
            if before.name != name {
                let _ = writeln!(
                    s,
                    "  (they used {}, chosen by {})",
                    before.name,
                    before.why()
                );
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn unbind(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    let key = binding_key(cwd(ctx)?)?;
    let k = key.clone();
    let removed = home.update_bindings(move |b| Ok(b.bindings.remove(&k)))?;
    let Some(name) = removed else {
        bail!(
            "{key} has no binding of its own; `wire session current` shows which rule chooses the session here"
        );
    };
    ctx.out.print(
        &serde_json::json!({ "unbound": key, "session": name }),
        || format!("{key} no longer uses session {name}.\n"),
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct Destroyed {
    session: String,
    dir: String,
    revoked: usize,
    unbound: Vec<String>,
    problems: Vec<String>,
}

fn destroy(ctx: &Ctx, args: DestroyArgs) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    let name = args.name;
    check_session_name(&name)?;
    if !home.session_dir(&name).is_dir() {
        bail!("no session `{name}`; `wire session list` shows them");
    }
    if !args.force {
        bail!(
            "destroying `{name}` deletes its keys and messages for good; run `wire session destroy {name} --force` to go ahead"
        );
    }
    let mut problems = Vec::new();
    let mut revoked = 0;
    // Peers must not keep writing into a slot nobody will read: revoke what we granted.
    match ctx.agent.session(&name) {
        Ok(live) => {
            for p in live.session.peers().unwrap_or_default() {
                for g in &p.grants {
                    let done = live
                        .session
                        .slot_token(&g.endpoint)
                        .map_err(anyhow::Error::from)
                        .and_then(|token| {
                            let client = ctx.agent.client(&g.endpoint.relay)?;
                            match ctx.agent.block_on(client.revoke_cap(
                                &g.endpoint.slot,
                                &token,
                                &g.cap_id,
                            )) {
                                Ok(()) => Ok(()),
                                Err(e) if e.code() == Some("unknown_cap") => Ok(()),
                                Err(e) => Err(e.into()),
                            }
                        });
                    match done {
                        Ok(()) => revoked += 1,
                        Err(e) => problems.push(format!(
                            "{}'s capability on {} was not revoked: {e:#}",
                            p.handle, g.endpoint.relay
                        )),
                    }
                }
            }
        }
        Err(e) => problems.push(format!(
            "the session could not be opened, so no capability was revoked: {e:#}"
        )),
    }
    ctx.agent.close(&name);
    let n = name.clone();
    let unbound = home.update_bindings(move |b| {
        let dirs = b.dirs_of(&n);
        for d in &dirs {
            b.bindings.remove(d);
        }
        Ok(dirs)
    })?;
    let dir = home.session_dir(&name);
    std::fs::remove_dir_all(&dir)
        .with_context(|| format!("cannot remove {}; remove it by hand", dir.display()))?;
    let dir = dir.display().to_string();
    ctx.out.print(
        &Destroyed {
            session: name.clone(),
            dir: dir.clone(),
            revoked,
            unbound: unbound.clone(),
            problems: problems.clone(),
        },
        || {
            let mut s = format!(
                "Session {name} is gone: {dir} removed, {} revoked",
                crate::output::count(revoked as u64, "capability", "capabilities")
            );
            if unbound.is_empty() {
                s.push_str(".\n");
            } else {
                let _ = writeln!(s, ", {} unbound.", unbound.join(", "));
            }
            for p in &problems {
                let _ = writeln!(s, "  {p}");
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_come_from_directory_names() {
        assert_eq!(name_from_dir(Path::new("/src/My Project!")), "my-project");
        assert_eq!(name_from_dir(Path::new("/src/__")), "session");
        assert_eq!(name_from_dir(Path::new("/")), "session");
        assert_eq!(
            name_from_dir(Path::new(&format!("/x/{}", "a".repeat(60)))).len(),
            28
        );
    }
}
