//! The append log: where an append becomes durable between two checkpoints of `relay.redb`.
//!
//! A durable redb commit rewrites, copy-on-write, every page it touches and redb's own
//! bookkeeping pages: about 190 KiB for a group of eight 500 B blobs. Instead, the committer
//! commits the group to redb without an fsync (`Durability::None`: visible to readers at once,
//! persisted by the next durable commit) and writes the group's blobs as one frame to this
//! file, then fsyncs it: a few KiB and one `fdatasync` per group. When the next frame would not
//! fit, the group's transaction is committed durably instead (a checkpoint), together with a new
//! epoch number, and the log starts again at offset 0.
//!
//! On open, frames of the epoch recorded in `relay.redb` are applied again: an entry whose
//! sequence number the slot already has is skipped, so replay is idempotent whatever part of
//! the log the last durable commit already holds.
//!
//! The file is rewritten with zeros at every open, so an `fdatasync` writes data, not block
//! maps (see [`AppendLog::recreate`]).
//!
//! The frames are those of [`wire_log::journal`], which session stores use too (decision
//! (ae)): `magic "wlg1" (4) ‖ epoch (8) ‖ body length (4) ‖ entries (4) ‖ blake3 of all that and
//! the body, first 16 bytes ‖ body`, the body being `slot (16) ‖ seq (8) ‖ length (4) ‖ blob` per
//! entry, integers big-endian. An entry whose length is `0xFFFF_FFFF` carries no blob: it is an
//! acknowledgement of the slot through `seq` (decision (am): acknowledgements share the group's
//! frame and fsync instead of each taking a durable redb commit); no blob is that long. Replay
//! stops at the first frame that is short, of another epoch or fails its checksum: the end of
//! the log, or a frame whose fsync never returned and whose appends and acknowledgements were
//! therefore never answered.

use std::path::Path;

use wire_log::journal::{self, Journal, JournalError};

use super::StoreError;
use crate::token::SlotId;

const MAGIC: [u8; 4] = *b"wlg1";
const ENTRY_HEADER: usize = 16 + 8 + 4;
/// The length field of an acknowledgement entry.
const ACK_MARK: u32 = u32::MAX;

/// One entry of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry<'a> {
    /// `blob` stored in `slot` under `seq`.
    Blob(SlotId, u64, &'a [u8]),
    /// Every blob of `slot` with a sequence number up to `through` removed.
    Ack(SlotId, u64),
}

impl Entry<'_> {
    fn len(&self) -> usize {
        match self {
            Entry::Blob(_, _, blob) => ENTRY_HEADER + blob.len(),
            Entry::Ack(..) => ENTRY_HEADER,
        }
    }
}

/// The open log file, positioned after the last frame of the current epoch: a
/// [`Journal`](wire_log::journal::Journal) whose frames hold the group's blobs.
#[derive(Debug)]
pub(super) struct AppendLog {
    journal: Journal,
}

fn err(e: JournalError) -> StoreError {
    StoreError(e.0)
}

impl From<JournalError> for StoreError {
    fn from(e: JournalError) -> StoreError {
        err(e)
    }
}

/// Bytes a frame holding blobs of these lengths takes.
#[cfg(test)]
pub(super) fn frame_len(blob_lens: impl Iterator<Item = usize>) -> u64 {
    journal::frame_len(blob_lens.map(|n| ENTRY_HEADER + n).sum())
}

/// Bytes a frame holding these entries takes.
pub(super) fn entries_len<'a>(entries: impl Iterator<Item = &'a Entry<'a>>) -> u64 {
    journal::frame_len(entries.map(Entry::len).sum())
}

impl AppendLog {
    /// Opens (creating if needed) the log at `path`, for frames in its first `capacity` bytes;
    /// [`replay`](Self::replay), then [`recreate`](Self::recreate) before writing.
    pub(super) fn open(path: &Path, capacity: u64) -> Result<AppendLog, StoreError> {
        Ok(AppendLog {
            journal: Journal::open(path, MAGIC, capacity).map_err(err)?,
        })
    }

    pub(super) fn epoch(&self) -> u64 {
        self.journal.epoch()
    }

    /// Whether `bytes` more fit before the next checkpoint.
    pub(super) fn fits(&self, bytes: u64) -> bool {
        self.journal.fits(bytes)
    }

    pub(super) fn check(&self) -> Result<(), StoreError> {
        self.journal.check().map_err(err)
    }

    pub(super) fn poison(&mut self, why: &str) {
        self.journal.poison(why);
    }

    /// Empties the file and fills it with zeros, then starts `epoch` at offset 0; called once
    /// `relay.redb` durably holds every frame in the file. The whole capacity is allocated at
    /// once: appends come fast from the start.
    pub(super) fn recreate(&mut self, epoch: u64) -> Result<(), StoreError> {
        self.journal.recreate(epoch).map_err(err)
    }

    /// Starts `epoch` at offset 0; called once `relay.redb` durably records `epoch`.
    pub(super) fn reset(&mut self, epoch: u64) {
        self.journal.reset(epoch);
    }

    /// Writes one frame of `entries` and fsyncs it. On error the log is poisoned.
    pub(super) fn write<'a>(
        &mut self,
        entries: impl Iterator<Item = Entry<'a>>,
    ) -> Result<(), StoreError> {
        let mut count = 0u32;
        self.journal
            .write(|buf| {
                for entry in entries {
                    match entry {
                        Entry::Blob(slot, seq, blob) => {
                            buf.extend_from_slice(&slot.0);
                            buf.extend_from_slice(&seq.to_be_bytes());
                            buf.extend_from_slice(&(blob.len() as u32).to_be_bytes());
                            buf.extend_from_slice(blob);
                        }
                        Entry::Ack(slot, through) => {
                            buf.extend_from_slice(&slot.0);
                            buf.extend_from_slice(&through.to_be_bytes());
                            buf.extend_from_slice(&ACK_MARK.to_be_bytes());
                        }
                    }
                    count += 1;
                }
                count
            })
            .map_err(err)
    }

    /// Calls `apply` for every entry of every frame of `epoch`, from the start of the file, in
    /// the order they were written. Returns the number of frames read.
    pub(super) fn replay(
        &self,
        epoch: u64,
        mut apply: impl FnMut(Entry<'_>) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let path = self.journal.path();
        self.journal.replay(epoch, |count, body| {
            let mut rest = body;
            for _ in 0..count {
                let Some((entry, tail)) = split_entry(rest) else {
                    return Err(StoreError(format!(
                        "{}: a frame has a valid checksum but a malformed entry",
                        path.display()
                    )));
                };
                apply(entry)?;
                rest = tail;
            }
            Ok(())
        })
    }
}

fn split_entry(b: &[u8]) -> Option<(Entry<'_>, &[u8])> {
    let head = b.get(..ENTRY_HEADER)?;
    let mut slot = [0u8; 16];
    slot.copy_from_slice(&head[..16]);
    let seq = u64::from_be_bytes(head[16..24].try_into().ok()?);
    let len = u32::from_be_bytes(head[24..28].try_into().ok()?);
    if len == ACK_MARK {
        return Some((Entry::Ack(SlotId(slot), seq), &b[ENTRY_HEADER..]));
    }
    let len = len as usize;
    let blob = b.get(ENTRY_HEADER..ENTRY_HEADER.checked_add(len)?)?;
    Some((
        Entry::Blob(SlotId(slot), seq, blob),
        &b[ENTRY_HEADER + len..],
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    fn entries(n: u8) -> Vec<(SlotId, u64, Vec<u8>)> {
        (1..=n)
            .map(|i| (SlotId([i; 16]), u64::from(i), vec![i; usize::from(i) * 10]))
            .collect()
    }

    fn replayed(log: &AppendLog, epoch: u64) -> (u64, Vec<(SlotId, u64, Vec<u8>)>) {
        let mut got = Vec::new();
        let frames = log
            .replay(epoch, |entry| {
                match entry {
                    Entry::Blob(s, q, b) => got.push((s, q, b.to_vec())),
                    Entry::Ack(..) => panic!("no acknowledgement written here"),
                }
                Ok(())
            })
            .expect("test io");
        (frames, got)
    }

    #[test]
    fn frames_replay_in_order_and_only_for_their_epoch() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("log");
        let mut log = AppendLog::open(&path, 64 << 10).expect("test io");
        log.recreate(7).expect("test io");
        assert_eq!(std::fs::metadata(&path).expect("test io").len(), 64 << 10);
        let all = entries(5);
        log.write(all[..2].iter().map(|(s, q, b)| Entry::Blob(*s, *q, &b[..])))
            .expect("test io");
        log.write(all[2..].iter().map(|(s, q, b)| Entry::Blob(*s, *q, &b[..])))
            .expect("test io");
        let expected_len = frame_len(all[..2].iter().map(|e| e.2.len()))
            + frame_len(all[2..].iter().map(|e| e.2.len()));
        assert_eq!(log.journal.len(), expected_len);
        drop(log);
        let log = AppendLog::open(&path, 64 << 10).expect("test io");
        assert_eq!(replayed(&log, 7), (2, all.clone()));
        assert_eq!(replayed(&log, 6), (0, vec![]));
        assert_eq!(replayed(&log, 8), (0, vec![]));
    }

    #[test]
    fn acknowledgements_replay_in_place_between_blobs() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("log");
        let mut log = AppendLog::open(&path, 64 << 10).expect("test io");
        log.recreate(3).expect("test io");
        let (a, b) = (SlotId([1; 16]), SlotId([2; 16]));
        let written = [
            Entry::Ack(a, 9),
            Entry::Blob(b, 4, b"four"),
            Entry::Ack(b, u64::MAX),
            Entry::Blob(a, 10, b""),
        ];
        log.write(written.iter().copied()).expect("test io");
        assert_eq!(log.journal.len(), entries_len(written.iter()));
        drop(log);
        let log = AppendLog::open(&path, 64 << 10).expect("test io");
        let mut got: Vec<String> = Vec::new();
        log.replay(3, |e| {
            got.push(format!("{e:?}"));
            Ok(())
        })
        .expect("test io");
        let want: Vec<String> = written.iter().map(|e| format!("{e:?}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_new_epoch_hides_the_old_frames_behind_it() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("log");
        let mut log = AppendLog::open(&path, 64 << 10).expect("test io");
        log.recreate(0).expect("test io");
        let all = entries(6);
        log.write(all.iter().map(|(s, q, b)| Entry::Blob(*s, *q, &b[..])))
            .expect("test io");
        log.reset(1);
        log.write(all[..1].iter().map(|(s, q, b)| Entry::Blob(*s, *q, &b[..])))
            .expect("test io");
        assert_eq!(replayed(&log, 1), (1, all[..1].to_vec()));
        assert_eq!(replayed(&log, 0), (0, vec![]));
    }

    #[test]
    fn a_torn_last_frame_ends_the_replay_and_a_damaged_middle_one_is_an_error() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("log");
        let mut log = AppendLog::open(&path, 64 << 10).expect("test io");
        log.recreate(0).expect("test io");
        let all = entries(4);
        for e in &all {
            log.write(std::iter::once(Entry::Blob(e.0, e.1, &e.2[..])))
                .expect("test io");
        }
        let flip = |at: u64| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(log.journal.path())
                .expect("test io");
            let mut b = [0u8; 1];
            file.read_exact_at(&mut b, at).expect("test io");
            file.write_all_at(&[b[0] ^ 1], at).expect("test io");
        };
        // One byte of the last frame's body: its write was torn, and it was never acknowledged.
        let fourth: u64 = [10, 20, 30]
            .map(|n| frame_len(std::iter::once(n)))
            .iter()
            .sum();
        flip(fourth + (journal::HEADER + ENTRY_HEADER) as u64 + 5);
        assert_eq!(replayed(&log, 0), (3, all[..3].to_vec()));
        flip(fourth + (journal::HEADER + ENTRY_HEADER) as u64 + 5);
        // One byte of the third's, with the fourth intact: a corrupt file, refused.
        let third = frame_len(std::iter::once(10)) + frame_len(std::iter::once(20));
        flip(third + (journal::HEADER + ENTRY_HEADER) as u64 + 5);
        let e = log
            .replay(0, |_| Ok(()))
            .expect_err("a damaged middle frame");
        assert!(e.0.contains("corrupt"), "{e:?}");
    }

    #[test]
    fn a_frame_that_does_not_fit_is_refused_and_poisons() {
        let dir = tempfile::tempdir().expect("test io");
        let mut log = AppendLog::open(&dir.path().join("log"), 256).expect("test io");
        log.recreate(0).expect("test io");
        let big = vec![1u8; 300];
        assert!(!log.fits(frame_len(std::iter::once(big.len()))));
        let e = log.write(std::iter::once(Entry::Blob(SlotId([1; 16]), 1, &big[..])));
        assert!(e.is_err());
        assert!(log.check().is_err());
    }
}
