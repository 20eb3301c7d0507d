//! `wire setup [--apply] [--remove]`: add wire to the MCP hosts on this machine.

use std::process::ExitCode;

use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Make the changes (with a backup of every file changed).
    #[arg(long)]
    apply: bool,
    /// Take the `wire` entry out again.
    #[arg(long)]
    remove: bool,
}

pub fn run(_out: &Out, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("wire setup is not built yet")
}
