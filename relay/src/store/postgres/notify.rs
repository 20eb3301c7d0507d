//! How the PostgreSQL store's instances hear of each other's appends: the notifier thread
//! announces what committed groups stored (`NOTIFY`, only while another instance listens) and
//! the listener thread hands the hub what other instances stored in slots streamed here
//! (decisions (ag), (ai), (ao)).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use postgres::{Client, Statement, Transaction};

use super::{big, connect, pg, small};
use crate::store::{AppendItem, AppendOutcome, StoreError, Wake, Wanted, Watched};
use crate::token::SlotId;

/// The channel appends are announced on, after their commit (see [`notify_payloads`]).
const CHANNEL: &str = "wire_appends";
/// Slot ranges in one notification (PostgreSQL takes up to 8,000 bytes of payload).
const RANGES_PER_NOTIFY: usize = 64;
/// How old the notifier's look at who else listens may be (see [`Listeners`]).
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// An announcement this soon after the last one finds the notifier busy: it lingers for
/// [`LINGER`] to send the groups behind it in the same NOTIFY.
const BUSY_WITHIN: Duration = Duration::from_millis(2);
const LINGER: Duration = Duration::from_millis(1);
/// How often an idle notifier looks again at who else listens, so that the lanes stop
/// asking who streams what soon after the last other instance has gone.
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// How often the listener refreshes this instance's rows in `watches` and `watch_listeners`,
/// and sweeps the rows nobody refreshed for [`WATCH_EXPIRES_MS`].
pub(super) const WATCH_REFRESH: Duration = Duration::from_secs(60);
const WATCH_EXPIRES_MS: i64 = 600_000;
/// Slots registered in one transaction at most (each row share-locked until its commit).
const REGISTER_CHUNK: usize = 1000;
/// The database's clock in Unix ms, as SQL.
const NOW_MS: &str = "(extract(epoch FROM statement_timestamp()) * 1000)::int8";

/// What the notifier's last look found on the database besides this instance, for the
/// append path.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// No other listener ([`PEERS_NONE`]), only listeners that register their streams
    /// (`watches`, [`PEERS_REGISTERING`]), or at least one that does not (an instance of an
    /// older build, [`PEERS_LEGACY`]). The lanes ask who streams a group's slots only in the
    /// second case; otherwise every stored slot goes to the notifier, as before.
    pub(super) peers: AtomicU8,
    /// How many other instances' listeners: the append lanes in flight are shared with them
    /// (decision (ar)).
    pub(super) others: AtomicUsize,
    /// The server pid of this instance's listener connection (0 while it has none), which
    /// the listener sets and the notifier leaves out when it counts who else listens.
    pub(super) listener_pid: AtomicI32,
}
pub(super) const PEERS_NONE: u8 = 0;
pub(super) const PEERS_REGISTERING: u8 = 1;
pub(super) const PEERS_LEGACY: u8 = 2;

/// The slots this instance registered in `watches`, and when (the stream path skips the
/// database for a slot registered within [`WATCH_REFRESH`]). Emptied whenever the listener
/// reconnects: rows written with `synchronous_commit = off` may not have survived what broke
/// it, so it registers every slot streamed here again.
pub(super) type Registered = Arc<Mutex<HashMap<SlotId, Instant>>>;

/// Registers `slots` as streamed by `instance` (in chunks, each its own transaction, not
/// waiting for its WAL flush: see [`Registered`]). Each chunk first takes a share lock on
/// the slots' rows, in id order as the lanes lock them: an append group holding the row
/// lock has committed before the row is written (so the stream's read after this finds its
/// blobs), and a group that locks after it finds the row in its look-up (so it announces).
pub(super) fn register(
    client: &mut Client,
    instance: &str,
    slots: &[SlotId],
) -> Result<(), postgres::Error> {
    let mut sorted: Vec<&[u8]> = slots.iter().map(|s| &s.0[..]).collect();
    sorted.sort_unstable();
    sorted.dedup();
    for chunk in sorted.chunks(REGISTER_CHUNK) {
        let mut txn = client.transaction()?;
        register_in(&mut txn, instance, chunk)?;
        txn.commit()?;
    }
    Ok(())
}

/// One chunk of [`register`], in the caller's transaction (`ids` sorted).
pub(super) fn register_in(
    txn: &mut Transaction<'_>,
    instance: &str,
    ids: &[&[u8]],
) -> Result<(), postgres::Error> {
    txn.batch_execute("SET LOCAL synchronous_commit = off")?;
    txn.execute(
        "SELECT 1 FROM slots WHERE id = ANY ($1) ORDER BY id FOR SHARE",
        &[&ids],
    )?;
    txn.execute(
        &format!(
            "INSERT INTO watches (slot, instance, seen_ms) \
             SELECT s, $2, {NOW_MS} FROM unnest($1::bytea[]) AS s \
             ON CONFLICT (slot, instance) DO UPDATE SET seen_ms = EXCLUDED.seen_ms"
        ),
        &[&ids, &instance],
    )?;
    Ok(())
}

/// How often the listener looks at `stopping` when nothing arrives.
const LISTEN_POLL: Duration = Duration::from_millis(250);
/// Blobs the listener reads at a time for a wake-up.
const WAKE_PAGE: i64 = 256;

/// The `application_name` of the notifier's connection.
pub const NOTIFIER_NAME: &str = "wire-relay-notify";

/// Ranges sent in one `NOTIFY` statement at most; a backlog beyond it is sent as "catch up".
const NOTIFY_BATCH_MAX: usize = 4096;

/// The thread that announces committed appends to the other instances (`NOTIFY`), on a
/// connection of its own with `synchronous_commit = off`. Not inside the append transaction:
/// a transaction that notifies holds the cluster-wide lock on the notification queue from
/// before its commit until after its WAL flush, so every instance's commits would queue
/// behind each other's fsyncs. Here the appends are durable already; the notifying
/// transaction writes nothing worth waiting for, and what is waiting is sent in one statement.
/// Nothing announced is given up: a batch whose sending fails is sent again (reconnecting,
/// every 200 ms) with whatever arrived meanwhile; announcements that could not even be queued
/// (`lost`), or a backlog too big for one statement, become one "catch up" notice
/// (`instance;*`), on which the others wake every stream they hold (decision (ai)).
///
/// While no other instance listens on the database, nothing is announced: one instance alone
/// paid for a NOTIFY transaction per group and for its own listener waking to skip it. Who
/// listens is looked up at most every [`LOOK_EVERY`] ([`Listeners`]); after skipping, a fresh
/// look follows within [`LOOK_EVERY`] even if no append comes, and if another listener has
/// appeared by then, it gets one "catch up" notice for everything skipped. That closes the
/// window of a stale look: an instance whose listener came up before that fresh look is woken
/// by the notice, and one that came up after it read its streams' backlogs from storage after
/// the skipped appends had committed.
pub(super) fn notifier(
    url: String,
    shown: String,
    instance: String,
    rx: Receiver<Vec<String>>,
    lost: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    seen: Arc<Seen>,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("wire-relay-pg-notify".into())
        .spawn(move || {
            let mut conn: Option<NotifyConn> = None;
            let catch_up = format!("{instance};*");
            let mut listeners = Listeners::default();
            let mut last_sent = Instant::now() - BUSY_WITHIN;
            loop {
                // After a skip, look again soon even if no append comes; idle, now and then.
                let wait = if listeners.skipped_at.is_some() {
                    LOOK_EVERY
                } else {
                    IDLE_LOOK
                };
                let first = match rx.recv_timeout(wait) {
                    Ok(first) => first,
                    Err(RecvTimeoutError::Timeout) => {
                        // Nothing came: look now, fresh.
                        listeners.at = None;
                        Vec::new()
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                let mut payloads = first;
                // Under load (the last announcement went out a moment ago), wait a little for
                // the groups committing now, so that one NOTIFY carries several: each costs a
                // transaction here and a wake-up of every other instance's listener. An
                // occasional append is announced at once.
                if !payloads.is_empty() && last_sent.elapsed() < BUSY_WITHIN {
                    let until = Instant::now() + LINGER;
                    while let Some(left) = until.checked_duration_since(Instant::now()) {
                        match rx.recv_timeout(left) {
                            Ok(more) => payloads.extend(more),
                            Err(_) => break,
                        }
                    }
                }
                loop {
                    while let Ok(more) = rx.try_recv() {
                        payloads.extend(more);
                    }
                    if lost.swap(false, Ordering::Relaxed) || payloads.len() > NOTIFY_BATCH_MAX {
                        payloads = vec![catch_up.clone()];
                    }
                    if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
                        conn = NotifyConn::open(&url, &shown).ok();
                    }
                    if let Some(c) = conn.as_mut() {
                        let ours = seen.listener_pid.load(Ordering::Relaxed);
                        let present = listeners.others(c, ours);
                        seen.peers.store(listeners.peers(), Ordering::Relaxed);
                        seen.others.store(listeners.count, Ordering::Relaxed);
                        if !present {
                            if !payloads.is_empty() {
                                listeners.skipped_at = Some(Instant::now());
                            } else if listeners.looked_after_skip() {
                                listeners.skipped_at = None;
                            }
                            break;
                        }
                        if listeners.skipped_at.is_some() {
                            payloads = vec![catch_up.clone()];
                        }
                    }
                    if payloads.is_empty() {
                        break;
                    }
                    let merged = merge_payloads(&instance, &payloads);
                    let sent = conn
                        .as_mut()
                        .is_some_and(|c| c.client.execute(&c.notify, &[&CHANNEL, &merged]).is_ok());
                    if sent {
                        listeners.skipped_at = None;
                        last_sent = Instant::now();
                        break;
                    }
                    if stopping.load(Ordering::Relaxed) {
                        // Shutting down: one try was all this batch gets.
                        return;
                    }
                    conn = None;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
        .map_err(|e| StoreError(format!("cannot start the notifier thread: {e}")))
}

/// The notifier's connection and its statements, prepared once.
struct NotifyConn {
    client: Client,
    notify: Statement,
    look: Statement,
}

impl NotifyConn {
    fn open(url: &str, shown: &str) -> Result<NotifyConn, StoreError> {
        let mut client = connect(url, shown)?;
        client
            .batch_execute(&format!(
                "SET synchronous_commit = off; SET application_name = '{NOTIFIER_NAME}'"
            ))
            .map_err(pg)?;
        let notify = client
            .prepare("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .map_err(pg)?;
        // Every other listener, and those of them that do not register their streams.
        let look = client
            .prepare(
                "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (\
                 SELECT 1 FROM watch_listeners w \
                 WHERE w.pid = a.pid AND w.started = a.backend_start)) \
                 FROM pg_stat_activity a \
                 WHERE a.datname = current_database() AND a.application_name = $1 \
                 AND a.pid <> $2",
            )
            .map_err(pg)?;
        Ok(NotifyConn {
            client,
            notify,
            look,
        })
    }
}

/// Announcements of several groups (`instance;ranges…` each) as few notifications: their
/// ranges in chunks of [`RANGES_PER_NOTIFY`]; a "catch up" among them is all that is sent.
fn merge_payloads(instance: &str, payloads: &[String]) -> Vec<String> {
    let mut ranges: Vec<&str> = Vec::new();
    for p in payloads {
        let mut parts = p.split(';');
        parts.next();
        for part in parts {
            if part == "*" {
                return vec![format!("{instance};*")];
            }
            ranges.push(part);
        }
    }
    ranges
        .chunks(RANGES_PER_NOTIFY)
        .map(|chunk| format!("{instance};{}", chunk.join(";")))
        .collect()
}

/// The notifier's last look at who else listens on the database.
#[derive(Debug, Default)]
struct Listeners {
    /// When it looked, and whether another instance's listener was there.
    at: Option<Instant>,
    present: bool,
    /// How many there were.
    count: usize,
    /// Whether one of them belongs to an instance that does not register its streams.
    legacy: bool,
    /// The last announcement skipped because no one else listened, until a look taken after
    /// it finds no one still, or the "catch up" notice has gone out.
    skipped_at: Option<Instant>,
}

impl Listeners {
    /// Whether a listener other than ours (`ours`: its server pid, 0 for none) is on this
    /// database, looked up again when the last look is older than [`LOOK_EVERY`]. A failed
    /// look counts as "yes": announcing to no one costs little, missing someone a wake-up.
    fn others(&mut self, c: &mut NotifyConn, ours: i32) -> bool {
        if self.at.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
            return self.present;
        }
        let looked = Instant::now();
        let (count, legacy) = c
            .client
            .query_one(&c.look, &[&LISTENER_NAME, &ours])
            .map_or((1, 1), |row| (row.get::<_, i64>(0), row.get::<_, i64>(1)));
        self.present = count > 0;
        self.count = usize::try_from(count).unwrap_or(0);
        self.legacy = legacy > 0;
        self.at = Some(looked);
        self.present
    }

    /// The last look, for the lanes ([`Seen::peers`]).
    fn peers(&self) -> u8 {
        match (self.present, self.legacy) {
            (false, _) => PEERS_NONE,
            (true, false) => PEERS_REGISTERING,
            (true, true) => PEERS_LEGACY,
        }
    }

    /// Whether the last look was taken after the last skip.
    fn looked_after_skip(&self) -> bool {
        matches!((self.at, self.skipped_at), (Some(at), Some(skipped)) if at >= skipped)
    }
}

/// `instance;slot:first:last;…`: the seq range each slot got in one group, in chunks; only
/// the slots in `only` when the group looked up who streams them elsewhere.
pub(super) fn notify_payloads(
    instance: &str,
    items: &[AppendItem],
    outcomes: &[AppendOutcome],
    only: Option<&HashSet<SlotId>>,
) -> Vec<String> {
    let mut ranges: HashMap<SlotId, (u64, u64)> = HashMap::new();
    for (item, outcome) in items.iter().zip(outcomes) {
        if only.is_some_and(|only| !only.contains(&item.slot)) {
            continue;
        }
        if let AppendOutcome::Stored { seq } = outcome {
            let r = ranges.entry(item.slot).or_insert((*seq, *seq));
            r.0 = r.0.min(*seq);
            r.1 = r.1.max(*seq);
        }
    }
    let ranges: Vec<String> = ranges
        .iter()
        .map(|(slot, (first, last))| format!("{}:{first}:{last}", hex::encode(slot.0)))
        .collect();
    ranges
        .chunks(RANGES_PER_NOTIFY)
        .map(|chunk| format!("{instance};{}", chunk.join(";")))
        .collect()
}

/// What a notification from another instance asks of this one.
#[derive(Debug, PartialEq, Eq)]
enum Notice {
    /// These slots got these seq ranges.
    Ranges(Vec<(SlotId, u64, u64)>),
    /// Announcements were lost: wake every stream here ([`catch_up`]).
    CatchUp,
}

/// A notification from another instance (`None`: ours, or not understood).
fn parse_payload(ours: &str, payload: &str) -> Option<Notice> {
    let mut parts = payload.split(';');
    if parts.next()? == ours {
        return None;
    }
    let mut out = Vec::new();
    for part in parts {
        if part == "*" {
            return Some(Notice::CatchUp);
        }
        let mut f = part.split(':');
        let slot = SlotId::parse(f.next()?)?;
        let first = f.next()?.parse().ok()?;
        let last = f.next()?.parse().ok()?;
        out.push((slot, first, last));
    }
    Some(Notice::Ranges(out))
}

/// The `application_name` of the listener's connection (operators and the tests find it so).
pub const LISTENER_NAME: &str = "wire-relay-listen";

/// The newest blob of every slot streamed here, to the hub (see [`listen`]).
fn catch_up(c: &mut Client, wake: &Wake, watched: &Watched) {
    for slot in watched() {
        let Ok(row) = c.query_opt(
            "SELECT seq, body FROM blobs WHERE slot = $1 ORDER BY seq DESC LIMIT 1",
            &[&&slot.0[..]],
        ) else {
            // The connection broke again: the next reconnect catches up.
            return;
        };
        if let Some(r) = row {
            wake(&[(slot, small(r.get(0)), Bytes::copy_from_slice(r.get(1)))]);
        }
    }
}

/// The listener: `LISTEN`s on [`CHANNEL`] and hands `wake` what other instances stored in
/// slots that someone here streams, read back in pages. Reconnects (every second) when the
/// connection breaks; the wake-ups sent while it was down are lost, so on every connect it
/// registers itself and every slot streamed here again ([`register`]) and then wakes every
/// stream here with its slot's newest blob ([`catch_up`]). Every [`WATCH_REFRESH`] it
/// refreshes this instance's rows and sweeps the expired ones of any instance.
#[allow(clippy::too_many_arguments)]
pub(super) fn listen(
    url: String,
    shown: String,
    ours: String,
    stopping: Arc<AtomicBool>,
    seen: Arc<Seen>,
    registered: Registered,
    wake: Wake,
    wanted: Wanted,
    watched: Watched,
) {
    let mut client: Option<(Client, Statement)> = None;
    // Said once per outage, not once per retry.
    let mut warned = false;
    let mut refreshed = Instant::now();
    while !stopping.load(Ordering::Relaxed) {
        let Some((c, page_st)) = client.as_mut().filter(|(c, _)| !c.is_closed()) else {
            client = match listen_on(&url, &shown, &ours, &registered, &watched) {
                Ok((mut c, page_st, backend)) => {
                    seen.listener_pid.store(backend, Ordering::Relaxed);
                    if warned {
                        eprintln!("wire relay: listening for other relays' appends again");
                    }
                    warned = false;
                    refreshed = Instant::now();
                    // Listening and registered from here on; whatever was announced before
                    // (while this connection was down, or before it first came up) is in
                    // storage: hand each stream's slot its newest blob, and a stream that is
                    // behind it reads the gap from storage (invariant 53).
                    catch_up(&mut c, &wake, &watched);
                    Some((c, page_st))
                }
                Err(e) => {
                    if !warned {
                        eprintln!(
                            "wire relay: cannot listen for other relays' appends (streams here \
                             miss their wake-ups until this recovers; retrying every second): {e}"
                        );
                    }
                    warned = true;
                    std::thread::sleep(Duration::from_secs(1));
                    None
                }
            };
            continue;
        };
        if refreshed.elapsed() >= WATCH_REFRESH {
            refreshed = Instant::now();
            if refresh(c, &ours, &registered, &watched).is_err() {
                // The connection broke: the reconnect registers everything again.
                continue;
            }
        }
        // Wait for one notification (or LISTEN_POLL), then take whatever else has arrived
        // without waiting, and serve them at once.
        let mut payloads = Vec::new();
        {
            use postgres::fallible_iterator::FallibleIterator;
            let mut notes = c.notifications();
            let first = notes
                .timeout_iter(LISTEN_POLL)
                .next()
                .ok()
                .flatten()
                .map(|n| n.payload().to_owned());
            if let Some(first) = first {
                payloads.push(first);
                let mut pending = notes.iter();
                while payloads.len() < 1024 {
                    match pending.next() {
                        Ok(Some(n)) => payloads.push(n.payload().to_owned()),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        for payload in payloads {
            let ranges = match parse_payload(&ours, &payload) {
                Some(Notice::Ranges(r)) => r,
                Some(Notice::CatchUp) => {
                    catch_up(c, &wake, &watched);
                    continue;
                }
                None => continue,
            };
            for (slot, first, last) in ranges {
                if !wanted(slot) {
                    continue;
                }
                let mut from = first;
                while from <= last {
                    let rows = match c.query(
                        &*page_st,
                        &[&&slot.0[..], &big(from), &big(last), &WAKE_PAGE],
                    ) {
                        Ok(rows) => rows,
                        Err(_) => break,
                    };
                    let Some(end) = rows.last().map(|r| small(r.get(0))) else {
                        break;
                    };
                    let stored: Vec<(SlotId, u64, Bytes)> = rows
                        .iter()
                        .map(|r| (slot, small(r.get(0)), Bytes::copy_from_slice(r.get(1))))
                        .collect();
                    wake(&stored);
                    from = end + 1;
                }
            }
        }
    }
}

/// Connects the listener: `LISTEN`, then this listener into `watch_listeners` (so the other
/// instances know it registers its streams), then every slot streamed here into `watches`
/// afresh. Returns the connection, its prepared page read and its server pid.
fn listen_on(
    url: &str,
    shown: &str,
    ours: &str,
    registered: &Registered,
    watched: &Watched,
) -> Result<(Client, Statement, i32), StoreError> {
    let mut c = connect(url, shown)?;
    c.batch_execute(&format!(
        "SET application_name = '{LISTENER_NAME}'; LISTEN {CHANNEL}"
    ))
    .map_err(pg)?;
    let backend = c
        .query_one(
            &format!(
                "INSERT INTO watch_listeners (pid, started, instance, seen_ms) \
                 SELECT pid, backend_start, $1, {NOW_MS} FROM pg_stat_activity \
                 WHERE pid = pg_backend_pid() \
                 ON CONFLICT (pid, started) DO UPDATE SET seen_ms = EXCLUDED.seen_ms \
                 RETURNING pid"
            ),
            &[&ours],
        )
        .map_err(pg)?
        .get::<_, i32>(0);
    lock(registered).clear();
    let slots = watched();
    register(&mut c, ours, &slots).map_err(pg)?;
    let now = Instant::now();
    lock(registered).extend(slots.into_iter().map(|s| (s, now)));
    let page_st = c
        .prepare(
            "SELECT seq, body FROM blobs WHERE slot = $1 AND seq >= $2 AND seq <= $3 \
             ORDER BY seq LIMIT $4",
        )
        .map_err(pg)?;
    Ok((c, page_st, backend))
}

/// This instance's rows refreshed (a slot whose row is gone is registered again, locked),
/// and every instance's rows that nobody refreshed for [`WATCH_EXPIRES_MS`] swept.
fn refresh(
    c: &mut Client,
    ours: &str,
    registered: &Registered,
    watched: &Watched,
) -> Result<(), postgres::Error> {
    let slots = watched();
    let ids: Vec<&[u8]> = slots.iter().map(|s| &s.0[..]).collect();
    let kept = c.execute(
        &format!("UPDATE watches SET seen_ms = {NOW_MS} WHERE instance = $1 AND slot = ANY ($2)"),
        &[&ours, &ids],
    )?;
    if usize::try_from(kept).unwrap_or(usize::MAX) < slots.len() {
        register(c, ours, &slots)?;
    }
    c.execute(
        &format!("UPDATE watch_listeners SET seen_ms = {NOW_MS} WHERE instance = $1"),
        &[&ours],
    )?;
    for table in ["watches", "watch_listeners"] {
        c.execute(
            &format!("DELETE FROM {table} WHERE seen_ms < {NOW_MS} - $1"),
            &[&WATCH_EXPIRES_MS],
        )?;
    }
    let now = Instant::now();
    lock(registered).extend(slots.into_iter().map(|s| (s, now)));
    Ok(())
}

/// The registry's lock, whatever a panicking holder left.
pub(super) fn lock(registered: &Registered) -> std::sync::MutexGuard<'_, HashMap<SlotId, Instant>> {
    registered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::{Notice, RANGES_PER_NOTIFY, merge_payloads, parse_payload};
    use crate::token::SlotId;

    #[test]
    fn notifications_are_read_back_and_ours_skipped() {
        let slot = "00112233445566778899aabbccddeeff";
        let id = SlotId::parse(slot).expect("slot id");
        assert_eq!(
            parse_payload("me", &format!("other;{slot}:3:5")),
            Some(Notice::Ranges(vec![(id, 3, 5)]))
        );
        assert_eq!(parse_payload("me", &format!("me;{slot}:3:5")), None);
        assert_eq!(parse_payload("me", "other;*"), Some(Notice::CatchUp));
        assert_eq!(parse_payload("me", "other;not-a-slot:1:2"), None);
        assert_eq!(parse_payload("me", &format!("other;{slot}:x:2")), None);
    }

    #[test]
    fn several_groups_are_announced_in_as_few_notifications_as_fit() {
        let payloads: Vec<String> = (0..100)
            .map(|i| format!("me;{i:032x}:1:2;{:032x}:3:3", i + 1000))
            .collect();
        let merged = merge_payloads("me", &payloads);
        assert_eq!(merged.len(), 200usize.div_ceil(RANGES_PER_NOTIFY));
        let ranges: Vec<&str> = merged
            .iter()
            .flat_map(|m| m.strip_prefix("me;").expect("ours").split(';'))
            .collect();
        assert_eq!(ranges.len(), 200);
        assert_eq!(ranges[0], format!("{:032x}:1:2", 0));
        assert_eq!(ranges[1], format!("{:032x}:3:3", 1000));
        // A "catch up" among them is all that is sent.
        let mut with_catch_up = payloads.clone();
        with_catch_up.push("me;*".into());
        assert_eq!(merge_payloads("me", &with_catch_up), ["me;*"]);
        assert!(merge_payloads("me", &[]).is_empty());
    }
}
