//! Storage behind the relay: the [`BlobStore`] trait, its embedded redb implementation (the
//! default) and its PostgreSQL one (`--store postgres://…`, for several instances).
//!
//! The trait speaks only the relay's own types, so that either backend slots in without the
//! HTTP layer noticing. Every method that writes is one
//! durable transaction: when it returns `Ok`, the change is on disk.

mod log;
mod postgres;
mod redb;

pub use self::postgres::{APPEND_NAME, LISTENER_NAME, NOTIFIER_NAME, PgStore, redact};
pub use self::redb::{LOG_BYTES, RedbStore};

use std::sync::Arc;

use bytes::Bytes;

use crate::token::{CapId, SlotId, TokenHash};

/// Limits the store enforces inside its transactions.
#[derive(Debug, Clone)]
pub struct Quotas {
    /// Blobs a slot may hold before its owner acknowledges some.
    pub slot_blobs_max: u64,
    /// Bytes a slot may hold before its owner acknowledges some.
    pub slot_bytes_max: u64,
    /// Live capabilities per slot.
    pub caps_per_slot_max: u32,
    /// Handles one slot may hold.
    pub handles_per_slot_max: u32,
    /// Pending intros per slot.
    pub intros_per_slot_max: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            slot_blobs_max: 2_000_000,
            slot_bytes_max: 2 << 30,
            caps_per_slot_max: 4096,
            handles_per_slot_max: 8,
            intros_per_slot_max: 256,
        }
    }
}

/// Who is presenting a secret for an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Owner(TokenHash),
    Cap(TokenHash),
}

/// One blob to append to one slot.
#[derive(Debug, Clone)]
pub struct AppendItem {
    pub slot: SlotId,
    pub credential: Credential,
    pub blob: Bytes,
}

/// What happened to one [`AppendItem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// This item stored the blob under `seq`.
    Stored {
        seq: u64,
    },
    /// The same bytes were already in the slot (stored by an earlier or concurrent request),
    /// under `seq`.
    Duplicate {
        seq: u64,
    },
    UnknownSlot,
    /// The credential does not grant appending to this slot (unknown, revoked or another slot's).
    Unauthorized,
    /// The slot is full; its owner must read and acknowledge.
    SlotFull {
        blobs: u64,
        bytes: u64,
    },
}

/// A page of blobs after some sequence number.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<(u64, Bytes)>,
    /// Highest sequence number ever assigned in the slot (0 when none).
    pub last_seq: u64,
}

/// What a slot holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub owner: TokenHash,
    pub blobs: u64,
    pub bytes: u64,
    /// Highest sequence number ever assigned (0 when none).
    pub last_seq: u64,
    /// Everything up to here has been acknowledged and removed.
    pub acked_through: u64,
    pub caps: u32,
    pub created_ms: u64,
}

/// Result of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    Acked {
        removed: u64,
        blobs: u64,
        bytes: u64,
        acked_through: u64,
    },
    UnknownSlot,
    /// `through` is past the last sequence number the slot has assigned.
    BeyondLast {
        last_seq: u64,
    },
}

/// Result of minting a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintOutcome {
    Minted,
    UnknownSlot,
    TooMany { max: u32 },
}

/// Whole-store counts, for `/stats.json` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub slots: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub handles: u64,
    pub intros: u64,
}

/// A claimed handle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandleRecord {
    pub nick: String,
    /// Ed25519 key of the holder.
    pub key: [u8; 32],
    pub slot: SlotId,
    /// The signed card, exactly as the holder sent it (JSON).
    pub card: String,
    pub issued_ms: u64,
    pub claimed_ms: u64,
    /// The holder asked to appear in the relay's phonebook (`/phonebook`). Records written
    /// before the phonebook existed read as unlisted.
    #[serde(default)]
    pub listed: bool,
    /// The holder's one-line profile, shown in the phonebook (empty when none).
    #[serde(default)]
    pub profile: String,
}

/// Result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    /// Same key, newer card, another slot or another listing: the record was replaced.
    Updated,
    /// Same key, same card, same slot, same listing: nothing to do.
    Unchanged,
    /// Another key holds the handle.
    Taken(Box<HandleRecord>),
    /// Same key but the card is not newer than the one held, and something else changed.
    Stale {
        held_issued_ms: u64,
    },
    UnknownSlot,
    TooManyHandles {
        max: u32,
    },
}

/// Result of leaving an intro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntroOutcome {
    Queued {
        seq: u64,
    },
    /// The sender had one pending already; this one replaced it.
    Replaced {
        seq: u64,
    },
    Full {
        max: u64,
    },
}

/// A storage failure. The relay answers 503 and logs it; nothing acknowledged is lost.
#[derive(Debug, thiserror::Error)]
#[error("relay storage: {0}")]
pub struct StoreError(pub String);

/// Blobs stored by another writer of the same database, after their commit: (slot, seq, bytes).
pub type Wake = Arc<dyn Fn(&[(SlotId, u64, Bytes)]) + Send + Sync>;
/// Whether anyone here waits for a slot's new blobs (the others are not read).
pub type Wanted = Arc<dyn Fn(SlotId) -> bool + Send + Sync>;
/// Every slot someone streams here now.
pub type Watched = Arc<dyn Fn() -> Vec<SlotId> + Send + Sync>;

/// Storage for slots, capabilities, blobs, the handle directory and intro queues.
pub trait BlobStore: Send + Sync + 'static {
    /// Starts handing `wake` the blobs that other processes append to this store (relay
    /// instances sharing a database), for the slots `wanted` names. A store that only this
    /// process writes (redb: one writer per file) has no one else's appends, and does nothing.
    /// Whenever that watch (re)starts, it hands `wake` the newest blob of every slot in
    /// `watched`, so that a stream whose wake-ups were lost meanwhile reads what it missed.
    fn watch_others(&self, wake: Wake, wanted: Wanted, watched: Watched) -> Result<(), StoreError> {
        let _ = (wake, wanted, watched);
        Ok(())
    }

    /// Says that a stream here now waits for `slot`'s new blobs; called after the stream
    /// subscribed and before it reads what is stored. A store that other processes append to
    /// (PostgreSQL) makes sure that their appends from here on are announced to this one
    /// (decision (aq)); a store only this process writes does nothing.
    fn watch(&self, slot: SlotId) -> Result<(), StoreError> {
        let _ = slot;
        Ok(())
    }

    /// How many [`append`](Self::append) calls may run at once (each its own transaction).
    /// The committer runs that many groups in flight. redb has one writer: 1.
    fn append_lanes(&self) -> usize {
        1
    }

    /// How many of the [`append_lanes`](Self::append_lanes) to keep in flight now: all of
    /// them, unless the store shares its database with other writers (PostgreSQL: the groups
    /// in flight are the database's to share, decision (ar)).
    fn append_lanes_now(&self) -> usize {
        self.append_lanes()
    }

    /// Whether [`take_token`](Self::take_token) draws on buckets every instance on this store
    /// shares (PostgreSQL). When not (redb: one process), each relay counts in its own memory.
    fn shares_rate_limits(&self) -> bool {
        false
    }

    /// Takes one token from the shared bucket of (`limit`, `key`) at `rate` (or, with `peek`,
    /// only says whether one could be taken): `Ok(Err(secs))` when empty, `secs` until a
    /// token is back. Only called when [`shares_rate_limits`](Self::shares_rate_limits).
    fn take_token(
        &self,
        limit: u8,
        key: &[u8],
        rate: crate::limits::Rate,
        peek: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        let _ = (limit, key, rate, peek);
        Ok(Ok(()))
    }

    /// Whether the pair slots of pairings by code live here, shared by every instance on this
    /// store (PostgreSQL), rather than in the relay's memory (`pairs.rs`).
    fn shares_pair_slots(&self) -> bool {
        false
    }

    /// [`crate::pairs::PairSlots::put`], in the store. Only called when
    /// [`shares_pair_slots`](Self::shares_pair_slots).
    fn pair_put(
        &self,
        id: [u8; 16],
        cell: crate::pairs::Cell,
        bytes: Bytes,
    ) -> Result<Result<crate::pairs::Written, crate::pairs::PairError>, StoreError> {
        let _ = (id, cell, bytes);
        Ok(Err(crate::pairs::PairError::Unknown))
    }

    /// A cell, without waiting (`Ok(None)`: not written yet); `touch` counts the read as use.
    fn pair_get(
        &self,
        id: [u8; 16],
        cell: crate::pairs::Cell,
        touch: bool,
    ) -> Result<Result<Option<Bytes>, crate::pairs::PairError>, StoreError> {
        let _ = (id, cell, touch);
        Ok(Err(crate::pairs::PairError::Unknown))
    }

    /// Closes a pair slot; `Ok(false)` when there was none.
    fn pair_close(&self, id: [u8; 16]) -> Result<bool, StoreError> {
        let _ = id;
        Ok(false)
    }

    fn create_slot(&self, slot: SlotId, owner: TokenHash, now_ms: u64) -> Result<(), StoreError>;
    fn slot_info(&self, slot: SlotId) -> Result<Option<SlotInfo>, StoreError>;
    /// The slot a capability appends to, if it is live.
    fn cap_slot(&self, cap: TokenHash) -> Result<Option<(SlotId, CapId)>, StoreError>;
    fn mint_cap(&self, slot: SlotId, id: CapId, cap: TokenHash) -> Result<MintOutcome, StoreError>;
    /// `Ok(false)` when the slot has no such capability.
    fn revoke_cap(&self, slot: SlotId, id: CapId) -> Result<bool, StoreError>;
    fn list_caps(&self, slot: SlotId) -> Result<Vec<CapId>, StoreError>;

    /// Appends every item in one durable transaction; one outcome per item, in order. Items
    /// with identical bytes for the same slot store once, within the batch and across batches.
    fn append(&self, items: &[AppendItem]) -> Result<Vec<AppendOutcome>, StoreError>;
    /// Blobs with `seq > after`, in order, at most `limit` of them and about `bytes_max` bytes
    /// (always at least one when one exists).
    fn read_after(
        &self,
        slot: SlotId,
        after: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Page, StoreError>;
    /// Removes every blob with `seq <= through`.
    fn ack(&self, slot: SlotId, through: u64) -> Result<AckOutcome, StoreError>;

    /// Whether acknowledgements go through the committer, applied in a group's transaction and
    /// made durable by its one write ([`commit_group`](Self::commit_group); redb: the append
    /// log). When not (PostgreSQL), each [`ack`](Self::ack) is a transaction of its own, off
    /// the append path.
    fn acks_in_groups(&self) -> bool {
        false
    }

    /// Applies `acks` (slot, through), then appends `items`, in one durable transaction; one
    /// outcome per acknowledgement and per item, in order. Only called with acknowledgements
    /// when [`acks_in_groups`](Self::acks_in_groups).
    fn commit_group(
        &self,
        acks: &[(SlotId, u64)],
        items: &[AppendItem],
    ) -> Result<(Vec<AckOutcome>, Vec<AppendOutcome>), StoreError> {
        let mut acked = Vec::with_capacity(acks.len());
        for &(slot, through) in acks {
            acked.push(self.ack(slot, through)?);
        }
        Ok((acked, self.append(items)?))
    }
    fn totals(&self) -> Result<Totals, StoreError>;

    fn claim(&self, record: HandleRecord) -> Result<ClaimOutcome, StoreError>;
    fn handle(&self, nick: &str) -> Result<Option<HandleRecord>, StoreError>;
    /// Handles in name order, strictly after `after`.
    fn handles_after(&self, after: &str, limit: usize) -> Result<Vec<HandleRecord>, StoreError>;
    /// Releases a handle held by `slot`; `Ok(false)` when it is not held by that slot.
    fn release(&self, nick: &str, slot: SlotId) -> Result<bool, StoreError>;

    /// Queues an intro from `from` for `slot`, replacing that sender's pending one.
    fn put_intro(
        &self,
        slot: SlotId,
        from: [u8; 32],
        envelope: &[u8],
        now_ms: u64,
    ) -> Result<IntroOutcome, StoreError>;
    fn intros_after(&self, slot: SlotId, after: u64, limit: usize) -> Result<Page, StoreError>;
    fn ack_intros(&self, slot: SlotId, through: u64) -> Result<AckOutcome, StoreError>;
}
