//! The embedded [`BlobStore`]: two redb files and an append log in the data directory.
//!
//! `relay.redb` holds slots, capabilities, blobs, content hashes and the handle directory.
//! `intros.redb` holds intro queues: a separate file has a separate writer lock and a separate
//! fsync, so no number of intros can delay a commit of the main mailbox.
//!
//! Appends and acknowledgements are made durable by `appends.log` (see `log.rs`): their
//! transaction commits to `relay.redb` without an fsync once their frame is fsynced, and a
//! checkpoint (a durable commit) is taken when the log is full. The content hashes of blobs
//! stored since the last checkpoint wait in memory and are written, in key order, by the
//! checkpoint: the hash index is keyed by blake3, so writing it per commit copied one random
//! leaf per blob.
//!
//! Keys are fixed-width byte arrays: a slot id (16) followed by a big-endian sequence number (8)
//! sorts a slot's blobs in order, so a read after `n` is one range scan whatever the slot's size.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::log::{AppendLog, Entry, entries_len};

use super::{
    AckOutcome, AppendItem, AppendOutcome, BlobStore, ClaimOutcome, Credential, HandleRecord,
    IntroOutcome, MintOutcome, Page, Quotas, SlotInfo, StoreError, Totals,
};
use crate::token::{CapId, SlotId, TokenHash};

const SLOTS: TableDefinition<&[u8; 16], &[u8; 80]> = TableDefinition::new("slots_v1");
const CAPS: TableDefinition<&[u8; 32], &[u8; 24]> = TableDefinition::new("caps_v1");
const SLOT_CAPS: TableDefinition<&[u8; 24], &[u8; 32]> = TableDefinition::new("slot_caps_v1");
const BLOBS: TableDefinition<&[u8; 24], &[u8]> = TableDefinition::new("blobs_v1");
const HASHES: TableDefinition<&[u8; 48], u64> = TableDefinition::new("blob_hashes_v1");
const HANDLES: TableDefinition<&str, &[u8]> = TableDefinition::new("handles_v1");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v1");

const INTRO_SLOTS: TableDefinition<&[u8; 16], &[u8; 16]> = TableDefinition::new("intro_slots_v1");
const INTRO_SENDERS: TableDefinition<&[u8; 48], u64> = TableDefinition::new("intro_senders_v1");
const INTRO_BLOBS: TableDefinition<&[u8; 24], &[u8]> = TableDefinition::new("intro_blobs_v1");

const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"wire-relay-store 1";
const TOTALS_KEY: &str = "totals";
/// The append log's epoch that `relay.redb` holds every frame before (see `log.rs`).
const LOG_EPOCH_KEY: &str = "log_epoch";

/// Default size of `appends.log`: appends between two durable commits of `relay.redb`.
pub const LOG_BYTES: u64 = 8 << 20;
/// Most content hashes held in memory before a checkpoint writes them to `blob_hashes_v1`.
const PENDING_HASHES_MAX: usize = 16_384;

/// Content hashes of the blobs stored since the last checkpoint, not yet in `blob_hashes_v1`.
type Pending = HashMap<[u8; 48], u64>;

/// The redb-backed store.
#[derive(Debug)]
pub struct RedbStore {
    main: Database,
    intros: Database,
    quotas: Quotas,
    /// Taken by `append` for its whole transaction (only the committer appends).
    log: Mutex<AppendLog>,
    /// Taken only inside a write transaction, after it began (so after `log`).
    pending: Mutex<Pending>,
}

fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError(e.into().to_string())
}

/// A slot's row: fixed 80 bytes.
#[derive(Debug, Clone, Copy)]
struct SlotRow {
    owner: [u8; 32],
    last_seq: u64,
    blobs: u64,
    bytes: u64,
    created_ms: u64,
    acked_through: u64,
    caps: u32,
    handles: u32,
}

impl SlotRow {
    fn encode(&self) -> [u8; 80] {
        let mut b = [0u8; 80];
        b[..32].copy_from_slice(&self.owner);
        b[32..40].copy_from_slice(&self.last_seq.to_be_bytes());
        b[40..48].copy_from_slice(&self.blobs.to_be_bytes());
        b[48..56].copy_from_slice(&self.bytes.to_be_bytes());
        b[56..64].copy_from_slice(&self.created_ms.to_be_bytes());
        b[64..72].copy_from_slice(&self.acked_through.to_be_bytes());
        b[72..76].copy_from_slice(&self.caps.to_be_bytes());
        b[76..80].copy_from_slice(&self.handles.to_be_bytes());
        b
    }

    fn decode(b: &[u8; 80]) -> SlotRow {
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let mut owner = [0u8; 32];
        owner.copy_from_slice(&b[..32]);
        SlotRow {
            owner,
            last_seq: u64_at(32),
            blobs: u64_at(40),
            bytes: u64_at(48),
            created_ms: u64_at(56),
            acked_through: u64_at(64),
            caps: u32_at(72),
            handles: u32_at(76),
        }
    }

    fn info(&self) -> SlotInfo {
        SlotInfo {
            owner: TokenHash(self.owner),
            blobs: self.blobs,
            bytes: self.bytes,
            last_seq: self.last_seq,
            acked_through: self.acked_through,
            caps: self.caps,
            created_ms: self.created_ms,
        }
    }
}

fn seq_key(slot: SlotId, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&slot.0);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn hash_key(slot: SlotId, blob: &[u8]) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..16].copy_from_slice(&slot.0);
    k[16..].copy_from_slice(blake3::hash(blob).as_bytes());
    k
}

fn sender_key(slot: SlotId, from: &[u8; 32]) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..16].copy_from_slice(&slot.0);
    k[16..].copy_from_slice(from);
    k
}

fn seq_of(key: &[u8; 24]) -> u64 {
    u64::from_be_bytes(key[16..].try_into().unwrap_or_default())
}

fn encode_totals(t: &Totals) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&t.slots.to_be_bytes());
    b[8..16].copy_from_slice(&t.blobs.to_be_bytes());
    b[16..24].copy_from_slice(&t.bytes.to_be_bytes());
    b[24..32].copy_from_slice(&t.handles.to_be_bytes());
    b
}

fn decode_totals(b: &[u8]) -> Totals {
    let at = |i: usize| {
        b.get(i..i + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    Totals {
        slots: at(0),
        blobs: at(8),
        bytes: at(16),
        handles: at(24),
        intros: 0,
    }
}

/// Applies signed deltas to the totals row inside an open write transaction.
fn bump_totals(
    meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
    f: impl FnOnce(&mut Totals),
) -> Result<(), StoreError> {
    let mut t = meta
        .get(TOTALS_KEY)
        .map_err(db)?
        .map(|v| decode_totals(v.value()))
        .unwrap_or_default();
    f(&mut t);
    meta.insert(TOTALS_KEY, &encode_totals(&t)[..])
        .map_err(db)?;
    Ok(())
}

fn open_db(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    // Created 0600 if missing (redb then initialises the empty file): the relay's files hold
    // token hashes and sealed mail, and stay private whatever the umask.
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", path.display())))?;
    }
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| StoreError(format!("{}: {}", path.display(), redb::Error::from(e))))
}

impl RedbStore {
    /// Opens (creating if needed) the store in `dir`, with `cache_bytes` of page cache split
    /// between the two files, and replays the append log.
    pub fn open(dir: &Path, quotas: Quotas, cache_bytes: usize) -> Result<RedbStore, StoreError> {
        RedbStore::open_with_log(dir, quotas, cache_bytes, LOG_BYTES)
    }

    /// [`open`](Self::open) with an append log of `log_bytes` (64 KiB to 4 GiB).
    pub fn open_with_log(
        dir: &Path,
        quotas: Quotas,
        cache_bytes: usize,
        log_bytes: u64,
    ) -> Result<RedbStore, StoreError> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let main = open_db(&dir.join("relay.redb"), cache_bytes * 3 / 4)?;
        let intros = open_db(&dir.join("intros.redb"), cache_bytes / 4)?;
        // A frame's length is a u32, so a log never holds one longer than that.
        let log_bytes = log_bytes.clamp(64 << 10, u64::from(u32::MAX));
        let log = AppendLog::open(&dir.join("appends.log"), log_bytes)?;
        let store = RedbStore {
            main,
            intros,
            quotas,
            log: Mutex::new(log),
            pending: Mutex::new(HashMap::new()),
        };
        store.init()?;
        Ok(store)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, AppendLog> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn init(&self) -> Result<(), StoreError> {
        let mut log = self.lock_log();
        let txn = self.main.begin_write().map_err(db)?;
        let next_epoch;
        {
            let mut meta = txn.open_table(META).map_err(db)?;
            let format = meta
                .get(FORMAT_KEY)
                .map_err(db)?
                .map(|v| v.value().to_vec());
            match format {
                None => {
                    meta.insert(FORMAT_KEY, FORMAT).map_err(db)?;
                }
                Some(f) if f == FORMAT => {}
                Some(f) => {
                    return Err(StoreError(format!(
                        "relay.redb has format {:?}; this build reads {:?}",
                        String::from_utf8_lossy(&f),
                        String::from_utf8_lossy(FORMAT)
                    )));
                }
            }
            txn.open_table(CAPS).map_err(db)?;
            txn.open_table(SLOT_CAPS).map_err(db)?;
            txn.open_table(HANDLES).map_err(db)?;
            let epoch = meta
                .get(LOG_EPOCH_KEY)
                .map_err(db)?
                .map_or(0, |v| decode_u64(v.value()));
            // Appends acknowledged after the last durable commit: apply them again.
            let mut slots = txn.open_table(SLOTS).map_err(db)?;
            let mut blobs = txn.open_table(BLOBS).map_err(db)?;
            let mut hashes = txn.open_table(HASHES).map_err(db)?;
            let (mut added_blobs, mut added_bytes) = (0u64, 0u64);
            let (mut removed_blobs, mut removed_bytes) = (0u64, 0u64);
            let mut unhashed = HashSet::new();
            // Nothing waits in memory at open: every hash replayed is in the table.
            let nothing_pending = Pending::new();
            log.replay(epoch, |entry| {
                let (slot, seq, blob) = match entry {
                    Entry::Blob(slot, seq, blob) => (slot, seq, blob),
                    Entry::Ack(slot, through) => {
                        let Some(mut row) = slot_row(&slots, slot)? else {
                            return Ok(());
                        };
                        // Applied already when the durable state holds it; never past the
                        // blobs replayed so far (the frame wrote them first).
                        if through <= row.acked_through || through > row.last_seq {
                            return Ok(());
                        }
                        let (n, bytes) = remove_through(
                            &mut blobs,
                            &mut hashes,
                            slot,
                            &mut row,
                            through,
                            &nothing_pending,
                            &mut unhashed,
                        )?;
                        slots.insert(&slot.0, &row.encode()).map_err(db)?;
                        removed_blobs += n;
                        removed_bytes += bytes;
                        return Ok(());
                    }
                };
                let Some(mut row) = slot_row(&slots, slot)? else {
                    return Ok(());
                };
                if seq <= row.last_seq {
                    // Durable already (another commit carried it), but its hash may have been
                    // only in memory: restore it while the blob is held.
                    if seq > row.acked_through
                        && blobs.get(&seq_key(slot, seq)).map_err(db)?.is_some()
                    {
                        hashes.insert(&hash_key(slot, blob), seq).map_err(db)?;
                    }
                    return Ok(());
                }
                let len = blob.len() as u64;
                row.last_seq = seq;
                row.blobs += 1;
                row.bytes += len;
                blobs.insert(&seq_key(slot, seq), blob).map_err(db)?;
                hashes.insert(&hash_key(slot, blob), seq).map_err(db)?;
                slots.insert(&slot.0, &row.encode()).map_err(db)?;
                added_blobs += 1;
                added_bytes += len;
                Ok(())
            })?;
            if added_blobs > 0 || removed_blobs > 0 {
                bump_totals(&mut meta, |t| {
                    t.blobs = (t.blobs + added_blobs).saturating_sub(removed_blobs);
                    t.bytes = (t.bytes + added_bytes).saturating_sub(removed_bytes);
                })?;
            }
            next_epoch = epoch + 1;
            meta.insert(LOG_EPOCH_KEY, &next_epoch.to_be_bytes()[..])
                .map_err(db)?;
        }
        txn.commit().map_err(db)?;
        log.recreate(next_epoch)?;
        drop(log);
        let txn = self.intros.begin_write().map_err(db)?;
        {
            let mut meta = txn.open_table(META).map_err(db)?;
            if meta.get(FORMAT_KEY).map_err(db)?.is_none() {
                meta.insert(FORMAT_KEY, FORMAT).map_err(db)?;
            }
            txn.open_table(INTRO_SLOTS).map_err(db)?;
            txn.open_table(INTRO_SENDERS).map_err(db)?;
            txn.open_table(INTRO_BLOBS).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(())
    }

    fn read_slot(&self, slot: SlotId) -> Result<Option<SlotRow>, StoreError> {
        let txn = self.main.begin_read().map_err(db)?;
        let slots = txn.open_table(SLOTS).map_err(db)?;
        slot_row(&slots, slot)
    }
}

impl BlobStore for RedbStore {
    fn create_slot(&self, slot: SlotId, owner: TokenHash, now_ms: u64) -> Result<(), StoreError> {
        let txn = self.main.begin_write().map_err(db)?;
        {
            let mut slots = txn.open_table(SLOTS).map_err(db)?;
            if slots.get(&slot.0).map_err(db)?.is_some() {
                return Err(StoreError("slot id collision".into()));
            }
            let row = SlotRow {
                owner: owner.0,
                last_seq: 0,
                blobs: 0,
                bytes: 0,
                created_ms: now_ms,
                acked_through: 0,
                caps: 0,
                handles: 0,
            };
            slots.insert(&slot.0, &row.encode()).map_err(db)?;
            let mut meta = txn.open_table(META).map_err(db)?;
            bump_totals(&mut meta, |t| t.slots += 1)?;
        }
        txn.commit().map_err(db)
    }

    fn slot_info(&self, slot: SlotId) -> Result<Option<SlotInfo>, StoreError> {
        Ok(self.read_slot(slot)?.map(|r| r.info()))
    }

    fn cap_slot(&self, cap: TokenHash) -> Result<Option<(SlotId, CapId)>, StoreError> {
        let txn = self.main.begin_read().map_err(db)?;
        let caps = txn.open_table(CAPS).map_err(db)?;
        Ok(caps.get(&cap.0).map_err(db)?.map(|v| split_cap(v.value())))
    }

    fn mint_cap(&self, slot: SlotId, id: CapId, cap: TokenHash) -> Result<MintOutcome, StoreError> {
        let txn = self.main.begin_write().map_err(db)?;
        {
            let mut slots = txn.open_table(SLOTS).map_err(db)?;
            let Some(mut row) = slot_row(&slots, slot)? else {
                return Ok(MintOutcome::UnknownSlot);
            };
            if row.caps >= self.quotas.caps_per_slot_max {
                return Ok(MintOutcome::TooMany {
                    max: self.quotas.caps_per_slot_max,
                });
            }
            row.caps += 1;
            slots.insert(&slot.0, &row.encode()).map_err(db)?;
            let mut link = [0u8; 24];
            link[..16].copy_from_slice(&slot.0);
            link[16..].copy_from_slice(&id.0);
            txn.open_table(CAPS)
                .map_err(db)?
                .insert(&cap.0, &link)
                .map_err(db)?;
            txn.open_table(SLOT_CAPS)
                .map_err(db)?
                .insert(&link, &cap.0)
                .map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(MintOutcome::Minted)
    }

    fn revoke_cap(&self, slot: SlotId, id: CapId) -> Result<bool, StoreError> {
        let txn = self.main.begin_write().map_err(db)?;
        {
            let mut link = [0u8; 24];
            link[..16].copy_from_slice(&slot.0);
            link[16..].copy_from_slice(&id.0);
            let removed = txn
                .open_table(SLOT_CAPS)
                .map_err(db)?
                .remove(&link)
                .map_err(db)?
                .map(|v| *v.value());
            let Some(hash) = removed else {
                return Ok(false);
            };
            txn.open_table(CAPS)
                .map_err(db)?
                .remove(&hash)
                .map_err(db)?;
            let mut slots = txn.open_table(SLOTS).map_err(db)?;
            let row = slot_row(&slots, slot)?;
            if let Some(mut row) = row {
                row.caps = row.caps.saturating_sub(1);
                slots.insert(&slot.0, &row.encode()).map_err(db)?;
            }
        }
        txn.commit().map_err(db)?;
        Ok(true)
    }

    fn list_caps(&self, slot: SlotId) -> Result<Vec<CapId>, StoreError> {
        let txn = self.main.begin_read().map_err(db)?;
        let table = txn.open_table(SLOT_CAPS).map_err(db)?;
        let mut start = [0u8; 24];
        start[..16].copy_from_slice(&slot.0);
        let mut end = [0xffu8; 24];
        end[..16].copy_from_slice(&slot.0);
        let mut out = Vec::new();
        for entry in table.range::<&[u8; 24]>(&start..=&end).map_err(db)? {
            let (k, _) = entry.map_err(db)?;
            out.push(split_cap(k.value()).1);
        }
        Ok(out)
    }

    fn append(&self, items: &[AppendItem]) -> Result<Vec<AppendOutcome>, StoreError> {
        Ok(self.commit_group(&[], items)?.1)
    }

    fn acks_in_groups(&self) -> bool {
        true
    }

    fn commit_group(
        &self,
        acks: &[(SlotId, u64)],
        items: &[AppendItem],
    ) -> Result<(Vec<AckOutcome>, Vec<AppendOutcome>), StoreError> {
        let mut acked = Vec::with_capacity(acks.len());
        let mut outcomes = Vec::with_capacity(items.len());
        let mut log = self.lock_log();
        log.check()?;
        let mut txn = self.main.begin_write().map_err(db)?;
        let mut pending = self.lock_pending();
        // Hashes this group stores: merged into `pending` once its transaction committed.
        let mut fresh: Pending = HashMap::new();
        // Hashes of the blobs this group's acknowledgements removed: out of `pending` once it
        // committed, and out of this group's own lookups at once.
        let mut unhashed: HashSet<[u8; 48]> = HashSet::new();
        // The frame: acknowledgements that removed something or moved a slot on, then the
        // stored blobs, in the order they were applied.
        let mut entries: Vec<Entry<'_>> = Vec::new();
        let mut checkpoint = false;
        {
            let mut slots = txn.open_table(SLOTS).map_err(db)?;
            let caps = txn.open_table(CAPS).map_err(db)?;
            let mut blobs = txn.open_table(BLOBS).map_err(db)?;
            let mut hashes = txn.open_table(HASHES).map_err(db)?;
            let mut rows: HashMap<SlotId, Option<SlotRow>> = HashMap::new();
            let (mut added_blobs, mut added_bytes) = (0u64, 0u64);
            let (mut removed_blobs, mut removed_bytes) = (0u64, 0u64);
            for &(slot, through) in acks {
                let row = cached_row(&mut rows, &slots, slot)?;
                let Some(row) = row.as_mut() else {
                    acked.push(AckOutcome::UnknownSlot);
                    continue;
                };
                if through > row.last_seq {
                    acked.push(AckOutcome::BeyondLast {
                        last_seq: row.last_seq,
                    });
                    continue;
                }
                let mut removed = 0;
                if through > row.acked_through {
                    let bytes;
                    (removed, bytes) = remove_through(
                        &mut blobs,
                        &mut hashes,
                        slot,
                        row,
                        through,
                        &pending,
                        &mut unhashed,
                    )?;
                    removed_blobs += removed;
                    removed_bytes += bytes;
                    entries.push(Entry::Ack(slot, through));
                }
                acked.push(AckOutcome::Acked {
                    removed,
                    blobs: row.blobs,
                    bytes: row.bytes,
                    acked_through: row.acked_through,
                });
            }
            for item in items {
                let row = cached_row(&mut rows, &slots, item.slot)?;
                let Some(row) = row.as_mut() else {
                    outcomes.push(AppendOutcome::UnknownSlot);
                    continue;
                };
                let allowed = match item.credential {
                    Credential::Owner(h) => h.ct_eq(&TokenHash(row.owner)),
                    Credential::Cap(h) => caps
                        .get(&h.0)
                        .map_err(db)?
                        .is_some_and(|v| split_cap(v.value()).0 == item.slot),
                };
                if !allowed {
                    outcomes.push(AppendOutcome::Unauthorized);
                    continue;
                }
                let hkey = hash_key(item.slot, &item.blob);
                let known = match fresh.get(&hkey) {
                    Some(seq) => Some(*seq),
                    None if unhashed.contains(&hkey) => None,
                    None => match pending.get(&hkey) {
                        Some(seq) => Some(*seq),
                        None => hashes.get(&hkey).map_err(db)?.map(|v| v.value()),
                    },
                };
                if let Some(seq) = known {
                    outcomes.push(AppendOutcome::Duplicate { seq });
                    continue;
                }
                let len = item.blob.len() as u64;
                if row.blobs + 1 > self.quotas.slot_blobs_max
                    || row.bytes + len > self.quotas.slot_bytes_max
                {
                    outcomes.push(AppendOutcome::SlotFull {
                        blobs: row.blobs,
                        bytes: row.bytes,
                    });
                    continue;
                }
                row.last_seq += 1;
                row.blobs += 1;
                row.bytes += len;
                let seq = row.last_seq;
                blobs
                    .insert(&seq_key(item.slot, seq), item.blob.as_ref())
                    .map_err(db)?;
                fresh.insert(hkey, seq);
                added_blobs += 1;
                added_bytes += len;
                entries.push(Entry::Blob(item.slot, seq, &item.blob));
                outcomes.push(AppendOutcome::Stored { seq });
            }
            if !entries.is_empty() {
                for (slot, row) in &rows {
                    if let Some(row) = row {
                        slots.insert(&slot.0, &row.encode()).map_err(db)?;
                    }
                }
                let mut meta = txn.open_table(META).map_err(db)?;
                bump_totals(&mut meta, |t| {
                    t.blobs = (t.blobs + added_blobs).saturating_sub(removed_blobs);
                    t.bytes = (t.bytes + added_bytes).saturating_sub(removed_bytes);
                })?;
                checkpoint = !log.fits(entries_len(entries.iter()))
                    || pending.len() + fresh.len() > PENDING_HASHES_MAX;
                if checkpoint {
                    meta.insert(LOG_EPOCH_KEY, &(log.epoch() + 1).to_be_bytes()[..])
                        .map_err(db)?;
                    // In key order: neighbouring keys share a leaf, written once.
                    let mut all: Vec<([u8; 48], u64)> = pending
                        .iter()
                        .filter(|(k, _)| !unhashed.contains(*k))
                        .chain(&fresh)
                        .map(|(k, v)| (*k, *v))
                        .collect();
                    all.sort_unstable();
                    for (k, seq) in &all {
                        hashes.insert(k, *seq).map_err(db)?;
                    }
                }
            }
        }
        if entries.is_empty() {
            txn.abort().map_err(db)?;
        } else if checkpoint {
            // The log is full: this commit is durable itself and holds everything before it,
            // the pending hashes included.
            txn.commit().map_err(db)?;
            let next = log.epoch() + 1;
            log.reset(next);
            pending.clear();
        } else {
            txn.set_durability(Durability::None).map_err(db)?;
            if let Err(e) = log.write(entries.into_iter()) {
                txn.abort().map_err(db)?;
                return Err(e);
            }
            if let Err(e) = txn.commit() {
                let e = db(e);
                log.poison(&e.0);
                return Err(e);
            }
            for k in &unhashed {
                pending.remove(k);
            }
            pending.extend(fresh);
        }
        Ok((acked, outcomes))
    }

    fn read_after(
        &self,
        slot: SlotId,
        after: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Page, StoreError> {
        let txn = self.main.begin_read().map_err(db)?;
        let slots = txn.open_table(SLOTS).map_err(db)?;
        let last_seq = slot_row(&slots, slot)?.map_or(0, |r| r.last_seq);
        let blobs = txn.open_table(BLOBS).map_err(db)?;
        let items = read_range(&blobs, slot, after, limit, bytes_max, 0)?;
        Ok(Page { items, last_seq })
    }

    fn ack(&self, slot: SlotId, through: u64) -> Result<AckOutcome, StoreError> {
        self.commit_group(&[(slot, through)], &[])?
            .0
            .pop()
            .ok_or_else(|| StoreError("an acknowledgement went missing from its group".into()))
    }

    fn totals(&self) -> Result<Totals, StoreError> {
        let txn = self.main.begin_read().map_err(db)?;
        let meta = txn.open_table(META).map_err(db)?;
        let mut totals = meta
            .get(TOTALS_KEY)
            .map_err(db)?
            .map(|v| decode_totals(v.value()))
            .unwrap_or_default();
        let txn = self.intros.begin_read().map_err(db)?;
        let meta = txn.open_table(META).map_err(db)?;
        totals.intros = meta
            .get(TOTALS_KEY)
            .map_err(db)?
            .map_or(0, |v| decode_totals(v.value()).slots);
        Ok(totals)
    }

    fn claim(&self, record: HandleRecord) -> Result<ClaimOutcome, StoreError> {
        let txn = self.main.begin_write().map_err(db)?;
        let outcome;
        {
            let mut handles = txn.open_table(HANDLES).map_err(db)?;
            let mut slots = txn.open_table(SLOTS).map_err(db)?;
            let Some(new_row) = slot_row(&slots, record.slot)? else {
                return Ok(ClaimOutcome::UnknownSlot);
            };
            let max = self.quotas.handles_per_slot_max;
            let held = handles
                .get(record.nick.as_str())
                .map_err(db)?
                .map(|v| decode_handle(v.value()))
                .transpose()?;
            match held {
                Some(held) if held.key != record.key => {
                    return Ok(ClaimOutcome::Taken(Box::new(held)));
                }
                Some(held) if held.card == record.card && held.slot == record.slot => {
                    if held.listed == record.listed && held.profile == record.profile {
                        return Ok(ClaimOutcome::Unchanged);
                    }
                    // Only the listing changed: the holder's own slot may restate it.
                    outcome = ClaimOutcome::Updated;
                }
                Some(held) if record.issued_ms <= held.issued_ms => {
                    return Ok(ClaimOutcome::Stale {
                        held_issued_ms: held.issued_ms,
                    });
                }
                Some(held) => {
                    if held.slot != record.slot {
                        if new_row.handles >= max {
                            return Ok(ClaimOutcome::TooManyHandles { max });
                        }
                        count_handles(&mut slots, record.slot, 1)?;
                        count_handles(&mut slots, held.slot, -1)?;
                    }
                    outcome = ClaimOutcome::Updated;
                }
                None => {
                    if new_row.handles >= max {
                        return Ok(ClaimOutcome::TooManyHandles { max });
                    }
                    count_handles(&mut slots, record.slot, 1)?;
                    let mut meta = txn.open_table(META).map_err(db)?;
                    bump_totals(&mut meta, |t| t.handles += 1)?;
                    outcome = ClaimOutcome::Claimed;
                }
            }
            let value = serde_json::to_vec(&record).map_err(|e| StoreError(e.to_string()))?;
            handles
                .insert(record.nick.as_str(), value.as_slice())
                .map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(outcome)
    }

    fn handle(&self, nick: &str) -> Result<Option<HandleRecord>, StoreError> {
        let txn = self.main.begin_read().map_err(db)?;
        let handles = txn.open_table(HANDLES).map_err(db)?;
        handles
            .get(nick)
            .map_err(db)?
            .map(|v| decode_handle(v.value()))
            .transpose()
    }

    fn handles_after(&self, after: &str, limit: usize) -> Result<Vec<HandleRecord>, StoreError> {
        let txn = self.main.begin_read().map_err(db)?;
        let handles = txn.open_table(HANDLES).map_err(db)?;
        let mut out = Vec::new();
        for entry in handles.range::<&str>(after..).map_err(db)? {
            let (k, v) = entry.map_err(db)?;
            if k.value() == after {
                continue;
            }
            out.push(decode_handle(v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn release(&self, nick: &str, slot: SlotId) -> Result<bool, StoreError> {
        let txn = self.main.begin_write().map_err(db)?;
        {
            let mut handles = txn.open_table(HANDLES).map_err(db)?;
            let held = handles
                .get(nick)
                .map_err(db)?
                .map(|v| decode_handle(v.value()))
                .transpose()?;
            match held {
                Some(h) if h.slot == slot => {}
                _ => return Ok(false),
            }
            handles.remove(nick).map_err(db)?;
            let mut slots = txn.open_table(SLOTS).map_err(db)?;
            count_handles(&mut slots, slot, -1)?;
            let mut meta = txn.open_table(META).map_err(db)?;
            bump_totals(&mut meta, |t| t.handles = t.handles.saturating_sub(1))?;
        }
        txn.commit().map_err(db)?;
        Ok(true)
    }

    fn put_intro(
        &self,
        slot: SlotId,
        from: [u8; 32],
        envelope: &[u8],
        _now_ms: u64,
    ) -> Result<IntroOutcome, StoreError> {
        let txn = self.intros.begin_write().map_err(db)?;
        let outcome;
        {
            let mut counters = txn.open_table(INTRO_SLOTS).map_err(db)?;
            let mut senders = txn.open_table(INTRO_SENDERS).map_err(db)?;
            let mut blobs = txn.open_table(INTRO_BLOBS).map_err(db)?;
            let (mut last_seq, mut count) = counters
                .get(&slot.0)
                .map_err(db)?
                .map_or((0, 0), |v| split_counter(v.value()));
            let skey = sender_key(slot, &from);
            let previous = senders.get(&skey).map_err(db)?.map(|v| v.value());
            if previous.is_none() && count >= self.quotas.intros_per_slot_max {
                return Ok(IntroOutcome::Full {
                    max: self.quotas.intros_per_slot_max,
                });
            }
            if let Some(old) = previous {
                blobs.remove(&seq_key(slot, old)).map_err(db)?;
            } else {
                count += 1;
            }
            last_seq += 1;
            let mut value = Vec::with_capacity(32 + envelope.len());
            value.extend_from_slice(&from);
            value.extend_from_slice(envelope);
            blobs
                .insert(&seq_key(slot, last_seq), value.as_slice())
                .map_err(db)?;
            senders.insert(&skey, last_seq).map_err(db)?;
            counters
                .insert(&slot.0, &join_counter(last_seq, count))
                .map_err(db)?;
            if previous.is_none() {
                let mut meta = txn.open_table(META).map_err(db)?;
                bump_totals(&mut meta, |t| t.slots += 1)?;
            }
            outcome = if previous.is_some() {
                IntroOutcome::Replaced { seq: last_seq }
            } else {
                IntroOutcome::Queued { seq: last_seq }
            };
        }
        txn.commit().map_err(db)?;
        Ok(outcome)
    }

    fn intros_after(&self, slot: SlotId, after: u64, limit: usize) -> Result<Page, StoreError> {
        let txn = self.intros.begin_read().map_err(db)?;
        let counters = txn.open_table(INTRO_SLOTS).map_err(db)?;
        let last_seq = counters
            .get(&slot.0)
            .map_err(db)?
            .map_or(0, |v| split_counter(v.value()).0);
        let blobs = txn.open_table(INTRO_BLOBS).map_err(db)?;
        let items = read_range(&blobs, slot, after, limit, usize::MAX, 32)?;
        Ok(Page { items, last_seq })
    }

    fn ack_intros(&self, slot: SlotId, through: u64) -> Result<AckOutcome, StoreError> {
        let txn = self.intros.begin_write().map_err(db)?;
        let outcome;
        {
            let mut counters = txn.open_table(INTRO_SLOTS).map_err(db)?;
            let mut senders = txn.open_table(INTRO_SENDERS).map_err(db)?;
            let mut blobs = txn.open_table(INTRO_BLOBS).map_err(db)?;
            let (last_seq, count) = counters
                .get(&slot.0)
                .map_err(db)?
                .map_or((0, 0), |v| split_counter(v.value()));
            if through > last_seq {
                return Ok(AckOutcome::BeyondLast { last_seq });
            }
            let mut doomed = Vec::new();
            for entry in blobs
                .range::<&[u8; 24]>(&seq_key(slot, 1)..=&seq_key(slot, through))
                .map_err(db)?
            {
                let (k, v) = entry.map_err(db)?;
                let mut from = [0u8; 32];
                from.copy_from_slice(v.value().get(..32).unwrap_or(&[0; 32]));
                doomed.push((*k.value(), from));
            }
            let removed = doomed.len() as u64;
            for (key, from) in doomed {
                blobs.remove(&key).map_err(db)?;
                senders.remove(&sender_key(slot, &from)).map_err(db)?;
            }
            let left = count.saturating_sub(removed);
            counters
                .insert(&slot.0, &join_counter(last_seq, left))
                .map_err(db)?;
            let mut meta = txn.open_table(META).map_err(db)?;
            bump_totals(&mut meta, |t| t.slots = t.slots.saturating_sub(removed))?;
            outcome = AckOutcome::Acked {
                removed,
                blobs: left,
                bytes: 0,
                acked_through: through,
            };
        }
        txn.commit().map_err(db)?;
        Ok(outcome)
    }
}

/// Adds `delta` to the number of handles a slot holds (a missing slot is left alone).
fn count_handles(
    slots: &mut redb::Table<'_, &'static [u8; 16], &'static [u8; 80]>,
    slot: SlotId,
    delta: i32,
) -> Result<(), StoreError> {
    let row = slot_row(&*slots, slot)?;
    if let Some(mut row) = row {
        row.handles = row.handles.saturating_add_signed(delta);
        slots.insert(&slot.0, &row.encode()).map_err(db)?;
    }
    Ok(())
}

fn read_range(
    table: &redb::ReadOnlyTable<&'static [u8; 24], &'static [u8]>,
    slot: SlotId,
    after: u64,
    limit: usize,
    bytes_max: usize,
    skip_prefix: usize,
) -> Result<Vec<(u64, Bytes)>, StoreError> {
    let mut items = Vec::new();
    if after == u64::MAX || limit == 0 {
        return Ok(items);
    }
    let mut total = 0usize;
    for entry in table
        .range::<&[u8; 24]>(&seq_key(slot, after + 1)..=&seq_key(slot, u64::MAX))
        .map_err(db)?
    {
        let (k, v) = entry.map_err(db)?;
        let value = v.value().get(skip_prefix..).unwrap_or_default();
        if !items.is_empty() && total + value.len() > bytes_max {
            break;
        }
        total += value.len();
        items.push((seq_of(k.value()), Bytes::copy_from_slice(value)));
        if items.len() >= limit {
            break;
        }
    }
    Ok(items)
}

/// The row of `slot` in `slots`, if the slot exists.
fn slot_row(
    slots: &impl ReadableTable<&'static [u8; 16], &'static [u8; 80]>,
    slot: SlotId,
) -> Result<Option<SlotRow>, StoreError> {
    Ok(slots
        .get(&slot.0)
        .map_err(db)?
        .map(|v| SlotRow::decode(v.value())))
}

/// The row of `slot` as this group has changed it so far, read from `slots` the first time.
fn cached_row<'r>(
    rows: &'r mut HashMap<SlotId, Option<SlotRow>>,
    slots: &impl ReadableTable<&'static [u8; 16], &'static [u8; 80]>,
    slot: SlotId,
) -> Result<&'r mut Option<SlotRow>, StoreError> {
    Ok(match rows.entry(slot) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => v.insert(slot_row(slots, slot)?),
    })
}

/// Acknowledges `slot` (its `row`) through `through`: removes its blobs after the row's
/// `acked_through` up to `through` and their hashes (from the table unless `pending` holds
/// them), noting each hash in `unhashed`, and moves the row on; returns how many blobs and
/// bytes went.
fn remove_through(
    blobs: &mut redb::Table<&'static [u8; 24], &'static [u8]>,
    hashes: &mut redb::Table<&'static [u8; 48], u64>,
    slot: SlotId,
    row: &mut SlotRow,
    through: u64,
    pending: &Pending,
    unhashed: &mut HashSet<[u8; 48]>,
) -> Result<(u64, u64), StoreError> {
    let start = seq_key(slot, row.acked_through.saturating_add(1));
    let end = seq_key(slot, through);
    let mut keys = Vec::new();
    for entry in blobs.range::<&[u8; 24]>(&start..=&end).map_err(db)? {
        let (k, v) = entry.map_err(db)?;
        keys.push((
            *k.value(),
            hash_key(slot, v.value()),
            v.value().len() as u64,
        ));
    }
    let (mut removed, mut bytes) = (0u64, 0u64);
    for (key, hkey, len) in keys {
        blobs.remove(&key).map_err(db)?;
        // A hash still waiting in memory was never written to the table (a checkpoint
        // writes them all and empties the map): no lookup of a random leaf for it. Most
        // acknowledgements come within a checkpoint's interval of their appends.
        if !pending.contains_key(&hkey) {
            hashes.remove(&hkey).map_err(db)?;
        }
        unhashed.insert(hkey);
        removed += 1;
        bytes += len;
    }
    row.acked_through = through;
    row.blobs = row.blobs.saturating_sub(removed);
    row.bytes = row.bytes.saturating_sub(bytes);
    Ok((removed, bytes))
}

fn decode_u64(b: &[u8]) -> u64 {
    b.get(..8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

fn split_cap(link: &[u8; 24]) -> (SlotId, CapId) {
    let mut slot = [0u8; 16];
    slot.copy_from_slice(&link[..16]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&link[16..]);
    (SlotId(slot), CapId(id))
}

fn split_counter(b: &[u8; 16]) -> (u64, u64) {
    (
        u64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
        u64::from_be_bytes(b[8..].try_into().unwrap_or_default()),
    )
}

fn join_counter(last_seq: u64, count: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&last_seq.to_be_bytes());
    b[8..].copy_from_slice(&count.to_be_bytes());
    b
}

fn decode_handle(bytes: &[u8]) -> Result<HandleRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError(format!("corrupt handle record: {e}")))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    const OWNER: TokenHash = TokenHash([9; 32]);

    fn item(slot: SlotId, blob: &[u8]) -> AppendItem {
        AppendItem {
            slot,
            credential: Credential::Owner(OWNER),
            blob: Bytes::copy_from_slice(blob),
        }
    }

    fn blob(i: u64) -> Vec<u8> {
        let mut b = format!("blob {i} ").into_bytes();
        b.resize(300 + (i % 7) as usize * 50, b'x');
        b
    }

    /// What a SIGKILL leaves: the files as the kernel holds them now, without the clean close
    /// that would make redb's non-durable commits durable.
    fn crash_copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("test io");
        for name in ["relay.redb", "intros.redb", "appends.log"] {
            std::fs::copy(from.join(name), to.join(name)).expect("test io");
        }
    }

    fn contents(store: &RedbStore, slot: SlotId) -> Vec<(u64, Vec<u8>)> {
        store
            .read_after(slot, 0, usize::MAX, usize::MAX)
            .expect("test io")
            .items
            .into_iter()
            .map(|(s, b)| (s, b.to_vec()))
            .collect()
    }

    fn open(dir: &Path, log_bytes: u64) -> RedbStore {
        RedbStore::open_with_log(dir, Quotas::default(), 4 << 20, log_bytes).expect("test io")
    }

    #[test]
    fn acknowledged_appends_survive_a_crash_through_the_log() {
        let tmp = tempfile::tempdir().expect("test io");
        let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
        let store = open(&live, LOG_BYTES);
        let (a, b) = (SlotId([1; 16]), SlotId([2; 16]));
        store.create_slot(a, OWNER, 1).expect("test io");
        store.create_slot(b, OWNER, 1).expect("test io");
        let mut expected_a = Vec::new();
        for i in 1..=20u64 {
            let out = store
                .append(&[
                    item(a, &blob(i)),
                    item(b, &blob(100 + i)),
                    item(a, &blob(i)),
                ])
                .expect("test io");
            assert_eq!(
                out,
                [
                    AppendOutcome::Stored { seq: i },
                    AppendOutcome::Stored { seq: i },
                    AppendOutcome::Duplicate { seq: i }
                ]
            );
            expected_a.push((i, blob(i)));
        }
        // In the log only, like the appends before it.
        store.ack(b, 5).expect("test io");
        // A durable commit: everything so far is in relay.redb, the hashes still in memory.
        store
            .create_slot(SlotId([9; 16]), OWNER, 1)
            .expect("test io");
        // After the last durable commit: only the log has these, the acknowledgement included.
        for i in 21..=30u64 {
            store.append(&[item(a, &blob(i))]).expect("test io");
            expected_a.push((i, blob(i)));
        }
        assert_eq!(
            store.ack(b, 7).expect("test io"),
            AckOutcome::Acked {
                removed: 2,
                blobs: 13,
                bytes: (108..=120u64).map(|i| blob(i).len() as u64).sum(),
                acked_through: 7
            }
        );
        // Nothing more to remove, and past the end: neither is written.
        assert!(matches!(
            store.ack(b, 7).expect("test io"),
            AckOutcome::Acked { removed: 0, .. }
        ));
        assert_eq!(
            store.ack(b, 21).expect("test io"),
            AckOutcome::BeyondLast { last_seq: 20 }
        );
        let before = store.totals().expect("test io");
        crash_copy(&live, &copy);
        drop(store);

        let store = open(&copy, LOG_BYTES);
        assert_eq!(contents(&store, a), expected_a);
        let in_b: Vec<u64> = contents(&store, b).iter().map(|e| e.0).collect();
        assert_eq!(in_b, (8..=20).collect::<Vec<_>>());
        assert_eq!(store.totals().expect("test io"), before);
        let info = store.slot_info(a).expect("test io").expect("test io");
        assert_eq!((info.last_seq, info.blobs), (30, 30));
        let info = store.slot_info(b).expect("test io").expect("test io");
        assert_eq!((info.acked_through, info.blobs), (7, 13));
        // Idempotency survived too: for blobs only the log held (25), for blobs the durable
        // commit carried while their hashes were still in memory (3, b's 110), not for ones
        // acknowledged before it (b's 103) or after it (b's 106); and new appends continue the
        // sequence.
        assert_eq!(
            store
                .append(&[
                    item(a, &blob(25)),
                    item(a, &blob(3)),
                    item(b, &blob(110)),
                    item(b, &blob(103)),
                    item(b, &blob(106)),
                    item(a, &blob(31))
                ])
                .expect("test io"),
            [
                AppendOutcome::Duplicate { seq: 25 },
                AppendOutcome::Duplicate { seq: 3 },
                AppendOutcome::Duplicate { seq: 10 },
                AppendOutcome::Stored { seq: 21 },
                AppendOutcome::Stored { seq: 22 },
                AppendOutcome::Stored { seq: 31 }
            ]
        );
        // A second crash right after the replay loses nothing either.
        let again = tmp.path().join("again");
        crash_copy(&copy, &again);
        drop(store);
        let store = open(&again, LOG_BYTES);
        assert_eq!(
            store
                .slot_info(a)
                .expect("test io")
                .expect("test io")
                .last_seq,
            31
        );
        assert_eq!(contents(&store, a).len(), 31);
    }

    #[test]
    fn a_group_acknowledges_first_and_a_blob_sent_again_after_its_ack_is_stored_again() {
        let tmp = tempfile::tempdir().expect("test io");
        let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
        let store = open(&live, LOG_BYTES);
        let (a, b) = (SlotId([5; 16]), SlotId([6; 16]));
        store.create_slot(a, OWNER, 1).expect("test io");
        for i in 1..=3u64 {
            store.append(&[item(a, &blob(i))]).expect("test io");
        }
        let (acked, stored) = store
            .commit_group(
                &[(a, 2), (b, 1), (a, 9)],
                &[item(a, &blob(1)), item(a, &blob(3)), item(a, &blob(4))],
            )
            .expect("test io");
        assert_eq!(
            acked,
            [
                AckOutcome::Acked {
                    removed: 2,
                    blobs: 1,
                    bytes: blob(3).len() as u64,
                    acked_through: 2
                },
                AckOutcome::UnknownSlot,
                AckOutcome::BeyondLast { last_seq: 3 }
            ]
        );
        assert_eq!(
            stored,
            [
                AppendOutcome::Stored { seq: 4 },
                AppendOutcome::Duplicate { seq: 3 },
                AppendOutcome::Stored { seq: 5 }
            ]
        );
        let want = vec![(3, blob(3)), (4, blob(1)), (5, blob(4))];
        assert_eq!(contents(&store, a), want);
        let before = store.totals().expect("test io");
        crash_copy(&live, &copy);
        drop(store);
        let store = open(&copy, LOG_BYTES);
        assert_eq!(contents(&store, a), want);
        assert_eq!(store.totals().expect("test io"), before);
        assert_eq!(
            store.append(&[item(a, &blob(1))]).expect("test io"),
            [AppendOutcome::Duplicate { seq: 4 }]
        );
    }

    #[test]
    fn checkpoints_when_the_log_is_full_and_replays_only_the_current_epoch() {
        let tmp = tempfile::tempdir().expect("test io");
        let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
        // 64 KiB of log: a checkpoint every ~150 of these blobs.
        let store = open(&live, 64 << 10);
        let a = SlotId([3; 16]);
        store.create_slot(a, OWNER, 1).expect("test io");
        let mut expected = Vec::new();
        for i in 1..=1000u64 {
            store.append(&[item(a, &blob(i))]).expect("test io");
            expected.push((i, blob(i)));
        }
        assert!(store.lock_log().epoch() > 5, "the log never filled");
        crash_copy(&live, &copy);
        drop(store);
        let store = open(&copy, 64 << 10);
        assert_eq!(contents(&store, a), expected);
        assert_eq!(store.totals().expect("test io").blobs, 1000);
        // Hashes written by checkpoints and hashes replayed from the log both dedupe.
        for i in [1u64, 500, 999, 1000] {
            assert_eq!(
                store.append(&[item(a, &blob(i))]).expect("test io"),
                [AppendOutcome::Duplicate { seq: i }]
            );
        }
        drop(store);
        // A garbage tail after the last frame is where the replay stops.
        let log = copy.join("appends.log");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .expect("test io");
        f.write_all_at(&[0xAA; 4096], 0).expect("test io");
        drop(f);
        let store = open(&copy, 64 << 10);
        assert_eq!(contents(&store, a).len(), 1000);
    }

    #[test]
    fn a_group_bigger_than_the_log_commits_durably_instead() {
        let tmp = tempfile::tempdir().expect("test io");
        let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
        let store = open(&live, 64 << 10);
        let a = SlotId([4; 16]);
        store.create_slot(a, OWNER, 1).expect("test io");
        let big: Vec<AppendItem> = (1..=200u64).map(|i| item(a, &blob(i))).collect();
        let epoch = store.lock_log().epoch();
        let out = store.append(&big).expect("test io");
        assert_eq!(out.last(), Some(&AppendOutcome::Stored { seq: 200 }));
        assert_eq!(store.lock_log().epoch(), epoch + 1);
        crash_copy(&live, &copy);
        drop(store);
        let store = open(&copy, 64 << 10);
        assert_eq!(contents(&store, a).len(), 200);
    }
}
