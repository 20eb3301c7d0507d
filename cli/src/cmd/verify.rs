//! `wire verify`: audit the whole session from first principles.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use wire_engine::{Progress, VerifyFailure, VerifyReport};

use super::{Chosen, Ctx};
use crate::output::count;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// After a clean audit of the log, throw the projections away and fold them again from the
    /// log alone (repairs projections damaged behind wire's back).
    #[arg(long)]
    rebuild: bool,
}

#[derive(Debug, Serialize)]
struct Verified<'a> {
    ok: bool,
    session: &'a Chosen,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a VerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a VerifyFailure>,
    rebuilt: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, chosen) = ctx.open()?;
    let session = &live.session;
    let bar = ctx.out.progress.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "verifying {bar:40} {pos}/{len} events ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut on_progress = |p: Progress| {
        if let Some(bar) = &bar {
            bar.set_length(p.total);
            bar.set_position(p.done);
        }
    };
    let mut rebuilt = false;
    let mut result = session.verify(&mut on_progress);
    if args.rebuild {
        let log_is_sound = match &result {
            Ok(_) => true,
            // Only projection damage is repairable; a damaged log is not.
            Err(f) => f.projections_only,
        };
        if log_is_sound {
            session.rebuild()?;
            rebuilt = true;
            result = session.verify(&mut on_progress);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let (report, failure) = match &result {
        Ok(r) => (Some(r), None),
        Err(f) => (None, Some(f)),
    };
    ctx.out.print(
        &Verified {
            ok: result.is_ok(),
            session: &chosen,
            report,
            failure,
            rebuilt,
        },
        || match &result {
            Ok(r) => format!(
                "{}verified {} in {} by {} ({}): every signature, chain link and projection checks out.\n",
                if rebuilt { "rebuilt the projections and " } else { "" },
                count(r.events, "event", "events"),
                count(r.logs, "log", "logs"),
                count(r.authors, "author", "authors"),
                count(r.chains, "chain", "chains")
            ),
            Err(f) => {
                let position = f.position.map(|p| format!(" (append position {p})")).unwrap_or_default();
                format!(
                    "verify FAILED{position}: {f}\nNothing was changed. Keep a copy of {} before trying to repair it.\n",
                    session.dir().display()
                )
            }
        },
    );
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
