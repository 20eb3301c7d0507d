//! `wire session …`: many agents on one machine. Each session has its own identity, store and
//! endpoints, all hosted by the one daemon of the state root; a directory binding makes every
//! command run under that directory use one session (`Chosen::resolve` has the order).
//! `list-local` and `pair-all-local` mesh the sister sessions, whose trust anchor is that the
//! same user owns every one of their files.

use std::fmt::Write;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::{PeerState, RequestOutcome, binding_key, check_session_name};
use wire_log::card::VerifiedCard;
use wire_log::identity::Character;
use wire_log::pair::PairRequest;

use super::init::{Attach, create};
use super::{Ctx, IdentityJson};
use crate::agent::push::Why;
use crate::agent::{DEFAULT_RELAY, Live, PushOutcome};

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
        Command::ListLocal => list_local(ctx),
        Command::PairAllLocal => pair_all_local(ctx),
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
    let shadowed = dir.map(|d| super::Chosen::resolve(None, Some(&home), Some(d)));
    let made = create(ctx, &name, &handle, None, &relays)?;
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
    let before = super::Chosen::resolve(None, Some(&home), Some(dir));
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

/// A sister session as `list-local` shows it.
#[derive(Debug, Serialize)]
struct Sister {
    session: String,
    nickname: String,
    emoji: String,
    tag: String,
    handle: String,
    did: String,
    relays: Vec<String>,
    /// How this session stands with it: `paired`, `dialed`, `rejected`, `pending` or `none`.
    state: String,
    #[serde(skip)]
    character: Character,
}

/// The sessions of this state root that have an identity, opened, by name.
fn sisters(ctx: &Ctx) -> anyhow::Result<Vec<Arc<Live>>> {
    let mut out = Vec::new();
    for s in ctx.home()?.sessions()? {
        if let Ok(live) = ctx.agent.session(&s.name)
            && live.session.identity().is_ok()
        {
            out.push(live);
        }
    }
    Ok(out)
}

/// How `me` stands with sister `other`: `paired`, `dialed`, `rejected`, `pending` or `none`.
pub fn standing(me: &Live, other: &Live) -> String {
    let Ok(state) = me.session.state() else {
        return "unknown".into();
    };
    match state.peers.get(&other.key).map(|p| p.state) {
        Some(PeerState::Paired) => "paired".into(),
        Some(PeerState::Dialed) => "dialed".into(),
        Some(PeerState::Rejected) => "rejected".into(),
        None if state.pending.contains_key(&other.key) => "pending".into(),
        None => "none".into(),
    }
}

fn list_local(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let (me, chosen) = ctx.open()?;
    let mut rows = Vec::new();
    for s in sisters(ctx)? {
        if s.name == me.name {
            continue;
        }
        let id = s.session.identity()?;
        rows.push(Sister {
            session: s.name.clone(),
            nickname: id.character.nickname.clone(),
            emoji: id.character.emoji.clone(),
            tag: id.character.tag.clone(),
            handle: id.claimed.first().unwrap_or(&id.handle).clone(),
            did: id.did.clone(),
            relays: s
                .session
                .our_endpoints()?
                .into_iter()
                .map(|e| e.relay)
                .collect(),
            state: standing(&me, &s),
            character: id.character.clone(),
        });
    }
    ctx.out
        .print(&serde_json::json!({ "session": chosen.name, "sisters": rows }), || {
            if rows.is_empty() {
                return "No other session on this machine; `wire session new NAME` in another project creates one.\n".to_owned();
            }
            let mut s = format!("Sessions beside {} on this machine:\n", chosen.name);
            for r in &rows {
                let _ = writeln!(
                    s,
                    "  {:<16} {} ({}): {}",
                    r.session,
                    ctx.out.face(&r.character),
                    r.handle,
                    match r.state.as_str() {
                        "paired" => "paired",
                        "dialed" => "dialed, waiting for them",
                        "rejected" => "rejected",
                        "pending" => "asked to pair with you (`wire accept`)",
                        _ => "not paired (`wire session pair-all-local`)",
                    }
                );
            }
            s
        });
    Ok(ExitCode::SUCCESS)
}

/// The sister session (not `me`) that `name` names: its session name, Character nickname,
/// handle or DID.
pub fn find_sister(ctx: &Ctx, me: &Live, name: &str) -> anyhow::Result<Option<Arc<Live>>> {
    let wanted = name.trim();
    for s in sisters(ctx)? {
        if s.key == me.key {
            continue;
        }
        let id = s.session.identity()?;
        let mut names = vec![
            s.name.clone(),
            id.character.nickname.clone(),
            id.handle.clone(),
            id.did.clone(),
        ];
        names.extend(id.claimed.iter().cloned());
        if names.iter().any(|n| n.eq_ignore_ascii_case(wanted)) {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The names sisters answer to (session names and Character nicknames), for did-you-mean.
pub fn sister_names(ctx: &Ctx, me: &Live) -> Vec<String> {
    let mut names = Vec::new();
    for s in sisters(ctx).unwrap_or_default() {
        if s.key == me.key {
            continue;
        }
        names.push(s.name.clone());
        if let Ok(id) = s.session.identity() {
            names.push(id.character.nickname);
        }
    }
    names
}

/// What pairing two sisters came to.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub a: String,
    pub b: String,
    /// `paired`, `already` or `skipped`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn pair_all_local(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let all = sisters(ctx)?;
    let mut results = Vec::new();
    // Round robin: each round pairs every session with a different one, so the pairs of a
    // round touch disjoint stores and run side by side (their commits wait on the disk, not on
    // each other).
    for round in round_robin(all.len()) {
        let done: Vec<PairResult> = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for chunk in round.chunks(round.len().div_ceil(PAIRING_THREADS).max(1)) {
                let all = &all;
                handles.push(scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&(i, j)| pair_sisters(ctx, &all[i], &all[j]))
                        .collect::<Vec<_>>()
                }));
            }
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        results.extend(done);
    }
    results.sort_by(|x, y| (&x.a, &x.b).cmp(&(&y.a, &y.b)));
    let made = results.iter().filter(|r| r.result == "paired").count();
    let already = results.iter().filter(|r| r.result == "already").count();
    let skipped: Vec<&PairResult> = results.iter().filter(|r| r.result == "skipped").collect();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    ctx.out.print(
        &serde_json::json!({
            "sessions": all.len(),
            "paired": made,
            "already": already,
            "skipped": skipped.len(),
            "ms": ms,
            "pairs": results,
        }),
        || {
            let mut s = format!(
                "{} on this machine: {} made, {} already paired",
                crate::output::count(all.len() as u64, "session", "sessions"),
                crate::output::count(made as u64, "pair", "pairs"),
                already
            );
            if skipped.is_empty() {
                s.push_str(".\n");
            } else {
                let _ = writeln!(s, ", {} skipped:", skipped.len());
                for r in &skipped {
                    let _ = writeln!(
                        s,
                        "  {} and {}: {}",
                        r.a,
                        r.b,
                        r.reason.as_deref().unwrap_or("")
                    );
                }
            }
            s
        },
    );
    Ok(if skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Pairings of one round run on at most this many threads.
const PAIRING_THREADS: usize = 4;

/// The rounds of a round-robin tournament over `n` sessions (the circle method): every pair
/// `(i, j)` with `i < j` appears in exactly one round, and no session twice in a round.
fn round_robin(n: usize) -> Vec<Vec<(usize, usize)>> {
    if n < 2 {
        return Vec::new();
    }
    let m = n + n % 2; // a bye when n is odd
    let mut ring: Vec<usize> = (0..m).collect();
    let mut rounds = Vec::with_capacity(m - 1);
    for _ in 0..m - 1 {
        let mut round = Vec::with_capacity(m / 2);
        for k in 0..m / 2 {
            let (x, y) = (ring[k], ring[m - 1 - k]);
            if x < n && y < n {
                round.push((x.min(y), x.max(y)));
            }
        }
        rounds.push(round);
        ring[1..].rotate_right(1);
    }
    rounds
}

/// A verified card for one of our sessions, for its sisters to pin.
fn local_card(live: &Live) -> anyhow::Result<VerifiedCard> {
    let id = live.session.identity()?;
    let handle =
        match id.claimed.first() {
            Some(h) => h.clone(),
            None => {
                let slot =
                    live.session.our_endpoints()?.into_iter().next().context(
                        "it is not attached to a relay, so a sister could not write to it",
                    )?;
                let client = wire_net::RelayClient::new(&slot.relay)?;
                format!("{}@{}", id.handle, client.domain().unwrap_or("localhost"))
            }
        };
    Ok(live.session.sign_card(&handle)?.verify()?)
}

/// Pairs sisters `a` and `b` as if `a` dialed and `b` accepted, in this process: both stores
/// are ours (same user, same daemon), which is the consent. Idempotent; a rejection on either
/// side is kept.
pub fn pair_sisters(ctx: &Ctx, a: &Arc<Live>, b: &Arc<Live>) -> PairResult {
    let result = |result, reason: Option<String>| PairResult {
        a: a.name.clone(),
        b: b.name.clone(),
        result,
        reason,
    };
    match try_pair(ctx, a, b) {
        Ok(None) => result("paired", None),
        Ok(Some(already)) => result("already", Some(already)),
        Err(e) => result("skipped", Some(format!("{e:#}"))),
    }
}

fn try_pair(ctx: &Ctx, a: &Arc<Live>, b: &Arc<Live>) -> anyhow::Result<Option<String>> {
    if a.key == b.key {
        bail!("both sessions hold the same key");
    }
    let (ab, ba) = (standing(a, b), standing(b, a));
    match (ab.as_str(), ba.as_str()) {
        ("paired", "paired") => return Ok(Some("already paired".into())),
        ("rejected", _) => bail!("{} rejected {}; the refusal sticks", a.name, b.name),
        (_, "rejected") => bail!("{} rejected {}; the refusal sticks", b.name, a.name),
        _ => {}
    }
    if ba == "pending" {
        return accept_then_check(ctx, b, a);
    }
    if ab == "pending" {
        return accept_then_check(ctx, a, b);
    }
    // `a` dials `b`: a capability on a's slots for b, recorded as a dial…
    let a_card = local_card(a).with_context(|| format!("{} has no card", a.name))?;
    let b_card = local_card(b).with_context(|| format!("{} has no card", b.name))?;
    let fresh = ab == "none" && ba == "none";
    let (minted, minted_b) = ctx.agent.block_on(async {
        if fresh {
            // Both sides' capabilities at once: the relays commit them together.
            let (x, y) = tokio::join!(ctx.agent.mint_caps(a), ctx.agent.mint_caps(b));
            (x, Some(y))
        } else {
            (ctx.agent.mint_caps(a).await, None)
        }
    });
    let minted = minted.with_context(|| format!("{}'s relay did not mint a capability", a.name))?;
    if ab != "dialed" {
        a.session.record_dialed(&b_card, &minted)?;
    }
    // …and the request handed to `b` directly, as its intro queue would.
    let request = PairRequest {
        card: a_card,
        endpoints: minted.iter().map(|m| m.endpoint.clone()).collect(),
        cap: minted[0].cap.clone(),
        more_caps: minted[1..].iter().map(|m| m.cap.clone()).collect(),
        invite: None,
    };
    if let Some(minted_b) = minted_b {
        // Neither side knew the other: `b` takes the request and accepts it in one commit,
        // and its offer goes to `a` in process.
        let minted_b =
            minted_b.with_context(|| format!("{}'s relay did not mint a capability", b.name))?;
        b.session.take_and_accept(&request, &minted_b)?;
        let outcome = ctx
            .agent
            .block_on(ctx.agent.clone().push(b, &a.key, Why::Send))?;
        return check_paired(a, b, &outcome);
    }
    match b.session.take_pair_request(&request)? {
        RequestOutcome::Dropped(why) => bail!("{} dropped the request: {why}", b.name),
        RequestOutcome::Paired(_) | RequestOutcome::Pending(_) => {}
    }
    if standing(b, a) == "pending" {
        return accept_then_check(ctx, b, a);
    }
    // `b` had dialed `a` already: taking the request paired `b`; answer so `a` pairs too.
    let outcome = ctx
        .agent
        .block_on(ctx.agent.clone().push(b, &a.key, Why::Send))?;
    check_paired(a, b, &outcome)
}

fn accept_then_check(
    ctx: &Ctx,
    acceptor: &Arc<Live>,
    dialer: &Arc<Live>,
) -> anyhow::Result<Option<String>> {
    let (_, outcome) = super::decide::accept_quietly(ctx, acceptor, &dialer.key)?;
    check_paired(dialer, acceptor, &outcome)
}

fn check_paired(a: &Live, b: &Live, outcome: &PushOutcome) -> anyhow::Result<Option<String>> {
    if standing(a, b) == "paired" && standing(b, a) == "paired" {
        return Ok(None);
    }
    bail!(
        "the acceptance did not reach {} ({outcome:?}); run `wire session pair-all-local` again",
        a.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_covers_every_pair_once_and_no_session_twice_a_round() {
        for n in 0..=21 {
            let rounds = round_robin(n);
            let mut seen = std::collections::BTreeSet::new();
            for round in &rounds {
                let mut in_round = std::collections::BTreeSet::new();
                for &(i, j) in round {
                    assert!(i < j && j < n);
                    assert!(
                        in_round.insert(i) && in_round.insert(j),
                        "n={n}: twice in a round"
                    );
                    assert!(seen.insert((i, j)), "n={n}: ({i},{j}) twice");
                }
            }
            assert_eq!(seen.len(), n * n.saturating_sub(1) / 2, "n={n}");
        }
    }

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
