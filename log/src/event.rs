//! The event: its canonical encoding, its id, its signature, and the checks that make a decoded
//! event trustworthy.
//!
//! Wire form (format 1), normative in `docs/PROTOCOL.md`:
//!
//! ```text
//! unsigned = [1, author: bstr32, log: bstr32, seq: uint, prev: bstr32 / null, ts_ms: uint, kind: uint, body: bstr]
//! id       = BLAKE3-derive-key("wire 2026-11-25 event id v1", unsigned)
//! sig      = Ed25519(author, id)
//! signed   = [unsigned: bstr, sig: bstr64]
//! ```

use std::collections::HashSet;

use ciborium::Value;
use ed25519_dalek::{Signer, VerifyingKey};

use crate::cbor::{self, CborError, FieldError, Fields};
use crate::keyfile::SecretKey;
use crate::kind::Kind;
use crate::types::{AuthorKey, EventId, LogId, Signature};

/// The only format this build writes. Readers refuse versions they do not know.
pub const FORMAT_VERSION: u64 = 1;

/// Largest body an event may carry: 256 KiB.
pub const BODY_BYTES_MAX: usize = 256 * 1024;

/// Largest signed encoding: the body plus generous room for the fixed fields and framing.
pub const SIGNED_EVENT_BYTES_MAX: usize = BODY_BYTES_MAX + 512;

/// Derive-key context for event ids. Fixed forever for format 1.
const EVENT_ID_CONTEXT: &str = "wire 2026-11-25 event id v1";

/// An event before it is signed.
///
/// Do not reorder or change these fields: their order is the order of the signed encoding of
/// format 1. A change is a new format version, and format 1 stays readable.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    pub author: AuthorKey,
    pub log: LogId,
    /// Position of this event in the author's chain in this log, from 1, without gaps.
    pub seq: u64,
    /// Id of the author's previous event in this log; `None` exactly when `seq == 1`.
    pub prev: Option<EventId>,
    /// Author's wall clock, milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub kind: Kind,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("author", &self.author)
            .field("log", &self.log)
            .field("seq", &self.seq)
            .field("prev", &self.prev)
            .field("ts_ms", &self.ts_ms)
            .field("kind", &self.kind)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Why bytes are not a well-formed event. Signature problems are [`VerifyError`]s.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(transparent)]
    Cbor(#[from] CborError),
    #[error("malformed event: {0}")]
    Field(#[from] FieldError),
    #[error(
        "event format version {0} is not supported by this build (it reads version 1); upgrade wire"
    )]
    UnsupportedVersion(u64),
    #[error("kind {0} is outside the four kind classes (1000-39999)")]
    BadKind(u64),
    #[error("seq 0 is not allowed; chains start at 1")]
    SeqZero,
    #[error("seq 1 must have no prev, and every later seq must have one")]
    PrevMismatch,
    #[error("body of {0} bytes is over the limit of {BODY_BYTES_MAX} bytes")]
    BodyTooLarge(usize),
    #[error("author key is not a valid Ed25519 public key")]
    BadAuthorKey,
    #[error("author key is a small-order (weak) Ed25519 key")]
    WeakAuthorKey,
}

/// Why a well-formed event is not authentic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("signature does not verify against the author key")]
    BadSignature,
    #[error("the signing key does not belong to the event's author")]
    WrongSigner,
}

impl Event {
    /// Checks the rules a decoder enforces, so that encoding an event we built ourselves can
    /// never produce bytes our own decoder would refuse.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.seq == 0 {
            return Err(DecodeError::SeqZero);
        }
        if (self.seq == 1) != self.prev.is_none() {
            return Err(DecodeError::PrevMismatch);
        }
        if self.body.len() > BODY_BYTES_MAX {
            return Err(DecodeError::BodyTooLarge(self.body.len()));
        }
        Ok(())
    }

    /// The canonical unsigned encoding: the bytes the id is computed from.
    pub fn encode(&self) -> Vec<u8> {
        let value = Value::Array(vec![
            cbor::uint(FORMAT_VERSION),
            cbor::bytes(&self.author.0),
            cbor::bytes(&self.log.0),
            cbor::uint(self.seq),
            cbor::opt_bytes(self.prev.as_ref().map(|p| &p.0)),
            cbor::uint(self.ts_ms),
            cbor::uint(u64::from(self.kind.number())),
            cbor::bytes(&self.body),
        ]);
        cbor::encode(&value)
    }

    /// Decodes and checks an unsigned encoding; refuses anything non-canonical.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let value = cbor::decode_canonical(bytes, SIGNED_EVENT_BYTES_MAX)?;
        let mut f = Fields::new("event", value, 8)?;
        let version = f.uint("version")?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let author = AuthorKey(f.array32("author")?);
        let log = LogId(f.array32("log")?);
        let seq = f.uint("seq")?;
        let prev = f.opt_array32("prev")?.map(EventId);
        let ts_ms = f.uint("ts_ms")?;
        let kind_number = f.uint("kind")?;
        let kind = u32::try_from(kind_number)
            .ok()
            .and_then(Kind::new)
            .ok_or(DecodeError::BadKind(kind_number))?;
        let body = f.bytes("body")?;
        let event = Event {
            author,
            log,
            seq,
            prev,
            ts_ms,
            kind,
            body,
        };
        event.check()?;
        Ok(event)
    }

    /// The id of an unsigned encoding.
    pub fn id_of(encoded: &[u8]) -> EventId {
        EventId(blake3::derive_key(EVENT_ID_CONTEXT, encoded))
    }

    /// The id this event will have once signed (the next event's `prev`).
    pub fn id(&self) -> EventId {
        Event::id_of(&self.encode())
    }

    /// Signs with `key`, which must be the author's.
    pub fn sign(self, key: &SecretKey) -> Result<VerifiedEvent, VerifyError> {
        self.check()?;
        if key.author() != self.author {
            return Err(VerifyError::WrongSigner);
        }
        let unsigned = self.encode();
        let id = Event::id_of(&unsigned);
        let sig = Signature(key.signing_key().sign(&id.0).to_bytes());
        let signed = encode_signed(&unsigned, &sig);
        Ok(VerifiedEvent {
            event: self,
            id,
            sig,
            signed,
        })
    }
}

/// Signs many events with one key, spread over the machine's cores. Fails on the first event
/// that is malformed or not authored by `key`.
pub fn sign_all(events: Vec<Event>, key: &SecretKey) -> Result<Vec<VerifiedEvent>, VerifyError> {
    let threads = crate::cores();
    if events.len() < 64 || threads == 1 {
        return events.into_iter().map(|e| e.sign(key)).collect();
    }
    let per_thread = events.len().div_ceil(threads);
    let mut chunks: Vec<Vec<Event>> = Vec::with_capacity(threads);
    let mut rest = events;
    while !rest.is_empty() {
        let tail = rest.split_off(per_thread.min(rest.len()));
        chunks.push(rest);
        rest = tail;
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|e| e.sign(key))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            // Invariant: signing does not panic; a panic here is a bug worth propagating.
            out.extend(handle.join().expect("signing thread panicked")?);
        }
        Ok(out)
    })
}

fn encode_signed(unsigned: &[u8], sig: &Signature) -> Vec<u8> {
    cbor::encode(&Value::Array(vec![
        cbor::bytes(unsigned),
        cbor::bytes(&sig.0),
    ]))
}

/// A decoded event whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct SignedEvent {
    pub event: Event,
    pub id: EventId,
    pub sig: Signature,
    signed: Vec<u8>,
}

impl SignedEvent {
    /// Decodes the signed wire form. Refuses non-canonical bytes at both levels, unknown versions,
    /// bad kinds, broken seq/prev shape, oversized bodies and unusable author keys.
    pub fn decode(bytes: &[u8]) -> Result<SignedEvent, DecodeError> {
        let value = cbor::decode_canonical(bytes, SIGNED_EVENT_BYTES_MAX)?;
        let mut f = Fields::new("signed event", value, 2)?;
        let unsigned = f.bytes("event")?;
        let sig = f.bytes("signature")?;
        let sig = Signature(
            <[u8; 64]>::try_from(sig.as_slice()).map_err(|_| FieldError {
                what: "signed event",
                problem: "field signature is not 64 bytes".into(),
            })?,
        );
        let event = Event::decode(&unsigned)?;
        let id = Event::id_of(&unsigned);
        Ok(SignedEvent {
            event,
            id,
            sig,
            signed: bytes.to_vec(),
        })
    }

    /// Checks the signature alone (one event). For many, [`verify_all`] is much faster.
    pub fn verify(self) -> Result<VerifiedEvent, VerifyError> {
        verifying_key(&self.event.author)?;
        if !verify_one(&self.event.author, &self.id, &self.sig) {
            return Err(VerifyError::BadSignature);
        }
        Ok(self.into_verified())
    }

    fn into_verified(self) -> VerifiedEvent {
        VerifiedEvent {
            event: self.event,
            id: self.id,
            sig: self.sig,
            signed: self.signed,
        }
    }

    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }
}

/// One signature, checked with the cofactored (ZIP 215) equation that batch verification uses
/// too, so a single check and a batch can never disagree about an event.
fn verify_one(author: &AuthorKey, id: &EventId, sig: &Signature) -> bool {
    verify_digest(author, &id.0, sig)
}

/// One signature over a 32-byte digest, with the same cofactored equation as events use.
pub(crate) fn verify_digest(author: &AuthorKey, digest: &[u8; 32], sig: &Signature) -> bool {
    ed25519_zebra::VerificationKey::try_from(author.0)
        .and_then(|vk| vk.verify(&ed25519_zebra::Signature::from_bytes(&sig.0), digest))
        .is_ok()
}

pub(crate) fn verifying_key(author: &AuthorKey) -> Result<VerifyingKey, DecodeError> {
    let key = VerifyingKey::from_bytes(&author.0).map_err(|_| DecodeError::BadAuthorKey)?;
    if key.is_weak() {
        return Err(DecodeError::WeakAuthorKey);
    }
    Ok(key)
}

/// An event whose encoding, id and signature have all been checked. Only this crate makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    event: Event,
    id: EventId,
    sig: Signature,
    signed: Vec<u8>,
}

impl VerifiedEvent {
    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn id(&self) -> EventId {
        self.id
    }

    pub fn sig(&self) -> Signature {
        self.sig
    }

    /// The signed wire form, as stored and as sent.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    pub fn into_event(self) -> Event {
        self.event
    }
}

impl std::ops::Deref for VerifiedEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Events per batch-verification call; small enough to bisect cheaply on failure.
const VERIFY_CHUNK: usize = 256;

/// Verifies many signatures at once with Ed25519 batch verification, spread over the machine's
/// cores. On failure, names the first bad event by its index in `events`.
pub fn verify_all(events: Vec<SignedEvent>) -> Result<Vec<VerifiedEvent>, (usize, VerifyError)> {
    let threads = crate::cores();
    let per_thread = events.len().div_ceil(threads).max(VERIFY_CHUNK);
    let result: Result<(), (usize, VerifyError)> = if events.len() <= VERIFY_CHUNK || threads == 1 {
        verify_slice(&events, 0)
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = events
                .chunks(per_thread)
                .enumerate()
                .map(|(i, chunk)| scope.spawn(move || verify_slice(chunk, i * per_thread)))
                .collect();
            let mut first_err: Option<(usize, VerifyError)> = None;
            for handle in handles {
                // Invariant: verify_slice does not panic; a panic here is a bug worth propagating.
                let outcome = handle
                    .join()
                    .expect("signature verification thread panicked");
                if let Err(e) = outcome
                    && first_err.as_ref().is_none_or(|(i, _)| e.0 < *i)
                {
                    first_err = Some(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    };
    result?;
    Ok(events.into_iter().map(SignedEvent::into_verified).collect())
}

/// Up to this many signatures are checked one by one rather than as a batch.
const SINGLE_MAX: usize = 2;

fn verify_slice(events: &[SignedEvent], offset: usize) -> Result<(), (usize, VerifyError)> {
    // Weak (small-order) keys are refused outright; checked once per author.
    let mut checked: HashSet<AuthorKey> = HashSet::new();
    for (n, chunk) in events.chunks(VERIFY_CHUNK).enumerate() {
        let base = offset + n * VERIFY_CHUNK;
        if chunk.len() <= SINGLE_MAX {
            // A batch of one or two costs more than checking each alone (the batch's random
            // coefficients and its extra point); the equation is the same cofactored one.
            for (i, e) in chunk.iter().enumerate() {
                if checked.insert(e.event.author) {
                    verifying_key(&e.event.author).map_err(|err| (base + i, err.into()))?;
                }
                if !verify_one(&e.event.author, &e.id, &e.sig) {
                    return Err((base + i, VerifyError::BadSignature));
                }
            }
            continue;
        }
        let mut batch = ed25519_zebra::batch::Verifier::new();
        for (i, e) in chunk.iter().enumerate() {
            if checked.insert(e.event.author) {
                verifying_key(&e.event.author).map_err(|err| (base + i, err.into()))?;
            }
            batch.queue((
                ed25519_zebra::VerificationKeyBytes::from(e.event.author.0),
                ed25519_zebra::Signature::from_bytes(&e.sig.0),
                &e.id.0[..],
            ));
        }
        if batch.verify(rand::rng()).is_err() {
            // Find the culprit precisely, with the same equation.
            for (i, e) in chunk.iter().enumerate() {
                if !verify_one(&e.event.author, &e.id, &e.sig) {
                    return Err((base + i, VerifyError::BadSignature));
                }
            }
            // Cofactored batch and single checks agree on every input, so a failed batch has
            // a failing member; reaching here would mean the library broke that promise.
            return Err((base, VerifyError::BadSignature));
        }
    }
    Ok(())
}
