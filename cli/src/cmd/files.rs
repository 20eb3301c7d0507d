//! `wire files on|off|status`: the file contract for agents that cannot run a process
//! (PROTOCOL.md §26): the daemon mirrors each peer's messages to `inbox/<peer>.jsonl` and
//! sends what is appended to `outbox/<peer>.jsonl`.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use super::Ctx;
use crate::agent::files;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Turn the file contract on: the daemon mirrors and sends from now on, also after restarts.
    On,
    /// Turn it off; the files stay as they are.
    Off,
    /// Whether it is on, where the files are and each peer's file name.
    Status,
}

#[derive(Debug, Serialize)]
struct FileName {
    name: String,
    nickname: String,
    handle: String,
    key: String,
    inbox: String,
    outbox: String,
    status: String,
}

#[derive(Debug, Serialize)]
struct FilesJson {
    session: String,
    enabled: bool,
    /// The daemon runs the file contract (without a daemon nothing is mirrored or sent).
    running: bool,
    inbox: String,
    outbox: String,
    peers: Vec<FileName>,
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let dir = live.session.dir().to_owned();
    match command {
        Command::On => {
            files::set_enabled(&dir, true)?;
            ctx.agent.start_files(&live);
        }
        Command::Off => {
            files::set_enabled(&dir, false)?;
            ctx.agent.stop_files(&live);
        }
        Command::Status => {}
    }
    let enabled = files::enabled(&dir)?;
    let inbox = files::inbox_dir(&dir);
    let outbox = files::outbox_dir(&dir);
    let peers = live.session.peers()?;
    let names = files::file_names(&peers);
    let list: Vec<FileName> = names
        .iter()
        .filter_map(|(name, key)| {
            let p = peers.iter().find(|p| p.key == *key)?;
            Some(FileName {
                name: name.clone(),
                nickname: p.character.nickname.clone(),
                handle: p.handle.clone(),
                key: key.to_hex(),
                inbox: inbox.join(format!("{name}.jsonl")).display().to_string(),
                outbox: outbox.join(format!("{name}.jsonl")).display().to_string(),
                status: outbox
                    .join(format!("{name}.status.jsonl"))
                    .display()
                    .to_string(),
            })
        })
        .collect();
    let result = FilesJson {
        session: live.name.clone(),
        enabled,
        running: enabled && ctx.agent.is_daemon(),
        inbox: inbox.display().to_string(),
        outbox: outbox.display().to_string(),
        peers: list,
    };
    ctx.out.print(&result, || {
        let mut s = String::new();
        if !enabled {
            let _ = writeln!(
                s,
                "The file contract is off for session {}. `wire files on` turns it on.",
                result.session
            );
            return s;
        }
        let _ = writeln!(
            s,
            "The file contract is on for session {}.\n  messages from a peer are appended to {}/<peer>.jsonl\n  lines appended to {}/<peer>.jsonl are sent, each line's outcome in <peer>.status.jsonl",
            result.session, result.inbox, result.outbox
        );
        if !ctx.agent.is_daemon() {
            s.push_str("  The daemon does the work; nothing is mirrored or sent without one (`wire daemon start`).\n");
        }
        if result.peers.is_empty() {
            s.push_str("  No paired peers yet, so no file names.\n");
        } else {
            s.push_str("  File names (<peer>):\n");
            for (f, p) in result.peers.iter().zip(names.values()) {
                let face = peers
                    .iter()
                    .find(|x| x.key == *p)
                    .map(|x| ctx.out.face(&x.character))
                    .unwrap_or_default();
                let _ = writeln!(s, "    {}  {face} ({})", f.name, super::printable(&f.handle));
            }
        }
        s
    });
    Ok(ExitCode::SUCCESS)
}
