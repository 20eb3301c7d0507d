//! The subcommands, one module each, and what they share: the context and session resolution.

pub mod bench;
pub mod here;
pub mod identity;
pub mod init;
pub mod relay;
pub mod relay_bench;
pub mod verify;
pub mod whoami;

use serde::Serialize;
use wire_engine::{Home, Identity, Session, SystemClock};

use crate::output::Out;

/// What every command gets.
#[derive(Debug)]
pub struct Ctx {
    pub session: Option<String>,
    pub out: Out,
}

/// The session a command acts on, and the rule that chose it.
#[derive(Debug, Clone, Serialize)]
pub struct Chosen {
    pub name: String,
    /// `--session`, `WIRE_SESSION` or `default`.
    pub rule: &'static str,
}

impl Ctx {
    pub fn home(&self) -> anyhow::Result<Home> {
        Ok(Home::from_env()?)
    }

    /// Resolution order: `--session` / `WIRE_SESSION` (clap reads both), then `default`.
    pub fn chosen(&self) -> Chosen {
        match &self.session {
            Some(name) if std::env::var("WIRE_SESSION").ok().as_deref() == Some(name.as_str()) => {
                Chosen {
                    name: name.clone(),
                    rule: "WIRE_SESSION",
                }
            }
            Some(name) => Chosen {
                name: name.clone(),
                rule: "--session",
            },
            None => Chosen {
                name: "default".into(),
                rule: "default",
            },
        }
    }

    pub fn open(&self) -> anyhow::Result<(Session, Chosen)> {
        let chosen = self.chosen();
        let session = Session::open(&self.home()?, &chosen.name, Box::new(SystemClock))?;
        Ok((session, chosen))
    }
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
        }
    }
}
