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
//! Frame: `magic (4) ‖ epoch (8) ‖ body length (4) ‖ entries (4) ‖ blake3 of all that and the
//! body, first 16 bytes ‖ body`, the body being `slot (16) ‖ seq (8) ‖ length (4) ‖ blob` per
//! entry, integers big-endian. Replay stops at the first frame that is short, of another epoch
//! or fails its checksum: the end of the log, or a frame whose fsync never returned and whose
//! appends were therefore never acknowledged.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::token::SlotId;

const MAGIC: &[u8; 4] = b"wlg1";
const HEADER: usize = 4 + 8 + 4 + 4 + 16;
const ENTRY_HEADER: usize = 16 + 8 + 4;

/// The open log file, positioned after the last frame of the current epoch.
#[derive(Debug)]
pub(super) struct AppendLog {
    file: File,
    path: PathBuf,
    capacity: u64,
    epoch: u64,
    len: u64,
    buf: Vec<u8>,
    /// Set when a write or the commit after it failed: the log and the store may disagree
    /// until a restart replays the log, so no further append is taken.
    poisoned: Option<String>,
}

fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError(format!("{}: cannot {what}: {e}", path.display()))
}

/// Bytes a frame holding blobs of these lengths takes.
pub(super) fn frame_len(blob_lens: impl Iterator<Item = usize>) -> u64 {
    let body: usize = blob_lens.map(|n| ENTRY_HEADER + n).sum();
    (HEADER + body) as u64
}

impl AppendLog {
    /// Opens (creating if needed) the log at `path`, for frames in its first `capacity` bytes;
    /// [`replay`](Self::replay), then [`recreate`](Self::recreate) before writing.
    pub(super) fn open(path: &Path, capacity: u64) -> Result<AppendLog, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| io(path, "open", e))?;
        Ok(AppendLog {
            file,
            path: path.to_owned(),
            capacity,
            epoch: 0,
            len: 0,
            buf: Vec::new(),
            poisoned: None,
        })
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether `bytes` more fit before the next checkpoint.
    pub(super) fn fits(&self, bytes: u64) -> bool {
        self.len.saturating_add(bytes) <= self.capacity
    }

    pub(super) fn check(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(why) => Err(StoreError(why.clone())),
            None => Ok(()),
        }
    }

    pub(super) fn poison(&mut self, why: &str) {
        self.poisoned = Some(format!(
            "appends stopped after an append-log failure ({why}); restart the relay to recover"
        ));
    }

    /// Empties the file and fills it with zeros, then starts `epoch` at offset 0; called once
    /// `relay.redb` durably holds every frame in the file.
    ///
    /// Real zeros, not a sparse hole: writing into a hole would make every fsync also write the
    /// file's block map. And 4 KiB at a time: the page cache then holds the file in small folios,
    /// where one large write (or the readahead of the replay, which the truncation drops) would
    /// leave large ones, and a frame dirtying part of a 2 MiB folio makes its fsync write all of
    /// it (measured on this ext4: 2 MiB written per 5 KB frame).
    pub(super) fn recreate(&mut self, epoch: u64) -> Result<(), StoreError> {
        let path = &self.path;
        self.file.set_len(0).map_err(|e| io(path, "truncate", e))?;
        let zeros = [0u8; 4096];
        let mut at = 0u64;
        while at < self.capacity {
            let n = (self.capacity - at).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| io(path, "allocate", e))?;
            at += n as u64;
        }
        self.file.sync_all().map_err(|e| io(path, "sync", e))?;
        if let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.reset(epoch);
        Ok(())
    }

    /// Starts `epoch` at offset 0; called once `relay.redb` durably records `epoch`.
    pub(super) fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.len = 0;
    }

    /// Writes one frame of `entries` and fsyncs it. On error the log is poisoned.
    pub(super) fn write<'a>(
        &mut self,
        entries: impl Iterator<Item = (SlotId, u64, &'a [u8])>,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(HEADER, 0);
        let mut count = 0u32;
        for (slot, seq, blob) in entries {
            buf.extend_from_slice(&slot.0);
            buf.extend_from_slice(&seq.to_be_bytes());
            buf.extend_from_slice(&(blob.len() as u32).to_be_bytes());
            buf.extend_from_slice(blob);
            count += 1;
        }
        let body_len = (buf.len() - HEADER) as u32;
        buf[..4].copy_from_slice(MAGIC);
        buf[4..12].copy_from_slice(&self.epoch.to_be_bytes());
        buf[12..16].copy_from_slice(&body_len.to_be_bytes());
        buf[16..20].copy_from_slice(&count.to_be_bytes());
        let sum = checksum(&buf[..20], &buf[HEADER..]);
        buf[20..HEADER].copy_from_slice(&sum);
        let at = self.len;
        let result = if !self.fits(buf.len() as u64) {
            Err(StoreError(format!(
                "{}: frame of {} bytes does not fit",
                self.path.display(),
                buf.len()
            )))
        } else {
            self.file
                .write_all_at(&buf, at)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| io(&self.path, "write", e))
        };
        match result {
            Ok(()) => {
                self.len = at + buf.len() as u64;
                self.buf = buf;
                Ok(())
            }
            Err(e) => {
                self.poison(&e.0);
                Err(e)
            }
        }
    }

    /// Calls `apply` for every entry of every frame of `epoch`, from the start of the file, in
    /// the order they were written. Returns the number of frames read.
    pub(super) fn replay(
        &self,
        epoch: u64,
        mut apply: impl FnMut(SlotId, u64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut at = 0u64;
        let mut frames = 0u64;
        let mut header = [0u8; HEADER];
        loop {
            if at + HEADER as u64 > self.capacity
                || self.file.read_exact_at(&mut header, at).is_err()
            {
                break;
            }
            let be_u32 = |i: usize| {
                u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
            };
            let mut e = [0u8; 8];
            e.copy_from_slice(&header[4..12]);
            if &header[..4] != MAGIC || u64::from_be_bytes(e) != epoch {
                break;
            }
            let body_len = u64::from(be_u32(12));
            let count = be_u32(16);
            if at + HEADER as u64 + body_len > self.capacity {
                break;
            }
            let mut body = vec![0u8; body_len as usize];
            if self
                .file
                .read_exact_at(&mut body, at + HEADER as u64)
                .is_err()
                || checksum(&header[..20], &body)[..] != header[20..HEADER]
            {
                break;
            }
            let mut rest = &body[..];
            for _ in 0..count {
                let Some((slot, seq, blob, tail)) = split_entry(rest) else {
                    return Err(StoreError(format!(
                        "{}: frame at offset {at} has a valid checksum but a malformed entry",
                        self.path.display()
                    )));
                };
                apply(slot, seq, blob)?;
                rest = tail;
            }
            frames += 1;
            at += HEADER as u64 + body_len;
        }
        Ok(frames)
    }
}

fn checksum(header: &[u8], body: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(body);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

fn split_entry(b: &[u8]) -> Option<(SlotId, u64, &[u8], &[u8])> {
    let head = b.get(..ENTRY_HEADER)?;
    let mut slot = [0u8; 16];
    slot.copy_from_slice(&head[..16]);
    let seq = u64::from_be_bytes(head[16..24].try_into().ok()?);
    let len = u32::from_be_bytes(head[24..28].try_into().ok()?) as usize;
    let blob = b.get(ENTRY_HEADER..ENTRY_HEADER.checked_add(len)?)?;
    Some((SlotId(slot), seq, blob, &b[ENTRY_HEADER + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: u8) -> Vec<(SlotId, u64, Vec<u8>)> {
        (1..=n)
            .map(|i| (SlotId([i; 16]), u64::from(i), vec![i; usize::from(i) * 10]))
            .collect()
    }

    fn replayed(log: &AppendLog, epoch: u64) -> (u64, Vec<(SlotId, u64, Vec<u8>)>) {
        let mut got = Vec::new();
        let frames = log
            .replay(epoch, |s, q, b| {
                got.push((s, q, b.to_vec()));
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
        log.write(all[..2].iter().map(|(s, q, b)| (*s, *q, &b[..])))
            .expect("test io");
        log.write(all[2..].iter().map(|(s, q, b)| (*s, *q, &b[..])))
            .expect("test io");
        let expected_len = frame_len(all[..2].iter().map(|e| e.2.len()))
            + frame_len(all[2..].iter().map(|e| e.2.len()));
        assert_eq!(log.len, expected_len);
        drop(log);
        let log = AppendLog::open(&path, 64 << 10).expect("test io");
        assert_eq!(replayed(&log, 7), (2, all.clone()));
        assert_eq!(replayed(&log, 6), (0, vec![]));
        assert_eq!(replayed(&log, 8), (0, vec![]));
    }

    #[test]
    fn a_new_epoch_hides_the_old_frames_behind_it() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("log");
        let mut log = AppendLog::open(&path, 64 << 10).expect("test io");
        log.recreate(0).expect("test io");
        let all = entries(6);
        log.write(all.iter().map(|(s, q, b)| (*s, *q, &b[..])))
            .expect("test io");
        log.reset(1);
        log.write(all[..1].iter().map(|(s, q, b)| (*s, *q, &b[..])))
            .expect("test io");
        assert_eq!(replayed(&log, 1), (1, all[..1].to_vec()));
        assert_eq!(replayed(&log, 0), (0, vec![]));
    }

    #[test]
    fn a_torn_or_corrupt_frame_ends_the_replay() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("log");
        let mut log = AppendLog::open(&path, 64 << 10).expect("test io");
        log.recreate(0).expect("test io");
        let all = entries(4);
        for e in &all {
            log.write(std::iter::once((e.0, e.1, &e.2[..])))
                .expect("test io");
        }
        // Flip one byte in the body of the third frame.
        let third = frame_len(std::iter::once(10)) + frame_len(std::iter::once(20));
        let at = third + (HEADER + ENTRY_HEADER) as u64 + 5;
        let mut b = [0u8; 1];
        log.file.read_exact_at(&mut b, at).expect("test io");
        log.file.write_all_at(&[b[0] ^ 1], at).expect("test io");
        assert_eq!(replayed(&log, 0), (2, all[..2].to_vec()));
    }

    #[test]
    fn a_frame_that_does_not_fit_is_refused_and_poisons() {
        let dir = tempfile::tempdir().expect("test io");
        let mut log = AppendLog::open(&dir.path().join("log"), 256).expect("test io");
        log.recreate(0).expect("test io");
        let big = vec![1u8; 300];
        assert!(!log.fits(frame_len(std::iter::once(big.len()))));
        let e = log.write(std::iter::once((SlotId([1; 16]), 1, &big[..])));
        assert!(e.is_err());
        assert!(log.check().is_err());
    }
}
