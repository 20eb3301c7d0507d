//! The [`BlobStore`] on PostgreSQL (`wire relay-server --store postgres://…`), so that several
//! relay instances can serve one mailbox.
//!
//! A connection drives a runtime of its own and is never created, used or dropped on an async
//! worker. [`APPEND_LANES`] connections take appends (the committer's groups: a group is one
//! transaction of prepared statements in two pipelined round trips, [`append`]), each run on
//! the thread of the committer that formed it, on the lane given back last
//! ([`append::Lanes`], decision (as)). Threads of this module own the other connections: a few
//! share the other calls; one announces committed appends (`NOTIFY`, [`notifier`]) and one
//! listens for the other instances' ([`listen`]; both in [`notify`]). A caller of those hands
//! its work over a bounded channel and blocks on the reply, as it would on redb.
//!
//! Every session that writes runs with `synchronous_commit = on`, so a method that returned
//! `Ok` has its transaction flushed to the server's WAL (the notifier's announcements alone do
//! not wait for a flush). Appends lock their slots' rows (`FOR UPDATE`, in id order), which
//! serialises sequence numbers per slot across instances; the unique index on `(slot, hash)`
//! is the content-hash idempotency (an insert that breaks it fails its whole group). Rate
//! limits are token buckets in `rate_buckets`, one statement per limited request
//! ([`take_token`]).
//!
//! The schema is versioned SQL in `relay/migrations/`, applied at open under an advisory lock
//! (instances starting together apply it once); a database newer than this build is refused.

mod append;
mod notify;
mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use postgres::{Client, NoTls, Transaction};

pub use self::append::APPEND_NAME;
pub use self::notify::{LISTENER_NAME, NOTIFIER_NAME};
use self::notify::{
    PEERS_REGISTERING, Registered, Seen, WATCH_REFRESH, listen, lock, notifier, notify_payloads,
    register,
};
use self::shared::{pair_get, pair_put, take_token};
use super::{
    AckOutcome, AppendItem, AppendOutcome, BlobStore, ClaimOutcome, HandleRecord, IntroOutcome,
    MintOutcome, Page, Quotas, SlotInfo, StoreError, Totals, Wake, Wanted, Watched,
};
use crate::limits::Rate;
use crate::pairs::{Cell, PairError, Written};
use crate::token::{CapId, SlotId, TokenHash};

/// The schema migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_append_function.sql"),
    include_str!("../../migrations/0003_watches.sql"),
];
/// Taken (per transaction) while migrating: "wire" in ASCII.
const MIGRATION_LOCK: i64 = 0x7769_7265;
/// Threads (and connections) for everything but appends.
const WORKERS: usize = 4;
/// Connections for appends: groups in flight at once (`BlobStore::append_lanes`),
/// unless `WIRE_RELAY_PG_APPEND_LANES` (1 to [`APPEND_LANES_MAX`]) says otherwise.
const APPEND_LANES: usize = 2;
const APPEND_LANES_MAX: usize = 8;
const APPEND_LANES_ENV: &str = "WIRE_RELAY_PG_APPEND_LANES";
/// Calls waiting for a worker before the caller blocks.
const QUEUE_MAX: usize = 1024;
/// Groups' announcements waiting for the notifier before new ones are dropped.
const NOTIFY_QUEUE: usize = 4096;

/// Work for a thread that owns a connection ([`worker`]).
type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// One connection of the threads that take everything but appends.
struct Conn {
    client: Client,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn { client }
    }
}

/// The PostgreSQL-backed store.
pub struct PgStore {
    /// Shown in errors: the URL without its password.
    url: String,
    appends: append::Lanes,
    calls: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
    quotas: Quotas,
    /// Names this instance in its notifications, so its own listener skips them.
    instance: String,
    /// The URL with its password, for the listener's connection.
    secret_url: String,
    /// Set when the store is dropped: the listener stops within its poll (`notify.rs`, 250 ms).
    stopping: Arc<AtomicBool>,
    /// What committed appends stored, to the notifier thread (see [`notifier`]).
    notify: Option<SyncSender<Vec<String>>>,
    /// Set when announcements were dropped because the notifier was [`NOTIFY_QUEUE`]
    /// groups behind: it then sends "catch up" instead.
    notify_lost: Arc<AtomicBool>,
    /// Connections taking appends ([`APPEND_LANES`]).
    append_lanes: usize,
    /// Who else the notifier last saw listening ([`Seen`]): whether a group asks who
    /// streams its slots elsewhere, and how many lanes to keep in flight.
    seen: Arc<Seen>,
    /// The slots this instance registered as streamed here ([`Registered`]).
    registered: Registered,
}

/// The number of append lanes: [`APPEND_LANES`], or `WIRE_RELAY_PG_APPEND_LANES`.
fn append_lanes() -> Result<usize, StoreError> {
    let Ok(v) = std::env::var(APPEND_LANES_ENV) else {
        return Ok(APPEND_LANES);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=APPEND_LANES_MAX).contains(&n) => Ok(n),
        _ => Err(StoreError(format!(
            "{APPEND_LANES_ENV}={v:?} is not a number of append connections from 1 to \
             {APPEND_LANES_MAX}; unset it for the default of {APPEND_LANES}"
        ))),
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.url)
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (auth, host),
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

fn pg(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError(format!("postgres: {}: {}", db.code().code(), db.message())),
        None => StoreError(format!("postgres: {e}")),
    }
}

/// A `u64` the relay keeps, as PostgreSQL's `bigint` (the relay never reaches 2^63).
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn small(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Connecting gives up after this long unless the URL says otherwise (`connect_timeout=`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(url: &str, shown: &str) -> Result<Client, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| {
        StoreError(format!(
            "{shown} is not a PostgreSQL URL ({e}); expected postgres://user[:password]@host[:port]/database"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let mut client = config.connect(NoTls).map_err(|e| {
        StoreError(format!(
            "cannot connect to PostgreSQL at {shown}: {e}; check that the server is running and \
             reachable from here, that the database exists and that this user may log in"
        ))
    })?;
    client
        .batch_execute("SET synchronous_commit = on")
        .map_err(pg)?;
    Ok(client)
}

/// Applies the migrations this database lacks; refuses a database newer than this build.
fn migrate(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let mut txn = client.transaction().map_err(pg)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    txn.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        .map_err(pg)?;
    let have: i32 = txn
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .map_err(pg)?
        .get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if have > known {
        return Err(StoreError(format!(
            "the relay database at {shown} has schema version {have}, newer than this wire \
             build knows ({known}); run a wire at least as new as the one that upgraded it"
        )));
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(have).unwrap_or(0))
    {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        txn.batch_execute(sql).map_err(|e| {
            StoreError(format!(
                "migration {version:04} on {shown} failed: {}",
                pg(e).0
            ))
        })?;
        txn.execute("DELETE FROM schema_version", &[]).map_err(pg)?;
        txn.execute("INSERT INTO schema_version VALUES ($1)", &[&version])
            .map_err(pg)?;
    }
    txn.commit().map_err(pg)
}

/// A thread that owns one connection and runs jobs from `rx` until every sender is gone. A
/// broken connection is replaced before the next job; a job that finds no connection is
/// dropped, and its reply sender with it: the caller sees the outage.
fn worker(
    name: String,
    url: String,
    shown: String,
    first: Client,
    rx: Arc<Mutex<Receiver<Job>>>,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut conn = Some(Conn::new(first));
            loop {
                let job = {
                    let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match rx.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                };
                if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
                    conn = connect(&url, &shown).ok().map(Conn::new);
                }
                match conn.as_mut() {
                    Some(c) => job(c),
                    None => drop(job),
                }
            }
        })
        .map_err(|e| StoreError(format!("cannot start a storage thread: {e}")))
}

impl PgStore {
    /// Connects to `url`, applies the schema migrations and starts the connection threads.
    pub fn open(url: &str, quotas: Quotas) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let lanes = append_lanes()?;
        // Connecting runs the client's own runtime: never on the caller's (maybe async) thread.
        let url_owned = url.to_owned();
        let shown_owned = shown.clone();
        let clients = std::thread::spawn(move || -> Result<Vec<Client>, StoreError> {
            let mut first = connect(&url_owned, &shown_owned)?;
            migrate(&mut first, &shown_owned)?;
            let mut all = vec![first];
            for _ in 1..WORKERS {
                all.push(connect(&url_owned, &shown_owned)?);
            }
            Ok(all)
        })
        .join()
        .map_err(|_| StoreError("the thread connecting to PostgreSQL panicked".into()))??;
        let mut clients = clients.into_iter();
        let (call_tx, call_rx) = sync_channel::<Job>(QUEUE_MAX);
        let call_rx = Arc::new(Mutex::new(call_rx));
        let mut threads = Vec::new();
        for (i, client) in clients.by_ref().enumerate() {
            let name = format!("wire-relay-pg-{i}");
            threads.push(worker(
                name,
                url.to_owned(),
                shown.clone(),
                client,
                call_rx.clone(),
            )?);
        }
        let mut id = [0u8; 8];
        rand::fill(&mut id[..]);
        let instance = hex::encode(id);
        // After the migration: the lanes prepare their statements on the schema.
        let appends = append::Lanes::connect(lanes, url, &shown)?;
        let (notify_tx, notify_rx) = sync_channel::<Vec<String>>(NOTIFY_QUEUE);
        let (notify_lost, stopping) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let seen = Arc::new(Seen::default());
        threads.push(notifier(
            url.to_owned(),
            shown.clone(),
            instance.clone(),
            notify_rx,
            notify_lost.clone(),
            stopping.clone(),
            seen.clone(),
        )?);
        Ok(PgStore {
            url: shown,
            appends,
            calls: Some(call_tx),
            threads,
            quotas,
            instance,
            secret_url: url.to_owned(),
            stopping,
            notify: Some(notify_tx),
            notify_lost,
            append_lanes: lanes,
            seen,
            registered: Registered::default(),
        })
    }

    /// Runs `f` on a worker's connection and waits for its result.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = sync_channel(1);
        let job: Job = Box::new(move |client| {
            let _ = tx.send(f(client));
        });
        let closed = || {
            StoreError(format!(
                "the connection to PostgreSQL at {} is gone",
                self.url
            ))
        };
        self.calls
            .as_ref()
            .ok_or_else(closed)?
            .send(job)
            .map_err(|_| closed())?;
        rx.recv().map_err(|_| {
            StoreError(format!(
                "PostgreSQL at {} is unreachable; check the server and the network",
                self.url
            ))
        })?
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>, &Quotas) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let quotas = self.quotas.clone();
        self.run(move |conn| {
            let mut txn = conn.client.transaction().map_err(pg)?;
            let out = f(&mut txn, &quotas)?;
            txn.commit().map_err(pg)?;
            Ok(out)
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.calls = None;
        self.notify = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn slot_row(
    txn: &mut Transaction<'_>,
    slot: SlotId,
    lock: bool,
) -> Result<Option<SlotInfo>, StoreError> {
    let sql = if lock {
        "SELECT owner, blobs, bytes, last_seq, acked_through, caps, created_ms, handles \
         FROM slots WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT owner, blobs, bytes, last_seq, acked_through, caps, created_ms, handles \
         FROM slots WHERE id = $1"
    };
    let row = txn.query_opt(sql, &[&&slot.0[..]]).map_err(pg)?;
    Ok(row.map(|r| SlotInfo {
        owner: TokenHash(to_array(r.get(0))),
        blobs: small(r.get(1)),
        bytes: small(r.get(2)),
        last_seq: small(r.get(3)),
        acked_through: small(r.get(4)),
        caps: u32::try_from(r.get::<_, i32>(5)).unwrap_or(0),
        created_ms: small(r.get(6)),
    }))
}

fn slot_handles(txn: &mut Transaction<'_>, slot: SlotId) -> Result<Option<u32>, StoreError> {
    let row = txn
        .query_opt(
            "SELECT handles FROM slots WHERE id = $1 FOR UPDATE",
            &[&&slot.0[..]],
        )
        .map_err(pg)?;
    Ok(row.map(|r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)))
}

fn to_array<const N: usize>(v: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    if v.len() == N {
        a.copy_from_slice(v);
    }
    a
}

fn decode_handle(text: &str) -> Result<HandleRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError(format!("corrupt handle record: {e}")))
}

fn handles_delta(txn: &mut Transaction<'_>, slot: SlotId, delta: i32) -> Result<(), StoreError> {
    txn.execute(
        "UPDATE slots SET handles = greatest(handles + $2, 0) WHERE id = $1",
        &[&&slot.0[..], &delta],
    )
    .map_err(pg)?;
    Ok(())
}

/// Rows of `counters` (migration 0002): each writer adds to one picked at random.
const SHARDS: u32 = 64;

fn shard() -> i32 {
    let mut b = [0u8; 4];
    rand::fill(&mut b[..]);
    i32::try_from(u32::from_le_bytes(b) % SHARDS + 1).unwrap_or(1)
}

/// The rows of `sql` (`seq, bytes` of one slot after a seq, at most a count: parameters
/// `$1..$3`) as a page of at most `limit` items and about `bytes_max` bytes (always one when
/// there is one), with the slot's `last_seq`.
fn page_after(
    txn: &mut Transaction<'_>,
    sql: &str,
    (slot, after, limit, bytes_max): (SlotId, u64, usize, usize),
    last_seq: u64,
) -> Result<Page, StoreError> {
    if after >= i64::MAX as u64 || limit == 0 {
        return Ok(Page {
            items: Vec::new(),
            last_seq,
        });
    }
    let rows = txn
        .query(sql, &[&&slot.0[..], &big(after), &fetch_limit(limit)])
        .map_err(pg)?;
    Ok(Page {
        items: page(&rows, limit, bytes_max),
        last_seq,
    })
}

fn page(rows: &[postgres::Row], limit: usize, bytes_max: usize) -> Vec<(u64, Bytes)> {
    let mut items = Vec::new();
    let mut total = 0usize;
    for r in rows {
        let body: &[u8] = r.get(1);
        if !items.is_empty() && total + body.len() > bytes_max {
            break;
        }
        total += body.len();
        items.push((small(r.get(0)), Bytes::copy_from_slice(body)));
        if items.len() >= limit {
            break;
        }
    }
    items
}

/// Rows to fetch for a page of at most `limit`.
fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl BlobStore for PgStore {
    fn append_lanes(&self) -> usize {
        self.append_lanes
    }

    /// The lanes are shared with the other instances on the database (decision (ar)): with
    /// N instances each keeps its share of [`APPEND_LANES`] groups in flight, at least one.
    fn append_lanes_now(&self) -> usize {
        let instances = 1 + self.seen.others.load(Ordering::Relaxed);
        self.append_lanes.div_ceil(instances).max(1)
    }

    fn shares_rate_limits(&self) -> bool {
        true
    }

    fn shares_pair_slots(&self) -> bool {
        true
    }

    fn pair_put(
        &self,
        id: [u8; 16],
        cell: Cell,
        bytes: Bytes,
    ) -> Result<Result<Written, PairError>, StoreError> {
        self.call(move |txn, _| pair_put(txn, id, cell, &bytes))
    }

    fn pair_get(
        &self,
        id: [u8; 16],
        cell: Cell,
        touch: bool,
    ) -> Result<Result<Option<Bytes>, PairError>, StoreError> {
        self.call(move |txn, _| pair_get(txn, id, cell, touch))
    }

    fn pair_close(&self, id: [u8; 16]) -> Result<bool, StoreError> {
        self.call(move |txn, _| {
            let n = txn
                .execute("DELETE FROM pair_slots WHERE id = $1", &[&&id[..]])
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn take_token(
        &self,
        limit: u8,
        key: &[u8],
        rate: Rate,
        peek: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        let key = key.to_vec();
        self.run(move |conn| take_token(&mut conn.client, i16::from(limit), &key, rate, peek))
    }

    fn watch_others(&self, wake: Wake, wanted: Wanted, watched: Watched) -> Result<(), StoreError> {
        let (url, shown, ours, stopping, seen, registered) = (
            self.secret_url.clone(),
            self.url.clone(),
            self.instance.clone(),
            self.stopping.clone(),
            self.seen.clone(),
            self.registered.clone(),
        );
        // Not joined: it ends by itself within LISTEN_POLL of `stopping`.
        std::thread::Builder::new()
            .name("wire-relay-pg-listen".into())
            .spawn(move || {
                listen(
                    url, shown, ours, stopping, seen, registered, wake, wanted, watched,
                );
            })
            .map_err(|e| StoreError(format!("cannot start the listener thread: {e}")))?;
        Ok(())
    }

    fn watch(&self, slot: SlotId) -> Result<(), StoreError> {
        let fresh = lock(&self.registered)
            .get(&slot)
            .is_some_and(|at| at.elapsed() < WATCH_REFRESH);
        if fresh {
            return Ok(());
        }
        let instance = self.instance.clone();
        self.run(move |conn| register(&mut conn.client, &instance, &[slot]).map_err(pg))?;
        lock(&self.registered).insert(slot, Instant::now());
        Ok(())
    }

    fn create_slot(&self, slot: SlotId, owner: TokenHash, now_ms: u64) -> Result<(), StoreError> {
        self.call(move |txn, _| {
            let n = txn
                .execute(
                    "INSERT INTO slots (id, owner, created_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&&slot.0[..], &&owner.0[..], &big(now_ms)],
                )
                .map_err(pg)?;
            if n == 0 {
                return Err(StoreError("slot id collision".into()));
            }
            txn.execute(
                "UPDATE counters SET slots = slots + 1 WHERE id = $1",
                &[&shard()],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn slot_info(&self, slot: SlotId) -> Result<Option<SlotInfo>, StoreError> {
        self.call(move |txn, _| slot_row(txn, slot, false))
    }

    fn cap_slot(&self, cap: TokenHash) -> Result<Option<(SlotId, CapId)>, StoreError> {
        self.call(move |txn, _| {
            let row = txn
                .query_opt(
                    "SELECT slot, cap_id FROM caps WHERE hash = $1",
                    &[&&cap.0[..]],
                )
                .map_err(pg)?;
            Ok(row.map(|r| (SlotId(to_array(r.get(0))), CapId(to_array(r.get(1))))))
        })
    }

    fn mint_cap(&self, slot: SlotId, id: CapId, cap: TokenHash) -> Result<MintOutcome, StoreError> {
        self.call(move |txn, quotas| {
            let Some(info) = slot_row(txn, slot, true)? else {
                return Ok(MintOutcome::UnknownSlot);
            };
            if info.caps >= quotas.caps_per_slot_max {
                return Ok(MintOutcome::TooMany {
                    max: quotas.caps_per_slot_max,
                });
            }
            txn.execute(
                "INSERT INTO caps (hash, slot, cap_id) VALUES ($1, $2, $3)",
                &[&&cap.0[..], &&slot.0[..], &&id.0[..]],
            )
            .map_err(pg)?;
            txn.execute(
                "UPDATE slots SET caps = caps + 1 WHERE id = $1",
                &[&&slot.0[..]],
            )
            .map_err(pg)?;
            Ok(MintOutcome::Minted)
        })
    }

    fn revoke_cap(&self, slot: SlotId, id: CapId) -> Result<bool, StoreError> {
        self.call(move |txn, _| {
            // The slot's row first, as an append takes it (then the capability's): in the
            // other order the two could deadlock.
            if slot_row(txn, slot, true)?.is_none() {
                return Ok(false);
            }
            let n = txn
                .execute(
                    "DELETE FROM caps WHERE slot = $1 AND cap_id = $2",
                    &[&&slot.0[..], &&id.0[..]],
                )
                .map_err(pg)?;
            if n == 0 {
                return Ok(false);
            }
            txn.execute(
                "UPDATE slots SET caps = greatest(caps - 1, 0) WHERE id = $1",
                &[&&slot.0[..]],
            )
            .map_err(pg)?;
            Ok(true)
        })
    }

    fn list_caps(&self, slot: SlotId) -> Result<Vec<CapId>, StoreError> {
        self.call(move |txn, _| {
            let rows = txn
                .query(
                    "SELECT cap_id FROM caps WHERE slot = $1 ORDER BY cap_id",
                    &[&&slot.0[..]],
                )
                .map_err(pg)?;
            Ok(rows.iter().map(|r| CapId(to_array(r.get(0)))).collect())
        })
    }

    fn append(&self, items: &[AppendItem]) -> Result<Vec<AppendOutcome>, StoreError> {
        // Only while every other listener registers its streams: then the group looks up
        // which of its slots are streamed elsewhere, and only those are announced.
        let ask = (self.seen.peers.load(Ordering::Relaxed) == PEERS_REGISTERING)
            .then_some(self.instance.as_str());
        let (outcomes, streamed) = self
            .appends
            .run(|lane| lane.append(items, &self.quotas, ask))?;
        // Committed: now the other instances may hear of it.
        if let Some(tx) = &self.notify {
            let payloads = notify_payloads(&self.instance, items, &outcomes, streamed.as_ref());
            if !payloads.is_empty() && tx.try_send(payloads).is_err() {
                // The notifier is this far behind (the database unreachable for a while):
                // it tells the others to catch up on everything once it can.
                self.notify_lost.store(true, Ordering::Relaxed);
            }
        }
        Ok(outcomes)
    }

    fn read_after(
        &self,
        slot: SlotId,
        after: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Page, StoreError> {
        self.call(move |txn, _| {
            let last_seq = slot_row(txn, slot, false)?.map_or(0, |i| i.last_seq);
            page_after(
                txn,
                "SELECT seq, body FROM blobs WHERE slot = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                (slot, after, limit, bytes_max),
                last_seq,
            )
        })
    }

    fn ack(&self, slot: SlotId, through: u64) -> Result<AckOutcome, StoreError> {
        self.call(move |txn, _| {
            let Some(info) = slot_row(txn, slot, true)? else {
                return Ok(AckOutcome::UnknownSlot);
            };
            if through > info.last_seq {
                return Ok(AckOutcome::BeyondLast {
                    last_seq: info.last_seq,
                });
            }
            let (mut removed, mut removed_bytes, mut acked) = (0u64, 0u64, info.acked_through);
            if through > info.acked_through {
                let r = txn
                    .query_one(
                        "WITH gone AS (DELETE FROM blobs WHERE slot = $1 AND seq <= $2 \
                         RETURNING length(body) AS len) \
                         SELECT count(*), coalesce(sum(len), 0)::int8 FROM gone",
                        &[&&slot.0[..], &big(through)],
                    )
                    .map_err(pg)?;
                removed = small(r.get(0));
                removed_bytes = small(r.get(1));
                acked = through;
                txn.execute(
                    "UPDATE slots SET acked_through = $2, blobs = greatest(blobs - $3, 0), \
                     bytes = greatest(bytes - $4, 0) WHERE id = $1",
                    &[
                        &&slot.0[..],
                        &big(through),
                        &big(removed),
                        &big(removed_bytes),
                    ],
                )
                .map_err(pg)?;
                txn.execute(
                    "UPDATE counters SET blobs = blobs - $1, bytes = bytes - $2 WHERE id = $3",
                    &[&big(removed), &big(removed_bytes), &shard()],
                )
                .map_err(pg)?;
            }
            Ok(AckOutcome::Acked {
                removed,
                blobs: info.blobs.saturating_sub(removed),
                bytes: info.bytes.saturating_sub(removed_bytes),
                acked_through: acked,
            })
        })
    }

    fn totals(&self) -> Result<Totals, StoreError> {
        self.call(move |txn, _| {
            let r = txn
                .query_one(
                    "SELECT sum(slots)::int8, sum(blobs)::int8, sum(bytes)::int8, \
                     sum(handles)::int8, sum(intros)::int8 FROM counters",
                    &[],
                )
                .map_err(pg)?;
            Ok(Totals {
                slots: small(r.get(0)),
                blobs: small(r.get(1)),
                bytes: small(r.get(2)),
                handles: small(r.get(3)),
                intros: small(r.get(4)),
            })
        })
    }

    fn claim(&self, record: HandleRecord) -> Result<ClaimOutcome, StoreError> {
        self.call(move |txn, quotas| {
            let Some(new_handles) = slot_handles(txn, record.slot)? else {
                return Ok(ClaimOutcome::UnknownSlot);
            };
            let max = quotas.handles_per_slot_max;
            let value = serde_json::to_string(&record).map_err(|e| StoreError(e.to_string()))?;
            // FCFS across instances: the primary key decides who inserted first.
            let inserted = txn
                .execute(
                    "INSERT INTO handles (nick, slot, record) SELECT $1, $2, $3 \
                     WHERE $4 ON CONFLICT (nick) DO NOTHING",
                    &[
                        &record.nick,
                        &&record.slot.0[..],
                        &value,
                        &(new_handles < max),
                    ],
                )
                .map_err(pg)?;
            if inserted == 1 {
                handles_delta(txn, record.slot, 1)?;
                txn.execute(
                    "UPDATE counters SET handles = handles + 1 WHERE id = $1",
                    &[&shard()],
                )
                .map_err(pg)?;
                return Ok(ClaimOutcome::Claimed);
            }
            let held = txn
                .query_opt(
                    "SELECT record FROM handles WHERE nick = $1 FOR UPDATE",
                    &[&record.nick],
                )
                .map_err(pg)?;
            let Some(held) = held else {
                // Not inserted and not held: the slot is at its limit.
                return Ok(ClaimOutcome::TooManyHandles { max });
            };
            let held = decode_handle(held.get(0))?;
            let outcome = match &held {
                h if h.key != record.key => return Ok(ClaimOutcome::Taken(Box::new(held))),
                h if h.card == record.card && h.slot == record.slot => {
                    if h.listed == record.listed && h.profile == record.profile {
                        return Ok(ClaimOutcome::Unchanged);
                    }
                    ClaimOutcome::Updated
                }
                h if record.issued_ms <= h.issued_ms => {
                    return Ok(ClaimOutcome::Stale {
                        held_issued_ms: h.issued_ms,
                    });
                }
                h => {
                    if h.slot != record.slot {
                        if new_handles >= max {
                            return Ok(ClaimOutcome::TooManyHandles { max });
                        }
                        handles_delta(txn, record.slot, 1)?;
                        handles_delta(txn, h.slot, -1)?;
                    }
                    ClaimOutcome::Updated
                }
            };
            txn.execute(
                "UPDATE handles SET slot = $2, record = $3 WHERE nick = $1",
                &[&record.nick, &&record.slot.0[..], &value],
            )
            .map_err(pg)?;
            Ok(outcome)
        })
    }

    fn handle(&self, nick: &str) -> Result<Option<HandleRecord>, StoreError> {
        let nick = nick.to_owned();
        self.call(move |txn, _| {
            let row = txn
                .query_opt("SELECT record FROM handles WHERE nick = $1", &[&nick])
                .map_err(pg)?;
            row.map(|r| decode_handle(r.get(0))).transpose()
        })
    }

    fn handles_after(&self, after: &str, limit: usize) -> Result<Vec<HandleRecord>, StoreError> {
        let after = after.to_owned();
        self.call(move |txn, _| {
            let rows = txn
                .query(
                    "SELECT record FROM handles WHERE nick > $1 ORDER BY nick LIMIT $2",
                    &[&after, &fetch_limit(limit)],
                )
                .map_err(pg)?;
            rows.iter().map(|r| decode_handle(r.get(0))).collect()
        })
    }

    fn release(&self, nick: &str, slot: SlotId) -> Result<bool, StoreError> {
        let nick = nick.to_owned();
        self.call(move |txn, _| {
            let n = txn
                .execute(
                    "DELETE FROM handles WHERE nick = $1 AND slot = $2",
                    &[&nick, &&slot.0[..]],
                )
                .map_err(pg)?;
            if n == 0 {
                return Ok(false);
            }
            handles_delta(txn, slot, -1)?;
            txn.execute(
                "UPDATE counters SET handles = handles - 1 WHERE id = $1",
                &[&shard()],
            )
            .map_err(pg)?;
            Ok(true)
        })
    }

    fn put_intro(
        &self,
        slot: SlotId,
        from: [u8; 32],
        envelope: &[u8],
        _now_ms: u64,
    ) -> Result<IntroOutcome, StoreError> {
        let envelope = envelope.to_vec();
        self.call(move |txn, quotas| {
            txn.execute(
                "INSERT INTO intro_slots (slot, last_seq, pending) VALUES ($1, 0, 0) \
                 ON CONFLICT (slot) DO NOTHING",
                &[&&slot.0[..]],
            )
            .map_err(pg)?;
            let r = txn
                .query_one(
                    "SELECT last_seq, pending FROM intro_slots WHERE slot = $1 FOR UPDATE",
                    &[&&slot.0[..]],
                )
                .map_err(pg)?;
            let (last_seq, pending) = (small(r.get(0)), small(r.get(1)));
            let previous = txn
                .query_opt(
                    "DELETE FROM intros WHERE slot = $1 AND sender = $2 RETURNING seq",
                    &[&&slot.0[..], &&from[..]],
                )
                .map_err(pg)?;
            if previous.is_none() && pending >= quotas.intros_per_slot_max {
                return Ok(IntroOutcome::Full {
                    max: quotas.intros_per_slot_max,
                });
            }
            let seq = last_seq + 1;
            let pending = pending + u64::from(previous.is_none());
            txn.execute(
                "INSERT INTO intros (slot, seq, sender, envelope) VALUES ($1, $2, $3, $4)",
                &[&&slot.0[..], &big(seq), &&from[..], &envelope],
            )
            .map_err(pg)?;
            txn.execute(
                "UPDATE intro_slots SET last_seq = $2, pending = $3 WHERE slot = $1",
                &[&&slot.0[..], &big(seq), &big(pending)],
            )
            .map_err(pg)?;
            if previous.is_some() {
                Ok(IntroOutcome::Replaced { seq })
            } else {
                txn.execute(
                    "UPDATE counters SET intros = intros + 1 WHERE id = $1",
                    &[&shard()],
                )
                .map_err(pg)?;
                Ok(IntroOutcome::Queued { seq })
            }
        })
    }

    fn intros_after(&self, slot: SlotId, after: u64, limit: usize) -> Result<Page, StoreError> {
        self.call(move |txn, _| {
            let last_seq = txn
                .query_opt(
                    "SELECT last_seq FROM intro_slots WHERE slot = $1",
                    &[&&slot.0[..]],
                )
                .map_err(pg)?
                .map_or(0, |r| small(r.get(0)));
            page_after(
                txn,
                "SELECT seq, envelope FROM intros WHERE slot = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
                (slot, after, limit, usize::MAX),
                last_seq,
            )
        })
    }

    fn ack_intros(&self, slot: SlotId, through: u64) -> Result<AckOutcome, StoreError> {
        self.call(move |txn, _| {
            let r = txn
                .query_opt(
                    "SELECT last_seq, pending FROM intro_slots WHERE slot = $1 FOR UPDATE",
                    &[&&slot.0[..]],
                )
                .map_err(pg)?;
            let (last_seq, pending) = r.map_or((0, 0), |r| (small(r.get(0)), small(r.get(1))));
            if through > last_seq {
                return Ok(AckOutcome::BeyondLast { last_seq });
            }
            let removed = txn
                .execute(
                    "DELETE FROM intros WHERE slot = $1 AND seq <= $2",
                    &[&&slot.0[..], &big(through)],
                )
                .map_err(pg)?;
            let left = pending.saturating_sub(removed);
            if removed > 0 {
                txn.execute(
                    "UPDATE intro_slots SET pending = $2 WHERE slot = $1",
                    &[&&slot.0[..], &big(left)],
                )
                .map_err(pg)?;
                txn.execute(
                    "UPDATE counters SET intros = intros - $1 WHERE id = $2",
                    &[&big(removed), &shard()],
                )
                .map_err(pg)?;
            }
            Ok(AckOutcome::Acked {
                removed,
                blobs: left,
                bytes: 0,
                acked_through: through,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://wire:s3cret@db.example:5432/relay"),
            "postgres://wire:***@db.example:5432/relay"
        );
        assert_eq!(
            redact("postgres://wire@db.example/relay"),
            "postgres://wire@db.example/relay"
        );
        assert_eq!(
            redact("postgres://db.example/relay"),
            "postgres://db.example/relay"
        );
    }
}
