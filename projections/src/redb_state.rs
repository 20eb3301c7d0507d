//! The redb backend of [`State`]: versioned tables in the session's store, written inside the
//! append's write transaction.

use std::cell::RefCell;
use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wire_log::AuthorKey;

use crate::types::{Cursor, CursorKey, Identity, Peer, Pending};
use crate::{MemState, ProjectionError, State};

pub const IDENTITY: TableDefinition<&str, &[u8]> = TableDefinition::new("identity_v1");
pub const PEERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("peers_v1");
pub const PENDING: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("pending_v1");
pub const CURSORS: TableDefinition<&[u8; 64], &[u8]> = TableDefinition::new("cursors_v1");
pub const PROJECTION_META: TableDefinition<&str, u64> = TableDefinition::new("projection_meta_v1");

/// Names of every projection table, for documentation and audits.
pub const TABLES: [&str; 5] = [
    "identity_v1",
    "peers_v1",
    "pending_v1",
    "cursors_v1",
    "projection_meta_v1",
];

fn store_err(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Store(e.to_string())
}

fn to_cbor(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    // Invariant: these records hold only strings, integers, byte arrays and enums, all of
    // which CBOR can represent, and a Vec writer never fails.
    ciborium::into_writer(value, &mut out).expect("projection records always serialize");
    out
}

fn from_cbor<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, ProjectionError> {
    ciborium::from_reader(bytes).map_err(|e| ProjectionError::Record {
        table,
        reason: e.to_string(),
    })
}

/// Projection tables opened in one write transaction.
pub struct RedbState<'txn> {
    identity: redb::Table<'txn, &'static str, &'static [u8]>,
    peers: redb::Table<'txn, &'static [u8; 32], &'static [u8]>,
    pending: redb::Table<'txn, &'static [u8; 32], &'static [u8]>,
    cursors: redb::Table<'txn, &'static [u8; 64], &'static [u8]>,
    meta: redb::Table<'txn, &'static str, u64>,
    /// The identity record as last read or written in this transaction: every event's fold
    /// needs it, and decoding it each time was the fold's largest cost.
    identity_cache: RefCell<Option<Identity>>,
    /// Cursors as last read or written in this transaction: a segment of N events from one
    /// peer moves one cursor N times.
    cursor_cache: RefCell<HashMap<CursorKey, Cursor>>,
}

impl std::fmt::Debug for RedbState<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbState(..)")
    }
}

impl<'txn> RedbState<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, ProjectionError> {
        Ok(RedbState {
            identity: txn.open_table(IDENTITY).map_err(store_err)?,
            peers: txn.open_table(PEERS).map_err(store_err)?,
            pending: txn.open_table(PENDING).map_err(store_err)?,
            cursors: txn.open_table(CURSORS).map_err(store_err)?,
            meta: txn.open_table(PROJECTION_META).map_err(store_err)?,
            identity_cache: RefCell::new(None),
            cursor_cache: RefCell::new(HashMap::new()),
        })
    }

    /// Replaces the contents of every table with `state` (used by rebuild).
    pub fn replace_with(&mut self, state: &MemState) -> Result<(), ProjectionError> {
        self.identity.retain(|_, _| false).map_err(store_err)?;
        self.identity_cache.replace(None);
        self.cursor_cache.borrow_mut().clear();
        self.peers.retain(|_, _| false).map_err(store_err)?;
        self.pending.retain(|_, _| false).map_err(store_err)?;
        self.cursors.retain(|_, _| false).map_err(store_err)?;
        self.meta.retain(|_, _| false).map_err(store_err)?;
        if let Some(identity) = &state.identity {
            self.set_identity(identity.clone())?;
        }
        for peer in state.peers.values() {
            self.set_peer(peer.clone())?;
        }
        for pending in state.pending.values() {
            self.set_pending(pending.clone())?;
        }
        for (key, cursor) in &state.cursors {
            self.set_cursor(*key, *cursor)?;
        }
        if let Some(position) = state.applied {
            self.set_applied(position)?;
        }
        Ok(())
    }
}

impl State for RedbState<'_> {
    fn identity(&self) -> Result<Option<Identity>, ProjectionError> {
        if let Some(cached) = &*self.identity_cache.borrow() {
            return Ok(Some(cached.clone()));
        }
        let v = self.identity.get("self").map_err(store_err)?;
        let identity: Option<Identity> =
            v.map(|v| from_cbor("identity_v1", v.value())).transpose()?;
        self.identity_cache.replace(identity.clone());
        Ok(identity)
    }
    fn set_identity(&mut self, identity: Identity) -> Result<(), ProjectionError> {
        self.identity
            .insert("self", to_cbor(&identity).as_slice())
            .map_err(store_err)?;
        self.identity_cache.replace(Some(identity));
        Ok(())
    }
    fn peer(&self, key: &AuthorKey) -> Result<Option<Peer>, ProjectionError> {
        let v = self.peers.get(&key.0).map_err(store_err)?;
        v.map(|v| from_cbor("peers_v1", v.value())).transpose()
    }
    fn set_peer(&mut self, peer: Peer) -> Result<(), ProjectionError> {
        self.peers
            .insert(&peer.key.0, to_cbor(&peer).as_slice())
            .map_err(store_err)?;
        Ok(())
    }
    fn remove_peer(&mut self, key: &AuthorKey) -> Result<(), ProjectionError> {
        self.peers.remove(&key.0).map_err(store_err)?;
        Ok(())
    }
    fn pending(&self, key: &AuthorKey) -> Result<Option<Pending>, ProjectionError> {
        let v = self.pending.get(&key.0).map_err(store_err)?;
        v.map(|v| from_cbor("pending_v1", v.value())).transpose()
    }
    fn set_pending(&mut self, pending: Pending) -> Result<(), ProjectionError> {
        self.pending
            .insert(&pending.key.0, to_cbor(&pending).as_slice())
            .map_err(store_err)?;
        Ok(())
    }
    fn remove_pending(&mut self, key: &AuthorKey) -> Result<(), ProjectionError> {
        self.pending.remove(&key.0).map_err(store_err)?;
        Ok(())
    }
    fn cursor(&self, key: &CursorKey) -> Result<Option<Cursor>, ProjectionError> {
        if let Some(cached) = self.cursor_cache.borrow().get(key) {
            return Ok(Some(*cached));
        }
        let v = self.cursors.get(&key.to_bytes()).map_err(store_err)?;
        let cursor: Option<Cursor> = v.map(|v| from_cbor("cursors_v1", v.value())).transpose()?;
        if let Some(c) = cursor {
            self.cursor_cache.borrow_mut().insert(*key, c);
        }
        Ok(cursor)
    }
    fn set_cursor(&mut self, key: CursorKey, cursor: Cursor) -> Result<(), ProjectionError> {
        self.cursors
            .insert(&key.to_bytes(), to_cbor(&cursor).as_slice())
            .map_err(store_err)?;
        self.cursor_cache.borrow_mut().insert(key, cursor);
        Ok(())
    }
    fn applied(&self) -> Result<Option<u64>, ProjectionError> {
        Ok(self
            .meta
            .get("applied")
            .map_err(store_err)?
            .map(|v| v.value()))
    }
    fn set_applied(&mut self, position: u64) -> Result<(), ProjectionError> {
        self.meta.insert("applied", position).map_err(store_err)?;
        Ok(())
    }
}

/// Reads every projection table into memory. Missing tables read as empty (a fresh store).
pub fn read_all(txn: &ReadTransaction) -> Result<MemState, ProjectionError> {
    let mut state = MemState::default();
    if let Some(t) = open_read(txn, IDENTITY)?
        && let Some(v) = t.get("self").map_err(store_err)?
    {
        state.identity = Some(from_cbor("identity_v1", v.value())?);
    }
    if let Some(t) = open_read(txn, PEERS)? {
        for entry in t.iter().map_err(store_err)? {
            let (k, v) = entry.map_err(store_err)?;
            let peer: Peer = from_cbor("peers_v1", v.value())?;
            check_key("peers_v1", &peer.key.0, k.value())?;
            state.peers.insert(peer.key, peer);
        }
    }
    if let Some(t) = open_read(txn, PENDING)? {
        for entry in t.iter().map_err(store_err)? {
            let (k, v) = entry.map_err(store_err)?;
            let pending: Pending = from_cbor("pending_v1", v.value())?;
            check_key("pending_v1", &pending.key.0, k.value())?;
            state.pending.insert(pending.key, pending);
        }
    }
    if let Some(t) = open_read(txn, CURSORS)? {
        for entry in t.iter().map_err(store_err)? {
            let (k, v) = entry.map_err(store_err)?;
            let cursor: Cursor = from_cbor("cursors_v1", v.value())?;
            state
                .cursors
                .insert(CursorKey::from_bytes(k.value()), cursor);
        }
    }
    if let Some(t) = open_read(txn, PROJECTION_META)? {
        state.applied = t.get("applied").map_err(store_err)?.map(|v| v.value());
    }
    Ok(state)
}

/// One peer's record, read by key (what a send or a push needs, without the rest).
pub fn read_peer(txn: &ReadTransaction, key: &AuthorKey) -> Result<Option<Peer>, ProjectionError> {
    let Some(t) = open_read(txn, PEERS)? else {
        return Ok(None);
    };
    let Some(v) = t.get(&key.0).map_err(store_err)? else {
        return Ok(None);
    };
    let peer: Peer = from_cbor("peers_v1", v.value())?;
    check_key("peers_v1", &peer.key.0, &key.0)?;
    Ok(Some(peer))
}

/// One replication cursor, read by key.
pub fn read_cursor(
    txn: &ReadTransaction,
    key: &CursorKey,
) -> Result<Option<Cursor>, ProjectionError> {
    let Some(t) = open_read(txn, CURSORS)? else {
        return Ok(None);
    };
    t.get(&key.to_bytes())
        .map_err(store_err)?
        .map(|v| from_cbor("cursors_v1", v.value()))
        .transpose()
}

fn check_key(
    table: &'static str,
    record: &[u8; 32],
    key: &[u8; 32],
) -> Result<(), ProjectionError> {
    if record != key {
        return Err(ProjectionError::Record {
            table,
            reason: "record stored under another key".into(),
        });
    }
    Ok(())
}

fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, ProjectionError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(store_err(e)),
    }
}
