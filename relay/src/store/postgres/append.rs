//! The append lanes of the PostgreSQL store: a group of appends (the committer's) is one
//! transaction of four or five prepared statements, sent in two pipelined round trips on an async
//! `tokio-postgres` connection driven by a runtime of its own (ARCHITECTURE decision (ap)), on
//! the committer's thread that formed the group ([`Lanes`], decision (as)).
//!
//! 1. `BEGIN`; lock the group's slots (`FOR UPDATE`, in id order) and read them; lock its
//!    capabilities (`FOR SHARE`, in hash order, so a revocation waits for this commit,
//!    decision (j)); look up the blobs the slots already hold with the same bytes. The
//!    look-up is its own statement after the locks, so under READ COMMITTED it sees whatever
//!    the previous holder of those locks (another instance) committed. While every other
//!    instance registers its streams, the group also looks up which of its slots another
//!    instance streams (`watches`, decision (aq)): only those are announced.
//! 2. This module decides every item's outcome from those rows, as the redb store does
//!    (`redb.rs`, `commit_group`), then, in one statement, inserts the blobs, updates the
//!    slots and adds to one of the totals' shards; then `COMMIT`, answered after the WAL
//!    flush (`synchronous_commit = on`).
//!    A group that stores nothing rolls back instead: it has nothing to make durable.
//!
//! It replaces the call of `wire_append_v1` (migration 0002, kept for instances of older
//! builds on the same database; both lock in the same order): PL/pgSQL re-initialises every
//! expression of a function in each transaction and plans its statements for arrays of a
//! hundred, which cost the server about three times the instructions of these statements for
//! the same group (callgrind, docs/BENCHMARKS.md).

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, PoisonError};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use super::{CONNECT_TIMEOUT, big, pg, shard, small};
use crate::store::{AppendItem, AppendOutcome, Credential, Quotas, StoreError};
use crate::token::{SlotId, TokenHash};

/// The `application_name` of the append lanes' connections (operators and the tests find them
/// so).
pub const APPEND_NAME: &str = "wire-relay-append";

/// One append connection, the runtime that drives it, and its prepared statements.
pub(super) struct Lane {
    runtime: tokio::runtime::Runtime,
    client: Client,
    statements: Statements,
}

struct Statements {
    lock_slots: Statement,
    lock_caps: Statement,
    held: Statement,
    write: Statement,
}

const LOCK_SLOTS: &str = "SELECT id, owner, last_seq, blobs, bytes FROM slots \
     WHERE id = ANY ($1) ORDER BY id FOR UPDATE";
const LOCK_CAPS: &str = "SELECT hash, slot FROM caps WHERE hash = ANY ($1) ORDER BY hash FOR SHARE";
/// The blobs the group's slots already hold with the same bytes (`i`, `seq`: a scalar
/// subquery per item, so the plan is an index probe of `blobs_slot_hash` each, however few
/// rows the table had when the plan was made), and, when `$4` names this instance, the
/// group's slots that another instance streams (`-n`, `0`: the `n`th of `$3`; `watches`,
/// migration 0003). After the slot locks: a registration holds a share lock on the slot's
/// row until its commit, so under READ COMMITTED this sees every registration that the
/// locks waited for (invariant 61).
const HELD: &str = "SELECT x.i, x.seq FROM (\
     SELECT u.i, (SELECT b.seq FROM blobs b WHERE b.slot = u.slot AND b.hash = u.hash) AS seq \
     FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS u (slot, hash, i)) x \
     WHERE x.seq IS NOT NULL \
     UNION ALL SELECT -s.n, 0 FROM unnest($3::bytea[]) WITH ORDINALITY AS s (id, n) \
     WHERE $4::text IS NOT NULL AND EXISTS (\
     SELECT 1 FROM watches w WHERE w.slot = s.id AND w.instance <> $4)";
/// The group's writes in one statement (its parts see one snapshot, and none reads what
/// another writes): the blobs, the slots' rows, one totals shard, each counted back.
const WRITE: &str = "WITH ins AS (\
     INSERT INTO blobs (slot, seq, hash, body) \
     SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[]) RETURNING 1\
     ), up AS (\
     UPDATE slots SET last_seq = v.last_seq, blobs = v.blobs, bytes = v.bytes \
     FROM unnest($5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[]) \
     AS v (id, last_seq, blobs, bytes) WHERE slots.id = v.id RETURNING 1\
     ), tot AS (\
     UPDATE counters SET blobs = blobs + $9, bytes = bytes + $10 WHERE id = $11 RETURNING 1\
     ) SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM up), (SELECT count(*) FROM tot)";

impl Lane {
    /// Connects, sets the session up and prepares the statements (the schema is migrated).
    fn connect(url: &str, shown: &str) -> Result<Lane, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError(format!("cannot start an append lane's runtime: {e}")))?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError(format!(
                "{shown} is not a PostgreSQL URL ({e}); expected postgres://user[:password]@host[:port]/database"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, statements) = runtime.block_on(async {
            let (client, connection) = config.connect(NoTls).await.map_err(|e| {
                StoreError(format!(
                    "cannot connect to PostgreSQL at {shown}: {e}; check that the server is \
                     running and reachable from here, that the database exists and that this \
                     user may log in"
                ))
            })?;
            // Driven whenever the lane runs a job (block_on); it ends when the client does.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            // Plans made once per connection, not again for each group's array lengths.
            client
                .batch_execute(&format!(
                    "SET synchronous_commit = on; SET plan_cache_mode = force_generic_plan; \
                     SET application_name = '{APPEND_NAME}'"
                ))
                .await
                .map_err(pg)?;
            let statements = Statements {
                lock_slots: client.prepare(LOCK_SLOTS).await.map_err(pg)?,
                lock_caps: client.prepare(LOCK_CAPS).await.map_err(pg)?,
                held: client.prepare(HELD).await.map_err(pg)?,
                write: client.prepare(WRITE).await.map_err(pg)?,
            };
            Ok::<_, StoreError>((client, statements))
        })?;
        Ok(Lane {
            runtime,
            client,
            statements,
        })
    }

    /// The appends of one group, in one transaction (see the module doc), with (when `ask`
    /// names this instance) the group's slots that another instance streams, the only ones
    /// to announce; `None`: not asked, announce every slot.
    pub(super) fn append(
        &mut self,
        items: &[AppendItem],
        quotas: &Quotas,
        ask: Option<&str>,
    ) -> Result<Grouped, StoreError> {
        if items.is_empty() {
            return Ok((Vec::new(), ask.map(|_| HashSet::new())));
        }
        let Lane {
            runtime,
            client,
            statements,
        } = self;
        let out = runtime.block_on(append_group(client, statements, items, quotas, ask));
        if out.is_err() && !client.is_closed() {
            // Whatever failed, leave no transaction open for the next group.
            let _ = runtime.block_on(client.batch_execute("ROLLBACK"));
        }
        out
    }
}

type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

/// A group's outcomes, and the slots to announce (see [`Lane::append`]).
pub(super) type Grouped = (Vec<AppendOutcome>, Option<HashSet<SlotId>>);

/// A slot's row as the group found it, and as the group leaves it.
struct SlotRow {
    owner: TokenHash,
    last_seq: u64,
    blobs: u64,
    bytes: u64,
    touched: bool,
}

async fn append_group(
    client: &Client,
    st: &Statements,
    items: &[AppendItem],
    quotas: &Quotas,
    ask: Option<&str>,
) -> Result<Grouped, StoreError> {
    let hashes: Vec<[u8; 32]> = items
        .iter()
        .map(|i| *blake3::hash(&i.blob).as_bytes())
        .collect();
    let mut slot_ids: Vec<&[u8]> = items.iter().map(|i| &i.slot.0[..]).collect();
    slot_ids.sort_unstable();
    slot_ids.dedup();
    let mut cap_ids: Vec<&[u8]> = items
        .iter()
        .filter_map(|i| match &i.credential {
            Credential::Cap(h) => Some(&h.0[..]),
            Credential::Owner(_) => None,
        })
        .collect();
    cap_ids.sort_unstable();
    cap_ids.dedup();
    let item_slots: Vec<&[u8]> = items.iter().map(|i| &i.slot.0[..]).collect();
    let item_hashes: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();

    // Round trip 1: sent together, run by the server in this order.
    let lock_params: [&Param<'_>; 1] = [&slot_ids];
    let cap_params: [&Param<'_>; 1] = [&cap_ids];
    let no_slots: Vec<&[u8]> = Vec::new();
    let asked = if ask.is_some() { &slot_ids } else { &no_slots };
    let held_params: [&Param<'_>; 4] = [&item_slots, &item_hashes, asked, &ask];
    let (begun, slot_rows, cap_rows, held_rows) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query(&st.lock_slots, &lock_params),
        async {
            if cap_ids.is_empty() {
                Ok(Vec::new())
            } else {
                client.query(&st.lock_caps, &cap_params).await
            }
        },
        client.query(&st.held, &held_params),
    );
    begun.map_err(pg)?;
    let mut rows: HashMap<SlotId, SlotRow> = HashMap::new();
    for r in slot_rows.map_err(pg)? {
        let (id, owner): (&[u8], &[u8]) = (r.get(0), r.get(1));
        rows.insert(
            SlotId(fixed(id, "a slot id")?),
            SlotRow {
                owner: TokenHash(fixed(owner, "an owner token hash")?),
                last_seq: small(r.get(2)),
                blobs: small(r.get(3)),
                bytes: small(r.get(4)),
                touched: false,
            },
        );
    }
    let mut caps: HashMap<[u8; 32], SlotId> = HashMap::new();
    for r in cap_rows.map_err(pg)? {
        let (hash, slot): (&[u8], &[u8]) = (r.get(0), r.get(1));
        caps.insert(
            fixed(hash, "a capability hash")?,
            SlotId(fixed(slot, "a slot id")?),
        );
    }
    let mut streamed = ask.map(|_| HashSet::new());
    let mut held: Vec<Option<u64>> = vec![None; items.len()];
    for r in held_rows.map_err(pg)? {
        let n = r.get::<_, i64>(0);
        if n < 0 {
            let slot = usize::try_from(-n - 1)
                .ok()
                .and_then(|at| slot_ids.get(at))
                .zip(streamed.as_mut())
                .ok_or_else(|| StoreError("the look-up answered a slot not asked".into()))?;
            slot.1.insert(SlotId(fixed(slot.0, "a slot id")?));
            continue;
        }
        let at = usize::try_from(n - 1)
            .ok()
            .filter(|&at| at < items.len())
            .ok_or_else(|| StoreError("the blob look-up answered an item not asked".into()))?;
        held[at] = Some(small(r.get(1)));
    }

    // The outcomes, item by item in request order, as the redb store decides them.
    let mut outcomes = Vec::with_capacity(items.len());
    // What this group stores, by slot and content hash: the same bytes again are a duplicate.
    let mut fresh: HashMap<(SlotId, [u8; 32]), u64> = HashMap::new();
    let mut stored: Vec<(usize, u64)> = Vec::new();
    let (mut add_blobs, mut add_bytes) = (0u64, 0u64);
    for (i, item) in items.iter().enumerate() {
        let Some(row) = rows.get_mut(&item.slot) else {
            outcomes.push(AppendOutcome::UnknownSlot);
            continue;
        };
        let allowed = match &item.credential {
            Credential::Owner(h) => h.ct_eq(&row.owner),
            Credential::Cap(h) => caps.get(&h.0) == Some(&item.slot),
        };
        if !allowed {
            outcomes.push(AppendOutcome::Unauthorized);
            continue;
        }
        if let Some(seq) = held[i].or_else(|| fresh.get(&(item.slot, hashes[i])).copied()) {
            outcomes.push(AppendOutcome::Duplicate { seq });
            continue;
        }
        let len = item.blob.len() as u64;
        if row.blobs + 1 > quotas.slot_blobs_max || row.bytes + len > quotas.slot_bytes_max {
            outcomes.push(AppendOutcome::SlotFull {
                blobs: row.blobs,
                bytes: row.bytes,
            });
            continue;
        }
        row.last_seq += 1;
        row.blobs += 1;
        row.bytes += len;
        row.touched = true;
        fresh.insert((item.slot, hashes[i]), row.last_seq);
        stored.push((i, row.last_seq));
        add_blobs += 1;
        add_bytes += len;
        outcomes.push(AppendOutcome::Stored { seq: row.last_seq });
    }
    if stored.is_empty() {
        // Nothing to make durable: let the locks go without a WAL flush.
        client.batch_execute("ROLLBACK").await.map_err(pg)?;
        return Ok((outcomes, streamed));
    }

    // Round trip 2: the writes and the commit, together.
    let ins_slots: Vec<&[u8]> = stored.iter().map(|&(i, _)| &items[i].slot.0[..]).collect();
    let ins_seqs: Vec<i64> = stored.iter().map(|&(_, seq)| big(seq)).collect();
    let ins_hashes: Vec<&[u8]> = stored.iter().map(|&(i, _)| &hashes[i][..]).collect();
    let ins_bodies: Vec<&[u8]> = stored
        .iter()
        .map(|&(i, _)| items[i].blob.as_ref())
        .collect();
    let touched: Vec<(&SlotId, &SlotRow)> = rows.iter().filter(|(_, r)| r.touched).collect();
    let up_ids: Vec<&[u8]> = touched.iter().map(|(id, _)| &id.0[..]).collect();
    let up_last: Vec<i64> = touched.iter().map(|(_, r)| big(r.last_seq)).collect();
    let up_blobs: Vec<i64> = touched.iter().map(|(_, r)| big(r.blobs)).collect();
    let up_bytes: Vec<i64> = touched.iter().map(|(_, r)| big(r.bytes)).collect();
    let (add_b, add_n, shard) = (big(add_blobs), big(add_bytes), shard());
    let write_params: [&Param<'_>; 11] = [
        &ins_slots,
        &ins_seqs,
        &ins_hashes,
        &ins_bodies,
        &up_ids,
        &up_last,
        &up_blobs,
        &up_bytes,
        &add_b,
        &add_n,
        &shard,
    ];
    let (written, committed) = tokio::join!(
        client.query_one(&st.write, &write_params),
        client.batch_execute("COMMIT"),
    );
    // A failed write aborted the transaction, and the COMMIT behind it then rolled it back
    // (saying so only by its tag): the write's result is checked before the commit's.
    let counts = match written {
        Ok(row) => (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
        ),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            // Every appender holds the slot's row lock, so no one else can have inserted these.
            return Err(StoreError(
                "an append raced another writer on a locked slot; nothing was stored, retry".into(),
            ));
        }
        Err(e) => return Err(pg(e)),
    };
    let wanted = (big(stored.len() as u64), big(up_ids.len() as u64), 1);
    if counts != wanted {
        // Not expected under the row locks. The COMMIT may have gone through: an error is
        // still safe, since a retry of the same bytes finds what was stored (idempotency by
        // content hash) instead of storing it twice.
        return Err(StoreError(format!(
            "the group's write touched {counts:?} rows (blobs, slots, totals) where {wanted:?} \
             were meant; retry, and what was stored is found as a duplicate"
        )));
    }
    committed.map_err(pg)?;
    Ok((outcomes, streamed))
}

/// A fixed-length key read back from a `bytea` column.
fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    v.try_into().map_err(|_| {
        StoreError(format!(
            "the database holds {what} of {} bytes where {N} belong",
            v.len()
        ))
    })
}

/// The append lanes: connections that no group holds, the one given back last on top, and
/// the number of lanes (connected or to be reconnected) that exist.
///
/// The committer's thread that forms a group runs it on a lane it takes from here, on its own
/// thread (decision (as)): no hand-over to a thread of the lane's, and, with one group in
/// flight (two instances sharing the lanes, decision (ar)), every group finds the backend of
/// the group before it awake, where a queue that every lane's thread waits on handed the
/// groups to the lanes by turns.
pub(super) struct Lanes {
    /// `None`: a lane whose connection broke or could not be made; whoever takes it connects.
    idle: Mutex<Vec<Option<Lane>>>,
    freed: Condvar,
    url: String,
    shown: String,
}

impl Lanes {
    /// `count` lanes, each connected (and its statements prepared) before this returns, so
    /// that a store that opened can append. Never on an async worker (see [`off_runtime`]).
    pub(super) fn connect(count: usize, url: &str, shown: &str) -> Result<Lanes, StoreError> {
        let idle = off_runtime(|| {
            (0..count)
                .map(|_| Lane::connect(url, shown).map(Some))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(Lanes {
            idle: Mutex::new(idle),
            freed: Condvar::new(),
            url: url.to_owned(),
            shown: shown.to_owned(),
        })
    }

    /// Runs `f` on the lane given back last (waiting while every lane is taken), connecting it
    /// first when its connection is gone, and gives it back.
    pub(super) fn run<T: Send>(
        &self,
        f: impl FnOnce(&mut Lane) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let taken = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(lane) = idle.pop() {
                    break lane;
                }
                idle = self
                    .freed
                    .wait(idle)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // Given back however `f` ends, even by a panic: the lane count never shrinks.
        let mut back = GiveBack {
            lanes: self,
            lane: taken,
        };
        off_runtime(|| {
            let lane = match back.lane.take() {
                Some(lane) if !lane.client.is_closed() => lane,
                // Its connection broke (or could not be made): a new one (the old one's
                // runtime ends here, off any async worker).
                _ => Lane::connect(&self.url, &self.shown)?,
            };
            f(back.lane.insert(lane))
        })
    }
}

impl Drop for Lanes {
    /// A lane's runtime must not be dropped on an async worker (the store may be).
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        off_runtime(move || drop(idle));
    }
}

/// A taken lane, given back (on top) when dropped; after a panic, to be connected again (its
/// transaction may be open).
struct GiveBack<'a> {
    lanes: &'a Lanes,
    lane: Option<Lane>,
}

impl Drop for GiveBack<'_> {
    fn drop(&mut self) {
        let mut lane = self.lane.take();
        if std::thread::panicking() {
            let broken = lane.take();
            off_runtime(move || drop(broken));
        }
        let mut idle = self
            .lanes
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        idle.push(lane);
        self.lanes.freed.notify_one();
    }
}

/// Runs `f` here, or, on a thread inside a tokio runtime (where a lane's own runtime may not
/// block, nor be dropped), on a thread of its own.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
