//! The records projections keep. Stored as CBOR in redb, shown as JSON by the CLI.

use serde::{Deserialize, Serialize};
use wire_log::body::Endpoint;
use wire_log::{AuthorKey, Character, Did, LogId};

/// This session's identity, from `identity.created` and the latest `identity.renamed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub key: AuthorKey,
    pub did: String,
    pub handle: String,
    pub x25519: AuthorKey,
    pub created_ms: u64,
    /// The Character derived from the DID, with any local rename applied.
    pub character: Character,
    /// Whether `character` carries a local rename.
    pub renamed: bool,
    /// The slots we receive at, oldest first; the last one is where peers should write.
    #[serde(default)]
    pub slots: Vec<Endpoint>,
    /// Full handles (`nick@domain`) relay directories hold for us.
    #[serde(default)]
    pub claimed: Vec<String>,
    /// Invites we issued that may still be redeemed (or were, until a day past their expiry),
    /// oldest first; at most [`INVITES_KEPT_MAX`].
    #[serde(default)]
    pub invites: Vec<InviteRecord>,
}

/// Most invites the identity keeps; the fold refuses an `invite.issued` beyond it.
pub const INVITES_KEPT_MAX: usize = 256;

/// How long past its expiry an invite is remembered, so a late redemption is refused as
/// expired rather than as unknown.
pub const INVITE_KEPT_AFTER_EXPIRY_MS: u64 = 24 * 3600 * 1000;

/// One invite we issued and how many of its uses are spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub nonce: [u8; 16],
    pub issued_ms: u64,
    pub expires_ms: u64,
    pub uses: u64,
    pub used: u64,
    /// Who redeemed it, in order.
    #[serde(default)]
    pub redeemed_by: Vec<AuthorKey>,
}

/// Where a pairing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// We dialed; their acceptance has not arrived. Never treated as paired.
    Dialed,
    /// Both sides consented.
    Paired,
    /// We refused their request. Sticks: later requests from this key are dropped.
    Rejected,
}

/// A peer we dialed, paired with or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub key: AuthorKey,
    pub did: String,
    pub handle: String,
    pub x25519: AuthorKey,
    pub state: PeerState,
    /// When the current state began (the author's clock of the deciding event).
    pub since_ms: u64,
    pub character: Character,
    /// Where and how we may write to the peer, once we know.
    #[serde(default)]
    pub endpoint: Option<PeerEndpoint>,
    /// Capabilities we minted for the peer on our slots (ids only), to revoke on forget.
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// A peer's endpoints in priority order and the append capability it gave us. The capability
/// is a bearer secret: it is kept in the store (0600) and never printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEndpoint {
    pub endpoints: Vec<Endpoint>,
    pub cap: String,
    /// The capabilities of the endpoints after the first, when each has its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_caps: Vec<String>,
    pub since_ms: u64,
}

impl PeerEndpoint {
    /// The capability to present at endpoint `i`.
    pub fn cap_for(&self, i: usize) -> &str {
        wire_log::body::cap_for(&self.cap, &self.more_caps, i)
    }
}

/// An append capability we minted for a peer on one of our slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub endpoint: Endpoint,
    pub cap_id: String,
}

/// A pair request waiting for the operator's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub key: AuthorKey,
    pub did: String,
    pub handle: String,
    pub x25519: AuthorKey,
    pub received_ms: u64,
    pub character: Character,
    /// Where to answer, from the request.
    #[serde(default)]
    pub endpoint: Option<PeerEndpoint>,
}

/// Which replication cursor: one log, one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CursorKey {
    pub log: LogId,
    pub peer: AuthorKey,
}

impl CursorKey {
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.log.0);
        out[32..].copy_from_slice(&self.peer.0);
        out
    }

    pub fn from_bytes(b: &[u8; 64]) -> CursorKey {
        let mut log = [0u8; 32];
        let mut peer = [0u8; 32];
        log.copy_from_slice(&b[..32]);
        peer.copy_from_slice(&b[32..]);
        CursorKey {
            log: LogId(log),
            peer: AuthorKey(peer),
        }
    }
}

/// How far replication with a peer has come in one log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The peer's chain in this log is held up to this seq.
    pub received_seq: u64,
    /// The peer has confirmed our chain in this log up to this seq.
    pub acked_seq: u64,
}

pub(crate) fn did_of(key: &AuthorKey) -> (String, Character) {
    let did = Did::from_key(key);
    let character = Character::of(&did);
    (did.as_str().to_owned(), character)
}
