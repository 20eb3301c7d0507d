//! `wire whois <name | nick@domain>`: a peer or request we know, else a handle looked up on
//! its relay. A miss suggests close names; in JSON mode a miss is `{"found": false, …}` with
//! exit 0, so agents need no error handling to ask.

use std::process::ExitCode;

use serde::Serialize;
use wire_log::card::SignedCard;

use super::{Ctx, PeerJson, PendingJson, printable};
use crate::names::{Found, Miss, resolve};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A nickname, handle or DID; or `nick@domain` to look up on its relay.
    name: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Answer {
    Peer {
        found: bool,
        source: &'static str,
        peer: PeerJson,
    },
    Pending {
        found: bool,
        source: &'static str,
        pending: PendingJson,
    },
    Directory {
        found: bool,
        source: &'static str,
        handle: String,
        did: String,
        nickname: String,
        emoji: String,
        tag: String,
        x25519: String,
    },
    Miss {
        found: bool,
        name: String,
        candidates: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let (live, _) = ctx.open()?;
    let state = live.session.state()?;
    let answer = match resolve(&state, &args.name) {
        Ok(Found::Peer(p)) => Answer::Peer {
            found: true,
            source: "peers",
            peer: PeerJson::of(&p),
        },
        Ok(Found::Pending(p)) => Answer::Pending {
            found: true,
            source: "pending",
            pending: PendingJson::of(&p),
        },
        Err(e) if args.name.contains('@') => {
            let _ = e;
            match lookup(ctx, &args.name) {
                Ok(a) => a,
                Err(e) => {
                    if ctx.out.json {
                        Answer::Miss {
                            found: false,
                            name: args.name.clone(),
                            candidates: Vec::new(),
                        }
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        Err(e) => match e.downcast::<Miss>() {
            Ok(miss) if ctx.out.json => Answer::Miss {
                found: false,
                name: miss.name,
                candidates: miss.candidates,
            },
            Ok(miss) => return Err(miss.into()),
            Err(e) => return Err(e),
        },
    };
    let face = |emoji: &str, tag: &str| {
        if ctx.out.emoji {
            emoji.to_owned()
        } else {
            format!("[{tag}]")
        }
    };
    ctx.out.print(&answer, || match &answer {
        Answer::Peer { peer, .. } => format!(
            "{} {} ({}): {} peer\n  {}\n",
            face(&peer.emoji, &peer.tag),
            peer.nickname,
            printable(&peer.handle),
            format!("{:?}", peer.state).to_lowercase(),
            peer.did
        ),
        Answer::Pending { pending, .. } => format!(
            "{} {} ({}) is waiting for your decision\n  {}\n",
            face(&pending.emoji, &pending.tag),
            pending.nickname,
            printable(&pending.handle),
            pending.did
        ),
        Answer::Directory {
            handle,
            did,
            nickname,
            emoji,
            tag,
            ..
        } => format!(
            "{} {nickname} is {} (card verified)\n  {did}\n`wire dial {}` asks them to pair.\n",
            face(emoji, tag),
            printable(handle),
            printable(handle)
        ),
        Answer::Miss { name, .. } => format!("nobody called {}\n", printable(name)),
    });
    Ok(ExitCode::SUCCESS)
}

fn lookup(ctx: &Ctx, handle: &str) -> anyhow::Result<Answer> {
    let (nick, base) = wire_net::resolver_url(handle)?;
    let client = ctx.agent.client(&base)?;
    let resolved = ctx.agent.block_on(client.resolve(&nick))?;
    let card = SignedCard::from_json(resolved.card.as_bytes())?.verify()?;
    let c = wire_log::Character::of(&card.did);
    Ok(Answer::Directory {
        found: true,
        source: "directory",
        handle: card.signed.handle.clone(),
        did: card.did.to_string(),
        nickname: c.nickname.clone(),
        emoji: c.emoji.clone(),
        tag: c.tag.clone(),
        x25519: hex::encode(card.x25519),
    })
}
