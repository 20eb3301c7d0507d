//! The redb event store: append with every check before writing, reads that check again, batched
//! durable appends, and the order table that replays the log as it was appended.
//!
//! Tables (all versioned; see `docs/PROTOCOL.md` §Store):
//! - `events_v1`: `log ‖ author ‖ seq(be)` → `position(be) ‖ signed event`
//! - `event_ids_v1`: event id → event key
//! - `heads_v1`: `log ‖ author` → `seq(be) ‖ id` of the chain's last event
//! - `order_v1`: position (from 0, in append order) → event key
//! - `meta_v1`: `format` → store format version, `owner` → the session's public key,
//!   `journal_epoch` → the epoch of `store.journal` whose frames the file may not hold yet
//!
//! Beside the file, `store.journal` makes a write durable with one small fsynced frame, and the
//! redb commit itself is not fsynced (ARCHITECTURE decision (ae), invariant 55): see
//! [`EventStore::write`] and [`crate::journal`].

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};

use crate::event::{DecodeError, SignedEvent, VerifiedEvent, VerifyError};
use crate::journal;
use crate::types::{AuthorKey, EventId, LogId};

mod durable;

use durable::{Durable, JOURNAL_EPOCH, open_journal};
pub use durable::{Fold, JOURNAL_CAPACITY, JOURNAL_FRAME_MAX, journal_path};

pub const EVENTS: TableDefinition<&[u8; 72], &[u8]> = TableDefinition::new("events_v1");
pub const EVENT_IDS: TableDefinition<&[u8; 32], &[u8; 72]> = TableDefinition::new("event_ids_v1");
pub const HEADS: TableDefinition<&[u8; 64], &[u8; 40]> = TableDefinition::new("heads_v1");
pub const ORDER: TableDefinition<u64, &[u8; 72]> = TableDefinition::new("order_v1");
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v1");

/// The store layout this build reads and writes.
pub const STORE_FORMAT: u8 = 1;

/// Where [`EventStore::scan`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// From the newest event backwards.
    Latest,
    /// From the event before this position backwards.
    Before(u64),
    /// From the event after this position forwards.
    After(u64),
}

/// Most events one batched append takes; bigger batches are split by the caller.
pub const APPEND_BATCH_MAX: usize = 65_536;

/// Where one event lives: its log, its author and its place in the author's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    pub log: LogId,
    pub author: AuthorKey,
    pub seq: u64,
}

impl EventKey {
    pub fn of(event: &crate::Event) -> EventKey {
        EventKey {
            log: event.log,
            author: event.author,
            seq: event.seq,
        }
    }

    pub fn to_bytes(&self) -> [u8; 72] {
        let mut out = [0u8; 72];
        out[..32].copy_from_slice(&self.log.0);
        out[32..64].copy_from_slice(&self.author.0);
        out[64..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn from_bytes(b: &[u8; 72]) -> EventKey {
        let mut log = [0u8; 32];
        let mut author = [0u8; 32];
        let mut seq = [0u8; 8];
        log.copy_from_slice(&b[..32]);
        author.copy_from_slice(&b[32..64]);
        seq.copy_from_slice(&b[64..]);
        EventKey {
            log: LogId(log),
            author: AuthorKey(author),
            seq: u64::from_be_bytes(seq),
        }
    }
}

fn chain_key(log: &LogId, author: &AuthorKey) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&log.0);
    out[32..].copy_from_slice(&author.0);
    out
}

fn head_value(seq: u64, id: &EventId) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&seq.to_be_bytes());
    out[8..].copy_from_slice(&id.0);
    out
}

fn parse_head(v: &[u8; 40]) -> (u64, EventId) {
    let mut seq = [0u8; 8];
    let mut id = [0u8; 32];
    seq.copy_from_slice(&v[..8]);
    id.copy_from_slice(&v[8..]);
    (u64::from_be_bytes(seq), EventId(id))
}

/// Splits a stored `events_v1` value into its order position and the signed event bytes.
pub fn split_stored(v: &[u8]) -> Option<(u64, &[u8])> {
    let (pos, rest) = v.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*pos), rest))
}

/// A failure of the store itself (the file, the database), not of an event.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {path} is in use by another process; stop it (`wire daemon stop`) or talk to it through the daemon"
    )]
    InUse { path: PathBuf },
    #[error("no store at {path}; create the session first with `wire init <handle>`")]
    Missing { path: PathBuf },
    #[error("a store already exists at {path}; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error(
        "the store {path} is damaged ({reason}); it was left untouched. Run `wire verify` for details and restore from a backup"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the store {path} has layout version {found}, this build reads {STORE_FORMAT}; upgrade wire"
    )]
    Format { path: PathBuf, found: u8 },
    /// The journal beside the store (its message names the file).
    #[error("{0}; the store was left as it was. Run `wire verify` for details")]
    Journal(String),
    #[error("store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
}

/// Why an event was not appended. Names the event so the operator can find it.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event #{index} of the batch does not decode: {source}")]
    Decode { index: usize, source: DecodeError },
    #[error("event #{index} of the batch: {source}")]
    Verify { index: usize, source: VerifyError },
    #[error(
        "log {log}: author {author} may not write to this log (only the owner writes its self log; a peer writes only the pair log it shares with the owner)"
    )]
    NotMember { log: LogId, author: AuthorKey },
    #[error(
        "log {log}, author {author}: expected seq {expected}, got seq {got} (a gap or a repeat)"
    )]
    SeqGap {
        log: LogId,
        author: AuthorKey,
        expected: u64,
        got: u64,
    },
    #[error(
        "log {log}, author {author}, seq {seq}: prev does not match the previous event's id (broken chain)"
    )]
    BrokenPrev {
        log: LogId,
        author: AuthorKey,
        seq: u64,
    },
    #[error(
        "log {log}, author {author}, seq {seq}: a different event already holds this place (the author forked its chain)"
    )]
    Conflict {
        log: LogId,
        author: AuthorKey,
        seq: u64,
    },
    #[error("a batch holds at most {APPEND_BATCH_MAX} events, got {0}")]
    BatchTooLarge(usize),
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored at this order position.
    Stored { position: u64 },
    /// The very same event was already stored; nothing changed.
    Duplicate,
}

/// Decodes and batch-verifies a batch of signed events, at most [`APPEND_BATCH_MAX`]; the
/// first bad one fails the batch and names its index. What every batch append starts with.
pub fn decode_batch(events: &[&[u8]]) -> Result<Vec<VerifiedEvent>, AppendError> {
    if events.len() > APPEND_BATCH_MAX {
        return Err(AppendError::BatchTooLarge(events.len()));
    }
    let decoded = events
        .iter()
        .enumerate()
        .map(|(index, b)| {
            SignedEvent::decode(b).map_err(|source| AppendError::Decode { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    crate::verify_all(decoded).map_err(|(index, source)| AppendError::Verify { index, source })
}

/// A session's event store: one redb file and its journal.
#[derive(Debug)]
pub struct EventStore {
    db: Database,
    path: PathBuf,
    owner: AuthorKey,
    /// The journal and the relaxed writes waiting for it (`durable.rs`).
    durable: Durable,
}

impl EventStore {
    /// Creates a new store for the session whose key is `owner`; refuses if the file exists.
    pub fn create(path: &Path, owner: AuthorKey) -> Result<EventStore, StoreError> {
        // The store holds who we talk to and what was said: owner-only, like the key. The file
        // is created 0600 here (exclusively, so an existing store is never taken over), and
        // redb then initialises the empty file; it is never open to others, whatever the umask.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        StoreError::Exists {
                            path: path.to_owned(),
                        }
                    } else {
                        map_db(path, redb::Error::Io(e))
                    }
                })?;
        }
        let db = Database::create(path).map_err(|e| map_db(path, e.into()))?;
        // A journal left by an earlier store of the same name is not ours: emptied.
        let mut journal = open_journal(path)?;
        journal.restart(0).map_err(StoreError::from)?;
        let store = EventStore {
            db,
            path: path.to_owned(),
            owner,
            durable: Durable::new(journal),
        };
        store.write(|w| -> Result<(), StoreError> {
            let mut meta = w
                .txn
                .open_table(META)
                .map_err(|e| map_db(w.path, e.into()))?;
            meta.insert("format", &[STORE_FORMAT][..])
                .map_err(|e| map_db(w.path, e.into()))?;
            meta.insert("owner", &owner.0[..])
                .map_err(|e| map_db(w.path, e.into()))?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Opens an existing store, checks its layout version and replays its journal: every event
    /// of the journal's current epoch that the file does not hold yet is appended again, in the
    /// order it was first appended, and handed to `fold` with its position (the projections
    /// kept in the same file), all in one durable commit.
    pub fn open(path: &Path, fold: &mut Fold<'_>) -> Result<EventStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        let db = Database::open(path).map_err(|e| map_db(path, e.into()))?;
        let journal = open_journal(path)?;
        let mut store = EventStore {
            db,
            path: path.to_owned(),
            owner: AuthorKey([0; 32]),
            durable: Durable::new(journal),
        };
        let txn = store.read_txn()?;
        let meta = txn
            .open_table(META)
            .map_err(|e| store.corrupt(format!("no meta table ({e})")))?;
        let format = meta
            .get("format")
            .map_err(|e| store.db_err(e.into()))?
            .ok_or_else(|| store.corrupt("no format entry".into()))?;
        match format.value() {
            [STORE_FORMAT] => {}
            [found] => {
                return Err(StoreError::Format {
                    path: path.to_owned(),
                    found: *found,
                });
            }
            _ => return Err(store.corrupt("format entry is not one byte".into())),
        }
        drop(format);
        let owner_guard = meta
            .get("owner")
            .map_err(|e| store.db_err(e.into()))?
            .ok_or_else(|| store.corrupt("no owner entry".into()))?;
        let owner = <[u8; 32]>::try_from(owner_guard.value())
            .map_err(|_| store.corrupt("owner entry is not 32 bytes".into()))?;
        // Every guard goes before the replay's write: a guard pins its page.
        drop(owner_guard);
        let epoch = match meta
            .get(JOURNAL_EPOCH)
            .map_err(|e| store.db_err(e.into()))?
        {
            None => 0,
            Some(v) => u64::from_be_bytes(
                <[u8; 8]>::try_from(v.value())
                    .map_err(|_| store.corrupt("journal epoch is not 8 bytes".into()))?,
            ),
        };
        drop(meta);
        drop(txn);
        store.owner = AuthorKey(owner);
        store.replay(epoch, fold)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The session key this store belongs to.
    pub fn owner(&self) -> AuthorKey {
        self.owner
    }

    /// The database, for tables other crates keep in the same file (projections).
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn read_txn(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| self.db_err(e.into()))
    }

    pub(crate) fn db_err(&self, e: redb::Error) -> StoreError {
        map_db(&self.path, e)
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// Decodes, verifies and appends one event durably.
    pub fn append(&self, bytes: &[u8]) -> Result<AppendOutcome, AppendError> {
        let mut out = self.append_batch(&[bytes])?;
        // Invariant: append_batch returns one outcome per input.
        Ok(out.pop().expect("one outcome per event"))
    }

    /// Decodes, batch-verifies and appends many events in one durable transaction. All or
    /// nothing: the first bad event fails the whole batch and names its index.
    pub fn append_batch(&self, events: &[&[u8]]) -> Result<Vec<AppendOutcome>, AppendError> {
        let verified = decode_batch(events)?;
        self.write(|w| verified.iter().map(|e| w.append(e)).collect())
    }

    /// The last event of a chain: its seq and id.
    pub fn head(
        &self,
        log: &LogId,
        author: &AuthorKey,
    ) -> Result<Option<(u64, EventId)>, StoreError> {
        let txn = self.read_txn()?;
        let heads = match txn.open_table(HEADS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.db_err(e.into())),
        };
        let head = heads
            .get(&chain_key(log, author))
            .map_err(|e| self.db_err(e.into()))?;
        Ok(head.map(|v| parse_head(v.value())))
    }

    /// Number of events stored.
    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.read_txn()?;
        match txn.open_table(ORDER) {
            Ok(t) => t.len().map_err(|e| self.db_err(e.into())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.db_err(e.into())),
        }
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Reads one event back, checking its encoding, signature and place again.
    pub fn get(&self, key: &EventKey) -> Result<Option<VerifiedEvent>, StoreError> {
        let txn = self.read_txn()?;
        let events = match txn.open_table(EVENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.db_err(e.into())),
        };
        let Some(stored) = events
            .get(&key.to_bytes())
            .map_err(|e| self.db_err(e.into()))?
        else {
            return Ok(None);
        };
        self.check_stored(key, stored.value()).map(Some)
    }

    /// Reads a chain in order after `after_seq`, at most `limit` events, checking every
    /// signature and every link on the way out.
    pub fn read_chain(
        &self,
        log: &LogId,
        author: &AuthorKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<VerifiedEvent>, StoreError> {
        let txn = self.read_txn()?;
        let events = match txn.open_table(EVENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.db_err(e.into())),
        };
        let start = EventKey {
            log: *log,
            author: *author,
            seq: after_seq.saturating_add(1),
        }
        .to_bytes();
        let end = EventKey {
            log: *log,
            author: *author,
            seq: u64::MAX,
        }
        .to_bytes();
        let mut decoded = Vec::new();
        for entry in events
            .range::<&[u8; 72]>(&start..=&end)
            .map_err(|e| self.db_err(e.into()))?
        {
            if decoded.len() >= limit {
                break;
            }
            let (k, v) = entry.map_err(|e| self.db_err(e.into()))?;
            let key = EventKey::from_bytes(k.value());
            let (_, bytes) = split_stored(v.value())
                .ok_or_else(|| self.corrupt(format!("event {key:?} has no position")))?;
            let event = SignedEvent::decode(bytes).map_err(|e| {
                self.corrupt(format!(
                    "log {}, author {}, seq {}: {e}",
                    key.log, key.author, key.seq
                ))
            })?;
            if EventKey::of(&event.event) != key {
                return Err(self.corrupt(format!(
                    "log {}, author {}, seq {}: stored under the wrong key",
                    key.log, key.author, key.seq
                )));
            }
            decoded.push(event);
        }
        let verified = crate::verify_all(decoded)
            .map_err(|(i, e)| self.corrupt(format!("{}th event read back: {e}", i + 1)))?;
        let mut prev: Option<EventId> = None;
        for (expected, e) in (after_seq + 1..).zip(&verified) {
            if e.seq != expected {
                return Err(self.corrupt(format!(
                    "log {log}, author {author}: seq {} where {expected} was expected",
                    e.seq
                )));
            }
            if let Some(p) = prev
                && e.prev != Some(p)
            {
                return Err(self.corrupt(format!(
                    "log {log}, author {author}, seq {}: prev does not link",
                    e.seq
                )));
            }
            prev = Some(e.id());
        }
        Ok(verified)
    }

    /// Events in append order whose key passes `keep`, at most `limit`, each decoded and
    /// verified on the way out; returned oldest first with their positions. `Scan::Latest`
    /// walks back from the end, `Scan::Before(p)` back from `p - 1`, `Scan::After(p)` forward
    /// from `p + 1`.
    pub fn scan(
        &self,
        from: Scan,
        limit: usize,
        mut keep: impl FnMut(&EventKey) -> bool,
    ) -> Result<Vec<(u64, VerifiedEvent)>, StoreError> {
        let txn = self.read_txn()?;
        let (order, events) = match (txn.open_table(ORDER), txn.open_table(EVENTS)) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(redb::TableError::TableDoesNotExist(_)), _)
            | (_, Err(redb::TableError::TableDoesNotExist(_))) => return Ok(Vec::new()),
            (Err(e), _) | (_, Err(e)) => return Err(self.db_err(e.into())),
        };
        let mut out = Vec::new();
        let mut visit = |entry: Result<
            (redb::AccessGuard<'_, u64>, redb::AccessGuard<'_, &[u8; 72]>),
            redb::StorageError,
        >|
         -> Result<bool, StoreError> {
            let (pos, k) = entry.map_err(|e| self.db_err(e.into()))?;
            let key = EventKey::from_bytes(k.value());
            if keep(&key) {
                let stored = events
                    .get(k.value())
                    .map_err(|e| self.db_err(e.into()))?
                    .ok_or_else(|| {
                        self.corrupt(format!("order position {} has no event", pos.value()))
                    })?;
                out.push((pos.value(), self.check_stored(&key, stored.value())?));
            }
            Ok(out.len() < limit)
        };
        match from {
            Scan::Latest => {
                for entry in order.iter().map_err(|e| self.db_err(e.into()))?.rev() {
                    if !visit(entry)? {
                        break;
                    }
                }
                out.reverse();
            }
            Scan::Before(p) => {
                for entry in order.range(..p).map_err(|e| self.db_err(e.into()))?.rev() {
                    if !visit(entry)? {
                        break;
                    }
                }
                out.reverse();
            }
            Scan::After(p) => {
                for entry in order
                    .range(p.saturating_add(1)..)
                    .map_err(|e| self.db_err(e.into()))?
                {
                    if !visit(entry)? {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The position of the last event appended, if any.
    pub fn last_position(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read_txn()?;
        match txn.open_table(ORDER) {
            Ok(t) => Ok(t
                .last()
                .map_err(|e| self.db_err(e.into()))?
                .map(|(k, _)| k.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.db_err(e.into())),
        }
    }

    fn check_stored(&self, key: &EventKey, stored: &[u8]) -> Result<VerifiedEvent, StoreError> {
        let at = || format!("log {}, author {}, seq {}", key.log, key.author, key.seq);
        let (_, bytes) =
            split_stored(stored).ok_or_else(|| self.corrupt(format!("{}: no position", at())))?;
        let event =
            SignedEvent::decode(bytes).map_err(|e| self.corrupt(format!("{}: {e}", at())))?;
        if EventKey::of(&event.event) != *key {
            return Err(self.corrupt(format!("{}: stored under the wrong key", at())));
        }
        event
            .verify()
            .map_err(|e| self.corrupt(format!("{}: {e}", at())))
    }
}

/// The log-integrity rule for who writes where, relative to the store's owner.
pub fn may_write(owner: &AuthorKey, log: &LogId, author: &AuthorKey) -> bool {
    // The owner's own events are checked by the engine that signs them (which log it may
    // address); a store can only check that nobody else writes anywhere but its pair log.
    author == owner || LogId::pair_log(owner, author) == *log
}

fn map_db(path: &Path, e: redb::Error) -> StoreError {
    match e {
        redb::Error::DatabaseAlreadyOpen => StoreError::InUse {
            path: path.to_owned(),
        },
        redb::Error::Corrupted(reason) => StoreError::Corrupt {
            path: path.to_owned(),
            reason,
        },
        source => StoreError::Db {
            path: path.to_owned(),
            source,
        },
    }
}

/// Appends inside one write transaction. Every check happens before anything is written.
pub struct LogWriter<'txn> {
    pub txn: &'txn WriteTransaction,
    path: &'txn Path,
    events: redb::Table<'txn, &'static [u8; 72], &'static [u8]>,
    ids: redb::Table<'txn, &'static [u8; 32], &'static [u8; 72]>,
    heads: redb::Table<'txn, &'static [u8; 64], &'static [u8; 40]>,
    order: redb::Table<'txn, u64, &'static [u8; 72]>,
    owner: AuthorKey,
    next_position: u64,
    /// The journal frame's body so far: every event appended, length-prefixed.
    frame: Vec<u8>,
    appended: u32,
}

impl std::fmt::Debug for LogWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("next_position", &self.next_position)
            .finish_non_exhaustive()
    }
}

impl<'txn> LogWriter<'txn> {
    fn new(
        txn: &'txn WriteTransaction,
        path: &'txn Path,
        owner: AuthorKey,
    ) -> Result<Self, StoreError> {
        let err = |e: redb::TableError| map_db(path, e.into());
        let order = txn.open_table(ORDER).map_err(err)?;
        let next_position = match order.last().map_err(|e| map_db(path, e.into()))? {
            Some((k, _)) => k.value() + 1,
            None => 0,
        };
        Ok(LogWriter {
            txn,
            path,
            events: txn.open_table(EVENTS).map_err(err)?,
            ids: txn.open_table(EVENT_IDS).map_err(err)?,
            heads: txn.open_table(HEADS).map_err(err)?,
            order,
            owner,
            next_position,
            frame: Vec::new(),
            appended: 0,
        })
    }

    /// Whether `author` may write to `log` in this store: the owner writes its self log and
    /// the pair logs it shares; anyone else writes only the pair log it shares with the owner.
    pub fn may_write(&self, log: &LogId, author: &AuthorKey) -> bool {
        may_write(&self.owner, log, author)
    }

    /// The head of a chain as this transaction sees it.
    pub fn head(
        &self,
        log: &LogId,
        author: &AuthorKey,
    ) -> Result<Option<(u64, EventId)>, StoreError> {
        let head = self
            .heads
            .get(&chain_key(log, author))
            .map_err(|e| map_db(self.path, e.into()))?;
        Ok(head.map(|v| parse_head(v.value())))
    }

    /// Appends one verified event after checking membership, seq and prev.
    pub fn append(&mut self, event: &VerifiedEvent) -> Result<AppendOutcome, AppendError> {
        let (log, author, seq) = (event.log, event.author, event.seq);
        if !self.may_write(&log, &author) {
            return Err(AppendError::NotMember { log, author });
        }
        let head = self.head(&log, &author)?;
        let expected = head.map_or(1, |(s, _)| s + 1);
        if seq < expected {
            // Already have this place in the chain: the same event is a no-op, another is a fork.
            let key = EventKey::of(event).to_bytes();
            let existing = self
                .ids
                .get(&event.id().0)
                .map_err(|e| map_db(self.path, e.into()))?;
            return match existing {
                Some(k) if *k.value() == key => Ok(AppendOutcome::Duplicate),
                _ => Err(AppendError::Conflict { log, author, seq }),
            };
        }
        if seq > expected {
            return Err(AppendError::SeqGap {
                log,
                author,
                expected,
                got: seq,
            });
        }
        if event.prev != head.map(|(_, id)| id) {
            return Err(AppendError::BrokenPrev { log, author, seq });
        }
        let key = EventKey::of(event).to_bytes();
        let position = self.next_position;
        let mut stored = Vec::with_capacity(8 + event.signed_bytes().len());
        stored.extend_from_slice(&position.to_be_bytes());
        stored.extend_from_slice(event.signed_bytes());
        self.events
            .insert(&key, stored.as_slice())
            .map_err(|e| map_db(self.path, e.into()))?;
        self.ids
            .insert(&event.id().0, &key)
            .map_err(|e| map_db(self.path, e.into()))?;
        self.heads
            .insert(&chain_key(&log, &author), &head_value(seq, &event.id()))
            .map_err(|e| map_db(self.path, e.into()))?;
        self.order
            .insert(position, &key)
            .map_err(|e| map_db(self.path, e.into()))?;
        self.next_position += 1;
        journal::push_prefixed(&mut self.frame, event.signed_bytes());
        self.appended += 1;
        Ok(AppendOutcome::Stored { position })
    }
}
