//! What the relay answers (PROTOCOL.md §18.3), as typed values. Unknown JSON members are
//! ignored, so a newer relay that adds members still works with this client.

use bytes::Bytes;
use serde::Deserialize;

/// `GET /v1/relay`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RelayInfo {
    pub software: String,
    pub version: String,
    /// The relay's domain: the `@domain` part of its handles.
    pub domain: String,
    pub public_url: String,
    pub local_only: bool,
    /// The relay's clock when it answered (absent from relays before it was added).
    #[serde(default)]
    pub now_ms: Option<u64>,
    #[serde(default)]
    pub limits: RelayLimits,
}

/// The relay's limits, as far as it states them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RelayLimits {
    pub blob_bytes_max: Option<u64>,
    pub batch_bytes_max: Option<u64>,
    pub batch_blobs_max: Option<u64>,
    pub read_blobs_max: Option<u64>,
    pub slot_blobs_max: Option<u64>,
    pub slot_bytes_max: Option<u64>,
    pub intro_bytes_max: Option<u64>,
}

/// `POST /v1/slots`: a new slot and its owner token (shown this once).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct SlotGrant {
    pub slot: String,
    pub token: String,
}

impl std::fmt::Debug for SlotGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotGrant")
            .field("slot", &self.slot)
            .field("token", &"..")
            .finish()
    }
}

/// `GET /v1/slots/{slot}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SlotInfo {
    pub slot: String,
    pub blobs: u64,
    pub bytes: u64,
    /// Highest sequence number ever assigned (0 when none).
    pub last_seq: u64,
    pub acked_through: u64,
    pub caps: u64,
    pub created_ms: u64,
}

/// `POST /v1/slots/{slot}/caps`: a new append capability (shown this once).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct CapGrant {
    pub cap_id: String,
    pub cap: String,
}

impl std::fmt::Debug for CapGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapGrant")
            .field("cap_id", &self.cap_id)
            .field("cap", &"..")
            .finish()
    }
}

/// One blob on disk at the relay: `stored` is false when the slot already held these bytes
/// (the same `seq` is returned).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Appended {
    pub seq: u64,
    pub stored: bool,
    /// BLAKE3 of the blob, lower-case hex.
    pub hash: String,
}

/// `POST …/ack` and `…/intros/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Acked {
    pub acked_through: u64,
    pub removed: u64,
    pub remaining: u64,
    pub remaining_bytes: u64,
}

/// One record of a page or stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub bytes: Bytes,
}

/// A page of records (`GET …/blobs`, `GET …/intros`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<Record>,
    /// `wire-last-seq`: the highest sequence number the relay has assigned.
    pub last_seq: u64,
    /// `wire-more`: more records follow; ask again after the last one.
    pub more: bool,
}

/// What a claim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimStatus {
    Claimed,
    Updated,
    Unchanged,
}

/// `PUT /v1/handles/{nick}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claimed {
    pub handle: String,
    pub did: String,
    pub character: String,
    pub status: ClaimStatus,
}

/// What leaving an intro did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntroStatus {
    Queued,
    /// An earlier intro from the same sender key was waiting; this one replaced it.
    Replaced,
}

/// `POST /v1/handles/{nick}/intro`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IntroQueued {
    pub status: IntroStatus,
    pub to: String,
}

/// Where and how to leave an intro for a handle.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IntroEndpoint {
    pub url: String,
    pub content_type: String,
    pub bytes_max: u64,
}

/// `GET /.well-known/wire/agent?handle=NICK`. The relay's word only: `card` is the signed card
/// as the relay sent it, to be verified with `wire_log::card::SignedCard::from_json` before any
/// of this is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub handle: String,
    pub did: String,
    pub character: String,
    /// The card's JSON text exactly as served.
    pub card: String,
    pub intro: IntroEndpoint,
}

#[derive(Deserialize)]
pub(crate) struct ResolvedWire {
    pub handle: String,
    pub did: String,
    pub character: String,
    pub card: Box<serde_json::value::RawValue>,
    pub intro: IntroEndpoint,
}

impl From<ResolvedWire> for Resolved {
    fn from(w: ResolvedWire) -> Resolved {
        Resolved {
            handle: w.handle,
            did: w.did,
            character: w.character,
            card: w.card.get().to_owned(),
            intro: w.intro,
        }
    }
}
