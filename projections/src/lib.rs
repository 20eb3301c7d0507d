//! Projections: pure folds of the event log into the state commands read (identity, peers and
//! their trust, pending pair requests, replication cursors), kept in versioned redb tables that
//! are written in the same transaction as the append, and rebuildable from the log alone.
//!
//! The fold ([`apply`]) is written once against the [`State`] trait and runs on two backends:
//! [`MemState`] (rebuild, verify, property tests) and [`RedbState`] (incremental, in the append's
//! write transaction). It does no IO of its own.

mod fold;
mod mem;
mod redb_state;
mod types;

pub use fold::{ProjectionError, apply};
pub use mem::MemState;
pub use redb_state::{
    CURSORS, IDENTITY, PEERS, PENDING, PROJECTION_META, RedbState, TABLES, read_all, read_cursor,
    read_peer,
};
pub use types::{
    Cursor, CursorKey, Grant, INVITE_KEPT_AFTER_EXPIRY_MS, INVITES_KEPT_MAX, Identity,
    InviteRecord, Peer, PeerEndpoint, PeerState, Pending,
};

use wire_log::AuthorKey;

/// Read and write access to the projected state, one keyed table per projection.
pub trait State {
    fn identity(&self) -> Result<Option<Identity>, ProjectionError>;
    fn set_identity(&mut self, identity: Identity) -> Result<(), ProjectionError>;

    fn peer(&self, key: &AuthorKey) -> Result<Option<Peer>, ProjectionError>;
    fn set_peer(&mut self, peer: Peer) -> Result<(), ProjectionError>;
    fn remove_peer(&mut self, key: &AuthorKey) -> Result<(), ProjectionError>;

    fn pending(&self, key: &AuthorKey) -> Result<Option<Pending>, ProjectionError>;
    fn set_pending(&mut self, pending: Pending) -> Result<(), ProjectionError>;
    fn remove_pending(&mut self, key: &AuthorKey) -> Result<(), ProjectionError>;

    fn cursor(&self, key: &CursorKey) -> Result<Option<Cursor>, ProjectionError>;
    fn set_cursor(&mut self, key: CursorKey, cursor: Cursor) -> Result<(), ProjectionError>;

    /// Order position of the last event folded in, so a lagging projection is detectable.
    fn applied(&self) -> Result<Option<u64>, ProjectionError>;
    fn set_applied(&mut self, position: u64) -> Result<(), ProjectionError>;
}
