//! The invite: a signed `wire://pair?…` URL that carries what a recipient needs to reach and
//! verify its issuer without trusting a directory, and nothing that reads the issuer's mailbox.
//!
//! Wire form, normative in `docs/PROTOCOL.md` §24:
//!
//! ```text
//! invite = [1, from: bstr32, card: text (the issuer's signed agent card, JSON),
//!           relay: text (where intros for the card's handle are posted),
//!           nonce: bstr16, expires_ms: uint, uses: uint]
//! digest = BLAKE3-derive-key("wire 2026-12-01 invite v1", invite)
//! signed = [invite: bstr, sig: bstr64]                 canonical CBOR at both levels
//! url    = "wire://pair?v=1&i=" ‖ base64url-nopad(signed)
//! ```
//!
//! Decoding checks the shape, then the signature against `from`, then that `from` is the key
//! of the card inside. Whether the invite is still unexpired and has uses left is the issuer's
//! to decide (its own log counts the uses); a recipient checks the expiry only to fail early.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value;

use crate::body::check_relay_url;
use crate::card::{CardError, SignedCard, VerifiedCard};
use crate::cbor::{self, CborError, FieldError, Fields};
use crate::event::{verify_digest, verifying_key};
use crate::keyfile::SecretKey;
use crate::types::{AuthorKey, Signature};

const INVITE_CONTEXT: &str = "wire 2026-12-01 invite v1";

/// The only invite version this build writes or reads.
pub const INVITE_VERSION: u64 = 1;

/// What every invite URL starts with.
pub const INVITE_URL_PREFIX: &str = "wire://pair?v=1&i=";

/// Largest signed invite (the card is at most 4 KiB).
pub const INVITE_BYTES_MAX: usize = 6 * 1024;

/// Largest invite URL: the base64url of the largest invite and the prefix.
pub const INVITE_URL_BYTES_MAX: usize = INVITE_URL_PREFIX.len() + INVITE_BYTES_MAX.div_ceil(3) * 4;

/// Most uses one invite may grant.
pub const INVITE_USES_MAX: u64 = 100;

/// The random id of an invite, named by the pair requests that redeem it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InviteNonce(pub [u8; 16]);

impl InviteNonce {
    /// A fresh nonce from the operating system's random source.
    pub fn generate() -> InviteNonce {
        let mut n = [0u8; 16];
        rand::fill(&mut n[..]);
        InviteNonce(n)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for InviteNonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InviteNonce({})", self.to_hex())
    }
}

/// Why an invite was refused. Each message says what the recipient should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error(
        "this is not a wire invite URL (it must start with {INVITE_URL_PREFIX}); copy the whole URL again"
    )]
    NotAnInvite,
    #[error("the invite URL is longer than {INVITE_URL_BYTES_MAX} bytes; copy it again")]
    TooLong,
    #[error(
        "the invite URL is damaged (not base64url); it was changed or cut in transit, ask for it again"
    )]
    Base64,
    #[error(
        "the invite is damaged or was tampered with ({0}); ask its issuer for a new one (`wire invite`)"
    )]
    Malformed(String),
    #[error("invite version {0} is not supported (this build reads version {INVITE_VERSION})")]
    Version(u64),
    #[error(
        "the invite's signature does not verify: it was changed after it was signed; do not use it, ask its issuer for a new one"
    )]
    BadSignature,
    #[error(
        "the invite is signed by {signer}, not by the key of the card it carries ({card}): someone other than {handle} made it; do not use it"
    )]
    ForeignSigner {
        signer: String,
        card: String,
        handle: String,
    },
    #[error("the invite's card does not verify ({0}); do not use it")]
    Card(#[from] CardError),
}

impl From<CborError> for InviteError {
    fn from(e: CborError) -> Self {
        InviteError::Malformed(e.to_string())
    }
}

impl From<FieldError> for InviteError {
    fn from(e: FieldError) -> Self {
        InviteError::Malformed(e.to_string())
    }
}

/// A checked invite: well-formed, signed by `card.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub card: VerifiedCard,
    /// Base URL of the relay that holds the card's handle (intros go there).
    pub relay: String,
    pub nonce: InviteNonce,
    pub expires_ms: u64,
    pub uses: u64,
    signed: Vec<u8>,
}

fn encode_unsigned(
    from: &AuthorKey,
    card_json: &str,
    relay: &str,
    nonce: &InviteNonce,
    expires_ms: u64,
    uses: u64,
) -> Vec<u8> {
    // Do not reorder or change: these are signed bytes.
    cbor::encode(&Value::Array(vec![
        cbor::uint(INVITE_VERSION),
        cbor::bytes(&from.0),
        cbor::text(card_json),
        cbor::text(relay),
        cbor::bytes(&nonce.0),
        cbor::uint(expires_ms),
        cbor::uint(uses),
    ]))
}

/// The digest an invite's signature covers.
pub fn invite_digest(unsigned: &[u8]) -> [u8; 32] {
    blake3::derive_key(INVITE_CONTEXT, unsigned)
}

impl Invite {
    /// Signs an invite for `card` (which must be `key`'s).
    pub fn sign(
        key: &SecretKey,
        card: &SignedCard,
        relay: &str,
        nonce: InviteNonce,
        expires_ms: u64,
        uses: u64,
    ) -> Result<Invite, InviteError> {
        let verified = card.verify()?;
        if verified.key != key.author() {
            return Err(InviteError::ForeignSigner {
                signer: key.author().to_hex(),
                card: verified.key.to_hex(),
                handle: verified.signed.handle,
            });
        }
        Self::sign_as(key, card, relay, nonce, expires_ms, uses)
    }

    /// Signs with `key` whatever card it is given: the card's owner check is the decoder's.
    /// Tests use it to make foreign-signed invites; [`Invite::sign`] is the honest path.
    pub fn sign_as(
        key: &SecretKey,
        card: &SignedCard,
        relay: &str,
        nonce: InviteNonce,
        expires_ms: u64,
        uses: u64,
    ) -> Result<Invite, InviteError> {
        let verified = card.verify()?;
        check_relay_url(relay).map_err(|e| InviteError::Malformed(e.to_string()))?;
        if uses == 0 || uses > INVITE_USES_MAX {
            return Err(InviteError::Malformed(format!(
                "uses must be 1 to {INVITE_USES_MAX}"
            )));
        }
        let card_json = serde_json::to_string(card).map_err(|e| CardError::Json(e.to_string()))?;
        let from = key.author();
        let unsigned = encode_unsigned(&from, &card_json, relay, &nonce, expires_ms, uses);
        let sig = key.sign_digest(&invite_digest(&unsigned));
        let signed = cbor::encode(&Value::Array(vec![
            cbor::bytes(&unsigned),
            cbor::bytes(&sig.0),
        ]));
        if signed.len() > INVITE_BYTES_MAX {
            return Err(InviteError::Malformed("the invite is too large".into()));
        }
        Ok(Invite {
            card: verified,
            relay: relay.to_owned(),
            nonce,
            expires_ms,
            uses,
            signed,
        })
    }

    /// The signed bytes.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// The `wire://pair?…` URL.
    pub fn to_url(&self) -> String {
        format!(
            "{INVITE_URL_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(&self.signed)
        )
    }

    /// Whether `s` looks like an invite URL (what `wire accept` dispatches on).
    pub fn looks_like_url(s: &str) -> bool {
        s.trim().starts_with("wire://")
    }

    /// Parses and checks an invite URL. Surrounding whitespace (a paste) is ignored.
    pub fn from_url(url: &str) -> Result<Invite, InviteError> {
        let url = url.trim();
        if url.len() > INVITE_URL_BYTES_MAX {
            return Err(InviteError::TooLong);
        }
        let b64 = url
            .strip_prefix(INVITE_URL_PREFIX)
            .ok_or(InviteError::NotAnInvite)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| InviteError::Base64)?;
        // One spelling only: base64 with stray bits in its last character decodes too.
        if URL_SAFE_NO_PAD.encode(&bytes) != b64 {
            return Err(InviteError::Base64);
        }
        Self::decode(&bytes)
    }

    /// Decodes and checks signed invite bytes: shape, signature, then the signer is the card's.
    pub fn decode(bytes: &[u8]) -> Result<Invite, InviteError> {
        let value = cbor::decode_canonical(bytes, INVITE_BYTES_MAX)?;
        let mut outer = Fields::new("invite", value, 2)?;
        let unsigned = outer.bytes("invite")?;
        let sig = outer.bytes("signature")?;
        let sig = Signature(
            <[u8; 64]>::try_from(sig.as_slice())
                .map_err(|_| InviteError::Malformed("the signature is not 64 bytes".into()))?,
        );
        let value = cbor::decode_canonical(&unsigned, INVITE_BYTES_MAX)?;
        let mut f = Fields::new("invite", value, 7)?;
        let version = f.uint("version")?;
        if version != INVITE_VERSION {
            return Err(InviteError::Version(version));
        }
        let from = AuthorKey(f.array32("from")?);
        let card_json = f.text("card")?;
        let relay = f.text("relay")?;
        let nonce = f.bytes("nonce")?;
        let expires_ms = f.uint("expires_ms")?;
        let uses = f.uint("uses")?;
        let nonce = InviteNonce(
            <[u8; 16]>::try_from(nonce.as_slice())
                .map_err(|_| InviteError::Malformed("the nonce is not 16 bytes".into()))?,
        );
        check_relay_url(&relay).map_err(|e| InviteError::Malformed(e.to_string()))?;
        if uses == 0 || uses > INVITE_USES_MAX {
            return Err(InviteError::Malformed(format!(
                "uses must be 1 to {INVITE_USES_MAX}"
            )));
        }
        verifying_key(&from).map_err(|_| InviteError::BadSignature)?;
        if !verify_digest(&from, &invite_digest(&unsigned), &sig) {
            return Err(InviteError::BadSignature);
        }
        let card = SignedCard::from_json(card_json.as_bytes())?.verify()?;
        if card.key != from {
            return Err(InviteError::ForeignSigner {
                signer: from.to_hex(),
                card: card.key.to_hex(),
                handle: card.signed.handle.clone(),
            });
        }
        Ok(Invite {
            card,
            relay,
            nonce,
            expires_ms,
            uses,
            signed: bytes.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(key: &SecretKey, signer: &SecretKey) -> Invite {
        let card = SignedCard::sign(key, "alice@127.0.0.1:8771", 5).expect("card");
        Invite::sign_as(
            signer,
            &card,
            "http://127.0.0.1:8771",
            InviteNonce([9; 16]),
            1_000,
            1,
        )
        .expect("sign")
    }

    #[test]
    fn an_invite_round_trips_through_its_url() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let inv = invite(&alice, &alice);
        let url = inv.to_url();
        assert!(url.len() <= INVITE_URL_BYTES_MAX);
        assert!(Invite::looks_like_url(&url));
        let back = Invite::from_url(&format!("  {url}\n")).expect("parse");
        assert_eq!(back, inv);
        assert_eq!(back.card.key, alice.author());
    }

    #[test]
    fn every_changed_byte_and_a_foreign_signer_are_refused() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let inv = invite(&alice, &alice);
        for i in 0..inv.signed_bytes().len() {
            let mut bytes = inv.signed_bytes().to_vec();
            bytes[i] ^= 0x01;
            assert!(Invite::decode(&bytes).is_err(), "flipping byte {i} passed");
        }
        let url = inv.to_url();
        for i in INVITE_URL_PREFIX.len()..url.len() {
            let mut b = url.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).expect("ascii");
            assert!(
                Invite::from_url(&changed).is_err(),
                "changing char {i} passed"
            );
        }
        let mallory = SecretKey::from_seed(&[4; 32]);
        assert!(matches!(
            Invite::decode(invite(&alice, &mallory).signed_bytes()),
            Err(InviteError::ForeignSigner { .. })
        ));
        assert_eq!(
            Invite::from_url("https://example.com/"),
            Err(InviteError::NotAnInvite)
        );
        assert_eq!(
            Invite::from_url("wire://pair?v=1&i=!!"),
            Err(InviteError::Base64)
        );
    }
}
