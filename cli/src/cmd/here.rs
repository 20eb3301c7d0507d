//! `wire here`: one screen with who you are, your peers, the requests waiting for you and the
//! other sessions on this machine.

use std::fmt::Write;
use std::process::ExitCode;

use serde::Serialize;
use wire_engine::{Peer, PeerState, Pending};

use super::{Chosen, Ctx, IdentityJson, PeerJson, PendingJson};

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, Serialize)]
struct Here<'a> {
    session: &'a Chosen,
    identity: IdentityJson<'a>,
    peers: Vec<PeerJson>,
    pending: Vec<PendingJson>,
    #[serde(skip)]
    peer_list: &'a [Peer],
    #[serde(skip)]
    pending_list: &'a [Pending],
    sessions: Vec<Sister>,
}

/// Another session under the same state root.
#[derive(Debug, Serialize)]
struct Sister {
    name: String,
    nickname: Option<String>,
    emoji: Option<String>,
    tag: Option<String>,
    /// How this session stands with it: `paired`, `dialed`, `rejected`, `pending` or `none`.
    state: Option<String>,
    /// Why its identity could not be read, if it could not.
    problem: Option<String>,
}

pub fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<ExitCode> {
    let (live, chosen) = ctx.open()?;
    let session = &live.session;
    let state = session.state()?;
    let Some(id) = state.identity.as_ref() else {
        anyhow::bail!("session {} has no identity; run `wire verify`", chosen.name);
    };
    let peers: Vec<Peer> = state.peers.values().cloned().collect();
    let pending: Vec<Pending> = state.pending.values().cloned().collect();
    let home = ctx.home()?;
    let sessions = home
        .sessions()?
        .into_iter()
        .filter(|s| s.name != chosen.name)
        .map(|s| {
            match ctx.agent.session(&s.name).and_then(|x| {
                let i = x.session.identity()?;
                Ok((x, i))
            }) {
                Ok((sister, i)) => Sister {
                    name: s.name,
                    nickname: Some(i.character.nickname),
                    emoji: Some(i.character.emoji),
                    tag: Some(i.character.tag),
                    state: Some(super::sisters::standing(&live, &sister)),
                    problem: None,
                },
                Err(e) => Sister {
                    name: s.name,
                    nickname: None,
                    emoji: None,
                    tag: None,
                    state: None,
                    problem: Some(e.to_string()),
                },
            }
        })
        .collect::<Vec<_>>();
    let here = Here {
        session: &chosen,
        identity: IdentityJson::of(id),
        peers: peers.iter().map(PeerJson::of).collect(),
        pending: pending.iter().map(PendingJson::of).collect(),
        peer_list: &peers,
        pending_list: &pending,
        sessions,
    };
    ctx.out.print(&here, || prose(ctx, &here, id));
    Ok(ExitCode::SUCCESS)
}

fn prose(ctx: &Ctx, here: &Here<'_>, id: &wire_engine::Identity) -> String {
    let chosen = here.session;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "You are {} ({}) in session {} (chosen by {}).",
        ctx.out.face(&id.character),
        id.handle,
        chosen.name,
        chosen.why()
    );
    if here.peer_list.is_empty() {
        let _ = writeln!(s, "No peers yet.");
    }
    for p in here.peer_list {
        let state = match p.state {
            PeerState::Dialed => "dialed, waiting for them to accept",
            PeerState::Paired => "paired",
            PeerState::Rejected => "rejected",
        };
        let _ = writeln!(
            s,
            "  {} ({}): {state}",
            ctx.out.face(&p.character),
            p.handle
        );
    }
    for r in here.pending_list {
        let _ = writeln!(
            s,
            "{} ({}) wants to pair with you.",
            ctx.out.face(&r.character),
            r.handle
        );
    }
    if here.pending_list.is_empty() {
        let _ = writeln!(s, "No pair requests waiting.");
    }
    if here.sessions.is_empty() {
        let _ = writeln!(s, "No other sessions on this machine.");
    } else {
        let _ = writeln!(s, "Sister sessions on this machine:");
        for x in &here.sessions {
            let face = match (&x.emoji, &x.tag, &x.nickname) {
                (Some(e), Some(t), Some(n)) => {
                    if ctx.out.style().emoji {
                        format!("{e} {n}")
                    } else {
                        format!("[{t}] {n}")
                    }
                }
                _ => "(unreadable)".into(),
            };
            let state = match x.state.as_deref() {
                Some("paired") => "paired".to_owned(),
                Some("pending") => "asked to pair with you".to_owned(),
                Some("dialed") => "dialed, waiting for them".to_owned(),
                Some("rejected") => "rejected".to_owned(),
                Some(_) => "not paired (`wire session pair-all-local`)".to_owned(),
                None => x
                    .problem
                    .clone()
                    .map_or_else(String::new, |p| format!("cannot be read: {p}")),
            };
            let _ = writeln!(s, "  {:<16} {face}: {state}", x.name);
        }
    }
    s
}
