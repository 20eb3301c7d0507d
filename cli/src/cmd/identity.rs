//! `wire identity show|rename|list`.

use std::fmt::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::{Chosen, Ctx, IdentityJson};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Everything about this session's identity.
    Show,
    /// Choose the nickname and emoji shown for this session (local display only).
    Rename(RenameArgs),
    /// Every identity under this state root.
    List,
}

#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// New nickname, e.g. `foxtrot-meadow`.
    #[arg(long)]
    name: Option<String>,
    /// New emoji, e.g. `🦊`.
    #[arg(long)]
    emoji: Option<String>,
    /// Go back to the Character derived from the DID.
    #[arg(long, conflicts_with_all = ["name", "emoji"])]
    reset: bool,
}

#[derive(Debug, Serialize)]
struct Show<'a> {
    session: &'a Chosen,
    dir: String,
    events: u64,
    #[serde(flatten)]
    identity: IdentityJson<'a>,
}

#[derive(Debug, Serialize)]
struct Listed {
    session: String,
    current: bool,
    nickname: Option<String>,
    emoji: Option<String>,
    tag: Option<String>,
    handle: Option<String>,
    did: Option<String>,
    problem: Option<String>,
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Show => show(ctx),
        Command::Rename(args) => rename(ctx, args),
        Command::List => list(ctx),
    }
}

fn show(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let (live, chosen) = ctx.open()?;
    let session = &live.session;
    let id = session.identity()?;
    let events = session.store().len()?;
    let dir = session.dir().display().to_string();
    ctx.out.print(
        &Show {
            session: &chosen,
            dir: dir.clone(),
            events,
            identity: IdentityJson::of(&id),
        },
        || {
            let c = &id.character;
            let mut s = String::new();
            let _ = writeln!(s, "{}", ctx.out.face(c));
            let _ = writeln!(
                s,
                "  nickname  {}{}",
                c.nickname,
                if id.renamed { " (renamed locally)" } else { "" }
            );
            let _ = writeln!(
                s,
                "  emoji     {} [{}]",
                if ctx.out.emoji { c.emoji.as_str() } else { "-" },
                c.tag
            );
            let _ = writeln!(
                s,
                "  colours   {} and {} (256-colour palette)",
                c.colour, c.accent
            );
            let _ = writeln!(s, "  handle    {}", id.handle);
            let _ = writeln!(s, "  did       {}", id.did);
            let _ = writeln!(s, "  key       {}", id.key.to_hex());
            let _ = writeln!(s, "  x25519    {}", id.x25519.to_hex());
            let _ = writeln!(
                s,
                "  session   {} (chosen by {}), {}",
                chosen.name,
                chosen.why(),
                crate::output::count(events, "event", "events")
            );
            let _ = writeln!(s, "  state in  {dir}");
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn rename(ctx: &Ctx, args: RenameArgs) -> anyhow::Result<ExitCode> {
    if !args.reset && args.name.is_none() && args.emoji.is_none() {
        anyhow::bail!(
            "say what to change: `wire identity rename --name foxtrot-meadow --emoji 🦊`, or `--reset`"
        );
    }
    let (live, chosen) = ctx.open()?;
    let session = &live.session;
    let before = session.identity()?;
    // A rename replaces the previous one; fields not given keep their current override.
    let (name, emoji) = if args.reset {
        (None, None)
    } else {
        let keep = |now: &str, derived: &str| (now != derived).then(|| now.to_owned());
        let derived = wire_log::Character::of(&wire_log::Did::from_key(&before.key));
        (
            args.name
                .or_else(|| keep(&before.character.nickname, &derived.nickname)),
            args.emoji
                .or_else(|| keep(&before.character.emoji, &derived.emoji)),
        )
    };
    let after = session.rename(name.as_deref(), emoji.as_deref())?;
    ctx.out.print(
        &serde_json::json!({ "session": chosen, "identity": IdentityJson::of(&after) }),
        || {
            format!(
                "{} is now {} (local display only; your DID and colours are unchanged).\n",
                ctx.out.face(&before.character),
                ctx.out.face(&after.character)
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    let current = ctx.chosen().name;
    let mut rows = Vec::new();
    for s in home.sessions()? {
        let row = match ctx
            .agent
            .session(&s.name)
            .and_then(|x| Ok(x.session.identity()?))
        {
            Ok(i) => Listed {
                current: s.name == current,
                session: s.name,
                nickname: Some(i.character.nickname),
                emoji: Some(i.character.emoji),
                tag: Some(i.character.tag),
                handle: Some(i.handle),
                did: Some(i.did),
                problem: None,
            },
            Err(e) => Listed {
                current: s.name == current,
                session: s.name,
                nickname: None,
                emoji: None,
                tag: None,
                handle: None,
                did: None,
                problem: Some(e.to_string()),
            },
        };
        rows.push(row);
    }
    ctx.out.print(&rows, || {
        if rows.is_empty() {
            return format!(
                "No identities under {} yet; create one with `wire init <handle> --offline`.\n",
                home.root().display()
            );
        }
        let mut s = String::new();
        for r in &rows {
            let marker = if r.current { "*" } else { " " };
            match (&r.nickname, &r.emoji, &r.tag, &r.handle) {
                (Some(n), Some(e), Some(t), Some(h)) => {
                    let face = if ctx.out.emoji {
                        format!("{e} {n}")
                    } else {
                        format!("[{t}] {n}")
                    };
                    let _ = writeln!(s, "{marker} {:<16} {face} ({h})", r.session);
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "{marker} {:<16} unreadable: {}",
                        r.session,
                        r.problem.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        s
    });
    Ok(ExitCode::SUCCESS)
}
