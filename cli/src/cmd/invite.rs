//! `wire invite`: mint a signed `wire://pair?…` URL that pairs whoever presents it (up to
//! `--uses` times, until `--ttl` runs out), and `wire accept '<url>'`, which redeems one. The
//! invite carries our card and where our intros go, never a token that reads our mailbox; the
//! uses are counted in our own log, so a relay cannot stretch them.

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::PeerState;
use wire_log::invite::Invite;

use super::{Ctx, PeerJson};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the invite stays valid: a number and a unit, s, m, h or d (10 s to 7 days).
    #[arg(long, default_value = "10m", value_parser = parse_ttl_ms)]
    ttl: u64,
    /// How many peers may pair with it (1 to 100).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    uses: u64,
}

/// `10m` → 600,000 ms.
pub fn parse_ttl_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write it as 30s, 10m, 2h or 1d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" | "" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit `{other}`; use s, m, h or d")),
    };
    let ms = n.saturating_mul(unit_ms);
    if !(wire_engine::INVITE_TTL_MS_MIN..=wire_engine::INVITE_TTL_MS_MAX).contains(&ms) {
        return Err("an invite lives 10s to 7d".into());
    }
    Ok(ms)
}

#[derive(Debug, Serialize)]
struct Invited {
    status: &'static str,
    url: String,
    handle: String,
    nonce: String,
    expires_ms: u64,
    uses: u64,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let identity = live.session.identity()?;
    let handle = identity.claimed.first().cloned().context(
        "an invite names the handle your intros arrive at; claim one first (`wire claim`)",
    )?;
    let relay = intro_relay(&identity.slots, &handle)?;
    let card = live.session.sign_card(&handle)?;
    let invite = live
        .session
        .issue_invite(&card, &relay, args.ttl, args.uses)?;
    let url = invite.to_url();
    ctx.out.print(
        &Invited {
            status: "invited",
            url: url.clone(),
            handle: handle.clone(),
            nonce: invite.nonce.to_hex(),
            expires_ms: invite.expires_ms,
            uses: invite.uses,
        },
        || {
            format!(
                "Invite for {} ({handle}), valid {} for {}:\n\n  {url}\n\n\
                 Hand it over a channel you trust. Whoever runs `wire accept '<url>'` with it \
                 pairs with you, without asking you again.\n",
                ctx.out.face(&identity.character),
                ttl_words(args.ttl),
                crate::output::count(args.uses, "pairing", "pairings"),
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `600000` → `10 minutes`.
pub fn ttl_words(ms: u64) -> String {
    let s = ms / 1000;
    if s.is_multiple_of(86_400) {
        crate::output::count(s / 86_400, "day", "days")
    } else if s.is_multiple_of(3600) {
        crate::output::count(s / 3600, "hour", "hours")
    } else if s.is_multiple_of(60) {
        crate::output::count(s / 60, "minute", "minutes")
    } else {
        crate::output::count(s, "second", "seconds")
    }
}

/// The relay our intros for `handle` arrive at: the slot relay whose domain is the handle's,
/// else the handle's resolver URL.
fn intro_relay(slots: &[wire_log::body::Endpoint], handle: &str) -> anyhow::Result<String> {
    let (_, domain) = handle.split_once('@').context("a handle is nick@domain")?;
    for s in slots.iter().rev() {
        let host = s
            .relay
            .strip_prefix("http://")
            .or_else(|| s.relay.strip_prefix("https://"));
        if host.is_some_and(|h| h.eq_ignore_ascii_case(domain)) {
            return Ok(s.relay.clone());
        }
    }
    Ok(wire_net::resolver_url(handle)?.1)
}

/// How long `wire accept '<url>'` waits for the issuer's answer before it returns.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

#[derive(Debug, Serialize)]
struct Redeemed {
    status: &'static str,
    peer: PeerJson,
    expires_ms: u64,
}

/// `wire accept '<url>'`: checks the invite (signature, signer, expiry), grants its issuer a
/// capability, and leaves a pair request naming the invite in the issuer's intro queue. The
/// issuer's daemon pairs at once if the invite is still valid there.
pub fn accept_url(ctx: &Ctx, url: &str) -> anyhow::Result<ExitCode> {
    let invite = Invite::from_url(url)?;
    let (live, _) = ctx.open()?;
    let their = &invite.card;
    let now = crate::agent::now_ms();
    if now > invite.expires_ms {
        bail!(
            "this invite from {} expired {} ago; ask them for a new one (`wire invite`)",
            their.signed.handle,
            ttl_words((now - invite.expires_ms).div_ceil(1000) * 1000)
        );
    }
    if their.key == live.session.key() {
        bail!("this is your own invite; give it to the agent that should pair with you");
    }
    match live.session.find_peer(&their.key)?.map(|p| p.state) {
        Some(PeerState::Paired) => bail!(
            "already paired with {}; `wire send {} <message>` talks to them",
            their.signed.handle,
            their.signed.handle
        ),
        Some(PeerState::Rejected) => bail!(
            "you rejected {} earlier; `wire forget {}` clears that before pairing",
            their.signed.handle,
            their.signed.handle
        ),
        _ => {}
    }
    let our_handle = live.session.identity()?.claimed.first().cloned().context(
        "claim a handle first (`wire claim`): the inviter's agent needs your card to answer",
    )?;
    let minted = ctx.agent.block_on(ctx.agent.mint_caps(&live))?;
    let peer = live.session.record_dialed(their, &minted)?;
    let our_card = live.session.sign_card(&our_handle)?;
    let intro = live.session.invite_intro(&our_card, &invite, &minted)?;
    let client = ctx.agent.client(&invite.relay)?;
    ctx.agent
        .block_on(client.send_intro(
            &their.nick,
            bytes::Bytes::copy_from_slice(intro.signed_bytes()),
        ))
        .with_context(|| {
            format!(
                "the pair request could not be left at {} for {}; try again while the invite is valid",
                invite.relay, their.signed.handle
            )
        })?;
    // With a daemon the answer usually comes within a second or two: wait a little for it, so
    // the operator hears "paired" or why not, instead of a bare "dialed".
    let mut peer = peer;
    if ctx.agent.is_daemon() {
        let deadline = std::time::Instant::now() + ANSWER_WAIT;
        while std::time::Instant::now() < deadline {
            if let Some(p) = live.session.find_peer(&their.key)?
                && p.state == PeerState::Paired
            {
                peer = p;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let paired = peer.state == PeerState::Paired;
    ctx.out.print(
        &Redeemed {
            status: if paired { "paired" } else { "dialed" },
            peer: PeerJson::of(&peer),
            expires_ms: invite.expires_ms,
        },
        || {
            if paired {
                format!(
                    "Paired with {} ({}) by their invite. `wire send {} <message>` talks to them.\n",
                    ctx.out.face(&peer.character),
                    peer.handle,
                    peer.character.nickname
                )
            } else {
                format!(
                    "Invite from {} ({}) checked and presented; no answer yet. You are paired as \
                     soon as their agent takes it (`wire peers` shows when). If it never does, \
                     their agent is offline, or the invite is used up or expired by their clock: \
                     ask them for a new one.\n",
                    ctx.out.face(&peer.character),
                    peer.handle
                )
            }
        },
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units_and_bounds() {
        assert_eq!(parse_ttl_ms("10m"), Ok(600_000));
        assert_eq!(parse_ttl_ms("30s"), Ok(30_000));
        assert_eq!(parse_ttl_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_ttl_ms("7d"), Ok(604_800_000));
        assert!(parse_ttl_ms("5s").is_err());
        assert!(parse_ttl_ms("8d").is_err());
        assert!(parse_ttl_ms("ten").is_err());
        assert!(parse_ttl_ms("10y").is_err());
        assert_eq!(ttl_words(600_000), "10 minutes");
    }
}
