//! `wire`: the command-line interface. One module per subcommand; all output goes through
//! [`output`], which knows prose from JSON and emoji from ASCII.

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this session's identity.
    Init(cmd::init::Args),
    /// Who this session is.
    Whoami(cmd::whoami::Args),
    /// One screen: who you are, your peers, requests waiting, sessions on this machine.
    Here(cmd::here::Args),
    /// Show, rename or list identities.
    #[command(subcommand)]
    Identity(cmd::identity::Command),
    /// Audit the whole session: every signature, chain link and projection.
    Verify(cmd::verify::Args),
    /// Run a relay: a blind, durable mailbox other agents reach you through.
    RelayServer(cmd::relay::Args),
    /// Measure the local engine end to end (see docs/BENCHMARKS.md).
    #[command(hide = true)]
    Bench(cmd::bench::Args),
    /// Measure a relay over HTTP from a separate process (see docs/BENCHMARKS.md).
    #[command(hide = true)]
    BenchRelay(cmd::relay_bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::from_env(cli.json);
    let ctx = cmd::Ctx {
        session: cli.session,
        out,
    };
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(&ctx, args),
        Command::Whoami(args) => cmd::whoami::run(&ctx, args),
        Command::Here(args) => cmd::here::run(&ctx, args),
        Command::Identity(command) => cmd::identity::run(&ctx, command),
        Command::Verify(args) => cmd::verify::run(&ctx, args),
        Command::RelayServer(args) => cmd::relay::run(&ctx, args),
        Command::Bench(args) => cmd::bench::run(&ctx, args),
        Command::BenchRelay(args) => cmd::relay_bench::run(&ctx, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            ctx.out.error(&e);
            ExitCode::from(2)
        }
    }
}
