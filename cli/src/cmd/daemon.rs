//! `wire daemon [--foreground]`, `wire daemon status`, `wire daemon stop`.

use std::process::ExitCode;

use serde::Serialize;
use wire_engine::Home;

use super::{Chosen, Ctx};
use crate::daemon;
use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run in this process instead of detaching (for service managers and debugging).
    #[arg(long)]
    foreground: bool,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Action {
    /// Whether a daemon runs for this state root, and what it holds.
    Status,
    /// Stop the daemon (it finishes what it is doing first).
    Stop,
}

#[derive(Debug, Serialize)]
struct DaemonStatus {
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime_s: Option<u64>,
    sessions: Vec<String>,
    socket: String,
}

/// In the CLI process: start, or forward status/stop to the running daemon.
pub fn run(out: &Out, chosen: &Chosen, args: Args, _no_daemon: bool) -> anyhow::Result<ExitCode> {
    let home = Home::from_env()?;
    match args.action {
        None if args.foreground => daemon::serve(home),
        None => {
            let started = daemon::connect(&home).is_none();
            if started {
                daemon::start(&home)?;
            }
            out.print(
                &serde_json::json!({ "running": true, "started": started }),
                || {
                    if started {
                        "The wire daemon is running.\n".into()
                    } else {
                        "The wire daemon was already running.\n".into()
                    }
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(action) => {
            if daemon::connect(&home).is_none() {
                out.print(
                    &DaemonStatus {
                        running: false,
                        pid: None,
                        uptime_s: None,
                        sessions: Vec::new(),
                        socket: daemon::socket_path(&home).display().to_string(),
                    },
                    || "No wire daemon is running for this state root.\n".into(),
                );
                return Ok(match action {
                    Action::Status => ExitCode::from(1),
                    Action::Stop => ExitCode::SUCCESS,
                });
            }
            let request = daemon::Request {
                v: wire_net::control::CONTROL_VERSION,
                argv: std::env::args().collect(),
                style: out.style(),
                chosen: chosen.clone(),
                cwd: None,
            };
            if matches!(action, Action::Stop) {
                // Returns once the daemon has closed its stores and exited, so a following
                // start does not race the old one.
                daemon::stop(&home)?;
                out.print(
                    &serde_json::json!({ "running": false, "stopped": true }),
                    || "The wire daemon stopped.\n".into(),
                );
                return Ok(ExitCode::SUCCESS);
            }
            daemon::forward(&home, &request)
        }
    }
}

/// Inside the daemon: answer status, or acknowledge a stop (the connection handler stops).
impl Args {
    /// `wire daemon stop`.
    pub fn is_stop(&self) -> bool {
        matches!(self.action, Some(Action::Stop))
    }
}

pub fn in_daemon(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let status = DaemonStatus {
        running: true,
        pid: Some(std::process::id()),
        uptime_s: Some(ctx.agent.started.elapsed().as_secs()),
        sessions: ctx.agent.lives().iter().map(|l| l.name.clone()).collect(),
        socket: daemon::socket_path(ctx.agent.home()).display().to_string(),
    };
    match args.action {
        Some(Action::Stop) => ctx.out.print(&status, || {
            format!("Stopping the wire daemon (pid {}).\n", std::process::id())
        }),
        _ => ctx.out.print(&status, || {
            format!(
                "The wire daemon runs (pid {}, up {} s) with sessions: {}.\n",
                std::process::id(),
                status.uptime_s.unwrap_or(0),
                if status.sessions.is_empty() {
                    "none".into()
                } else {
                    status.sessions.join(", ")
                }
            )
        }),
    }
    Ok(ExitCode::SUCCESS)
}
