//! Slot ids, owner tokens and append capabilities, and the hashes the relay keeps of them.
//!
//! A token is 32 random bytes, shown as a typed prefix and unpadded base64url:
//! `wot1_…` for an owner token (reads, acknowledges and manages one slot) and `wac1_…` for an
//! append capability (appends to one slot, nothing else). The relay never stores a token, only
//! its BLAKE3 derive-key hash, with a different context per kind so that one kind can never be
//! presented as the other.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

const OWNER_PREFIX: &str = "wot1_";
const CAP_PREFIX: &str = "wac1_";
const OWNER_CONTEXT: &str = "wire 2026-11-25 relay owner token v1";
const CAP_CONTEXT: &str = "wire 2026-11-25 relay append capability v1";

/// A slot: 16 random bytes, 32 lower-case hex characters in paths.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SlotId(pub [u8; 16]);

impl SlotId {
    pub fn generate() -> SlotId {
        let mut b = [0u8; 16];
        rand::fill(&mut b[..]);
        SlotId(b)
    }

    /// Parses the path form; `None` unless exactly 32 lower-case hex characters.
    pub fn parse(s: &str) -> Option<SlotId> {
        parse_hex(s).map(SlotId)
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotId({self})")
    }
}

/// Names one capability of a slot, so that the owner can revoke it: 8 random bytes, 16 hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapId(pub [u8; 8]);

impl CapId {
    pub fn generate() -> CapId {
        let mut b = [0u8; 8];
        rand::fill(&mut b[..]);
        CapId(b)
    }

    pub fn parse(s: &str) -> Option<CapId> {
        parse_hex(s).map(CapId)
    }
}

impl fmt::Display for CapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapId({self})")
    }
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let v = hex::decode(s).ok()?;
    <[u8; N]>::try_from(v.as_slice()).ok()
}

/// The hash the relay keeps of a token or capability.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Equality in time independent of where the hashes differ.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// Which kind of secret a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Owner,
    Cap,
}

/// An owner token or an append capability, in memory only as long as a request needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    raw: [u8; 32],
}

impl Token {
    pub fn generate(kind: TokenKind) -> Token {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw[..]);
        Token { kind, raw }
    }

    /// Parses `wot1_…` or `wac1_…`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Token> {
        let (kind, rest) = if let Some(rest) = s.strip_prefix(OWNER_PREFIX) {
            (TokenKind::Owner, rest)
        } else if let Some(rest) = s.strip_prefix(CAP_PREFIX) {
            (TokenKind::Cap, rest)
        } else {
            return None;
        };
        if rest.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(rest).ok()?;
        let raw = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
        // One spelling per token: refuse encodings with non-zero trailing bits.
        if URL_SAFE_NO_PAD.encode(raw) != rest {
            return None;
        }
        Some(Token { kind, raw })
    }

    pub fn hash(&self) -> TokenHash {
        let context = match self.kind {
            TokenKind::Owner => OWNER_CONTEXT,
            TokenKind::Cap => CAP_CONTEXT,
        };
        TokenHash(blake3::derive_key(context, &self.raw))
    }

    /// The secret string to hand to its holder, once.
    pub fn reveal(&self) -> String {
        let prefix = match self.kind {
            TokenKind::Owner => OWNER_PREFIX,
            TokenKind::Cap => CAP_PREFIX,
        };
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(self.raw))
    }
}

/// `text` with every token-shaped run (`wot1_…` or `wac1_…`, any case, with the base64url
/// characters that follow) cut down to its prefix and an ellipsis. Every error the relay sends
/// passes through this, so that a request which put a secret where it does not belong (a query
/// key, a JSON field name, a header) never gets it back in a body a client or proxy may log.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let starts_token = |i: usize| {
        [OWNER_PREFIX, CAP_PREFIX].iter().any(|p| {
            bytes
                .get(i..i + p.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(p.as_bytes()))
        })
    };
    let Some(first) = (0..bytes.len()).find(|&i| starts_token(i)) else {
        return std::borrow::Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    let mut i = first;
    out.push_str(&text[..first]);
    while i < bytes.len() {
        if starts_token(i) {
            let prefix_len = OWNER_PREFIX.len();
            out.push_str(&text[i..i + prefix_len]);
            out.push('…');
            i += prefix_len;
            while bytes
                .get(i)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            {
                i += 1;
            }
        } else {
            // Token prefixes are ASCII, so a char boundary is never inside one.
            let ch = text[i..]
                .chars()
                .next()
                .expect("i is a char boundary below len");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    std::borrow::Cow::Owned(out)
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:?}, <secret>)", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_cuts_every_token_to_its_prefix() {
        let owner = Token::generate(TokenKind::Owner).reveal();
        let cap = Token::generate(TokenKind::Cap).reveal();
        let text = format!("not {owner:?} nor x{cap}y, WOT1_abc-_9 é wac1");
        let out = redact(&text);
        assert!(
            !out.contains(&owner[5..]) && !out.contains(&cap[5..]),
            "{out}"
        );
        assert_eq!(out, "not \"wot1_…\" nor xwac1_…, WOT1_… é wac1");
        assert!(matches!(
            redact("nothing secret here"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(redact("wot1_"), "wot1_…");
    }

    #[test]
    fn tokens_round_trip_and_kinds_hash_apart() {
        let t = Token::generate(TokenKind::Cap);
        let s = t.reveal();
        assert!(s.starts_with("wac1_"));
        assert_eq!(Token::parse(&s), Some(t.clone()));
        let as_owner = Token::parse(&s.replacen("wac1_", "wot1_", 1)).expect("parse");
        assert_ne!(as_owner.hash(), t.hash());
        assert!(!format!("{t:?}").contains(&s[5..]));
    }

    #[test]
    fn malformed_tokens_and_ids_are_refused() {
        for bad in [
            "",
            "wac1_",
            "wac2_AAAA",
            "wac1_!!!",
            "wot1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
        assert!(Token::parse(&format!("wot1_{}", "A".repeat(43))).is_some());
        assert_eq!(
            SlotId::parse("00112233445566778899aabbccddeeff").map(|s| s.0[15]),
            Some(0xff)
        );
        assert_eq!(SlotId::parse("00112233445566778899AABBCCDDEEFF"), None);
        assert_eq!(SlotId::parse("0011"), None);
        assert_eq!(CapId::parse("0011223344556677").map(|c| c.0[7]), Some(0x77));
    }
}
