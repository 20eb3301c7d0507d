//! How a write becomes durable: the journal beside the store (ARCHITECTURE decisions (ae),
//! (af); invariants 55, 56). A write is one fsynced frame of the events it appended, then a
//! redb commit without an fsync; a relaxed write waits in memory for the next sync or durable
//! write; a checkpoint is a durable redb commit that starts a new, empty journal epoch; an
//! open replays the frames of the current epoch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Durability, WriteTransaction};

use super::{AppendError, AppendOutcome, EventStore, LogWriter, META, StoreError};
use crate::event::{SignedEvent, VerifiedEvent};
use crate::journal::{self, Journal, JournalError};

/// Bytes of frames `store.journal` holds between two durable commits (checkpoints).
pub const JOURNAL_CAPACITY: u64 = 2 << 20;
/// A transaction whose frame would be bigger than this commits durably instead: a big batch
/// (a catch-up page) costs one durable commit either way, and the journal stays small.
pub const JOURNAL_FRAME_MAX: u64 = 64 << 10;
const JOURNAL_MAGIC: [u8; 4] = *b"wse1";
pub(super) const JOURNAL_EPOCH: &str = "journal_epoch";

/// Folds one event replayed from the journal into whatever else the store's file holds
/// (projections), inside the replay's write transaction; see [`EventStore::open`].
pub type Fold<'a> = dyn FnMut(&WriteTransaction, &VerifiedEvent, u64) -> Result<(), String> + 'a;

/// The journal and the entries of relaxed writes not yet in it.
#[derive(Debug)]
pub(super) struct Journaled {
    journal: Journal,
    /// Frame body entries of the relaxed writes since the last sync, in commit order.
    pending: Vec<u8>,
    pending_count: u32,
    /// A relaxed write too big for a frame committed without one: the next sync or durable
    /// write must be a durable commit (a frame would not carry it).
    needs_checkpoint: bool,
}

impl Journaled {
    pub(super) fn new(journal: Journal) -> Journaled {
        Journaled {
            journal,
            pending: Vec::new(),
            pending_count: 0,
            needs_checkpoint: false,
        }
    }

    fn clear_pending(&mut self, unsynced: &AtomicBool) {
        self.pending.clear();
        self.pending_count = 0;
        self.needs_checkpoint = false;
        unsynced.store(false, Ordering::Release);
    }
}

/// Where the journal of the store at `path` lives: beside it, `store.journal`.
pub fn journal_path(path: &Path) -> PathBuf {
    path.with_extension("journal")
}

impl EventStore {
    /// Appends again what the journal's frames of `epoch` hold and the file does not, then
    /// starts the journal afresh.
    pub(super) fn replay(&self, epoch: u64, fold: &mut Fold<'_>) -> Result<(), StoreError> {
        let mut guard = self.lock_journal();
        let journal = &mut guard.journal;
        let mut events = Vec::new();
        let frames = journal.replay(epoch, |count, body| {
            let mut rest = body;
            for _ in 0..count {
                let (bytes, tail) = journal::split_prefixed(rest).ok_or_else(|| {
                    self.corrupt("a journal frame has a valid checksum but a short entry".into())
                })?;
                let event = SignedEvent::decode(bytes)
                    .map_err(|e| self.corrupt(format!("an event in the journal: {e}")))?;
                events.push(event);
                rest = tail;
            }
            Ok::<_, StoreError>(())
        })?;
        if frames == 0 {
            return journal.restart(epoch).map_err(StoreError::from);
        }
        let verified = crate::verify_all(events)
            .map_err(|(i, e)| self.corrupt(format!("event #{i} in the journal: {e}")))?;
        let txn = self.db.begin_write().map_err(|e| self.db_err(e.into()))?;
        {
            let mut w = LogWriter::new(&txn, &self.path, self.owner)?;
            for event in &verified {
                match w.append(event) {
                    Ok(AppendOutcome::Duplicate) => {}
                    Ok(AppendOutcome::Stored { position }) => {
                        fold(&txn, event, position).map_err(|e| {
                            self.corrupt(format!("an event in the journal does not fold: {e}"))
                        })?;
                    }
                    Err(AppendError::Store(e)) => return Err(e),
                    Err(e) => {
                        return Err(self.corrupt(format!("an event in the journal: {e}")));
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(|e| self.db_err(e.into()))?;
            meta.insert(JOURNAL_EPOCH, &(epoch + 1).to_be_bytes()[..])
                .map_err(|e| self.db_err(e.into()))?;
        }
        txn.commit().map_err(|e| self.db_err(e.into()))?;
        journal.restart(epoch + 1).map_err(StoreError::from)
    }

    /// The journal's epoch and the bytes of frames in it.
    pub fn journal_state(&self) -> (u64, u64) {
        let j = self.lock_journal();
        (j.journal.epoch(), j.journal.len())
    }

    /// Whether relaxed writes are waiting for [`sync`](Self::sync).
    pub fn needs_sync(&self) -> bool {
        self.unsynced.load(Ordering::Acquire)
    }

    /// Makes every relaxed write so far durable: their entries as one frame of the journal,
    /// fsynced (or, if it is full or failed, one durable commit). Call it before anything a
    /// relaxed write stored or signed leaves the process (invariant 56).
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut j = self.lock_journal();
        if j.pending_count == 0 && !j.needs_checkpoint {
            return Ok(());
        }
        let bytes = journal::frame_len(j.pending.len());
        if j.needs_checkpoint || !j.journal.fits(bytes) || j.journal.check().is_err() {
            let txn = self.db.begin_write().map_err(|e| self.db_err(e.into()))?;
            return self.checkpoint_with(&mut j, txn);
        }
        let Journaled {
            journal,
            pending,
            pending_count,
            ..
        } = &mut *j;
        let count = *pending_count;
        journal
            .write(|buf| {
                buf.extend_from_slice(pending);
                count
            })
            .map_err(StoreError::from)?;
        j.clear_pending(&self.unsynced);
        Ok(())
    }

    /// Commits durably and starts a new, empty journal epoch, so that nothing is left to
    /// replay; a no-op when the journal is empty. Called when the store is dropped.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut j = self.lock_journal();
        if j.journal.is_empty() && j.pending_count == 0 && !j.needs_checkpoint {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.db_err(e.into()))?;
        self.checkpoint_with(&mut j, txn)?;
        let next = j.journal.epoch();
        if j.journal.check().is_ok() {
            j.journal.restart(next).map_err(StoreError::from)?;
        }
        Ok(())
    }

    /// Commits `txn` durably with the next epoch: it holds every frame and every relaxed write
    /// before it, so the journal starts again empty.
    fn checkpoint_with(&self, j: &mut Journaled, txn: WriteTransaction) -> Result<(), StoreError> {
        let next = j.journal.epoch() + 1;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.db_err(e.into()))?;
            meta.insert(JOURNAL_EPOCH, &next.to_be_bytes()[..])
                .map_err(|e| self.db_err(e.into()))?;
        }
        txn.commit().map_err(|e| self.db_err(e.into()))?;
        j.journal.reset(next);
        j.clear_pending(&self.unsynced);
        Ok(())
    }

    pub(super) fn lock_journal(&self) -> std::sync::MutexGuard<'_, Journaled> {
        // A panic while holding it leaves nothing half-done that the journal's own state does
        // not cover (a failed write poisons it).
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one durable write transaction: everything it appends, and everything it
    /// writes to other tables through [`LogWriter::txn`], commits together or not at all.
    ///
    /// Durable means: the events it appended are in a frame of the journal, fsynced, before the
    /// transaction commits (without an fsync of its own), so nothing of it is visible to a
    /// reader, and nothing can leave the process, before it would survive a crash. The frame
    /// also carries every relaxed write before it. A transaction that appended no event, one
    /// whose frame would be over [`JOURNAL_FRAME_MAX`], one that finds the journal full and any
    /// after a journal failure commit durably instead; that starts a new epoch in the same
    /// commit.
    pub fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut LogWriter<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.write_with(false, f)
    }

    /// Like [`write`](Self::write), but the transaction's events go to the journal only at the
    /// next [`sync`](Self::sync) or durable write (or, for a write too big for a frame, that is
    /// a durable commit): visible at once, and lost by a crash before that. For ingesting what a peer still holds and will send again until we acknowledge it,
    /// which happens only after a sync (ARCHITECTURE decision (af), invariant 56).
    pub fn write_relaxed<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut LogWriter<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.write_with(true, f)
    }

    fn write_with<R, E: From<StoreError>>(
        &self,
        relaxed: bool,
        f: impl FnOnce(&mut LogWriter<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut j = self.lock_journal();
        let mut txn = self.db.begin_write().map_err(|e| self.db_err(e.into()))?;
        let (result, frame, count) = {
            let mut writer = LogWriter::new(&txn, &self.path, self.owner)?;
            let result = f(&mut writer)?;
            (result, std::mem::take(&mut writer.frame), writer.appended)
        };
        if count == 0 {
            // Nothing for a frame: a plain durable commit, which holds every write before it.
            txn.commit().map_err(|e| self.db_err(e.into()))?;
            j.clear_pending(&self.unsynced);
            return Ok(result);
        }
        let body = j.pending.len() + frame.len();
        let bytes = journal::frame_len(body);
        let journal_ok = j.journal.check().is_ok();
        if relaxed {
            // Too big for a frame (a catch-up page): the next sync is a durable commit instead,
            // so a stream of pages shares the commits their acknowledgements ask for.
            let framed = bytes <= JOURNAL_FRAME_MAX && journal_ok && !j.needs_checkpoint;
            txn.set_durability(Durability::None)
                .map_err(|e| StoreError::Journal(e.to_string()))?;
            txn.commit().map_err(|e| self.db_err(e.into()))?;
            if framed {
                j.pending.extend_from_slice(&frame);
                j.pending_count += count;
            } else {
                j.needs_checkpoint = true;
            }
            self.unsynced.store(true, Ordering::Release);
            return Ok(result);
        }
        if j.needs_checkpoint || bytes > JOURNAL_FRAME_MAX || !j.journal.fits(bytes) || !journal_ok
        {
            self.checkpoint_with(&mut j, txn)?;
            return Ok(result);
        }
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Journal(e.to_string()))?;
        let Journaled {
            journal,
            pending,
            pending_count,
            ..
        } = &mut *j;
        let entries = *pending_count + count;
        if let Err(e) = journal.write(|buf| {
            buf.extend_from_slice(pending);
            buf.extend_from_slice(&frame);
            entries
        }) {
            // Poisoned: every later write commits durably, in a new epoch, so this frame (which
            // may have reached the disk) is never replayed over what is appended after it.
            txn.abort().map_err(|e| self.db_err(e.into()))?;
            return Err(E::from(StoreError::from(e)));
        }
        j.clear_pending(&self.unsynced);
        if let Err(e) = txn.commit() {
            j.journal.poison(&e.to_string());
            return Err(E::from(self.db_err(e.into())));
        }
        Ok(result)
    }
}

impl Drop for EventStore {
    fn drop(&mut self) {
        // Best effort: whatever this leaves in the journal is replayed at the next open.
        let _ = self.checkpoint();
    }
}

pub(super) fn open_journal(path: &Path) -> Result<Journal, StoreError> {
    Journal::open(&journal_path(path), JOURNAL_MAGIC, JOURNAL_CAPACITY).map_err(StoreError::from)
}

impl From<JournalError> for StoreError {
    fn from(e: JournalError) -> StoreError {
        StoreError::Journal(e.0)
    }
}
