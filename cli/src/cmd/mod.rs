//! The subcommands, one module each, and what they share: the context and session resolution.

pub mod bench;
pub mod bench_line;
pub mod bench_load;
pub mod bench_mcp;
pub mod bench_sessions;
pub mod claim;
pub mod daemon;
pub mod decide;
pub mod demo;
pub mod dial;
pub mod doctor;
pub mod files;
pub mod here;
pub mod identity;
pub mod init;
pub mod invite;
pub mod mcp;
pub mod mesh;
pub mod pair;
pub mod peers;
pub mod pending;
pub mod quiet;
pub mod relay;
pub mod relay_bench;
pub mod rotate;
pub mod send;
pub mod service;
pub mod session;
pub mod setup;
pub mod sisters;
pub mod status;
pub mod sync;
pub mod tail;
pub mod verify;
pub mod watch;
pub mod whoami;
pub mod whois;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use wire_engine::{Home, Identity, Peer, PeerState, Pending};

use crate::agent::{Agent, Live};
use crate::output::Out;

/// What every command gets.
#[derive(Debug)]
pub struct Ctx {
    pub chosen: Chosen,
    pub out: Out,
    pub agent: Arc<Agent>,
    /// The caller's working directory (the client's, when the daemon runs the command).
    pub cwd: Option<std::path::PathBuf>,
}

/// The session a command acts on, and the rule that chose it (the type travels in control
/// requests, so it lives with them in `wire_net::control`).
pub use wire_net::control::Chosen;

/// Resolution order (issue 6): `--session`, `WIRE_SESSION` (clap reads both into `session`),
/// `WIRE_HOME` naming a session directory, the binding of the nearest ancestor of the working
/// directory, then `default`. A binding whose session is gone is skipped.
pub fn resolve_chosen(session: Option<String>, home: Option<&Home>, cwd: Option<&Path>) -> Chosen {
    match session {
        Some(name) if std::env::var("WIRE_SESSION").ok().as_deref() == Some(name.as_str()) => {
            return Chosen::by(name, "WIRE_SESSION");
        }
        Some(name) => return Chosen::by(name, "--session"),
        None => {}
    }
    let Some(home) = home else {
        return Chosen::by("default", "default");
    };
    if let Some(name) = home.pinned_session() {
        return Chosen::by(name, "WIRE_HOME");
    }
    let bindings = match home.bindings() {
        Ok(b) => b,
        Err(e) => {
            let mut c = Chosen::by("default", "default");
            c.warning = Some(format!(
                "{e}. Until then directory bindings are ignored and the default session is used"
            ));
            return c;
        }
    };
    let bound = cwd
        .and_then(|d| std::fs::canonicalize(d).ok())
        .map(|dir| (dir, bindings))
        .and_then(|(dir, b)| {
            dir.ancestors().find_map(|a| {
                let key = a.to_str()?;
                let name = b.bindings.get(key)?;
                home.has_session(name)
                    .then(|| (key.to_owned(), name.clone()))
            })
        });
    match bound {
        Some((dir, name)) => Chosen {
            name,
            rule: "binding".into(),
            binding: Some(dir),
            warning: None,
        },
        None => Chosen::by("default", "default"),
    }
}

impl Ctx {
    pub fn home(&self) -> anyhow::Result<Home> {
        Ok(self.agent.home().clone())
    }

    pub fn chosen(&self) -> Chosen {
        self.chosen.clone()
    }

    /// The chosen session, opened by (and shared with) the agent.
    pub fn open(&self) -> anyhow::Result<(Arc<Live>, Chosen)> {
        let live = self.agent.session(&self.chosen.name)?;
        Ok((live, self.chosen.clone()))
    }
}

/// A peer as commands show it in JSON: never the capability it gave us.
#[derive(Debug, Serialize)]
pub struct PeerJson {
    pub nickname: String,
    pub emoji: String,
    pub tag: String,
    pub handle: String,
    pub did: String,
    pub key: String,
    pub state: PeerState,
    pub since_ms: u64,
    pub endpoints: Vec<String>,
}

impl PeerJson {
    pub fn of(p: &Peer) -> PeerJson {
        PeerJson {
            nickname: p.character.nickname.clone(),
            emoji: p.character.emoji.clone(),
            tag: p.character.tag.clone(),
            handle: p.handle.clone(),
            did: p.did.clone(),
            key: p.key.to_hex(),
            state: p.state,
            since_ms: p.since_ms,
            endpoints: p
                .endpoint
                .iter()
                .flat_map(|e| e.endpoints.iter().map(|x| x.relay.clone()))
                .collect(),
        }
    }
}

/// A pending request as commands show it in JSON.
#[derive(Debug, Serialize)]
pub struct PendingJson {
    pub nickname: String,
    pub emoji: String,
    pub tag: String,
    pub handle: String,
    pub did: String,
    pub key: String,
    pub received_ms: u64,
}

impl PendingJson {
    pub fn of(p: &Pending) -> PendingJson {
        PendingJson {
            nickname: p.character.nickname.clone(),
            emoji: p.character.emoji.clone(),
            tag: p.character.tag.clone(),
            handle: p.handle.clone(),
            did: p.did.clone(),
            key: p.key.to_hex(),
            received_ms: p.received_ms,
        }
    }
}

/// Peer-supplied text made safe for a terminal: control characters (escape sequences that
/// could rewrite the screen) are shown as `\u{..}`, newlines kept.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' || c == '\t' || !c.is_control() {
            out.push(c);
        } else {
            out.push_str(&c.escape_unicode().to_string());
        }
    }
    out
}

/// The identity as every command shows it in JSON.
#[derive(Debug, Serialize)]
pub struct IdentityJson<'a> {
    pub nickname: &'a str,
    pub emoji: &'a str,
    pub tag: &'a str,
    pub colour: u8,
    pub accent: u8,
    pub handle: &'a str,
    pub did: &'a str,
    pub key: String,
    pub x25519: String,
    pub renamed: bool,
    pub created_ms: u64,
    /// Handles relay directories hold for us (`nick@domain`).
    pub claimed: Vec<String>,
    /// Relays we receive at, newest first.
    pub relays: Vec<String>,
}

impl<'a> IdentityJson<'a> {
    pub fn of(id: &'a Identity) -> Self {
        IdentityJson {
            nickname: &id.character.nickname,
            emoji: &id.character.emoji,
            tag: &id.character.tag,
            colour: id.character.colour,
            accent: id.character.accent,
            handle: &id.handle,
            did: &id.did,
            key: id.key.to_hex(),
            x25519: id.x25519.to_hex(),
            renamed: id.renamed,
            created_ms: id.created_ms,
            claimed: id.claimed.clone(),
            relays: id.slots.iter().rev().map(|s| s.relay.clone()).collect(),
        }
    }
}
