//! The local mesh: the sister sessions of one state root (one daemon) and pairing them with each
//! other in process (`wire session list-local`, `wire session pair-all-local`, and `wire send`
//! to an unpaired sister). The trust anchor is that one user owns every one of their files.

use std::fmt::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::{PeerState, RequestOutcome};
use wire_log::card::VerifiedCard;
use wire_log::identity::Character;
use wire_log::pair::PairRequest;

use super::Ctx;
use crate::agent::push::Why;
use crate::agent::{Live, PushOutcome};

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

pub(super) fn list_local(ctx: &Ctx) -> anyhow::Result<ExitCode> {
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

pub(super) fn pair_all_local(ctx: &Ctx) -> anyhow::Result<ExitCode> {
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
}
