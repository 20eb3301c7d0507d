//! `wire pair-host`, `wire pair-join <code>`, `wire pair-check [id]`, `wire pair-confirm <id>
//! <digits|yes|no>`: pairing by a code read aloud (SPAKE2 + SAS, PROTOCOL.md §25). Inside the
//! daemon each starts or steers a pairing of [`crate::agent::pairing`]; on a terminal,
//! `pair-host` and `pair-join` without `--detach` are driven from the client ([`drive`]): they
//! show the code and the SAS and ask the operator, then wait for the pin.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;
use wire_log::pake::{Code, Side};

use super::Ctx;
use crate::agent::pairing::{self, Pairing, Phase};
use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// Both operators must type the six SAS digits they hear, not just answer yes.
    #[arg(long)]
    pub require_sas: bool,
    /// Print the code and return; the daemon finishes the pairing (confirm it with
    /// `wire pair-confirm`; `wire pair-check` shows where it stands).
    #[arg(long)]
    pub detach: bool,
    /// The relay that holds the pairing (default: the relay of this session's newest slot).
    #[arg(long)]
    pub relay: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The code the host's operator read out, like 4821-brave-otter-quiet-meadow.
    pub code: String,
    /// Return at once; the daemon finishes the pairing (see `wire pair-check`).
    #[arg(long)]
    pub detach: bool,
    /// The relay the host uses (default: the relay of this session's newest slot).
    #[arg(long)]
    pub relay: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// One pairing (as `pair-host` or `pair-join` printed it); all of this session's without.
    pub id: Option<String>,
    /// Wait up to this long for the pairing to move on from its current phase.
    #[arg(long, hide = true, default_value_t = 0)]
    pub wait_ms: u64,
}

#[derive(Debug, clap::Args)]
pub struct ConfirmArgs {
    /// The pairing, as `pair-check` lists it.
    pub id: String,
    /// The six SAS digits as the other side shows them, `yes` when they match (unless the
    /// host asked for the digits), or `no` to abort.
    pub answer: String,
}

/// A pairing as commands show it.
#[derive(Debug, Serialize)]
pub struct PairingJson {
    pub id: String,
    pub side: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub relay: String,
    pub require_sas: bool,
    pub started_ms: u64,
    #[serde(flatten)]
    pub phase: Phase,
}

impl PairingJson {
    pub fn of(p: &Pairing) -> PairingJson {
        PairingJson {
            id: p.id.clone(),
            side: p.side.as_str(),
            code: p.code.clone(),
            relay: p.relay.clone(),
            require_sas: p.require_sas(),
            started_ms: p.started_ms,
            phase: p.phase(),
        }
    }
}

fn relay_of(ctx: &Ctx, live: &crate::agent::Live, relay: Option<String>) -> anyhow::Result<String> {
    if let Some(r) = relay {
        wire_log::body::check_relay_url(&r).map_err(|e| anyhow::anyhow!("--relay {r}: {e}"))?;
        return Ok(r);
    }
    let _ = ctx;
    Ok(live
        .session
        .our_endpoints()?
        .into_iter()
        .next()
        .context("this session is not attached to a relay; pass `--relay <url>`")?
        .relay)
}

pub fn show(out: &Out, p: &PairingJson) -> String {
    match &p.phase {
        Phase::Waiting => match &p.code {
            Some(code) => format!(
                "Pairing {}: read this code to the other operator:\n\n  {code}\n\nThey run `wire pair-join {code}`. Waiting for them.\n",
                p.id
            ),
            None => format!("Pairing {}: waiting for the host.\n", p.id),
        },
        Phase::Sas { sas } => format!(
            "Pairing {}: compare with the other screen:  {}\n{}\n",
            p.id,
            sas.display(out.style().emoji),
            if p.require_sas {
                format!(
                    "Confirm with `wire pair-confirm {} <the six digits>`.",
                    p.id
                )
            } else {
                format!(
                    "Confirm with `wire pair-confirm {} yes` if they match, `no` if not.",
                    p.id
                )
            }
        ),
        Phase::Confirmed { .. } => format!(
            "Pairing {}: confirmed here; waiting for the other side to confirm.\n",
            p.id
        ),
        Phase::Paired { peer, .. } => format!(
            "Pairing {}: paired with {} {} ({}). `wire send {} <message>` talks to them.\n",
            p.id,
            if out.style().emoji {
                &peer.emoji
            } else {
                &peer.tag
            },
            peer.nickname,
            peer.handle,
            peer.nickname
        ),
        Phase::Failed { reason } => format!("Pairing {}: failed: {reason}\n", p.id),
    }
}

pub fn host(ctx: &Ctx, args: HostArgs) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let relay = relay_of(ctx, &live, args.relay)?;
    let p = ctx.agent.start_pairing(
        &live,
        Side::Host,
        Code::generate(),
        &relay,
        args.require_sas,
    )?;
    let json = PairingJson::of(&p);
    ctx.out.print(&json, || show(&ctx.out, &json));
    Ok(ExitCode::SUCCESS)
}

pub fn join(ctx: &Ctx, args: JoinArgs) -> anyhow::Result<ExitCode> {
    let code = Code::parse(&args.code)?;
    let (live, _) = ctx.open()?;
    let relay = relay_of(ctx, &live, args.relay)?;
    let p = ctx
        .agent
        .start_pairing(&live, Side::Join, code, &relay, false)?;
    // The host's first message is already there: the SAS follows within a round trip.
    let now = p.phase();
    let phase = ctx
        .agent
        .block_on_until_close(p.changed_from(&now, Duration::from_secs(10)))
        .unwrap_or_else(|| p.phase());
    let json = PairingJson::of(&p);
    ctx.out.print(&json, || show(&ctx.out, &json));
    if let Phase::Failed { reason } = phase {
        bail!("{reason}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct Listed {
    pairings: Vec<PairingJson>,
}

pub fn check(ctx: &Ctx, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let Some(id) = args.id else {
        let list: Vec<PairingJson> = pairing::pairings(&live.name)
            .iter()
            .map(|p| PairingJson::of(p))
            .collect();
        ctx.out.print(&Listed { pairings: list }, || {
            let list = pairing::pairings(&live.name);
            if list.is_empty() {
                return "No pairings by code in progress. `wire pair-host` starts one.\n".into();
            }
            list.iter()
                .map(|p| show(&ctx.out, &PairingJson::of(p)))
                .collect()
        });
        return Ok(ExitCode::SUCCESS);
    };
    let p = pairing::pairing(&live.name, &id)?;
    if args.wait_ms > 0 {
        let now = p.phase();
        ctx.agent.block_on_until_close(
            p.changed_from(&now, Duration::from_millis(args.wait_ms.min(60_000))),
        );
    }
    let json = PairingJson::of(&p);
    ctx.out.print(&json, || show(&ctx.out, &json));
    Ok(ExitCode::SUCCESS)
}

pub fn confirm(ctx: &Ctx, args: ConfirmArgs) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let p = pairing::pairing(&live.name, &args.id)?;
    let answer = args.answer.trim();
    if answer.eq_ignore_ascii_case("no") || answer.eq_ignore_ascii_case("n") {
        p.abort("the operator said the SAS does not match; nothing was paired");
    } else {
        let typed = (!(answer.eq_ignore_ascii_case("yes") || answer.eq_ignore_ascii_case("y")))
            .then_some(answer);
        p.confirm(typed).map_err(anyhow::Error::msg)?;
    }
    // Give the pairing a moment to move on, so the answer shows where it went.
    let now = p.phase();
    ctx.agent
        .block_on_until_close(p.changed_from(&now, Duration::from_secs(2)));
    let json = PairingJson::of(&p);
    ctx.out.print(&json, || show(&ctx.out, &json));
    if let Phase::Failed { reason } = &json.phase {
        bail!("{reason}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command line and returns its JSON output (or its error).
pub type Call<'a> = dyn Fn(&[String]) -> anyhow::Result<Value> + 'a;

/// The terminal flow of `pair-host`/`pair-join` without `--detach`, from the client: starts the
/// pairing detached, shows the code and the SAS, asks the operator on stdin, confirms, and
/// waits for the pin. Prose goes to stdout (stderr in JSON mode, where stdout carries only the
/// final pairing).
pub fn drive(out: &Out, start: Vec<String>, call: &Call<'_>) -> anyhow::Result<ExitCode> {
    let say = |s: &str| {
        if out.style().json {
            out.write_stderr(s);
        } else {
            out.write_stdout(s.as_bytes());
        }
    };
    let started = call(&start)?;
    let id = started["id"]
        .as_str()
        .context("the daemon did not name the pairing")?
        .to_owned();
    let mut last = String::new();
    let mut asked = false;
    // The start's own answer first (a joiner is at the SAS already), then each change.
    let mut next = Some(started);
    loop {
        let v = match next.take() {
            Some(v) => v,
            None => call(&[
                "pair-check".into(),
                id.clone(),
                "--wait-ms".into(),
                "20000".into(),
            ])?,
        };
        let phase = v["phase"].as_str().unwrap_or("").to_owned();
        let text = prose_of(out, &v);
        if text != last {
            say(&text);
            last = text;
        }
        match phase.as_str() {
            "sas" if !asked => {
                asked = true;
                let require = v["require_sas"].as_bool().unwrap_or(false);
                say(if require {
                    "Type the six digits the other side reads out (anything else aborts): "
                } else {
                    "Does the other screen show the same digits and pictures? [y/N] "
                });
                let mut line = String::new();
                let read = std::io::stdin().lock().read_line(&mut line).unwrap_or(0);
                let answer = line.trim();
                let answer = if read == 0 || answer.is_empty() {
                    "no".to_owned()
                } else if require {
                    answer.to_owned()
                } else if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                };
                // Refused (digits that do not match abort the pairing for good) or not handed
                // over: say so and stop, instead of checking on a pairing that waits for an
                // answer that never came.
                call(&["pair-confirm".into(), id.clone(), answer])?;
            }
            "paired" => {
                if out.style().json {
                    out.print(&v, String::new);
                }
                return Ok(ExitCode::SUCCESS);
            }
            "failed" => {
                bail!(
                    "{}",
                    v["reason"]
                        .as_str()
                        .unwrap_or("the pairing failed; start again")
                );
            }
            _ => {}
        }
    }
}

fn prose_of(out: &Out, v: &Value) -> String {
    match serde_json::from_value::<PairingView>(v.clone()) {
        Ok(p) => p.prose(out),
        Err(_) => String::new(),
    }
}

/// The JSON of a pairing read back by the client, for its prose.
#[derive(Debug, serde::Deserialize)]
struct PairingView {
    id: String,
    code: Option<String>,
    phase: String,
    sas: Option<SasView>,
    peer: Option<PeerView>,
    reason: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct SasView {
    digits: String,
    emoji: Vec<String>,
    tags: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct PeerView {
    nickname: String,
    emoji: String,
    tag: String,
    handle: String,
}

impl PairingView {
    fn prose(&self, out: &Out) -> String {
        let emoji = out.style().emoji;
        match self.phase.as_str() {
            "waiting" => match &self.code {
                Some(code) => format!(
                    "Read this code to the other operator:\n\n  {code}\n\nThey run `wire pair-join {code}`. Waiting for them…\n"
                ),
                None => "Waiting for the host…\n".into(),
            },
            "sas" => {
                let Some(s) = &self.sas else {
                    return String::new();
                };
                format!(
                    "Both sides hold a key. Compare with the other screen:\n\n  {} {}  {}\n\n",
                    &s.digits[..3],
                    &s.digits[3..],
                    if emoji { &s.emoji } else { &s.tags }.join(" ")
                )
            }
            "confirmed" => "Confirmed here; waiting for the other side to confirm…\n".into(),
            "paired" => match &self.peer {
                Some(p) => format!(
                    "Paired with {} {} ({}). `wire send {} <message>` talks to them.\n",
                    if emoji { &p.emoji } else { &p.tag },
                    p.nickname,
                    p.handle,
                    p.nickname
                ),
                None => "Paired.\n".into(),
            },
            "failed" => format!(
                "Pairing {} failed: {}\n",
                self.id,
                self.reason.as_deref().unwrap_or("")
            ),
            _ => String::new(),
        }
    }
}
