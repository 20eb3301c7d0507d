//! The audit behind `wire verify`, and the replay that rebuilds projections: one pass over the
//! log in append order that checks every encoding, signature, chain link and table entry, folds
//! the projections from scratch, and compares them with the stored ones.

// A failure ends the audit and happens at most once per run; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, HashSet};

use redb::{ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use wire_log::store::{EVENT_IDS, EVENTS, EventKey, HEADS, ORDER, may_write, split_stored};
use wire_log::{AuthorKey, EventId, EventStore, LogId, SignedEvent, verify_all};
use wire_projections::{MemState, apply, read_all};

use crate::{EngineError, Session};

/// Events decoded before their signatures are checked as one batch.
const CHUNK: usize = 4096;

/// What a successful audit counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub events: u64,
    pub logs: u64,
    pub authors: u64,
    pub chains: u64,
    /// Projection tables recomputed and found equal to the stored ones.
    pub projections: Vec<&'static str>,
}

/// The first thing found wrong, located as precisely as the damage allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct VerifyFailure {
    /// Append-order position of the bad event, when the problem is one event.
    pub position: Option<u64>,
    pub log: Option<LogId>,
    pub author: Option<AuthorKey>,
    pub seq: Option<u64>,
    pub problem: String,
    /// Only the projections are damaged; the log is sound, so a rebuild repairs it.
    #[serde(skip)]
    pub projections_only: bool,
}

impl VerifyFailure {
    fn store(problem: impl Into<String>) -> VerifyFailure {
        VerifyFailure {
            position: None,
            log: None,
            author: None,
            seq: None,
            problem: problem.into(),
            projections_only: false,
        }
    }

    fn at(position: u64, key: &EventKey, problem: impl Into<String>) -> VerifyFailure {
        VerifyFailure {
            position: Some(position),
            log: Some(key.log),
            author: Some(key.author),
            seq: Some(key.seq),
            problem: problem.into(),
            projections_only: false,
        }
    }

    fn describe(&self) -> String {
        match (self.log, self.author, self.seq) {
            (Some(log), Some(author), Some(seq)) => {
                format!("log {log}, author {author}, seq {seq}: {}", self.problem)
            }
            _ => self.problem.clone(),
        }
    }
}

impl From<EngineError> for VerifyFailure {
    fn from(e: EngineError) -> VerifyFailure {
        VerifyFailure::store(e.to_string())
    }
}

/// Progress of a long audit: events done out of the total.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

impl Session {
    /// Audits the whole session from first principles.
    pub fn verify(
        &self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<VerifyReport, VerifyFailure> {
        let mut counts = Counts::default();
        // One snapshot for the log and the projections: a daemon may append while we read,
        // and two snapshots would then disagree without anything being wrong.
        let txn = self
            .store()
            .read_txn()
            .map_err(|e| VerifyFailure::store(e.to_string()))?;
        let folded = replay_in(&txn, self.store().owner(), progress, &mut counts)?;
        let stored = read_all(&txn).map_err(|e| VerifyFailure {
            projections_only: true,
            ..VerifyFailure::store(format!("projection tables: {e}"))
        })?;
        compare(&folded, &stored)?;
        Ok(VerifyReport {
            events: counts.events,
            logs: counts.logs.len() as u64,
            authors: counts.authors.len() as u64,
            chains: counts.chains,
            projections: wire_projections::TABLES.to_vec(),
        })
    }
}

/// Replays the log and returns the projections folded from it alone.
pub(crate) fn fold_log(
    store: &EventStore,
    progress: &mut dyn FnMut(Progress),
) -> Result<MemState, EngineError> {
    replay(store, progress, &mut Counts::default())
        .map_err(|f| EngineError::Refused(format!("the log does not replay: {f}")))
}

#[derive(Default)]
struct Counts {
    events: u64,
    chains: u64,
    logs: HashSet<LogId>,
    authors: HashSet<AuthorKey>,
}

struct Pending {
    position: u64,
    key: EventKey,
    event: SignedEvent,
}

fn replay(
    store: &EventStore,
    progress: &mut dyn FnMut(Progress),
    counts: &mut Counts,
) -> Result<MemState, VerifyFailure> {
    let txn = store
        .read_txn()
        .map_err(|e| VerifyFailure::store(e.to_string()))?;
    replay_in(&txn, store.owner(), progress, counts)
}

fn replay_in(
    txn: &redb::ReadTransaction,
    owner: AuthorKey,
    progress: &mut dyn FnMut(Progress),
    counts: &mut Counts,
) -> Result<MemState, VerifyFailure> {
    let db = |e: redb::Error| VerifyFailure::store(format!("cannot read the store: {e}"));
    let (Ok(events), Ok(order), Ok(ids), Ok(heads)) = (
        txn.open_table(EVENTS),
        txn.open_table(ORDER),
        txn.open_table(EVENT_IDS),
        txn.open_table(HEADS),
    ) else {
        return Err(VerifyFailure::store(
            "the store is missing one of its log tables",
        ));
    };
    let total = order.len().map_err(|e| db(e.into()))?;
    let n_events = events.len().map_err(|e| db(e.into()))?;
    let n_ids = ids.len().map_err(|e| db(e.into()))?;
    if n_events != total || n_ids != total {
        return Err(VerifyFailure::store(format!(
            "tables disagree on the number of events: {n_events} stored, {total} in append order, {n_ids} by id"
        )));
    }
    let mut chain_heads: HashMap<(LogId, AuthorKey), (u64, EventId)> = HashMap::new();
    let mut state = MemState::default();
    let mut batch: Vec<Pending> = Vec::with_capacity(CHUNK);
    for (expected_position, entry) in (0u64..).zip(order.iter().map_err(|e| db(e.into()))?) {
        let (pos, key) = entry.map_err(|e| db(e.into()))?;
        let (pos, key) = (pos.value(), EventKey::from_bytes(key.value()));
        if pos != expected_position {
            return Err(VerifyFailure::store(format!(
                "append order skips from position {expected_position} to {pos}"
            )));
        }
        let fail = |problem: String| VerifyFailure::at(pos, &key, problem);
        let stored = events.get(&key.to_bytes()).map_err(|e| db(e.into()))?;
        let Some(stored) = stored else {
            return Err(fail("listed in append order but not stored".into()));
        };
        let Some((stored_pos, bytes)) = split_stored(stored.value()) else {
            return Err(fail("stored value is too short".into()));
        };
        if stored_pos != pos {
            return Err(fail(format!(
                "listed at append position {pos} but stored as position {stored_pos} (listed twice, or moved)"
            )));
        }
        let event =
            SignedEvent::decode(bytes).map_err(|e| fail(format!("does not decode: {e}")))?;
        if EventKey::of(&event.event) != key {
            return Err(fail(format!(
                "stored under the wrong key: the event says seq {} of author {} in log {}",
                event.event.seq, event.event.author, event.event.log
            )));
        }
        if !may_write(&owner, &key.log, &key.author) {
            return Err(fail("a foreign author in a log it may not write to".into()));
        }
        let chain = chain_heads.entry((key.log, key.author));
        let (expected_seq, expected_prev) = match &chain {
            std::collections::hash_map::Entry::Occupied(o) => (o.get().0 + 1, Some(o.get().1)),
            std::collections::hash_map::Entry::Vacant(_) => (1, None),
        };
        if key.seq != expected_seq {
            return Err(fail(format!(
                "seq {} where {expected_seq} was expected (a skipped or repeated seq)",
                key.seq
            )));
        }
        if event.event.prev != expected_prev {
            return Err(fail(
                "prev does not match the previous event's id (broken chain)".into(),
            ));
        }
        match ids.get(&event.id.0).map_err(|e| db(e.into()))? {
            Some(k) if *k.value() == key.to_bytes() => {}
            _ => return Err(fail("the id index does not point at this event".into())),
        }
        if expected_seq == 1 {
            counts.chains += 1;
        }
        chain.insert_entry((key.seq, event.id));
        counts.logs.insert(key.log);
        counts.authors.insert(key.author);
        batch.push(Pending {
            position: pos,
            key,
            event,
        });
        if batch.len() == CHUNK {
            fold_batch(&mut batch, &mut state, counts)?;
            progress(Progress {
                done: counts.events,
                total,
            });
        }
    }
    fold_batch(&mut batch, &mut state, counts)?;
    progress(Progress {
        done: counts.events,
        total,
    });
    let n_heads = heads.len().map_err(|e| db(e.into()))?;
    if n_heads != chain_heads.len() as u64 {
        return Err(VerifyFailure::store(format!(
            "{n_heads} chain heads are recorded but the log has {} chains",
            chain_heads.len()
        )));
    }
    for ((log, author), (seq, id)) in &chain_heads {
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&log.0);
        k[32..].copy_from_slice(&author.0);
        let recorded = heads.get(&k).map_err(|e| db(e.into()))?.map(|v| *v.value());
        let mut want = [0u8; 40];
        want[..8].copy_from_slice(&seq.to_be_bytes());
        want[8..].copy_from_slice(&id.0);
        if recorded != Some(want) {
            return Err(VerifyFailure {
                position: None,
                log: Some(*log),
                author: Some(*author),
                seq: Some(*seq),
                problem: "the recorded chain head does not match the last event".into(),
                projections_only: false,
            });
        }
    }
    Ok(state)
}

fn fold_batch(
    batch: &mut Vec<Pending>,
    state: &mut MemState,
    counts: &mut Counts,
) -> Result<(), VerifyFailure> {
    let items = std::mem::take(batch);
    let (meta, events): (Vec<(u64, EventKey)>, Vec<SignedEvent>) = items
        .into_iter()
        .map(|p| ((p.position, p.key), p.event))
        .unzip();
    let verified = verify_all(events)
        .map_err(|(i, e)| VerifyFailure::at(meta[i].0, &meta[i].1, e.to_string()))?;
    for ((position, key), event) in meta.iter().zip(&verified) {
        apply(state, event, *position).map_err(|e| {
            VerifyFailure::at(*position, key, format!("the projections refuse it: {e}"))
        })?;
        counts.events += 1;
    }
    Ok(())
}

fn compare(folded: &MemState, stored: &MemState) -> Result<(), VerifyFailure> {
    let mismatch = |table: &str, what: String| {
        Err(VerifyFailure {
            projections_only: true,
            ..VerifyFailure::store(format!(
                "projection {table} differs from the log: {what}; run `wire verify --rebuild` to recompute it"
            ))
        })
    };
    if folded.identity != stored.identity {
        return mismatch("identity_v1", "the identity record".into());
    }
    if let Some(k) = first_diff(&folded.peers, &stored.peers) {
        return mismatch("peers_v1", format!("peer {k}"));
    }
    if let Some(k) = first_diff(&folded.pending, &stored.pending) {
        return mismatch("pending_v1", format!("pending request from {k}"));
    }
    if let Some(k) = first_diff(&folded.cursors, &stored.cursors) {
        return mismatch(
            "cursors_v1",
            format!("cursor for peer {} in log {}", k.peer, k.log),
        );
    }
    if folded.applied != stored.applied {
        return mismatch(
            "projection_meta_v1",
            format!(
                "applied up to {:?}, the log ends at {:?}",
                stored.applied, folded.applied
            ),
        );
    }
    Ok(())
}

fn first_diff<K: Ord + Copy, V: PartialEq>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> Option<K> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(k) != b.get(k))
        .min()
        .copied()
}
