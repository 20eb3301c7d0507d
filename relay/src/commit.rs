//! Group commit: one thread owns the append path and turns whatever requests are waiting into
//! one durable transaction.
//!
//! While a transaction is being written and fsynced, new requests queue up; the next
//! transaction takes all of them (up to a bound). Under load, many appends share one fsync;
//! alone, an append pays for one. A request's reply is sent only after its transaction has
//! committed, so a 2xx always means "on disk". Acknowledgements join the groups when the store
//! takes them there ([`BlobStore::acks_in_groups`], redb): a thousand readers acknowledging once
//! a second then share the appends' fsyncs instead of each taking a durable commit of its own,
//! during which no append could commit (decision (am)). A store with several connections
//! ([`BlobStore::append_lanes`], PostgreSQL) gets as many commit threads, so that a group is
//! formed and sent while the one before is still being flushed; of them, as many groups are
//! in flight at once as the store allows at the time ([`BlobStore::append_lanes_now`]: on
//! PostgreSQL, the lanes are shared with the other instances on the database). A group of
//! such a store waits up to [`REJOIN_WAIT`] for the requests its thread's previous group
//! answered, so that the clients just answered join it instead of the next (decision (at)).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::{AckOutcome, AppendItem, AppendOutcome, BlobStore, StoreError};
use crate::token::SlotId;

/// Most appends one transaction takes.
const GROUP_ITEMS_MAX: usize = 16_384;
/// Most requests waiting for the committer before new ones are told to retry.
///
/// Counted, not preallocated: a bounded `sync_channel` would reserve a slot per request up
/// front (65,536 × 80 bytes, 5 MiB of a fresh relay's memory); the unbounded channel behind
/// [`Inbox`] holds only what is waiting.
const QUEUE_REQUESTS_MAX: usize = 65_536;

type Outcomes = (Vec<AckOutcome>, Vec<AppendOutcome>);
type Reply = oneshot::Sender<Result<Outcomes, StoreError>>;

enum Msg {
    Job(Job),
    /// Commit what is queued ahead of this, then stop.
    Stop,
}

struct Job {
    acks: Vec<(SlotId, u64)>,
    items: Vec<AppendItem>,
    reply: Reply,
    queued: Instant,
}

/// Why an append could not be handed to the committer.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the relay is overloaded; retry shortly")]
    Busy,
    #[error("the relay is shutting down")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The handle request handlers use; cheap to clone.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: Sender<Msg>,
    /// Jobs sent and not yet taken by a commit thread.
    depth: Arc<AtomicUsize>,
    bound: usize,
}

/// The commit threads' end of the queue: every job taken out is counted off `depth`.
struct Inbox {
    rx: Receiver<Msg>,
    depth: Arc<AtomicUsize>,
}

impl Inbox {
    fn taken(&self, msg: Msg) -> Msg {
        if matches!(msg, Msg::Job(_)) {
            self.depth.fetch_sub(1, Relaxed);
        }
        msg
    }

    fn recv(&self) -> Option<Msg> {
        self.rx.recv().ok().map(|m| self.taken(m))
    }

    fn recv_timeout(&self, wait: Duration) -> Result<Msg, RecvTimeoutError> {
        self.rx.recv_timeout(wait).map(|m| self.taken(m))
    }

    fn try_recv(&self) -> Result<Msg, TryRecvError> {
        self.rx.try_recv().map(|m| self.taken(m))
    }
}

/// A committer's handle and the queue behind it, holding at most `bound` jobs.
fn queue(bound: usize) -> (Committer, Inbox) {
    let (tx, rx) = channel();
    let depth = Arc::new(AtomicUsize::new(0));
    let inbox = Inbox {
        rx,
        depth: depth.clone(),
    };
    (Committer { tx, depth, bound }, inbox)
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Job(job) => write!(f, "Job({} acks, {} items)", job.acks.len(), job.items.len()),
            Msg::Stop => f.write_str("Stop"),
        }
    }
}

impl Committer {
    /// Starts the commit thread. It ends when every `Committer` clone is dropped, or after
    /// [`stop`](Self::stop).
    pub fn start(
        store: Arc<dyn BlobStore>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        group_wait: Duration,
    ) -> (Committer, JoinHandle<()>) {
        let (committer, rx) = queue(QUEUE_REQUESTS_MAX);
        let lanes = store.append_lanes().max(1);
        let handle = std::thread::Builder::new()
            .name("wire-relay-commit".into())
            .spawn(move || {
                if lanes == 1 {
                    return run(&*store, &hub, &metrics, || next_alone(&rx));
                }
                // Several groups in flight at once (a store with that many connections): each
                // thread takes whatever is waiting when it is free.
                let shared = Shared {
                    depth: rx.depth.clone(),
                    rx: Mutex::new(rx),
                    stopping: AtomicBool::new(false),
                    busy: Mutex::new(0),
                    freed: Condvar::new(),
                };
                std::thread::scope(|s| {
                    for i in 0..lanes {
                        let thread = std::thread::Builder::new()
                            .name(format!("wire-relay-commit-{i}"))
                            .spawn_scoped(s, || {
                                // Holding one of the groups in flight the store allows now.
                                let mut held = false;
                                let mut rejoin = Rejoin::default();
                                run(&*store, &hub, &metrics, || {
                                    // The thread that just committed goes on while the store
                                    // allows as many in flight: no wake-up of another for each
                                    // group when only one is allowed.
                                    let allowed = || store.append_lanes_now();
                                    let kept = std::mem::take(&mut held) && shared.keep(allowed);
                                    if !kept {
                                        rejoin.answered = 0;
                                        if !shared.acquire(allowed) {
                                            return None;
                                        }
                                    }
                                    // The group may wait a little for the requests just
                                    // answered to come back and join it (decision (at)).
                                    let want = (!group_wait.is_zero())
                                        .then(|| rejoin.want(shared.waiting()))
                                        .flatten();
                                    let Some((jobs, stop, waited)) =
                                        next_shared(&shared, want, group_wait)
                                    else {
                                        shared.release();
                                        return None;
                                    };
                                    held = true;
                                    rejoin.formed(jobs.len(), waited);
                                    Some((jobs, stop))
                                });
                            });
                        if let Err(e) = thread {
                            panic!("cannot start a commit thread: {e}");
                        }
                    }
                });
            })
            .unwrap_or_else(|e| panic!("cannot start the commit thread: {e}"));
        (committer, handle)
    }

    /// Appends `items` durably; resolves after the commit with one outcome per item.
    pub async fn append(&self, items: Vec<AppendItem>) -> Result<Vec<AppendOutcome>, CommitError> {
        Ok(self.submit(Vec::new(), items).await?.1)
    }

    /// Acknowledges `slot` through `through` in the next group; resolves after its commit.
    /// Only for a store whose [`BlobStore::acks_in_groups`].
    pub async fn ack(&self, slot: SlotId, through: u64) -> Result<AckOutcome, CommitError> {
        self.submit(vec![(slot, through)], Vec::new())
            .await?
            .0
            .pop()
            .ok_or_else(|| {
                CommitError::Store(StoreError(
                    "an acknowledgement went missing from its group".into(),
                ))
            })
    }

    async fn submit(
        &self,
        acks: Vec<(SlotId, u64)>,
        items: Vec<AppendItem>,
    ) -> Result<Outcomes, CommitError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            acks,
            items,
            reply,
            queued: Instant::now(),
        };
        if self.depth.fetch_add(1, Relaxed) >= self.bound {
            self.depth.fetch_sub(1, Relaxed);
            return Err(CommitError::Busy);
        }
        if self.tx.send(Msg::Job(job)).is_err() {
            self.depth.fetch_sub(1, Relaxed);
            return Err(CommitError::Closed);
        }
        Ok(rx.await.map_err(|_| CommitError::Closed)??)
    }

    /// Commits everything already queued, then ends the commit thread; later appends get
    /// [`CommitError::Closed`]. Never blocks.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// The requests of several commit threads: whoever holds `rx` forms the next group; a
/// `Stop` taken by one is seen by the others through `stopping`.
struct Shared {
    rx: Mutex<Inbox>,
    /// The queue's depth (as [`Inbox`] counts it), read without its lock.
    depth: Arc<AtomicUsize>,
    stopping: AtomicBool,
    /// Groups in flight now, at most [`BlobStore::append_lanes_now`].
    busy: Mutex<usize>,
    freed: Condvar,
}

impl Shared {
    /// Waits until fewer groups than `allowed()` are in flight and counts this one in;
    /// `false`: stopping.
    fn acquire(&self, allowed: impl Fn() -> usize) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.stopping.load(Relaxed) {
                return false;
            }
            if *busy < allowed().max(1) {
                *busy += 1;
                return true;
            }
            busy = self
                .freed
                .wait_timeout(busy, IDLE_LOOK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Whether the caller, holding one of the groups in flight, may go on holding it (the
    /// store allows as many now); if not, it is given back.
    fn keep(&self, allowed: impl Fn() -> usize) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if *busy <= allowed().max(1) && !self.stopping.load(Relaxed) {
            return true;
        }
        *busy = busy.saturating_sub(1);
        self.freed.notify_one();
        false
    }

    /// Requests waiting for a commit thread now.
    fn waiting(&self) -> usize {
        self.depth.load(Relaxed)
    }

    fn release(&self) {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        *busy = busy.saturating_sub(1);
        self.freed.notify_one();
    }
}

/// How often a commit thread of several, idle, looks whether another one took `Stop`.
const IDLE_LOOK: Duration = Duration::from_millis(100);

/// The next group of the only commit thread (`None`: stop), and whether `Stop` came behind it.
fn next_alone(rx: &Inbox) -> Option<(Vec<Job>, bool)> {
    match rx.recv() {
        Some(Msg::Job(job)) => Some(gather(rx, job, None)),
        Some(Msg::Stop) | None => None,
    }
}

/// [`next_alone`] for one of several commit threads; with `want`, the group waits up to
/// `wait` until it holds that many requests. Also how that wait ended, if it waited.
fn next_shared(
    shared: &Shared,
    want: Option<usize>,
    wait: Duration,
) -> Option<(Vec<Job>, bool, Option<Waited>)> {
    loop {
        if shared.stopping.load(Relaxed) {
            return None;
        }
        let rx = shared
            .rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match rx.recv_timeout(IDLE_LOOK) {
            Ok(Msg::Job(job)) => {
                let (mut jobs, stop) = gather(&rx, job, Some(&shared.stopping));
                return Some(match want {
                    Some(want) if !stop => {
                        let want = want.min(REJOIN_JOBS_MAX);
                        let waited = wait_for(&rx, &mut jobs, want, wait, &shared.stopping);
                        (jobs, waited == Waited::Stop, Some(waited))
                    }
                    _ => (jobs, stop, None),
                });
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                shared.stopping.store(true, Relaxed);
                return None;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// `first` and every job waiting behind it, up to [`GROUP_ITEMS_MAX`] items.
fn gather(rx: &Inbox, first: Job, stopping: Option<&AtomicBool>) -> (Vec<Job>, bool) {
    let mut count = first.items.len() + first.acks.len();
    let mut jobs = vec![first];
    while count < GROUP_ITEMS_MAX {
        match rx.try_recv() {
            Ok(Msg::Job(job)) => {
                count += job.items.len() + job.acks.len();
                jobs.push(job);
            }
            Ok(Msg::Stop) => {
                if let Some(s) = stopping {
                    s.store(true, Relaxed);
                }
                return (jobs, true);
            }
            Err(_) => break,
        }
    }
    (jobs, false)
}

/// Longest a group waits, by default, for the requests that its thread's previous group
/// answered (decision (at); `Config::group_wait`): about twice what a client on this machine
/// takes to read its answer and send the next request.
pub const REJOIN_WAIT: Duration = Duration::from_millis(1);
/// Most requests a group waits for (the queue's others are taken whatever their number).
const REJOIN_JOBS_MAX: usize = 1024;

/// While fewer than half of a thread's recent waits ended with the requests back (the
/// clients answered do not come straight back: an open load, not a closed loop), only one
/// group in this many waits, to notice when they do again.
const REJOIN_PROBE_EVERY: u32 = 8;

/// What a commit thread of several knows of the requests it answered (decision (at)).
#[derive(Debug)]
struct Rejoin {
    /// Requests the thread's last group answered (0: it gave its lane back since).
    answered: usize,
    /// How often its recent waits ended with the requests back: a moving average of 1 for
    /// each that did and 0 for each that ran out (the last eight weigh about two thirds).
    back: f32,
    /// Groups formed since it last waited.
    since_wait: u32,
}

impl Default for Rejoin {
    fn default() -> Rejoin {
        Rejoin {
            answered: 0,
            back: 1.0,
            since_wait: 0,
        }
    }
}

impl Rejoin {
    /// How many requests the next group waits for, with `waiting` queued now; `None`: it
    /// takes what is queued.
    fn want(&self, waiting: usize) -> Option<usize> {
        let waits = self.back >= 0.5 || self.since_wait + 1 >= REJOIN_PROBE_EVERY;
        (self.answered > 0 && waits).then_some(waiting + self.answered)
    }

    /// The group took `jobs` requests, after a wait that ended so (`None`: it did not wait).
    fn formed(&mut self, jobs: usize, waited: Option<Waited>) {
        self.answered = jobs;
        match waited {
            Some(w) => {
                self.since_wait = 0;
                let hit = if w == Waited::RanOut { 0.0 } else { 1.0 };
                self.back = self.back * 0.875 + hit * 0.125;
            }
            None => self.since_wait = self.since_wait.saturating_add(1),
        }
    }
}

/// How [`wait_for`] ended.
#[derive(Debug, PartialEq, Eq)]
enum Waited {
    /// The group holds the requests it waited for (or all the items it may).
    Reached,
    /// The wait passed first.
    RanOut,
    /// `Stop` came.
    Stop,
}

/// Takes into `jobs` what arrives within `wait` until they are `want` (or the items' bound).
fn wait_for(
    rx: &Inbox,
    jobs: &mut Vec<Job>,
    want: usize,
    wait: Duration,
    stopping: &AtomicBool,
) -> Waited {
    let until = Instant::now() + wait;
    let mut count: usize = jobs.iter().map(|j| j.items.len() + j.acks.len()).sum();
    while jobs.len() < want && count < GROUP_ITEMS_MAX {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Waited::RanOut;
        }
        match rx.recv_timeout(left) {
            Ok(Msg::Job(job)) => {
                count += job.items.len() + job.acks.len();
                jobs.push(job);
            }
            Ok(Msg::Stop) => {
                stopping.store(true, Relaxed);
                return Waited::Stop;
            }
            Err(RecvTimeoutError::Timeout) => return Waited::RanOut,
            Err(RecvTimeoutError::Disconnected) => return Waited::Reached,
        }
    }
    Waited::Reached
}

fn run(
    store: &dyn BlobStore,
    hub: &Hub,
    metrics: &Metrics,
    mut next: impl FnMut() -> Option<(Vec<Job>, bool)>,
) {
    let mut stopping = false;
    while !stopping {
        let Some((mut jobs, stop)) = next() else {
            break;
        };
        stopping = stop;
        let count = jobs.iter().map(|j| j.items.len()).sum();
        let lens: Vec<(usize, usize)> =
            jobs.iter().map(|j| (j.acks.len(), j.items.len())).collect();
        let mut items = Vec::with_capacity(count);
        let mut acks = Vec::new();
        for job in &mut jobs {
            items.append(&mut job.items);
            acks.append(&mut job.acks);
        }
        let started = Instant::now();
        let result = if acks.is_empty() {
            store.append(&items).map(|o| (Vec::new(), o))
        } else {
            store.commit_group(&acks, &items)
        };
        let done = Instant::now();
        metrics.commits.fetch_add(1, Relaxed);
        metrics.commit_batch.observe(items.len() as u64);
        metrics.commit_seconds.observe_duration(done - started);
        match result {
            Ok((acked, outcomes)) => {
                let mut stored = Vec::new();
                let (mut n_stored, mut n_dup, mut n_refused, mut bytes) = (0u64, 0u64, 0u64, 0u64);
                for (item, outcome) in items.iter().zip(&outcomes) {
                    match outcome {
                        AppendOutcome::Stored { seq } => {
                            n_stored += 1;
                            bytes += item.blob.len() as u64;
                            stored.push((item.slot, *seq, item.blob.clone()));
                        }
                        AppendOutcome::Duplicate { .. } => n_dup += 1,
                        _ => n_refused += 1,
                    }
                }
                metrics.appends_stored.fetch_add(n_stored, Relaxed);
                metrics.appends_duplicate.fetch_add(n_dup, Relaxed);
                metrics.appends_refused.fetch_add(n_refused, Relaxed);
                metrics.bytes_stored.fetch_add(bytes, Relaxed);
                metrics.touch_slots(stored.iter().map(|(slot, _, _)| *slot));
                hub.publish(&stored);
                let mut rest = outcomes.into_iter();
                let mut rest_acked = acked.into_iter();
                for (job, (n_acks, n)) in jobs.into_iter().zip(lens) {
                    if n > 0 {
                        metrics.append_seconds.observe_duration(done - job.queued);
                    }
                    let acked: Vec<_> = rest_acked.by_ref().take(n_acks).collect();
                    let mine: Vec<_> = rest.by_ref().take(n).collect();
                    let _ = job.reply.send(Ok((acked, mine)));
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError(e.0.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// A job handed over without waiting for its commit (the first poll sends it).
    fn hand_over(c: &Committer) -> Option<Result<Outcomes, CommitError>> {
        c.submit(Vec::new(), Vec::new()).now_or_never()
    }

    #[test]
    fn a_full_queue_says_busy_and_takes_jobs_again_once_one_is_taken() {
        let (c, inbox) = queue(3);
        for _ in 0..3 {
            assert!(
                hand_over(&c).is_none(),
                "a job within the bound waits for its commit"
            );
        }
        assert!(matches!(hand_over(&c), Some(Err(CommitError::Busy))));
        assert!(matches!(hand_over(&c), Some(Err(CommitError::Busy))));
        assert_eq!(c.depth.load(Relaxed), 3, "a refused job is not counted");

        assert!(matches!(inbox.try_recv(), Ok(Msg::Job(_))));
        assert_eq!(c.depth.load(Relaxed), 2);
        assert!(hand_over(&c).is_none(), "room again after a job was taken");
        assert!(matches!(hand_over(&c), Some(Err(CommitError::Busy))));

        // `Stop` is never refused and never counted.
        c.stop();
        let mut jobs = 0;
        while let Ok(msg) = inbox.try_recv() {
            jobs += usize::from(matches!(msg, Msg::Job(_)));
        }
        assert_eq!(jobs, 3);
        assert_eq!(c.depth.load(Relaxed), 0);
    }

    #[test]
    fn a_job_for_a_stopped_committer_is_refused_and_not_counted() {
        let (c, inbox) = queue(3);
        drop(inbox);
        assert!(matches!(hand_over(&c), Some(Err(CommitError::Closed))));
        assert_eq!(c.depth.load(Relaxed), 0);
    }

    /// The commit threads keep at most as many groups in flight as the store allows at the
    /// time (decision (ar)), and a waiting thread gives up once another one took `Stop`.
    #[test]
    fn groups_in_flight_stay_within_what_the_store_allows_now() {
        let (_c, inbox) = queue(8);
        let shared = Shared {
            depth: inbox.depth.clone(),
            rx: Mutex::new(inbox),
            stopping: AtomicBool::new(false),
            busy: Mutex::new(0),
            freed: Condvar::new(),
        };
        let allowed = AtomicUsize::new(1);
        for limit in [1, 2] {
            allowed.store(limit, Relaxed);
            let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..5 {
                            assert!(shared.acquire(|| allowed.load(Relaxed)));
                            let n = now.fetch_add(1, Relaxed) + 1;
                            most.fetch_max(n, Relaxed);
                            std::thread::sleep(Duration::from_millis(2));
                            now.fetch_sub(1, Relaxed);
                            shared.release();
                        }
                    });
                }
            });
            assert!(
                most.load(Relaxed) <= limit,
                "{} > {limit}",
                most.load(Relaxed)
            );
            assert_eq!(*shared.busy.lock().expect("busy"), 0);
        }
        // A holder keeps its lane while as many are allowed, and gives it back when fewer are.
        assert!(shared.acquire(|| 2));
        assert!(shared.acquire(|| 2));
        assert!(shared.keep(|| 2));
        assert!(!shared.keep(|| 1), "two in flight where one is allowed");
        assert!(shared.keep(|| 1));
        shared.release();
        assert_eq!(*shared.busy.lock().expect("busy"), 0);
        // Full, then stopping: the waiting thread returns instead of waiting on.
        assert!(shared.acquire(|| 1));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| shared.acquire(|| 1));
            std::thread::sleep(Duration::from_millis(20));
            shared.stopping.store(true, Relaxed);
            assert!(
                !waiter.join().expect("waiter"),
                "a stopping committer hands out no lane"
            );
        });
    }

    /// A thread waits for what it answered plus what is queued, not before its first group or
    /// after it gave its lane back; once most of its waits ran out (an open load) only one
    /// group in [`REJOIN_PROBE_EVERY`] waits, and waiting pays off again when they come back.
    #[test]
    fn a_thread_waits_while_its_answered_requests_come_back() {
        let mut r = Rejoin::default();
        assert_eq!(r.want(3), None, "nothing answered yet");
        r.formed(4, None);
        assert_eq!(r.want(3), Some(7));
        // A laggard now and then (one wait in four runs out): it goes on waiting.
        for i in 0..40 {
            assert!(r.want(0).is_some(), "group {i}");
            let w = if i % 4 == 0 {
                Waited::RanOut
            } else {
                Waited::Reached
            };
            r.formed(8, Some(w));
        }
        // A group of eight that, if it waits, sees its wait end so; whether it waited.
        let group = |r: &mut Rejoin, ended: Waited| {
            let waits = r.want(0).is_some();
            r.formed(8, waits.then_some(ended));
            waits
        };
        // Every wait runs out: it soon waits only one group in eight.
        let waits = (0..80).filter(|_| group(&mut r, Waited::RanOut)).count();
        assert!(
            waits <= 80 / REJOIN_PROBE_EVERY as usize + 6,
            "{waits} waits of 80"
        );
        // The clients come back straight again: the probes find it and it waits every time.
        let mut in_a_row = 0;
        for _ in 0..200 {
            in_a_row = if group(&mut r, Waited::Reached) {
                in_a_row + 1
            } else {
                0
            };
        }
        assert!(in_a_row >= 100, "waits again: {in_a_row} in a row");
        r.answered = 0;
        assert_eq!(r.want(1), None, "gave its lane back");
    }

    /// A group waits for as many requests as it was told (decision (at)), takes no more than
    /// that of what is queued, stops waiting when none come, and hears a `Stop` that comes
    /// while it waits.
    #[test]
    fn a_group_waits_for_the_requests_it_answered_and_no_longer() {
        let (c, inbox) = queue(16);
        for _ in 0..5 {
            assert!(hand_over(&c).is_none());
        }
        let stopping = AtomicBool::new(false);
        let mut jobs = Vec::new();
        assert_eq!(
            wait_for(&inbox, &mut jobs, 3, REJOIN_WAIT, &stopping),
            Waited::Reached
        );
        assert_eq!(jobs.len(), 3, "takes what it waits for");
        assert_eq!(c.depth.load(Relaxed), 2, "and leaves the rest queued");
        // Wants more than will ever come: it takes the two and gives up after its wait.
        assert_eq!(
            wait_for(&inbox, &mut jobs, 8, REJOIN_WAIT, &stopping),
            Waited::RanOut
        );
        assert_eq!(jobs.len(), 5);
        // One arrives while it waits (kept past the sender's end: its reply stays open).
        let mut late = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(REJOIN_WAIT / 4);
                assert!(hand_over(&c).is_none());
            });
            while late.is_empty() {
                let _ = wait_for(&inbox, &mut late, 1, REJOIN_WAIT, &stopping);
            }
        });
        assert_eq!(late.len(), 1);
        c.stop();
        assert_eq!(
            wait_for(&inbox, &mut jobs, 8, REJOIN_WAIT, &stopping),
            Waited::Stop
        );
        assert!(stopping.load(Relaxed));
    }
}
