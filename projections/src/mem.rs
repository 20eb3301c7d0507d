//! The in-memory backend of [`State`]: used to rebuild from the log, by `wire verify` to
//! recompute, and by property tests.

use std::collections::BTreeMap;

use wire_log::AuthorKey;

use crate::types::{Cursor, CursorKey, Identity, Peer, Pending};
use crate::{ProjectionError, State};

/// Every projection, in memory. Two equal `MemState`s mean two equal projections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemState {
    pub identity: Option<Identity>,
    pub peers: BTreeMap<AuthorKey, Peer>,
    pub pending: BTreeMap<AuthorKey, Pending>,
    pub cursors: BTreeMap<CursorKey, Cursor>,
    pub applied: Option<u64>,
}

impl State for MemState {
    fn identity(&self) -> Result<Option<Identity>, ProjectionError> {
        Ok(self.identity.clone())
    }
    fn set_identity(&mut self, identity: Identity) -> Result<(), ProjectionError> {
        self.identity = Some(identity);
        Ok(())
    }
    fn peer(&self, key: &AuthorKey) -> Result<Option<Peer>, ProjectionError> {
        Ok(self.peers.get(key).cloned())
    }
    fn set_peer(&mut self, peer: Peer) -> Result<(), ProjectionError> {
        self.peers.insert(peer.key, peer);
        Ok(())
    }
    fn remove_peer(&mut self, key: &AuthorKey) -> Result<(), ProjectionError> {
        self.peers.remove(key);
        Ok(())
    }
    fn pending(&self, key: &AuthorKey) -> Result<Option<Pending>, ProjectionError> {
        Ok(self.pending.get(key).cloned())
    }
    fn set_pending(&mut self, pending: Pending) -> Result<(), ProjectionError> {
        self.pending.insert(pending.key, pending);
        Ok(())
    }
    fn remove_pending(&mut self, key: &AuthorKey) -> Result<(), ProjectionError> {
        self.pending.remove(key);
        Ok(())
    }
    fn cursor(&self, key: &CursorKey) -> Result<Option<Cursor>, ProjectionError> {
        Ok(self.cursors.get(key).copied())
    }
    fn set_cursor(&mut self, key: CursorKey, cursor: Cursor) -> Result<(), ProjectionError> {
        self.cursors.insert(key, cursor);
        Ok(())
    }
    fn applied(&self) -> Result<Option<u64>, ProjectionError> {
        Ok(self.applied)
    }
    fn set_applied(&mut self, position: u64) -> Result<(), ProjectionError> {
        self.applied = Some(position);
        Ok(())
    }
}
