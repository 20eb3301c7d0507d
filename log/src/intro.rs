//! The intro envelope: how a stranger leaves one sealed pair request in a handle's intro queue.
//!
//! The relay must know who is asking (at most one pending request per stranger key) and for
//! whom, and must be able to refuse junk before it counts against anyone's budget; it must not
//! learn what is asked. So the envelope shows the sender key, the target handle and a time, is
//! signed by the sender, and carries the request itself sealed to the target.
//!
//! Wire form, normative in `docs/PROTOCOL.md`:
//!
//! ```text
//! intro  = [1, from: bstr32, to: text "nick@domain", ts_ms: uint, sealed: bstr (1..=8192)]
//! digest = BLAKE3-derive-key("wire 2026-11-25 intro v1", intro)
//! signed = [intro: bstr, sig: bstr64]          (canonical CBOR at both levels)
//! ```

use ciborium::Value;

use crate::card::{CardError, split_handle};
use crate::cbor::{self, CborError, FieldError, Fields};
use crate::event::{verify_digest, verifying_key};
use crate::keyfile::SecretKey;
use crate::types::{AuthorKey, Signature};

const INTRO_CONTEXT: &str = "wire 2026-11-25 intro v1";

/// The only intro version this build writes or reads.
pub const INTRO_VERSION: u64 = 1;

/// Largest sealed payload an intro may carry.
pub const INTRO_SEALED_MAX: usize = 8 * 1024;

/// Largest signed intro envelope.
pub const INTRO_BYTES_MAX: usize = INTRO_SEALED_MAX + 512;

/// A checked intro: well-formed and signed by `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intro {
    pub from: AuthorKey,
    /// The full target handle, `nick@domain`.
    pub to: String,
    pub ts_ms: u64,
    pub sealed: Vec<u8>,
    signed: Vec<u8>,
}

/// Why an intro was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntroError {
    #[error("intro is not canonical CBOR: {0}")]
    Cbor(#[from] CborError),
    #[error("intro is malformed: {0}")]
    Field(#[from] FieldError),
    #[error("intro version {0} is not supported (this build reads version {INTRO_VERSION})")]
    Version(u64),
    #[error("intro sender key is weak or not a valid Ed25519 point")]
    Key,
    #[error("intro target: {0}")]
    Target(#[from] CardError),
    #[error("intro sealed payload must be 1 to {INTRO_SEALED_MAX} bytes")]
    SealedSize,
    #[error("intro signature does not verify against its sender")]
    BadSignature,
}

fn encode_unsigned(from: &AuthorKey, to: &str, ts_ms: u64, sealed: &[u8]) -> Vec<u8> {
    cbor::encode(&Value::Array(vec![
        cbor::uint(INTRO_VERSION),
        cbor::bytes(&from.0),
        cbor::text(to),
        cbor::uint(ts_ms),
        cbor::bytes(sealed),
    ]))
}

impl Intro {
    /// Builds and signs an intro from `key` to `to` (`nick@domain`).
    pub fn sign(
        key: &SecretKey,
        to: &str,
        ts_ms: u64,
        sealed: Vec<u8>,
    ) -> Result<Intro, IntroError> {
        split_handle(to)?;
        if sealed.is_empty() || sealed.len() > INTRO_SEALED_MAX {
            return Err(IntroError::SealedSize);
        }
        let from = key.author();
        let unsigned = encode_unsigned(&from, to, ts_ms, &sealed);
        let sig = key.sign_digest(&blake3::derive_key(INTRO_CONTEXT, &unsigned));
        let signed = cbor::encode(&Value::Array(vec![
            cbor::bytes(&unsigned),
            cbor::bytes(&sig.0),
        ]));
        Ok(Intro {
            from,
            to: to.to_owned(),
            ts_ms,
            sealed,
            signed,
        })
    }

    /// Decodes and checks an envelope: shape, sizes, target handle and signature. Cheap checks
    /// come first; the signature is checked last.
    pub fn decode(bytes: &[u8]) -> Result<Intro, IntroError> {
        let value = cbor::decode_canonical(bytes, INTRO_BYTES_MAX)?;
        let mut outer = Fields::new("intro", value, 2)?;
        let unsigned = outer.bytes("intro")?;
        let sig = outer.bytes("signature")?;
        let sig = Signature(
            <[u8; 64]>::try_from(sig.as_slice()).map_err(|_| FieldError {
                what: "intro",
                problem: "field signature is not 64 bytes".into(),
            })?,
        );
        let value = cbor::decode_canonical(&unsigned, INTRO_BYTES_MAX)?;
        let mut f = Fields::new("intro", value, 5)?;
        let version = f.uint("version")?;
        if version != INTRO_VERSION {
            return Err(IntroError::Version(version));
        }
        let from = AuthorKey(f.array32("from")?);
        let to = f.text("to")?;
        let ts_ms = f.uint("ts_ms")?;
        let sealed = f.bytes("sealed")?;
        split_handle(&to)?;
        if sealed.is_empty() || sealed.len() > INTRO_SEALED_MAX {
            return Err(IntroError::SealedSize);
        }
        verifying_key(&from).map_err(|_| IntroError::Key)?;
        if !verify_digest(&from, &blake3::derive_key(INTRO_CONTEXT, &unsigned), &sig) {
            return Err(IntroError::BadSignature);
        }
        Ok(Intro {
            from,
            to,
            ts_ms,
            sealed,
            signed: bytes.to_vec(),
        })
    }

    /// The signed envelope, as sent and as stored.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intro_round_trips_and_every_byte_matters() {
        let key = SecretKey::from_seed(&[7; 32]);
        let intro = Intro::sign(&key, "bob@relay.example", 42, b"sealed".to_vec()).expect("sign");
        let back = Intro::decode(intro.signed_bytes()).expect("decode");
        assert_eq!(back, intro);
        for i in 0..intro.signed_bytes().len() {
            let mut bytes = intro.signed_bytes().to_vec();
            bytes[i] ^= 0x01;
            assert!(
                Intro::decode(&bytes).is_err(),
                "flipping byte {i} was accepted"
            );
        }
    }

    #[test]
    fn bad_targets_and_sizes_are_refused() {
        let key = SecretKey::from_seed(&[7; 32]);
        assert!(Intro::sign(&key, "bob", 1, vec![1]).is_err());
        assert_eq!(
            Intro::sign(&key, "bob@r", 1, vec![]),
            Err(IntroError::SealedSize)
        );
        assert_eq!(
            Intro::sign(&key, "bob@r", 1, vec![0; INTRO_SEALED_MAX + 1]),
            Err(IntroError::SealedSize)
        );
        assert!(Intro::decode(b"").is_err());
    }
}
