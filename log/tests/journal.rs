//! The store's journal (ARCHITECTURE decision (ae)): a write is durable once `write` returns,
//! through a crash that loses every commit redb did not fsync; replay folds what it restores
//! exactly once; big writes and a full journal commit durably instead.

use std::cell::RefCell;
use std::path::Path;
use std::process::Command;

use wire_log::store::{JOURNAL_CAPACITY, JOURNAL_FRAME_MAX, journal_path};
use wire_log::{EventStore, LogId, VerifiedEvent};

use crate::{chain, key};

const CHILD: &str = "WIRE_JOURNAL_TEST_CHILD";

/// A new store in a temporary directory, for the key `key(n)`.
fn fresh(
    n: u8,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    wire_log::SecretKey,
    EventStore,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let k = key(n);
    let store = EventStore::create(&path, k.author()).expect("create");
    (dir, path, k, store)
}

/// Runs the test `name` of this binary again as a child with [`CHILD`] set to `dir`.
fn run_child(name: &str, dir: &Path) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().expect("exe"))
        .args([name, "--exact", "--test-threads=1"])
        .env(CHILD, dir)
        .status()
        .expect("run the child")
}

/// Opens the store, recording every event the replay folds with its position.
fn open_recording(path: &Path) -> (EventStore, Vec<(u64, u64)>) {
    let folded = RefCell::new(Vec::new());
    let store = EventStore::open(path, &mut |_txn, event, position| {
        folded.borrow_mut().push((event.seq, position));
        Ok(())
    })
    .expect("open");
    (store, folded.into_inner())
}

fn seqs(store: &EventStore, k: &wire_log::SecretKey) -> Vec<u64> {
    store
        .read_chain(&LogId::self_log(&k.author()), &k.author(), 0, usize::MAX)
        .expect("read back, every signature checked")
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// The child: appends one event per write, reporting each acknowledged one, then aborts (no
/// destructor runs, so redb never makes its non-durable commits durable).
fn child(dir: &Path, n: u64) -> ! {
    let k = key(7);
    let store = EventStore::create(&dir.join("store.redb"), k.author()).expect("create");
    let events = chain(&k, n);
    for e in &events {
        store.append(e.signed_bytes()).expect("append");
        std::fs::write(dir.join("acked"), e.seq.to_string()).expect("ack file");
    }
    std::process::abort()
}

#[test]
fn acknowledged_writes_survive_an_abort_and_replay_folds_each_once() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(Path::new(&dir), 60);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let status = run_child(
        "journal::acknowledged_writes_survive_an_abort_and_replay_folds_each_once",
        dir.path(),
    );
    assert!(!status.success(), "the child aborts");
    let acked: u64 = std::fs::read_to_string(dir.path().join("acked"))
        .expect("the child acknowledged writes")
        .parse()
        .expect("a number");
    assert_eq!(acked, 60);
    let path = dir.path().join("store.redb");
    let (store, folded) = open_recording(&path);
    let k = key(7);
    assert_eq!(seqs(&store, &k), (1..=60).collect::<Vec<_>>());
    // Nothing was fsynced by redb, so the replay restored all 60, in order, at their positions.
    assert_eq!(folded, (1..=60).map(|s| (s, s - 1)).collect::<Vec<_>>());
    let (epoch, len) = store.journal_state();
    assert_eq!(len, 0, "the replay starts an empty journal");
    assert!(epoch >= 1);
    drop(store);
    let (store, folded) = open_recording(&path);
    assert!(folded.is_empty(), "a second open has nothing to replay");
    assert_eq!(store.len().expect("len"), 60);
}

/// The child of the relaxed test: durable 1–10, relaxed 11–15, a sync, relaxed 16–20, durable
/// 21 (which carries 16–20), relaxed 22–25 and a relaxed batch of 600 never synced; then an
/// abort.
fn relaxed_child(dir: &Path) -> ! {
    let k = key(6);
    let store = EventStore::create(&dir.join("store.redb"), k.author()).expect("create");
    let events = chain(&k, 25);
    let relaxed = |e: &VerifiedEvent| {
        store
            .write_relaxed(|w| w.append(e))
            .expect("relaxed append");
    };
    for e in &events[..10] {
        store.append(e.signed_bytes()).expect("append");
    }
    events[10..15].iter().for_each(relaxed);
    assert!(store.needs_sync());
    store.sync().expect("sync");
    assert!(!store.needs_sync());
    events[15..20].iter().for_each(relaxed);
    store.append(events[20].signed_bytes()).expect("append");
    assert!(
        !store.needs_sync(),
        "a durable write carries the relaxed ones before it"
    );
    events[21..].iter().for_each(relaxed);
    assert!(store.needs_sync());
    // A relaxed batch too big for a frame, never synced: lost too, with everything after it.
    let more = chain(&k, 25 + 600);
    store
        .write_relaxed(|w| more[25..].iter().try_for_each(|e| w.append(e).map(|_| ())))
        .expect("relaxed batch");
    // Visible at once, before any sync.
    assert_eq!(store.len().expect("len"), 625);
    std::process::abort()
}

#[test]
fn relaxed_writes_survive_a_crash_once_synced_or_followed_by_a_durable_write() {
    if let Ok(dir) = std::env::var(CHILD) {
        relaxed_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let status = run_child(
        "journal::relaxed_writes_survive_a_crash_once_synced_or_followed_by_a_durable_write",
        dir.path(),
    );
    assert_eq!(
        status.code(),
        None,
        "the child aborts (a failed assertion would exit 101)"
    );
    let (store, folded) = open_recording(&dir.path().join("store.redb"));
    assert_eq!(seqs(&store, &key(6)), (1..=21).collect::<Vec<_>>());
    assert_eq!(folded.len(), 21);
}

/// The child of the concurrent test: four threads append relaxed, in chain order, and each
/// syncs after its own append, so appends land while other threads' frames are being synced
/// (a relaxed write never waits for an fsync in flight); each sync that returns is recorded
/// as the highest sequence number known durable. Then an abort.
fn concurrent_child(dir: &Path) -> ! {
    use std::sync::Mutex;
    let k = key(5);
    let store = EventStore::create(&dir.join("store.redb"), k.author()).expect("create");
    let events = chain(&k, 400);
    let next = Mutex::new(0usize);
    let acked = Mutex::new(0u64);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let seq = {
                        let mut n = next.lock().expect("next");
                        let Some(e) = events.get(*n) else { break };
                        store
                            .write_relaxed(|w| w.append(e))
                            .expect("relaxed append");
                        *n += 1;
                        e.seq
                    };
                    store.sync().expect("sync");
                    let mut a = acked.lock().expect("acked");
                    if seq > *a {
                        *a = seq;
                        std::fs::write(dir.join("acked"), a.to_string()).expect("ack file");
                    }
                }
            });
        }
    });
    assert!(!store.needs_sync());
    std::process::abort()
}

#[test]
fn concurrent_relaxed_writes_and_syncs_lose_nothing_a_sync_returned_for() {
    if let Ok(dir) = std::env::var(CHILD) {
        concurrent_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let status = run_child(
        "journal::concurrent_relaxed_writes_and_syncs_lose_nothing_a_sync_returned_for",
        dir.path(),
    );
    assert_eq!(
        status.code(),
        None,
        "the child aborts (a failed assertion would exit 101)"
    );
    let acked: u64 = std::fs::read_to_string(dir.path().join("acked"))
        .expect("the child acknowledged writes")
        .parse()
        .expect("a number");
    assert_eq!(acked, 400, "every append was followed by a sync");
    let (store, folded) = open_recording(&dir.path().join("store.redb"));
    // In order, every one, each folded once: the frames reached the file in commit order.
    assert_eq!(seqs(&store, &key(5)), (1..=400).collect::<Vec<_>>());
    assert_eq!(folded, (1..=400).map(|s| (s, s - 1)).collect::<Vec<_>>());
}

#[test]
fn a_relaxed_write_too_big_for_a_frame_is_made_durable_by_the_next_sync_or_write() {
    let (_dir, _path, k, store) = fresh(5);
    let events = chain(&k, 1202);
    let big = |range: std::ops::Range<usize>| {
        store
            .write_relaxed(|w| {
                events[range]
                    .iter()
                    .try_for_each(|e| w.append(e).map(|_| ()))
            })
            .expect("relaxed batch");
    };
    big(0..600);
    assert!(store.needs_sync());
    let (epoch, _) = store.journal_state();
    store.sync().expect("sync");
    assert!(!store.needs_sync());
    assert_eq!(
        store.journal_state(),
        (epoch + 1, 0),
        "the sync was a durable commit"
    );
    big(600..1200);
    // A durable write after it cannot be a frame (it would not carry the batch): a checkpoint.
    store.append(events[1200].signed_bytes()).expect("append");
    assert!(!store.needs_sync());
    assert_eq!(store.journal_state(), (epoch + 2, 0));
    store.append(events[1201].signed_bytes()).expect("append");
    assert!(
        store.journal_state().1 > 0,
        "and the next small write is a frame again"
    );
}

#[test]
fn a_clean_close_checkpoints_and_the_next_open_replays_nothing() {
    let (_dir, path, k, store) = fresh(8);
    for e in &chain(&k, 5) {
        store.append(e.signed_bytes()).expect("append");
    }
    let (_, len) = store.journal_state();
    assert!(len > 0, "small writes go through the journal");
    drop(store);
    let (store, folded) = open_recording(&path);
    assert!(folded.is_empty());
    assert_eq!(seqs(&store, &k), vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_big_write_commits_durably_and_a_full_journal_starts_a_new_epoch() {
    let (_dir, path, k, store) = fresh(9);
    let per_event = chain(&k, 1)[0].signed_bytes().len() as u64 + 4;
    let big = (JOURNAL_FRAME_MAX / per_event + 1) as usize;
    let batch = 64;
    let events: Vec<VerifiedEvent> = chain(
        &k,
        (big + (JOURNAL_CAPACITY / per_event) as usize + 4 * batch) as u64,
    );
    let bytes: Vec<&[u8]> = events.iter().map(|e| e.signed_bytes()).collect();
    // One batch whose frame is over the limit: no frame, a durable commit.
    store.append_batch(&bytes[..big]).expect("big batch");
    let (first, len) = store.journal_state();
    assert_eq!(len, 0);
    // Then batches that each fit until the journal is full: the epoch moves on, the data stays.
    let mut at = big;
    let mut epochs = vec![first];
    while at < bytes.len() && epochs.len() < 2 {
        let end = (at + batch).min(bytes.len());
        store.append_batch(&bytes[at..end]).expect("append");
        at = end;
        let (epoch, len) = store.journal_state();
        assert!(len <= JOURNAL_CAPACITY);
        if epoch != *epochs.last().expect("one") {
            epochs.push(epoch);
        }
    }
    assert_eq!(
        epochs,
        vec![first, first + 1],
        "the journal filled and checkpointed"
    );
    assert!(journal_path(&path).exists());
    drop(store);
    let (store, _) = open_recording(&path);
    assert_eq!(store.len().expect("len"), at as u64);
}

#[test]
fn a_forged_or_foreign_event_in_the_journal_refuses_the_open_and_changes_nothing() {
    use wire_log::journal::{Journal, push_prefixed};
    let (_dir, path, k, store) = fresh(4);
    let events = chain(&k, 4);
    for e in &events[..3] {
        store.append(e.signed_bytes()).expect("append");
    }
    let (epoch, _) = store.journal_state();
    drop(store);
    // The clean close moved to the next epoch: frames written there are what an open replays.
    let mut forged = events[3].signed_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let foreign = chain(&key(5), 1)[0].signed_bytes().to_vec();
    for (bad, why) in [(forged, "verif"), (foreign, "may not write")] {
        let mut j =
            Journal::open(&journal_path(&path), *b"wse1", JOURNAL_CAPACITY).expect("journal");
        j.restart(epoch + 1).expect("restart");
        j.write(|buf| {
            push_prefixed(buf, &bad);
            1
        })
        .expect("frame");
        drop(j);
        let e = EventStore::open(&path, &mut |_, _, _| Ok(())).expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("journal"), "{text}");
        assert!(text.contains(why), "{text}");
    }
    // Moved aside, the journal takes nothing with it: the store is as it was.
    std::fs::remove_file(journal_path(&path)).expect("remove");
    let (store, folded) = open_recording(&path);
    assert!(folded.is_empty());
    assert_eq!(seqs(&store, &k), vec![1, 2, 3]);
}
