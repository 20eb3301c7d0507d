//! Who an agent is: its DID (`did:key` for Ed25519) and its Character, the friendly face derived
//! from the DID (emoji, adjective-noun nickname, two colours of the 256-colour palette).

mod words;

use std::fmt;

pub use words::{ADJECTIVES, EMOJI, NOUNS};

use crate::types::AuthorKey;

/// Multicodec prefix of an Ed25519 public key (0xed, varint-encoded).
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// Derive-key context for the Character. Fixed forever for Character version 1.
const CHARACTER_CONTEXT: &str = "wire 2026-11-25 character v1";

/// A `did:key` identifier for an Ed25519 public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did(String);

impl Did {
    /// `did:key:z` + base58btc(multicodec ed25519-pub ‖ key), as the did:key method specifies.
    pub fn from_key(key: &AuthorKey) -> Did {
        let mut bytes = Vec::with_capacity(34);
        bytes.extend_from_slice(&ED25519_MULTICODEC);
        bytes.extend_from_slice(&key.0);
        Did(format!("did:key:z{}", bs58::encode(bytes).into_string()))
    }

    /// Parses a `did:key` for an Ed25519 key back into the key.
    pub fn parse(s: &str) -> Option<(Did, AuthorKey)> {
        let encoded = s.strip_prefix("did:key:z")?;
        let bytes = bs58::decode(encoded).into_vec().ok()?;
        let key = bytes.strip_prefix(&ED25519_MULTICODEC[..])?;
        let key = AuthorKey(<[u8; 32]>::try_from(key).ok()?);
        let did = Did::from_key(&key);
        // Refuse alternative spellings (leading zeros and the like): one key, one DID string.
        (did.0 == s).then_some((did, key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({})", self.0)
    }
}

/// The face of an agent. Derived deterministically from its DID; the nickname and emoji may be
/// overridden locally by a rename, the colours never are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Character {
    pub emoji: String,
    /// ASCII stand-in for the emoji where emoji can't render: `bear` shows as `[bear]`.
    pub tag: String,
    pub nickname: String,
    /// Primary colour, an index into the xterm 256-colour palette.
    pub colour: u8,
    /// Accent colour, an index into the xterm 256-colour palette.
    pub accent: u8,
}

impl Character {
    /// The Character every wire implementation derives from this DID.
    pub fn of(did: &Did) -> Character {
        let h = blake3::derive_key(CHARACTER_CONTEXT, did.as_str().as_bytes());
        // The word lists have exactly 256 entries, so a byte picks one without bias.
        let adjective = ADJECTIVES[usize::from(h[0])];
        let noun = NOUNS[usize::from(h[1])];
        let (emoji, tag) = EMOJI[usize::from(h[2] & 0x7f)];
        let palette = readable_palette();
        let pick =
            |hi: u8, lo: u8| palette[usize::from(u16::from_be_bytes([hi, lo])) % palette.len()];
        Character {
            emoji: emoji.to_owned(),
            tag: tag.to_owned(),
            nickname: format!("{adjective}-{noun}"),
            colour: pick(h[3], h[4]),
            accent: pick(h[5], h[6]),
        }
    }

    /// Applies a local rename: a new nickname, a new emoji, or both. The tag follows the emoji
    /// when it is one of ours, and is `*` otherwise.
    pub fn renamed(mut self, nickname: Option<&str>, emoji: Option<&str>) -> Character {
        if let Some(nickname) = nickname {
            self.nickname = nickname.to_owned();
        }
        if let Some(emoji) = emoji {
            self.emoji = emoji.to_owned();
            self.tag = tag_for(emoji).unwrap_or("*").to_owned();
        }
        self
    }

    /// `🐅 winter-bay`, or `[tiger] winter-bay` where emoji can't render.
    pub fn label(&self, emoji: bool) -> String {
        if emoji {
            format!("{} {}", self.emoji, self.nickname)
        } else {
            format!("[{}] {}", self.tag, self.nickname)
        }
    }
}

/// The ASCII tag of one of our emoji.
pub fn tag_for(emoji: &str) -> Option<&'static str> {
    EMOJI.iter().find(|(e, _)| *e == emoji).map(|(_, t)| *t)
}

/// Colours of the 6×6×6 cube (16–231) that read on both dark and light terminals: neither grey
/// nor too dark nor too pale. 174 entries; fixed by Character version 1.
fn readable_palette() -> Vec<u8> {
    (16u8..=231)
        .filter(|&c| {
            let i = c - 16;
            let (r, g, b) = (i / 36, (i / 6) % 6, i % 6);
            let sum = r + g + b;
            !(r == g && g == b) && (4..=11).contains(&sum)
        })
        .collect()
}

/// A handle's local part, as in `alice` of `alice@relay.example`.
pub fn check_handle(nick: &str) -> Result<(), String> {
    if nick.is_empty() || nick.len() > 32 {
        return Err("a handle has 1 to 32 characters".into());
    }
    if !nick
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err("a handle uses only a-z, 0-9, '-' and '_'".into());
    }
    if nick.starts_with(['-', '_']) || nick.ends_with(['-', '_']) {
        return Err("a handle starts and ends with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_key_round_trips_and_matches_the_spec_example() {
        // From the did:key specification: the Ed25519 test key
        // did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp.
        let (did, key) =
            Did::parse("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp").expect("parse");
        assert_eq!(Did::from_key(&key), did);
        assert!(did.as_str().starts_with("did:key:z6Mk"));
        assert_eq!(Did::parse("did:key:z6Mk"), None);
        assert_eq!(Did::parse("did:web:example.com"), None);
    }

    #[test]
    fn palette_is_fixed_and_character_is_deterministic() {
        assert_eq!(readable_palette().len(), 174);
        let did = Did::from_key(&AuthorKey([3; 32]));
        assert_eq!(Character::of(&did), Character::of(&did));
        let c = Character::of(&did);
        assert_eq!(c.label(false), format!("[{}] {}", c.tag, c.nickname));
    }

    #[test]
    fn rename_keeps_colours() {
        let c = Character::of(&Did::from_key(&AuthorKey([4; 32])));
        let r = c.clone().renamed(Some("foxtrot-meadow"), Some("🦊"));
        assert_eq!((r.colour, r.accent), (c.colour, c.accent));
        assert_eq!(r.nickname, "foxtrot-meadow");
        assert_eq!(r.emoji, "🦊");
    }

    #[test]
    fn handles() {
        assert!(check_handle("alice").is_ok());
        assert!(check_handle("a-1_b").is_ok());
        for bad in ["", "Alice", "-a", "a b", "al/ice", &"a".repeat(33)] {
            assert!(check_handle(bad).is_err(), "{bad:?}");
        }
    }
}
