//! `wire status [--peer P]`: the daemon, every relay we receive at or push to (reachable or
//! not, with latency and clock skew), each slot's backlog, each peer's line (last push, last
//! receipt, what waits unconfirmed, what waits aside and why, why its outbox is queued), the
//! pair requests waiting, and what replication refused. `wire doctor` judges this same
//! report, so it is plain data in both directions (the doctor reads it back from the daemon's
//! JSON).

use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wire_engine::{PeerState, Session};
use wire_log::body::{Body, SlotChange};
use wire_log::{AuthorKey, EventKey, Kind, LogId};

use super::{Ctx, printable};
use crate::agent::{Agent, Live, Report, now_ms};
use crate::names::{Found, resolve};

/// How long a relay may take to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Refusals shown in prose.
const REFUSALS_SHOWN: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this peer (nickname, handle or DID).
    #[arg(long)]
    peer: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// A daemon runs for this state root (and, when this report comes from it, its pid, its
    /// uptime and its executable).
    pub daemon: bool,
    pub pid: Option<u32>,
    pub uptime_s: Option<u64>,
    pub daemon_exe: Option<String>,
    pub session: String,
    pub now_ms: u64,
    /// The slots we receive at, newest (where peers write first) first.
    pub receiving: Vec<Slot>,
    /// Slots we no longer read that still hold blobs.
    pub retired: Vec<Slot>,
    /// Every relay we receive at or push to, probed now.
    pub relays: Vec<RelayProbe>,
    pub peers: Vec<PeerLine>,
    pub pending: Vec<Waiting>,
    /// What replication refused, counted, and why outboxes wait.
    pub report: Report,
    pub notifications: Notifications,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slot {
    pub relay: String,
    pub slot: String,
    /// A reader runs for it (`None` when no daemon runs: nothing reads in the background).
    pub read: Option<bool>,
    /// Blobs the relay holds for us, and how many of them we have not acknowledged.
    pub blobs: Option<u64>,
    pub unread: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayProbe {
    pub url: String,
    pub reachable: bool,
    pub latency_ms: Option<f64>,
    /// The relay's clock minus ours (positive: ours is behind), round trip halved.
    pub skew_ms: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerLine {
    pub nickname: String,
    pub emoji: String,
    pub tag: String,
    pub colour: u8,
    pub accent: u8,
    pub handle: String,
    pub key: String,
    pub state: PeerState,
    pub endpoints: Vec<String>,
    /// Our events in the pair log, how many of them the peer confirmed, and the difference.
    pub sent: u64,
    pub acked: u64,
    pub unacked: u64,
    /// When the oldest event the peer has not confirmed was written.
    pub oldest_unacked_ms: Option<u64>,
    /// Their events we hold, and when the newest was written.
    pub received: u64,
    pub last_event_ms: Option<u64>,
    /// This daemon's last successful push to them and last ingest from them.
    pub last_pushed_ms: Option<u64>,
    pub last_received_ms: Option<u64>,
    /// Events from them held aside, and the seq they wait for.
    pub held: usize,
    pub held_waits_for: Option<u64>,
    /// Why our outbox for them waits, if it does.
    pub queued: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Waiting {
    pub nickname: String,
    pub handle: String,
    pub key: String,
    pub received_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notifications {
    pub backend: String,
    pub quiet: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, chosen) = ctx.open()?;
    let only = match &args.peer {
        Some(name) => match resolve(&live.session.state()?, name)? {
            Found::Peer(p) => Some(p.key),
            Found::Pending(p) => anyhow::bail!(
                "{} has only asked to pair; `wire pending` shows the request",
                printable(&p.handle)
            ),
        },
        None => None,
    };
    let status = collect(&ctx.agent, &live, &chosen.name, only.as_ref())?;
    ctx.out.print(&status, || prose(ctx, &status));
    Ok(ExitCode::SUCCESS)
}

/// Gathers the report for one session (and one peer, or all).
pub fn collect(
    agent: &std::sync::Arc<Agent>,
    live: &Live,
    session: &str,
    only: Option<&AuthorKey>,
) -> anyhow::Result<Status> {
    let id = live.session.identity()?;
    let me = live.key;
    let (daemon, pid, uptime_s, daemon_exe) = if agent.is_daemon() {
        (
            true,
            Some(std::process::id()),
            Some(agent.started.elapsed().as_secs()),
            std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string()),
        )
    } else {
        (
            crate::daemon::connect(agent.home()).is_some(),
            None,
            None,
            None,
        )
    };
    let reading = agent.is_daemon().then(|| live.reading());
    let mut peers: Vec<wire_engine::Peer> = live
        .session
        .peers()?
        .into_iter()
        .filter(|p| only.is_none_or(|k| *k == p.key))
        .collect();
    peers.sort_by(|a, b| a.handle.cmp(&b.handle));

    // Probe every relay once, all at the same time.
    let mut urls: Vec<String> = id.slots.iter().map(|s| s.relay.clone()).collect();
    for p in &peers {
        for e in p.endpoint.iter().flat_map(|e| e.endpoints.iter()) {
            urls.push(e.relay.clone());
        }
    }
    urls.sort();
    urls.dedup();
    let relays = agent.block_on(probe_all(agent, &urls));

    let mut slot_infos = Vec::new();
    for ep in id.slots.iter().rev() {
        let mut slot = Slot {
            relay: ep.relay.clone(),
            slot: ep.slot.clone(),
            read: reading.as_ref().map(|r| r.contains(ep)),
            blobs: None,
            unread: None,
            error: None,
        };
        fill_slot(agent, &live.session, ep, &mut slot);
        slot_infos.push(slot);
    }
    let mut retired = Vec::new();
    for ep in retired_slots(&live.session)? {
        if id.slots.contains(&ep) {
            continue;
        }
        let mut slot = Slot {
            relay: ep.relay.clone(),
            slot: ep.slot.clone(),
            read: Some(false),
            blobs: None,
            unread: None,
            error: None,
        };
        fill_slot(agent, &live.session, &ep, &mut slot);
        if slot.unread.is_some_and(|n| n > 0) {
            retired.push(slot);
        }
    }

    let report = live.report.lock().expect("report lock").clone();
    let held = live.held();
    let contacts = live.contacts();
    let mut lines = Vec::new();
    for p in &peers {
        let line = live.session.line(&p.key)?;
        let log = LogId::pair_log(&me, &p.key);
        let ts_of = |author: AuthorKey, seq: u64| -> Option<u64> {
            if seq == 0 {
                return None;
            }
            let key = EventKey { log, author, seq };
            live.session
                .store()
                .get(&key)
                .ok()
                .flatten()
                .map(|e| e.event().ts_ms)
        };
        let hex = p.key.to_hex();
        let held_n = held.get(&hex).copied().unwrap_or(0);
        let contact = contacts.get(&p.key).cloned().unwrap_or_default();
        lines.push(PeerLine {
            nickname: p.character.nickname.clone(),
            emoji: p.character.emoji.clone(),
            tag: p.character.tag.clone(),
            colour: p.character.colour,
            accent: p.character.accent,
            handle: p.handle.clone(),
            key: hex.clone(),
            state: p.state,
            endpoints: p
                .endpoint
                .iter()
                .flat_map(|e| e.endpoints.iter().map(|x| x.relay.clone()))
                .collect(),
            sent: line.our_head,
            acked: line.acked,
            unacked: line.our_head.saturating_sub(line.acked),
            oldest_unacked_ms: (line.our_head > line.acked)
                .then(|| ts_of(me, line.acked + 1))
                .flatten(),
            received: line.their_head,
            last_event_ms: ts_of(p.key, line.their_head),
            last_pushed_ms: contact.pushed_ms,
            last_received_ms: contact.received_ms,
            held: held_n,
            held_waits_for: (held_n > 0).then_some(line.their_head + 1),
            queued: report.queued.get(&hex).cloned(),
        });
    }
    let pending = live
        .session
        .pending()?
        .into_iter()
        .map(|p| Waiting {
            nickname: p.character.nickname.clone(),
            handle: p.handle.clone(),
            key: p.key.to_hex(),
            received_ms: p.received_ms,
        })
        .collect();
    let notifications = Notifications {
        backend: agent.notifier().map_or("none", |n| n.backend()).to_owned(),
        quiet: crate::notify::silenced(agent.home().root()).map(str::to_owned),
    };
    Ok(Status {
        daemon,
        pid,
        uptime_s,
        daemon_exe,
        session: session.to_owned(),
        now_ms: now_ms(),
        receiving: slot_infos,
        retired,
        relays,
        peers: lines,
        pending,
        report,
        notifications,
    })
}

/// The slots our self log says we retired, oldest first.
pub fn retired_slots(session: &Session) -> anyhow::Result<Vec<wire_log::body::Endpoint>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let batch = session
            .store()
            .read_chain(&session.self_log(), &session.key(), after, 1024)?;
        let Some(last) = batch.last().map(|e| e.event().seq) else {
            break;
        };
        for e in &batch {
            if e.event().kind == Kind::SLOT_RETIRED
                && let Ok(c) = SlotChange::decode(&e.event().body)
                && !out.contains(&c.endpoint)
            {
                out.push(c.endpoint);
            }
        }
        after = last;
    }
    Ok(out)
}

/// Asks the relay how full one of our slots is.
fn fill_slot(agent: &Agent, session: &Session, ep: &wire_log::body::Endpoint, slot: &mut Slot) {
    let info = session
        .slot_token(ep)
        .map_err(anyhow::Error::from)
        .and_then(|token| {
            let client = agent.client(&ep.relay)?;
            agent
                .block_on(async {
                    tokio::time::timeout(PROBE_TIMEOUT, client.slot_info(&ep.slot, &token)).await
                })
                .map_err(|_| anyhow::anyhow!("no answer within {} s", PROBE_TIMEOUT.as_secs()))?
                .map_err(anyhow::Error::from)
        });
    match info {
        Ok(i) => {
            slot.blobs = Some(i.blobs);
            slot.unread = Some(i.last_seq.saturating_sub(i.acked_through));
        }
        Err(e) => slot.error = Some(format!("{e:#}")),
    }
}

async fn probe_all(agent: &Agent, urls: &[String]) -> Vec<RelayProbe> {
    let probes = urls.iter().map(|url| probe(agent, url));
    futures_util::future::join_all(probes).await
}

async fn probe(agent: &Agent, url: &str) -> RelayProbe {
    let mut p = RelayProbe {
        url: url.to_owned(),
        reachable: false,
        latency_ms: None,
        skew_ms: None,
        error: None,
    };
    let client = match agent.client(url) {
        Ok(c) => c,
        Err(e) => {
            p.error = Some(format!("{e:#}"));
            return p;
        }
    };
    let sent = now_ms();
    let t0 = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, client.info()).await {
        Ok(Ok(info)) => {
            let rtt = t0.elapsed();
            p.reachable = true;
            p.latency_ms = Some((rtt.as_secs_f64() * 1e4).round() / 10.0);
            p.skew_ms = info.now_ms.map(|theirs| {
                let ours = sent + u64::try_from(rtt.as_millis() / 2).unwrap_or(0);
                i64::try_from(i128::from(theirs) - i128::from(ours)).unwrap_or(i64::MAX)
            });
        }
        Ok(Err(e)) => p.error = Some(e.to_string()),
        Err(_) => p.error = Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
    p
}

/// `3 s ago`, `5 min ago`, `2 h ago`, `4 days ago`.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn prose(ctx: &Ctx, st: &Status) -> String {
    let mut s = String::new();
    let out = &ctx.out;
    match (st.daemon, ctx.agent.is_daemon()) {
        (_, true) => {
            let _ = writeln!(
                s,
                "Daemon running (pid {}, up {} s); session {}.",
                st.pid.unwrap_or(0),
                st.uptime_s.unwrap_or(0),
                st.session
            );
        }
        (true, false) => {
            let _ = writeln!(
                s,
                "A daemon runs, but this command opened the store itself (--no-daemon); session {}.",
                st.session
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "No daemon is running, so nothing is received or pushed in the background; session {}. `wire daemon` starts one.",
                st.session
            );
        }
    }
    if st.receiving.is_empty() {
        let _ = writeln!(
            s,
            "Not attached to a relay: nobody can reach this session. `wire init --relay URL` attaches one."
        );
    }
    for slot in &st.receiving {
        let backlog = match (slot.unread, &slot.error) {
            (Some(0), _) => "empty".to_owned(),
            (Some(n), _) => format!("{} unread", crate::output::count(n, "blob", "blobs")),
            (None, Some(e)) => format!("cannot ask: {}", printable(e)),
            (None, None) => "unknown".into(),
        };
        let reader = match slot.read {
            Some(true) => "read",
            Some(false) => "NOT read",
            None => "read when a command asks",
        };
        let _ = writeln!(s, "Receiving at {} ({reader}; {backlog}).", slot.relay);
    }
    for slot in &st.retired {
        let _ = writeln!(
            s,
            "Retired slot at {} still holds {} we no longer read.",
            slot.relay,
            crate::output::count(slot.unread.unwrap_or(0), "blob", "blobs")
        );
    }
    for r in &st.relays {
        if r.reachable {
            let skew = r
                .skew_ms
                .filter(|k| k.unsigned_abs() >= 1000)
                .map(|k| format!(", clock off by {:.1} s", k as f64 / 1000.0))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "Relay {}: reachable in {:.1} ms{skew}.",
                r.url,
                r.latency_ms.unwrap_or(0.0)
            );
        } else {
            let _ = writeln!(
                s,
                "Relay {}: UNREACHABLE ({}).",
                r.url,
                printable(r.error.as_deref().unwrap_or("no answer"))
            );
        }
    }
    if st.peers.is_empty() {
        let _ = writeln!(s, "No peers yet.");
    }
    for p in &st.peers {
        let face = out.face(&wire_log::Character {
            emoji: p.emoji.clone(),
            tag: p.tag.clone(),
            nickname: p.nickname.clone(),
            colour: p.colour,
            accent: p.accent,
        });
        let state = match p.state {
            PeerState::Paired => "paired",
            PeerState::Dialed => "dialed, waiting for them to accept",
            PeerState::Rejected => "rejected",
        };
        let _ = writeln!(s, "{face} ({}): {state}.", printable(&p.handle));
        let mut facts = vec![format!(
            "sent {}, {} unconfirmed; received {}",
            p.sent, p.unacked, p.received
        )];
        if let Some(t) = p.last_pushed_ms {
            facts.push(format!("last pushed {}", ago(st.now_ms, t)));
        }
        if let Some(t) = p.last_received_ms.or(p.last_event_ms) {
            facts.push(format!("last heard from {}", ago(st.now_ms, t)));
        }
        let _ = writeln!(s, "  {}.", facts.join("; "));
        if let Some(t) = p.oldest_unacked_ms {
            let _ = writeln!(
                s,
                "  Oldest unconfirmed event written {}.",
                ago(st.now_ms, t)
            );
        }
        if p.held > 0 {
            let _ = writeln!(
                s,
                "  {} from them {} aside for seq {} (asked them to resend).",
                crate::output::count(p.held as u64, "event", "events"),
                if p.held == 1 { "waits" } else { "wait" },
                p.held_waits_for.unwrap_or(0)
            );
        }
        if let Some(q) = &p.queued {
            let _ = writeln!(s, "  Outbox waiting: {}", printable(q));
        }
    }
    match st.pending.len() {
        0 => {}
        n => {
            let names: Vec<String> = st
                .pending
                .iter()
                .map(|w| format!("{} ({})", w.nickname, printable(&w.handle)))
                .collect();
            let _ = writeln!(
                s,
                "{} waiting: {}. `wire pending` shows them.",
                crate::output::count(n as u64, "pair request", "pair requests"),
                names.join(", ")
            );
        }
    }
    let _ = writeln!(
        s,
        "Refused {} blobs or events, {} junk intros, {} dropped pair requests.",
        st.report.refused_total, st.report.junk_intros, st.report.dropped_requests
    );
    for r in st.report.refused.iter().rev().take(REFUSALS_SHOWN) {
        let _ = writeln!(s, "  {}: {}", r.what, printable(&r.reason));
    }
    match &st.notifications.quiet {
        Some(why) => {
            let _ = writeln!(s, "Notifications off ({why}).");
        }
        None => {
            let to = match st.notifications.backend.as_str() {
                "desktop" => "the desktop",
                "log" => "the daemon's log (no notification service here)",
                "file" => "the file WIRE_NOTIFY_SINK names",
                _ => "nowhere until a daemon runs",
            };
            let _ = writeln!(s, "Notifications go to {to}.");
        }
    }
    s
}
