//! A journal of checksummed frames: where a write becomes durable between two durable commits
//! of a redb file (ARCHITECTURE decisions (s) and (ae)).
//!
//! A durable redb commit rewrites, copy-on-write, every page it touches and redb's own
//! bookkeeping pages, and fsyncs twice. Instead, a writer commits to redb without an fsync
//! (`Durability::None`: visible to readers at once, persisted by the next durable commit) after
//! writing what the transaction did as one frame here and fsyncing it: a few hundred bytes and
//! one `fdatasync`. When the next frame would not fit, the writer commits durably instead (a
//! checkpoint) and records a new epoch in the same commit; the journal then starts again at
//! offset 0, and frames of older epochs left behind it are never read again.
//!
//! On open, the frames of the epoch the redb file records are applied again by the writer, which
//! must make that idempotent (each frame's effect is skipped if the store already has it).
//!
//! Space is zero-filled ahead of the frames, 4 KiB at a time, so an `fdatasync` writes data and
//! not block maps, and the page cache holds the file in small folios (a frame dirtying part of a
//! large folio makes its fsync write all of it: 2 MiB per 5 KB frame, measured on ext4).
//!
//! Frame: `magic (4) ‖ epoch (8) ‖ body length (4) ‖ entries (4) ‖ blake3 of all that and the
//! body, first 16 bytes ‖ body`, integers big-endian; the body's layout is the caller's. Replay
//! stops at the first frame that is short, of another epoch or fails its checksum: the end of
//! the journal, or a frame whose fsync never returned and whose write was therefore never
//! acknowledged.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bytes of a frame's header.
pub const HEADER: usize = 4 + 8 + 4 + 4 + 16;
/// Space is allocated in steps of this many bytes.
const GROW: u64 = 64 << 10;

/// A journal failure, naming the file and what could not be done.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// The open journal, positioned after the last frame of the current epoch.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    magic: [u8; 4],
    capacity: u64,
    /// Bytes from 0 known to be allocated (zeros or frames) and synced.
    allocated: u64,
    epoch: u64,
    len: u64,
    buf: Vec<u8>,
    /// Set when a write or the commit after it failed: the journal and the store may disagree
    /// until a reopen replays the journal, so no further frame is taken.
    poisoned: Option<String>,
}

fn io(path: &Path, what: &str, e: std::io::Error) -> JournalError {
    JournalError(format!("{}: cannot {what}: {e}", path.display()))
}

/// Bytes a frame with a body of `body` bytes takes.
pub fn frame_len(body: usize) -> u64 {
    (HEADER + body) as u64
}

impl Journal {
    /// Opens (creating if needed, 0600) the journal at `path`, for frames marked `magic` in its
    /// first `capacity` bytes. [`replay`](Self::replay) what it holds, then
    /// [`recreate`](Self::recreate) or [`restart`](Self::restart) before writing.
    pub fn open(path: &Path, magic: [u8; 4], capacity: u64) -> Result<Journal, JournalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| io(path, "open", e))?;
        Ok(Journal {
            file,
            path: path.to_owned(),
            magic,
            capacity,
            allocated: 0,
            epoch: 0,
            len: 0,
            buf: Vec::new(),
            poisoned: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes of frames written in this epoch.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a frame of `bytes` (see [`frame_len`]) fits before the next checkpoint.
    pub fn fits(&self, bytes: u64) -> bool {
        self.len.saturating_add(bytes) <= self.capacity
    }

    pub fn check(&self) -> Result<(), JournalError> {
        match &self.poisoned {
            Some(why) => Err(JournalError(why.clone())),
            None => Ok(()),
        }
    }

    pub fn poison(&mut self, why: &str) {
        self.poisoned = Some(format!(
            "writes stopped after a journal failure ({why}); restart to recover"
        ));
    }

    /// Empties the file and fills all of its capacity with zeros, synced, then starts `epoch` at
    /// offset 0; for a writer whose frames come fast from the start (the relay). Called once the
    /// redb file durably holds every frame in the journal.
    pub fn recreate(&mut self, epoch: u64) -> Result<(), JournalError> {
        self.truncate()?;
        self.allocate(self.capacity)?;
        self.reset(epoch);
        Ok(())
    }

    /// Empties the file and starts `epoch` at offset 0, allocating space only as frames need it;
    /// for a writer that opens often and writes little (a session). Called once the redb file
    /// durably holds every frame in the journal.
    pub fn restart(&mut self, epoch: u64) -> Result<(), JournalError> {
        self.truncate()?;
        self.reset(epoch);
        Ok(())
    }

    fn truncate(&mut self) -> Result<(), JournalError> {
        self.file
            .set_len(0)
            .map_err(|e| io(&self.path, "truncate", e))?;
        self.allocated = 0;
        Ok(())
    }

    /// Zero-fills the file up to `to` bytes (4 KiB writes, see the module docs) and syncs it
    /// with its size, and its directory the first time.
    fn allocate(&mut self, to: u64) -> Result<(), JournalError> {
        let path = &self.path;
        let zeros = [0u8; 4096];
        let first = self.allocated == 0;
        let mut at = self.allocated;
        while at < to {
            let n = (to - at).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| io(path, "allocate", e))?;
            at += n as u64;
        }
        self.file.sync_all().map_err(|e| io(path, "sync", e))?;
        if first
            && let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.allocated = to;
        Ok(())
    }

    /// Starts `epoch` at offset 0; called once the redb file durably records `epoch`.
    pub fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.len = 0;
    }

    /// Writes one frame whose body `body` appends to the buffer it is given, returning the
    /// number of entries it wrote, and fsyncs it. On error the journal is poisoned.
    pub fn write(&mut self, body: impl FnOnce(&mut Vec<u8>) -> u32) -> Result<(), JournalError> {
        self.check()?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(HEADER, 0);
        let entries = body(&mut buf);
        let result = self.write_frame(entries, &mut buf);
        self.buf = buf;
        if let Err(e) = &result {
            self.poison(&e.0);
        }
        result
    }

    fn write_frame(&mut self, entries: u32, buf: &mut [u8]) -> Result<(), JournalError> {
        let body_len = u32::try_from(buf.len() - HEADER)
            .map_err(|_| JournalError(format!("{}: a frame over 4 GiB", self.path.display())))?;
        buf[..4].copy_from_slice(&self.magic);
        buf[4..12].copy_from_slice(&self.epoch.to_be_bytes());
        buf[12..16].copy_from_slice(&body_len.to_be_bytes());
        buf[16..20].copy_from_slice(&entries.to_be_bytes());
        let sum = checksum(&buf[..20], &buf[HEADER..]);
        buf[20..HEADER].copy_from_slice(&sum);
        let at = self.len;
        let end = at + buf.len() as u64;
        if !self.fits(buf.len() as u64) {
            return Err(JournalError(format!(
                "{}: a frame of {} bytes does not fit",
                self.path.display(),
                buf.len()
            )));
        }
        if end > self.allocated {
            let to = end.div_ceil(GROW).saturating_mul(GROW).min(self.capacity);
            self.allocate(to.max(end))?;
        }
        self.file
            .write_all_at(buf, at)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io(&self.path, "write", e))?;
        self.len = end;
        Ok(())
    }

    /// Calls `apply` with the entry count and body of every frame of `epoch`, from the start of
    /// the file, in the order they were written. Returns the number of frames read.
    ///
    /// The first frame that is short or fails its checksum ends the journal: it is the one
    /// whose write was torn by a crash, never acknowledged. If an intact frame of the same epoch
    /// follows it, the damage is not a torn write but a corrupted file, and that is an error
    /// rather than a silent loss of the frames after it.
    pub fn replay<E: From<JournalError>>(
        &self,
        epoch: u64,
        mut apply: impl FnMut(u32, &[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut at = 0u64;
        let mut frames = 0u64;
        loop {
            match self.frame_at(at, epoch) {
                Frame::Intact { count, body } => {
                    apply(count, &body)?;
                    frames += 1;
                    at += frame_len(body.len());
                }
                Frame::End => break,
                Frame::Damaged { next } => {
                    if let Some(next) = next
                        && matches!(self.frame_at(next, epoch), Frame::Intact { .. })
                    {
                        return Err(E::from(JournalError(format!(
                            "{}: the frame at offset {at} is damaged but the one after it is \
                             intact, so this is not a torn write: the file is corrupt",
                            self.path.display()
                        ))));
                    }
                    break;
                }
            }
        }
        Ok(frames)
    }

    fn frame_at(&self, at: u64, epoch: u64) -> Frame {
        let mut header = [0u8; HEADER];
        if at + HEADER as u64 > self.capacity || self.file.read_exact_at(&mut header, at).is_err() {
            return Frame::End;
        }
        let be_u32 =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let mut e = [0u8; 8];
        e.copy_from_slice(&header[4..12]);
        if header[..4] != self.magic || u64::from_be_bytes(e) != epoch {
            return Frame::End;
        }
        let body_len = u64::from(be_u32(12));
        let count = be_u32(16);
        let end = at + HEADER as u64 + body_len;
        if end > self.capacity {
            return Frame::Damaged { next: None };
        }
        let mut body = vec![0u8; body_len as usize];
        if self
            .file
            .read_exact_at(&mut body, at + HEADER as u64)
            .is_err()
        {
            return Frame::Damaged { next: None };
        }
        if checksum(&header[..20], &body)[..] != header[20..HEADER] {
            return Frame::Damaged { next: Some(end) };
        }
        Frame::Intact { count, body }
    }
}

enum Frame {
    Intact {
        count: u32,
        body: Vec<u8>,
    },
    /// Short, or its checksum fails; `next` is where the frame after it would start if its
    /// header's length is to be believed.
    Damaged {
        next: Option<u64>,
    },
    /// Not a frame of this journal and epoch: zeros, or an older epoch's frame.
    End,
}

fn checksum(header: &[u8], body: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(body);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Splits `len (4, big-endian) ‖ bytes` off the front of `b`.
pub fn split_prefixed(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = b.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Appends `len (4, big-endian) ‖ bytes` to `buf`.
pub fn push_prefixed(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = *b"test";

    fn frames(n: u8) -> Vec<Vec<u8>> {
        (1..=n).map(|i| vec![i; usize::from(i) * 10]).collect()
    }

    fn replayed(j: &Journal, epoch: u64) -> (u64, Vec<(u32, Vec<u8>)>) {
        let mut got = Vec::new();
        let n = j
            .replay(epoch, |count, body| -> Result<(), JournalError> {
                got.push((count, body.to_vec()));
                Ok(())
            })
            .expect("test io");
        (n, got)
    }

    fn write_all(j: &mut Journal, all: &[Vec<u8>]) {
        for (i, f) in all.iter().enumerate() {
            j.write(|b| {
                b.extend_from_slice(f);
                i as u32
            })
            .expect("test io");
        }
    }

    #[test]
    fn frames_replay_in_order_and_only_for_their_epoch_and_magic() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("j");
        for recreate in [true, false] {
            let mut j = Journal::open(&path, MAGIC, 256 << 10).expect("test io");
            if recreate {
                j.recreate(7).expect("test io");
                assert_eq!(std::fs::metadata(&path).expect("test io").len(), 256 << 10);
            } else {
                j.restart(7).expect("test io");
            }
            let all = frames(5);
            write_all(&mut j, &all);
            let len: u64 = all.iter().map(|f| frame_len(f.len())).sum();
            assert_eq!(j.len(), len);
            if !recreate {
                // Allocated in steps, not all at once.
                assert_eq!(std::fs::metadata(&path).expect("test io").len(), GROW);
            }
            drop(j);
            let j = Journal::open(&path, MAGIC, 256 << 10).expect("test io");
            let want: Vec<(u32, Vec<u8>)> = all
                .iter()
                .enumerate()
                .map(|(i, f)| (i as u32, f.clone()))
                .collect();
            assert_eq!(replayed(&j, 7), (5, want));
            assert_eq!(replayed(&j, 6), (0, vec![]));
            assert_eq!(replayed(&j, 8), (0, vec![]));
            let other = Journal::open(&path, *b"othr", 256 << 10).expect("test io");
            assert_eq!(replayed(&other, 7), (0, vec![]));
        }
    }

    #[test]
    fn a_new_epoch_hides_the_old_frames_behind_it() {
        let dir = tempfile::tempdir().expect("test io");
        let mut j = Journal::open(&dir.path().join("j"), MAGIC, 64 << 10).expect("test io");
        j.restart(0).expect("test io");
        let all = frames(6);
        write_all(&mut j, &all);
        j.reset(1);
        write_all(&mut j, &all[..1]);
        assert_eq!(replayed(&j, 1), (1, vec![(0, all[0].clone())]));
        assert_eq!(replayed(&j, 0), (0, vec![]));
    }

    fn flip(path: &Path, at: u64) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("test io");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).expect("test io");
        f.write_all_at(&[b[0] ^ 1], at).expect("test io");
    }

    #[test]
    fn a_torn_last_frame_ends_the_replay_and_a_damaged_middle_one_is_an_error() {
        let dir = tempfile::tempdir().expect("test io");
        let path = dir.path().join("j");
        let mut j = Journal::open(&path, MAGIC, 64 << 10).expect("test io");
        j.restart(0).expect("test io");
        let all = frames(4);
        write_all(&mut j, &all);
        // A byte of the last frame's body flipped: as if its write was torn.
        let last = frame_len(10) + frame_len(20) + frame_len(30);
        flip(&path, last + HEADER as u64 + 5);
        let (n, got) = replayed(&j, 0);
        assert_eq!((n, got.len()), (3, 3));
        flip(&path, last + HEADER as u64 + 5);
        // The same in the third of four: the fourth is intact, so the file is corrupt.
        let third = frame_len(10) + frame_len(20);
        flip(&path, third + HEADER as u64 + 5);
        let e = j
            .replay(0, |_, _| -> Result<(), JournalError> { Ok(()) })
            .expect_err("a damaged middle frame is an error");
        assert!(e.0.contains(&format!("offset {third}")), "{e}");
        assert!(e.0.contains("corrupt"), "{e}");
    }

    #[test]
    fn a_frame_that_does_not_fit_is_refused_and_poisons() {
        let dir = tempfile::tempdir().expect("test io");
        let mut j = Journal::open(&dir.path().join("j"), MAGIC, 256).expect("test io");
        j.recreate(0).expect("test io");
        assert!(!j.fits(frame_len(300)));
        let big = |b: &mut Vec<u8>| {
            b.extend_from_slice(&[1u8; 300]);
            1
        };
        assert!(j.write(big).is_err());
        assert!(j.check().is_err());
        let small = |b: &mut Vec<u8>| {
            b.push(1);
            1
        };
        assert!(j.write(small).is_err(), "a poisoned journal takes nothing");
    }

    #[test]
    fn prefixed_entries_split_back_and_a_short_one_is_refused() {
        let mut buf = Vec::new();
        push_prefixed(&mut buf, b"abc");
        push_prefixed(&mut buf, b"");
        let (a, rest) = split_prefixed(&buf).expect("one");
        let (b, rest) = split_prefixed(rest).expect("two");
        assert_eq!((a, b, rest), (&b"abc"[..], &b""[..], &b""[..]));
        assert!(split_prefixed(&buf[..5]).is_none());
        assert!(split_prefixed(&[0, 0]).is_none());
    }
}
