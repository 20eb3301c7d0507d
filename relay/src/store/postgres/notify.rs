//! How the PostgreSQL store's instances hear of each other's appends: the notifier thread
//! announces what committed groups stored (`NOTIFY`, only while another instance listens) and
//! the listener thread hands the hub what other instances stored in slots streamed here
//! (decisions (ag), (ai), (ao)).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use postgres::Client;

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
    listener_pid: Arc<AtomicI32>,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("wire-relay-pg-notify".into())
        .spawn(move || {
            let mut conn: Option<Client> = None;
            let catch_up = format!("{instance};*");
            let mut listeners = Listeners::default();
            let mut last_sent = Instant::now() - BUSY_WITHIN;
            loop {
                let first = if listeners.skipped_at.is_some() {
                    match rx.recv_timeout(LOOK_EVERY) {
                        Ok(first) => first,
                        Err(RecvTimeoutError::Timeout) => {
                            // No append since the skip: look now, fresh.
                            listeners.at = None;
                            Vec::new()
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    match rx.recv() {
                        Ok(first) => first,
                        Err(_) => return,
                    }
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
                    if conn.as_ref().is_none_or(Client::is_closed) {
                        conn = connect(&url, &shown)
                            .and_then(|mut c| {
                                c.batch_execute(&format!(
                                    "SET synchronous_commit = off; \
                                     SET application_name = '{NOTIFIER_NAME}'"
                                ))
                                .map_err(pg)?;
                                Ok(c)
                            })
                            .ok();
                    }
                    if let Some(c) = conn.as_mut() {
                        let ours = listener_pid.load(Ordering::Relaxed);
                        if !listeners.others(c, ours) {
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
                    let sent = conn.as_mut().is_some_and(|c| {
                        c.execute(
                            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                            &[&CHANNEL, &payloads],
                        )
                        .is_ok()
                    });
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

/// The notifier's last look at who else listens on the database.
#[derive(Debug, Default)]
struct Listeners {
    /// When it looked, and whether another instance's listener was there.
    at: Option<Instant>,
    present: bool,
    /// The last announcement skipped because no one else listened, until a look taken after
    /// it finds no one still, or the "catch up" notice has gone out.
    skipped_at: Option<Instant>,
}

impl Listeners {
    /// Whether a listener other than ours (`ours`: its server pid, 0 for none) is on this
    /// database, looked up again when the last look is older than [`LOOK_EVERY`]. A failed
    /// look counts as "yes": announcing to no one costs little, missing someone a wake-up.
    fn others(&mut self, c: &mut Client, ours: i32) -> bool {
        if self.at.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
            return self.present;
        }
        let looked = Instant::now();
        self.present = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = $1 AND pid <> $2",
                &[&LISTENER_NAME, &ours],
            )
            .map_or(true, |row| row.get::<_, i64>(0) > 0);
        self.at = Some(looked);
        self.present
    }

    /// Whether the last look was taken after the last skip.
    fn looked_after_skip(&self) -> bool {
        matches!((self.at, self.skipped_at), (Some(at), Some(skipped)) if at >= skipped)
    }
}

/// `instance;slot:first:last;…`: the seq range each slot got in one group, in chunks.
pub(super) fn notify_payloads(
    instance: &str,
    items: &[AppendItem],
    outcomes: &[AppendOutcome],
) -> Vec<String> {
    let mut ranges: HashMap<SlotId, (u64, u64)> = HashMap::new();
    for (item, outcome) in items.iter().zip(outcomes) {
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
/// wakes every stream here with its slot's newest blob ([`catch_up`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn listen(
    url: String,
    shown: String,
    ours: String,
    stopping: Arc<AtomicBool>,
    pid: Arc<AtomicI32>,
    wake: Wake,
    wanted: Wanted,
    watched: Watched,
) {
    let mut client: Option<Client> = None;
    // Said once per outage, not once per retry.
    let mut warned = false;
    while !stopping.load(Ordering::Relaxed) {
        let Some(c) = client.as_mut().filter(|c| !c.is_closed()) else {
            client = match connect(&url, &shown).and_then(|mut c| {
                c.batch_execute(&format!(
                    "SET application_name = '{LISTENER_NAME}'; LISTEN {CHANNEL}"
                ))
                .map_err(pg)?;
                Ok(c)
            }) {
                Ok(mut c) => {
                    let backend = c
                        .query_one("SELECT pg_backend_pid()", &[])
                        .map_or(0, |row| row.get::<_, i32>(0));
                    pid.store(backend, Ordering::Relaxed);
                    if warned {
                        eprintln!("wire relay: listening for other relays' appends again");
                    }
                    warned = false;
                    // Listening from here on; whatever was announced before (while this
                    // connection was down, or before it first came up) is in storage: hand
                    // each stream's slot its newest blob, and a stream that is behind it
                    // reads the gap from storage (invariant 53).
                    catch_up(&mut c, &wake, &watched);
                    Some(c)
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
                        "SELECT seq, body FROM blobs WHERE slot = $1 AND seq >= $2 AND seq <= $3 \
                         ORDER BY seq LIMIT $4",
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

#[cfg(test)]
mod tests {
    use super::{Notice, parse_payload};
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
}
