//! Sealing: HPKE (RFC 9180) base mode to a recipient's X25519 key, with the suite
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
//!
//! Wire form, normative in `docs/PROTOCOL.md` §19:
//!
//! ```text
//! sealed = 0x01 ‖ enc (32 bytes) ‖ ciphertext (plaintext length + 16)
//! info   = the purpose's context string; aad = empty
//! ```
//!
//! A sealed box says nothing about its sender: who wrote it is proven by the signatures inside.
//! The `info` string separates purposes, so a sealed pair request can never be opened as a
//! segment or the other way round.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};

use crate::keyfile::SecretKey;

/// The first byte of every sealed box this build writes or reads.
pub const SEAL_VERSION: u8 = 1;

/// Bytes a seal adds to its plaintext: version, encapsulated key, tag.
pub const SEAL_OVERHEAD: usize = 1 + 32 + 16;

/// What a sealed box is for; each purpose has its own HPKE `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A segment of a pair log (`crate::segment`).
    Segment,
    /// A pair request inside an intro envelope (`crate::pair`).
    PairRequest,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Segment => b"wire 2026-11-25 sealed segment v1",
            Purpose::PairRequest => b"wire 2026-11-25 sealed pair request v1",
        }
    }
}

/// Why a box could not be sealed or opened. Opening failures are deliberately not more
/// specific: a wrong key, a wrong purpose and a flipped bit look the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed box is {0} bytes; the smallest possible is {SEAL_OVERHEAD}")]
    TooShort(usize),
    #[error("sealed box version {0} is not supported (this build reads version {SEAL_VERSION})")]
    Version(u8),
    #[error("the recipient's X25519 key is not usable")]
    RecipientKey,
    #[error("sealed box does not open with this key: it is damaged or addressed to someone else")]
    Open,
}

/// Seals `plaintext` to the X25519 public key `recipient`, with fresh randomness from the OS.
pub fn seal(
    recipient: &[u8; 32],
    purpose: Purpose,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let pk = public_key(recipient)?;
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        purpose.info(),
        plaintext,
        b"",
    )
    .map_err(|_| SealError::RecipientKey)?;
    Ok(frame(&enc.to_bytes(), &ct))
}

fn public_key(
    recipient: &[u8; 32],
) -> Result<<X25519HkdfSha256 as hpke::Kem>::PublicKey, SealError> {
    <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(recipient)
        .map_err(|_| SealError::RecipientKey)
}

fn frame(enc: &[u8], ct: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + enc.len() + ct.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(enc);
    out.extend_from_slice(ct);
    out
}

/// Seals with a caller's randomness: only for golden vectors and tests.
#[doc(hidden)]
pub fn seal_with_rng(
    recipient: &[u8; 32],
    purpose: Purpose,
    plaintext: &[u8],
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<Vec<u8>, SealError> {
    let pk = public_key(recipient)?;
    let (enc, ct) =
        hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeS::Base,
            &pk,
            purpose.info(),
            plaintext,
            b"",
            rng,
        )
        .map_err(|_| SealError::RecipientKey)?;
    Ok(frame(&enc.to_bytes(), &ct))
}

/// Opens a box sealed to `key`'s X25519 key for `purpose`.
pub fn open(key: &SecretKey, purpose: Purpose, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::TooShort(sealed.len()));
    }
    if sealed[0] != SEAL_VERSION {
        return Err(SealError::Version(sealed[0]));
    }
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&sealed[1..33])
        .map_err(|_| SealError::Open)?;
    let secret = zeroize::Zeroizing::new(key.x25519_secret().to_bytes());
    let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&secret[..])
        .map_err(|_| SealError::Open)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        purpose.info(),
        &sealed[33..],
        b"",
    )
    .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_opens_only_for_its_recipient_and_purpose() {
        let bob = SecretKey::from_seed(&[2; 32]);
        let carol = SecretKey::from_seed(&[3; 32]);
        let sealed = seal(&bob.x25519_public(), Purpose::Segment, b"hello").expect("seal");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(
            open(&bob, Purpose::Segment, &sealed).expect("open"),
            b"hello"
        );
        assert_eq!(
            open(&carol, Purpose::Segment, &sealed),
            Err(SealError::Open)
        );
        assert_eq!(
            open(&bob, Purpose::PairRequest, &sealed),
            Err(SealError::Open)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(open(&bob, Purpose::Segment, &bad).is_err(), "byte {i}");
        }
        assert_eq!(
            open(&bob, Purpose::Segment, &sealed[..10]),
            Err(SealError::TooShort(10))
        );
    }
}
