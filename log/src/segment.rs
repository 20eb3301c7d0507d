//! A segment: consecutive events of one pair log, travelling together from one side to the
//! other, signed by the sender as a whole and then sealed to the recipient.
//!
//! Wire form, normative in `docs/PROTOCOL.md` §20:
//!
//! ```text
//! segment = [1, from: bstr32, to: bstr32, log: bstr32, have: uint, sent_ms: uint,
//!            events: [* bstr]]                       (0..=4096 signed events)
//! digest  = BLAKE3-derive-key("wire 2026-11-25 segment v1", segment)
//! signed  = [segment: bstr, sig: bstr64]             sealed with Purpose::Segment
//! ```
//!
//! `have` is the sender's half of the two-entry version vector: it holds the recipient's chain
//! in `log` up to that seq. A segment with no events is an acknowledgement (or a request to
//! resend after a gap). The signature covers `have`, so nobody but the sender can move it.

use ciborium::Value;

use crate::cbor::{self, CborError, FieldError, Fields};
use crate::event::{SIGNED_EVENT_BYTES_MAX, verify_digest, verifying_key};
use crate::keyfile::SecretKey;
use crate::line::{LINE_BOX_OVERHEAD, LineKeys};
use crate::seal::{self, Purpose, SEAL_OVERHEAD, SealError};
use crate::types::{AuthorKey, LogId, Signature};

const SEGMENT_CONTEXT: &str = "wire 2026-11-25 segment v1";

/// The only segment version this build writes or reads.
pub const SEGMENT_VERSION: u64 = 1;

/// Most events in one segment.
pub const SEGMENT_EVENTS_MAX: usize = 4096;

/// Largest sealed segment: the relay's default blob cap.
pub const SEALED_SEGMENT_BYTES_MAX: usize = 1024 * 1024;

/// Largest signed segment before sealing.
pub const SEGMENT_BYTES_MAX: usize = SEALED_SEGMENT_BYTES_MAX - SEAL_OVERHEAD;

/// Bytes a segment spends around its events (envelope, header, signature, per-event framing
/// is 5 bytes at most and is added per event by [`segment_cost`]).
pub const SEGMENT_FIXED_COST: usize = 256;

/// Bytes one event adds to a segment.
pub const fn segment_cost(event_len: usize) -> usize {
    event_len + 5
}

/// Why a segment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("segment is not canonical CBOR: {0}")]
    Cbor(#[from] CborError),
    #[error("segment is malformed: {0}")]
    Field(#[from] FieldError),
    #[error("segment version {0} is not supported (this build reads version {SEGMENT_VERSION})")]
    Version(u64),
    #[error("segment sender key is weak or not a valid Ed25519 point")]
    Key,
    #[error("segment signature does not verify against its sender")]
    BadSignature,
    #[error("line box names no line we hold: it is from a stranger, or damaged")]
    NoLine,
    #[error("line box from {0}, who is not the peer its line belongs to")]
    WrongSender(AuthorKey),
    #[error("segment is addressed to {0}, not to us")]
    WrongRecipient(AuthorKey),
    #[error("segment names a log that is not the pair log of its sender and recipient")]
    WrongLog,
    #[error("segment holds {0} bytes of events; at most {SEGMENT_BYTES_MAX} fit")]
    TooLarge(usize),
    #[error("segment holds more than {SEGMENT_EVENTS_MAX} events")]
    TooManyEvents,
    #[error("event {0} in the segment is empty or larger than a signed event may be")]
    EventSize(usize),
}

/// A checked segment: signed by `from`, addressed to us, for the pair log of `from` and `to`.
/// The events inside are still raw: the ingest decodes and verifies each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub from: AuthorKey,
    pub to: AuthorKey,
    pub log: LogId,
    pub have: u64,
    pub sent_ms: u64,
    pub events: Vec<Vec<u8>>,
}

impl Segment {
    /// Signs a segment from `key` to `to` and seals it to `to_x25519`.
    pub fn seal(
        key: &SecretKey,
        to: &AuthorKey,
        to_x25519: &[u8; 32],
        have: u64,
        sent_ms: u64,
        events: &[&[u8]],
    ) -> Result<Vec<u8>, SegmentError> {
        let signed = Self::sign(key, to, have, sent_ms, events)?;
        Ok(seal::seal(to_x25519, Purpose::Segment, &signed)?)
    }

    /// Signs a segment without sealing it (for tests and vectors).
    pub fn sign(
        key: &SecretKey,
        to: &AuthorKey,
        have: u64,
        sent_ms: u64,
        events: &[&[u8]],
    ) -> Result<Vec<u8>, SegmentError> {
        let unsigned = Self::encode_unsigned(&key.author(), to, have, sent_ms, events)?;
        let sig = key.sign_digest(&blake3::derive_key(SEGMENT_CONTEXT, &unsigned));
        Ok(cbor::encode(&Value::Array(vec![
            cbor::bytes(&unsigned),
            cbor::bytes(&sig.0),
        ])))
    }

    /// The segment array itself, checked for size: what a signature covers (§20) and what a
    /// line box carries (§19.2).
    fn encode_unsigned(
        from: &AuthorKey,
        to: &AuthorKey,
        have: u64,
        sent_ms: u64,
        events: &[&[u8]],
    ) -> Result<Vec<u8>, SegmentError> {
        if events.len() > SEGMENT_EVENTS_MAX {
            return Err(SegmentError::TooManyEvents);
        }
        let mut total = SEGMENT_FIXED_COST;
        for (i, e) in events.iter().enumerate() {
            if e.is_empty() || e.len() > SIGNED_EVENT_BYTES_MAX {
                return Err(SegmentError::EventSize(i));
            }
            total += segment_cost(e.len());
        }
        if total > SEGMENT_BYTES_MAX {
            return Err(SegmentError::TooLarge(total));
        }
        Ok(cbor::encode(&Value::Array(vec![
            cbor::uint(SEGMENT_VERSION),
            cbor::bytes(&from.0),
            cbor::bytes(&to.0),
            cbor::bytes(&LogId::pair_log(from, to).0),
            cbor::uint(have),
            cbor::uint(sent_ms),
            Value::Array(events.iter().map(|e| cbor::bytes(e)).collect()),
        ])))
    }

    /// Seals a segment to the peer of `line` in a line box (§19.2). The box's key proves the
    /// sender, so the segment inside is not signed again; its events are.
    pub fn seal_line(
        line: &LineKeys,
        have: u64,
        sent_ms: u64,
        events: &[&[u8]],
    ) -> Result<Vec<u8>, SegmentError> {
        let unsigned = Self::encode_unsigned(line.ours(), line.peer(), have, sent_ms, events)?;
        if unsigned.len() + LINE_BOX_OVERHEAD > SEALED_SEGMENT_BYTES_MAX {
            return Err(SegmentError::TooLarge(unsigned.len()));
        }
        Ok(line.seal(&unsigned))
    }

    /// Opens a line box from the peer of `line` and checks the segment inside: shape, that it
    /// is from that peer, addressed to us, for our pair log.
    pub fn open_line(line: &LineKeys, sealed: &[u8]) -> Result<Segment, SegmentError> {
        if sealed.len() > SEALED_SEGMENT_BYTES_MAX {
            return Err(SegmentError::TooLarge(sealed.len()));
        }
        let unsigned = line.open(sealed)?;
        let seg = Self::parse_unsigned(&unsigned, line.ours())?;
        if seg.from != *line.peer() {
            return Err(SegmentError::WrongSender(seg.from));
        }
        Ok(seg)
    }

    /// Opens a sealed segment with our key and checks it: shape, sender key, signature, that it
    /// is addressed to us and names our pair log with its sender.
    pub fn open(key: &SecretKey, sealed: &[u8]) -> Result<Segment, SegmentError> {
        if sealed.len() > SEALED_SEGMENT_BYTES_MAX {
            return Err(SegmentError::TooLarge(sealed.len()));
        }
        let signed = seal::open(key, Purpose::Segment, sealed)?;
        Self::decode(&signed, &key.author())
    }

    /// Checks a signed (already opened) segment addressed to `me`.
    pub fn decode(signed: &[u8], me: &AuthorKey) -> Result<Segment, SegmentError> {
        let value = cbor::decode_canonical(signed, SEGMENT_BYTES_MAX)?;
        let mut outer = Fields::new("segment", value, 2)?;
        let unsigned = outer.bytes("segment")?;
        let sig = outer.bytes("signature")?;
        let sig = Signature(
            <[u8; 64]>::try_from(sig.as_slice()).map_err(|_| FieldError {
                what: "segment",
                problem: "field signature is not 64 bytes".into(),
            })?,
        );
        let seg = Self::parse_unsigned(&unsigned, me)?;
        verifying_key(&seg.from).map_err(|_| SegmentError::Key)?;
        if !verify_digest(
            &seg.from,
            &blake3::derive_key(SEGMENT_CONTEXT, &unsigned),
            &sig,
        ) {
            return Err(SegmentError::BadSignature);
        }
        Ok(seg)
    }

    /// Decodes and checks the segment array (everything but a signature) addressed to `me`.
    pub fn parse_unsigned(unsigned: &[u8], me: &AuthorKey) -> Result<Segment, SegmentError> {
        let value = cbor::decode_canonical(unsigned, SEGMENT_BYTES_MAX)?;
        let mut f = Fields::new("segment", value, 7)?;
        let version = f.uint("version")?;
        if version != SEGMENT_VERSION {
            return Err(SegmentError::Version(version));
        }
        let from = AuthorKey(f.array32("from")?);
        let to = AuthorKey(f.array32("to")?);
        let log = LogId(f.array32("log")?);
        let have = f.uint("have")?;
        let sent_ms = f.uint("sent_ms")?;
        let items = f.array("events", SEGMENT_EVENTS_MAX)?;
        let mut events = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::Bytes(b) if !b.is_empty() && b.len() <= SIGNED_EVENT_BYTES_MAX => {
                    events.push(b)
                }
                _ => return Err(SegmentError::EventSize(i)),
            }
        }
        if to != *me {
            return Err(SegmentError::WrongRecipient(to));
        }
        if log != LogId::pair_log(&from, &to) || from == to {
            return Err(SegmentError::WrongLog);
        }
        Ok(Segment {
            from,
            to,
            log,
            have,
            sent_ms,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_round_trips_and_is_bound_to_its_recipient() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let bob = SecretKey::from_seed(&[2; 32]);
        let carol = SecretKey::from_seed(&[3; 32]);
        let events: [&[u8]; 2] = [b"one", b"two"];
        let sealed = Segment::seal(&alice, &bob.author(), &bob.x25519_public(), 7, 42, &events)
            .expect("seal");
        let seg = Segment::open(&bob, &sealed).expect("open");
        assert_eq!(seg.from, alice.author());
        assert_eq!(seg.have, 7);
        assert_eq!(seg.events, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(matches!(
            Segment::open(&carol, &sealed),
            Err(SegmentError::Seal(SealError::Open))
        ));

        // Signed for carol but sealed to bob: bob opens it and refuses it.
        let signed = Segment::sign(&alice, &carol.author(), 0, 1, &[]).expect("sign");
        let misdirected =
            seal::seal(&bob.x25519_public(), Purpose::Segment, &signed).expect("seal");
        assert!(matches!(
            Segment::open(&bob, &misdirected),
            Err(SegmentError::WrongRecipient(_))
        ));

        // Every byte of the signed form matters.
        let signed = Segment::sign(&alice, &bob.author(), 3, 4, &events).expect("sign");
        for i in 0..signed.len() {
            let mut bad = signed.clone();
            bad[i] ^= 0x01;
            assert!(
                Segment::decode(&bad, &bob.author()).is_err(),
                "flipping byte {i} was accepted"
            );
        }
    }
}
