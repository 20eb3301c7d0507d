//! `wire quiet on|off|status`: desktop notifications for this state root. The setting is a
//! marker file (`$WIRE_HOME/quiet`) the daemon checks before each notification, so it takes
//! effect at once, without a restart; `WIRE_NO_TOASTS=1` in the daemon's environment silences
//! them too.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::Ctx;
use crate::notify;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Switch {
    /// Silence notifications.
    On,
    /// Show notifications again.
    Off,
    /// Whether notifications are shown, and where they go.
    Status,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum, default_value = "status")]
    switch: Switch,
}

#[derive(Debug, Serialize)]
struct Quiet {
    quiet: bool,
    /// Why, when quiet: `wire quiet on` or WIRE_NO_TOASTS.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// Where notifications go: desktop, log or file (none without a daemon).
    backend: &'static str,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let home = ctx.home()?;
    let marker = notify::quiet_path(home.root());
    match args.switch {
        Switch::On => {
            wire_log::keyfile::create_private_dir(home.root())?;
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&marker)
                .with_context(|| format!("cannot write {}", marker.display()))?;
        }
        Switch::Off => match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", marker.display()));
            }
        },
        Switch::Status => {}
    }
    let reason = notify::silenced(home.root());
    let backend = ctx.agent.notifier().map_or("none", |n| n.backend());
    let state = Quiet {
        quiet: reason.is_some(),
        reason,
        backend,
    };
    ctx.out.print(&state, || match (state.reason, backend) {
        (Some(why), _) => format!("Notifications are off ({why}). `wire quiet off` turns them on.\n"),
        (None, "none") => "Notifications are on; the daemon raises them (none runs for this command).\n".into(),
        (None, "desktop") => "Notifications are on: new pair requests and messages show on the desktop. `wire quiet on` silences them.\n".into(),
        (None, "log") => "Notifications are on, but this machine has no notification service: they go to the daemon's log. `wire quiet on` silences them.\n".into(),
        (None, other) => format!("Notifications are on ({other}). `wire quiet on` silences them.\n"),
    });
    Ok(ExitCode::SUCCESS)
}
