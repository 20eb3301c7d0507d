//! How a write becomes durable: the journal beside the store (ARCHITECTURE decisions (ae),
//! (af); invariants 55, 56). A write is one fsynced frame of the events it appended, then a
//! redb commit without an fsync; a relaxed write waits in memory for the next sync or durable
//! write; a checkpoint is a durable redb commit that starts a new, empty journal epoch; an
//! open replays the frames of the current epoch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

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

/// The journal and the relaxed writes not yet in it, under two locks taken in this order:
/// `journal` is held across a frame's write and fsync (frames go to the file one at a time, so
/// only the last one can be torn), `pending` only while a write transaction runs or while a
/// sync takes the entries for its frame. A relaxed write therefore never waits for an fsync:
/// it goes into the next frame while the current one is being synced.
#[derive(Debug)]
pub(super) struct Durable {
    journal: Mutex<Journal>,
    pending: Mutex<Pending>,
    /// Relaxed writes so far; advanced under `pending`.
    written: AtomicU64,
    /// Relaxed writes known durable (every one up to this count); advanced after an fsync.
    synced: AtomicU64,
}

/// Frame body entries of the relaxed writes since the last sync took them, in commit order.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    count: u32,
    /// A relaxed write too big for a frame committed without one, or a frame that failed:
    /// the next sync or durable write must be a durable commit (a frame would not carry it).
    needs_checkpoint: bool,
}

impl Durable {
    pub(super) fn new(journal: Journal) -> Durable {
        Durable {
            journal: Mutex::new(journal),
            pending: Mutex::new(Pending::default()),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        }
    }

    fn lock_journal(&self) -> MutexGuard<'_, Journal> {
        // A panic while holding it leaves nothing half-done that the journal's own state does
        // not cover (a failed write poisons it).
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every relaxed write up to `written` (read under `pending`) is durable.
    fn mark_synced(&self, written: u64) {
        self.synced.fetch_max(written, Ordering::AcqRel);
    }

    /// Empties `p`, whose writes a durable commit or frame now holds.
    fn clear(&self, p: &mut Pending) {
        p.bytes.clear();
        p.count = 0;
        p.needs_checkpoint = false;
        self.mark_synced(self.written.load(Ordering::Acquire));
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
        let mut journal = self.durable.lock_journal();
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
        let j = self.durable.lock_journal();
        (j.epoch(), j.len())
    }

    /// Whether relaxed writes are waiting for [`sync`](Self::sync).
    pub fn needs_sync(&self) -> bool {
        let d = &self.durable;
        d.synced.load(Ordering::Acquire) < d.written.load(Ordering::Acquire)
    }

    /// Makes every relaxed write so far durable: their entries as one frame of the journal,
    /// fsynced (or, if it is full or failed, one durable commit). Call it before anything a
    /// relaxed write stored or signed leaves the process (invariant 56). Relaxed writes made
    /// while the frame is being synced go to the next one: they never wait for this fsync.
    /// Returns once a frame in flight that holds the writes made so far is on disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        let d = &self.durable;
        let target = d.written.load(Ordering::Acquire);
        if d.synced.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        // Waits for a frame in flight, which may hold ours.
        let mut j = d.lock_journal();
        if d.synced.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let mut p = d.lock_pending();
        let upto = d.written.load(Ordering::Acquire);
        if p.count == 0 && !p.needs_checkpoint {
            d.mark_synced(upto);
            return Ok(());
        }
        let bytes = journal::frame_len(p.bytes.len());
        if p.needs_checkpoint || !j.fits(bytes) || j.check().is_err() {
            // Rare (the journal full, or a write too big for a frame): relaxed writes wait for
            // this one durable commit, which holds them all.
            let txn = self.db.begin_write().map_err(|e| self.db_err(e.into()))?;
            return self.checkpoint_with(&mut j, &mut p, txn);
        }
        let body = std::mem::take(&mut p.bytes);
        let count = std::mem::take(&mut p.count);
        drop(p);
        match j.write(|buf| {
            buf.extend_from_slice(&body);
            count
        }) {
            Ok(()) => {
                d.mark_synced(upto);
                Ok(())
            }
            Err(e) => {
                // Those entries are in the file's relaxed commits still: one durable commit
                // holds them, and the poisoned journal sends the next sync there.
                d.lock_pending().needs_checkpoint = true;
                Err(StoreError::from(e))
            }
        }
    }

    /// Commits durably and starts a new, empty journal epoch, so that nothing is left to
    /// replay; a no-op when the journal is empty. Called when the store is dropped.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut j = self.durable.lock_journal();
        let mut p = self.durable.lock_pending();
        if j.is_empty() && p.count == 0 && !p.needs_checkpoint {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.db_err(e.into()))?;
        self.checkpoint_with(&mut j, &mut p, txn)?;
        let next = j.epoch();
        if j.check().is_ok() {
            j.restart(next).map_err(StoreError::from)?;
        }
        Ok(())
    }

    /// Commits `txn` durably with the next epoch: it holds every frame and every relaxed write
    /// before it, so the journal starts again empty.
    fn checkpoint_with(
        &self,
        j: &mut Journal,
        p: &mut Pending,
        txn: WriteTransaction,
    ) -> Result<(), StoreError> {
        let next = j.epoch() + 1;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.db_err(e.into()))?;
            meta.insert(JOURNAL_EPOCH, &next.to_be_bytes()[..])
                .map_err(|e| self.db_err(e.into()))?;
        }
        txn.commit().map_err(|e| self.db_err(e.into()))?;
        j.reset(next);
        self.durable.clear(p);
        Ok(())
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
        let d = &self.durable;
        // A durable write's frame goes after any in flight and carries the relaxed writes
        // before it; a relaxed one takes only `pending`, and so never waits for an fsync.
        let mut j = (!relaxed).then(|| d.lock_journal());
        let mut p = d.lock_pending();
        let mut txn = self.db.begin_write().map_err(|e| self.db_err(e.into()))?;
        let (result, frame, count) = {
            let mut writer = LogWriter::new(&txn, &self.path, self.owner)?;
            let result = f(&mut writer)?;
            (result, std::mem::take(&mut writer.frame), writer.appended)
        };
        if count == 0 {
            // Nothing for a frame: a plain durable commit, which holds every write before it.
            txn.commit().map_err(|e| self.db_err(e.into()))?;
            d.clear(&mut p);
            return Ok(result);
        }
        let body = p.bytes.len() + frame.len();
        let bytes = journal::frame_len(body);
        let Some(j) = j.as_mut() else {
            // Relaxed. Too big for a frame (a catch-up page): the next sync is a durable commit
            // instead, so a stream of pages shares the commits their acknowledgements ask for.
            let framed = bytes <= JOURNAL_FRAME_MAX && !p.needs_checkpoint;
            txn.set_durability(Durability::None)
                .map_err(|e| StoreError::Journal(e.to_string()))?;
            // Counted before the commit makes the write visible: a reader that sees it (a
            // pusher's `chain_after`) then finds `needs_sync` true. A failed commit leaves the
            // count high, which costs a sync that finds nothing to frame.
            d.written.fetch_add(1, Ordering::AcqRel);
            txn.commit().map_err(|e| self.db_err(e.into()))?;
            if framed {
                p.bytes.extend_from_slice(&frame);
                p.count += count;
            } else {
                p.needs_checkpoint = true;
            }
            return Ok(result);
        };
        if p.needs_checkpoint || bytes > JOURNAL_FRAME_MAX || !j.fits(bytes) || j.check().is_err() {
            self.checkpoint_with(j, &mut p, txn)?;
            return Ok(result);
        }
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Journal(e.to_string()))?;
        let entries = p.count + count;
        if let Err(e) = j.write(|buf| {
            buf.extend_from_slice(&p.bytes);
            buf.extend_from_slice(&frame);
            entries
        }) {
            // Poisoned: every later write commits durably, in a new epoch, so this frame (which
            // may have reached the disk) is never replayed over what is appended after it.
            txn.abort().map_err(|e| self.db_err(e.into()))?;
            return Err(E::from(StoreError::from(e)));
        }
        d.clear(&mut p);
        if let Err(e) = txn.commit() {
            j.poison(&e.to_string());
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
