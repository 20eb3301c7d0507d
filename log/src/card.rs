//! The signed agent card: what a handle on a relay stands for.
//!
//! A card binds a full handle (`nick@relay-domain`) to an Ed25519 identity and the X25519 key that
//! identity receives sealed events on. The relay checks the signature before it lets a claim
//! stand, and every resolver checks it again, so a relay cannot swap keys behind a handle.
//!
//! JSON form (what relays store and serve), normative in `docs/PROTOCOL.md`:
//!
//! ```text
//! {"v":1,"did":"did:key:z6Mk…","handle":"alice@relay.example","x25519":"<64 hex>","issued_ms":N,"sig":"<128 hex>"}
//! signing input = canonical CBOR [1, ed25519: bstr32, handle: text, x25519: bstr32, issued_ms: uint]
//! digest        = BLAKE3-derive-key("wire 2026-11-25 agent card v1", signing input)
//! sig           = Ed25519(identity, digest)
//! ```

use ciborium::Value;
use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::event::{verify_digest, verifying_key};
use crate::identity::{Did, check_handle};
use crate::keyfile::SecretKey;
use crate::types::{AuthorKey, Signature};

/// Derive-key context for card digests. Fixed forever for card version 1.
const CARD_CONTEXT: &str = "wire 2026-11-25 agent card v1";

/// The only card version this build writes or reads.
pub const CARD_VERSION: u64 = 1;

/// Largest JSON card a relay accepts.
pub const CARD_JSON_BYTES_MAX: usize = 4096;

/// Longest relay domain part of a handle.
pub const DOMAIN_LEN_MAX: usize = 253;

/// A card as it travels (JSON). Decoding it proves nothing; [`SignedCard::verify`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCard {
    pub v: u64,
    pub did: String,
    pub handle: String,
    pub x25519: String,
    pub issued_ms: u64,
    pub sig: String,
}

/// A card whose signature and fields have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCard {
    pub key: AuthorKey,
    pub did: Did,
    pub nick: String,
    pub domain: String,
    pub x25519: [u8; 32],
    pub issued_ms: u64,
    pub signed: SignedCard,
}

/// Why a card was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("card is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("card is larger than {CARD_JSON_BYTES_MAX} bytes")]
    TooLarge,
    #[error("card version {0} is not supported (this build reads version {CARD_VERSION})")]
    Version(u64),
    #[error("card did is not an Ed25519 did:key")]
    Did,
    #[error("card key is weak or not a valid Ed25519 point")]
    Key,
    #[error("card handle must be nick@domain: {0}")]
    Handle(String),
    #[error("card x25519 is not 64 hex characters")]
    X25519,
    #[error("card sig is not 128 hex characters")]
    SigShape,
    #[error("card signature does not verify against its did")]
    BadSignature,
}

/// Splits `nick@domain` and checks both parts.
pub fn split_handle(handle: &str) -> Result<(&str, &str), CardError> {
    let (nick, domain) = handle
        .split_once('@')
        .ok_or_else(|| CardError::Handle("missing '@'".into()))?;
    check_handle(nick).map_err(CardError::Handle)?;
    check_domain(domain).map_err(CardError::Handle)?;
    Ok((nick, domain))
}

/// A relay domain: a host name or address, optionally with a port (`127.0.0.1:8771`).
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() || domain.len() > DOMAIN_LEN_MAX {
        return Err(format!(
            "a relay domain has 1 to {DOMAIN_LEN_MAX} characters"
        ));
    }
    if !domain
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err("a relay domain uses only letters, digits, '.', '-', ':', '[' and ']'".into());
    }
    Ok(())
}

fn digest(key: &AuthorKey, handle: &str, x25519: &[u8; 32], issued_ms: u64) -> [u8; 32] {
    let input = cbor::encode(&Value::Array(vec![
        cbor::uint(CARD_VERSION),
        cbor::bytes(&key.0),
        cbor::text(handle),
        cbor::bytes(x25519),
        cbor::uint(issued_ms),
    ]));
    blake3::derive_key(CARD_CONTEXT, &input)
}

impl SignedCard {
    /// Signs a card for `handle` (`nick@domain`) with `key`.
    pub fn sign(key: &SecretKey, handle: &str, issued_ms: u64) -> Result<SignedCard, CardError> {
        split_handle(handle)?;
        let author = key.author();
        let x25519 = key.x25519_public();
        let sig = key.sign_digest(&digest(&author, handle, &x25519, issued_ms));
        Ok(SignedCard {
            v: CARD_VERSION,
            did: Did::from_key(&author).to_string(),
            handle: handle.to_owned(),
            x25519: hex::encode(x25519),
            issued_ms,
            sig: sig.to_hex(),
        })
    }

    /// Parses the JSON form, refusing unknown fields and anything over the size cap.
    pub fn from_json(bytes: &[u8]) -> Result<SignedCard, CardError> {
        if bytes.len() > CARD_JSON_BYTES_MAX {
            return Err(CardError::TooLarge);
        }
        serde_json::from_slice(bytes).map_err(|e| CardError::Json(e.to_string()))
    }

    /// Checks every field and the signature.
    pub fn verify(&self) -> Result<VerifiedCard, CardError> {
        if self.v != CARD_VERSION {
            return Err(CardError::Version(self.v));
        }
        let (did, key) = Did::parse(&self.did).ok_or(CardError::Did)?;
        verifying_key(&key).map_err(|_| CardError::Key)?;
        let (nick, domain) = split_handle(&self.handle)?;
        let x25519: [u8; 32] = hex_array(&self.x25519).ok_or(CardError::X25519)?;
        let sig = Signature(hex_array(&self.sig).ok_or(CardError::SigShape)?);
        if !verify_digest(
            &key,
            &digest(&key, &self.handle, &x25519, self.issued_ms),
            &sig,
        ) {
            return Err(CardError::BadSignature);
        }
        Ok(VerifiedCard {
            key,
            did,
            nick: nick.to_owned(),
            domain: domain.to_owned(),
            x25519,
            issued_ms: self.issued_ms,
            signed: self.clone(),
        })
    }
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Lower-case only, so one card has one spelling.
    if s.len() != 2 * N || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let bytes = hex::decode(s).ok()?;
    <[u8; N]>::try_from(bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    #[test]
    fn a_signed_card_verifies_and_round_trips_through_json() {
        let card =
            SignedCard::sign(&key(1), "alice@127.0.0.1:8771", 1_764_000_000_000).expect("sign");
        let json = serde_json::to_vec(&card).expect("json");
        let back = SignedCard::from_json(&json).expect("parse");
        let verified = back.verify().expect("verify");
        assert_eq!(verified.nick, "alice");
        assert_eq!(verified.domain, "127.0.0.1:8771");
        assert_eq!(verified.key, key(1).author());
        assert_eq!(verified.x25519, key(1).x25519_public());
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let card = SignedCard::sign(&key(1), "alice@relay.example", 5).expect("sign");
        let mut other = card.clone();
        other.handle = "alicf@relay.example".into();
        assert_eq!(other.verify(), Err(CardError::BadSignature));
        let mut other = card.clone();
        other.issued_ms = 6;
        assert_eq!(other.verify(), Err(CardError::BadSignature));
        let mut other = card.clone();
        other.x25519 = hex::encode(key(2).x25519_public());
        assert_eq!(other.verify(), Err(CardError::BadSignature));
        let mut other = card.clone();
        other.did = Did::from_key(&key(2).author()).to_string();
        assert_eq!(other.verify(), Err(CardError::BadSignature));
        let mut other = card;
        other.sig = other.sig.to_uppercase();
        assert_eq!(other.verify(), Err(CardError::SigShape));
    }

    #[test]
    fn malformed_cards_are_refused_with_a_reason() {
        assert!(matches!(
            SignedCard::from_json(b"{}"),
            Err(CardError::Json(_))
        ));
        assert!(matches!(
            SignedCard::from_json(
                br#"{"v":1,"did":"x","handle":"a@b","x25519":"","issued_ms":1,"sig":"","extra":1}"#
            ),
            Err(CardError::Json(_))
        ));
        assert_eq!(
            SignedCard::from_json(&vec![b' '; CARD_JSON_BYTES_MAX + 1]),
            Err(CardError::TooLarge)
        );
        assert!(SignedCard::sign(&key(1), "alice", 1).is_err());
        assert!(SignedCard::sign(&key(1), "Alice@relay", 1).is_err());
        assert!(SignedCard::sign(&key(1), "alice@re lay", 1).is_err());
    }
}
