//! Pulling: reading our slots (pages to catch up, then the live stream), opening and ingesting
//! segments, acknowledging to the relay only after the ingest committed, and taking pair
//! requests from the intro queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use wire_engine::{CheckedSegment, RequestOutcome};
use wire_log::AuthorKey;
use wire_log::body::Endpoint;
use wire_log::segment::Segment;
use wire_net::types::Record;

use super::push::Why;
use super::{Agent, HELD_EVENTS_MAX, Live};

/// Records read per page while catching up.
const PAGE: u32 = 4096;
/// Records below which opening stays on the calling thread.
const OPEN_PER_THREAD_MIN: usize = 64;
/// Pages read ahead of the one being ingested.
const PREFETCH_PAGES: usize = 2;
/// Records ingested together from a live stream.
const STREAM_BATCH_MAX: usize = 4096;

/// What a pull did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Pulled {
    pub records: u64,
    pub stored: u64,
    pub refused: u64,
}

impl Agent {
    /// Reads one slot for as long as it is attached: catch up page by page, then follow the
    /// stream; reconnect with backoff when the relay goes away.
    pub(super) async fn read_slot_forever(self: Arc<Self>, live: Arc<Live>, ep: Endpoint) {
        let mut backoff = Duration::from_millis(50);
        let mut last: u64 = 0;
        loop {
            let attached = live
                .session
                .identity()
                .map(|i| i.slots.contains(&ep))
                .unwrap_or(false);
            if !attached {
                live.readers
                    .lock()
                    .expect("readers lock")
                    .retain(|e| *e != ep);
                return;
            }
            match self.read_slot(&live, &ep, &mut last).await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(e) => {
                    tracing_like(&live, &ep, &e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn read_slot(
        self: &Arc<Self>,
        live: &Arc<Live>,
        ep: &Endpoint,
        last: &mut u64,
    ) -> anyhow::Result<()> {
        let token = live.session.slot_token(ep)?;
        let client = self.client(&ep.relay)?;
        self.catch_up(live, ep, &client, &token, last).await?;
        let mut stream = client.stream(&ep.slot, &token, *last).await?;
        let mut acked = *last;
        let mut last_ack = Instant::now();
        loop {
            let next = if *last > acked {
                // Acknowledge once the stream goes quiet for a moment.
                match tokio::time::timeout(Duration::from_millis(10), stream.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        live.durable().await?;
                        client.ack(&ep.slot, &token, *last).await?;
                        acked = *last;
                        last_ack = Instant::now();
                        continue;
                    }
                }
            } else {
                stream.next().await
            };
            let first = match next {
                Some(r) => r?,
                None => return Ok(()),
            };
            let mut batch = vec![first];
            let mut failed = None;
            while batch.len() < STREAM_BATCH_MAX {
                match stream.next().now_or_never() {
                    Some(Some(Ok(r))) => batch.push(r),
                    Some(Some(Err(e))) => {
                        failed = Some(e);
                        break;
                    }
                    Some(None) | None => break,
                }
            }
            *last = batch.last().map_or(*last, |r| r.seq);
            self.process(live, batch).await;
            if let Some(e) = failed {
                return Err(e.into());
            }
            if *last > acked
                && (last_ack.elapsed() > Duration::from_millis(50) || *last - acked > 1024)
            {
                live.durable().await?;
                client.ack(&ep.slot, &token, *last).await?;
                acked = *last;
                last_ack = Instant::now();
            }
        }
    }

    /// Reads the slot's backlog page by page and ingests it. The next page is fetched while
    /// this one is processed, and acknowledgements go out behind the ingest (never before its
    /// commit) without holding it up.
    async fn catch_up(
        self: &Arc<Self>,
        live: &Arc<Live>,
        ep: &Endpoint,
        client: &wire_net::RelayClient,
        token: &str,
        last: &mut u64,
    ) -> anyhow::Result<Pulled> {
        let mut pulled = Pulled::default();
        let (pages_tx, mut pages) =
            tokio::sync::mpsc::channel::<anyhow::Result<wire_net::types::Page>>(PREFETCH_PAGES);
        let reader = {
            let (client, slot, token) = (client.clone(), ep.slot.clone(), token.to_owned());
            let mut after = *last;
            tokio::spawn(async move {
                loop {
                    let page = client.read(&slot, &token, after, PAGE).await;
                    let (end, more) = match &page {
                        Ok(p) => (p.records.last().map(|r| r.seq), p.more),
                        Err(_) => (None, false),
                    };
                    if pages_tx
                        .send(page.map_err(anyhow::Error::from))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    match end {
                        Some(end) if more => after = end,
                        _ => return,
                    }
                }
            })
        };
        let (ack_tx, ack_rx) = tokio::sync::watch::channel(*last);
        let acker = {
            let (client, slot, token) = (client.clone(), ep.slot.clone(), token.to_owned());
            tokio::spawn(acknowledge_behind(
                live.clone(),
                client,
                slot,
                token,
                ack_rx,
            ))
        };
        let result = async {
            // Page k commits while page k+1 is opened and verified; commits stay in order.
            let mut committing: Option<(u64, tokio::task::JoinHandle<Pulled>)> = None;
            let mut finish = |end: u64, p: Pulled, last: &mut u64| {
                pulled.stored += p.stored;
                pulled.refused += p.refused;
                *last = end;
                ack_tx.send_replace(end);
            };
            while let Some(page) = pages.recv().await {
                let page = page?;
                let Some(end) = page.records.last().map(|r| r.seq) else {
                    break;
                };
                pulled.records += page.records.len() as u64;
                let more = page.more;
                let groups = self.check(live, page.records).await;
                if let Some((done, handle)) = committing.take() {
                    finish(done, handle.await.unwrap_or_default(), last);
                }
                let (agent, l) = (self.clone(), live.clone());
                committing = Some((
                    end,
                    tokio::task::spawn_blocking(move || agent.commit_groups(&l, groups)),
                ));
                if !more {
                    break;
                }
            }
            if let Some((done, handle)) = committing.take() {
                finish(done, handle.await.unwrap_or_default(), last);
            }
            anyhow::Ok(())
        }
        .await;
        reader.abort();
        drop(ack_tx);
        // The acknowledgements still due go out before we return (a `wire sync` caller
        // expects the slot drained).
        let acked = acker.await.unwrap_or(Ok(()));
        result?;
        acked?;
        Ok(pulled)
    }

    /// One pass over every slot and the intro queue (`wire sync`, and `--no-daemon`).
    pub async fn pull_once(self: &Arc<Self>, live: &Arc<Live>) -> anyhow::Result<Pulled> {
        let slots = live.session.identity()?.slots;
        self.pull_slots(live, slots).await
    }

    /// One pass over the given slots of ours (retired ones too: `wire sync --retired`).
    pub async fn pull_slots(
        self: &Arc<Self>,
        live: &Arc<Live>,
        slots: Vec<Endpoint>,
    ) -> anyhow::Result<Pulled> {
        let mut total = Pulled::default();
        for ep in slots {
            let token = live.session.slot_token(&ep)?;
            let client = self.client(&ep.relay)?;
            let mut last = 0;
            let p = self.catch_up(live, &ep, &client, &token, &mut last).await?;
            total.records += p.records;
            total.stored += p.stored;
            total.refused += p.refused;
        }
        Ok(total)
    }

    /// Pushes every paired peer's outbox once (and acknowledgements); returns outcomes.
    pub async fn push_all(
        self: &Arc<Self>,
        live: &Arc<Live>,
    ) -> anyhow::Result<Vec<(AuthorKey, super::PushOutcome)>> {
        let mut out = Vec::new();
        for p in live.session.peers()? {
            if p.state == wire_engine::PeerState::Paired {
                out.push((p.key, self.push(live, &p.key, Why::Tick).await?));
            }
        }
        Ok(out)
    }

    /// Opens and ingests a batch of records off the blocking pool.
    async fn process(self: &Arc<Self>, live: &Arc<Live>, records: Vec<Record>) -> Pulled {
        let agent = self.clone();
        let l = live.clone();
        let n = records.len() as u64;
        let result = tokio::task::spawn_blocking(move || {
            let segments = agent.open_records(&l, &records);
            agent.ingest_segments(&l, segments)
        })
        .await;
        let mut pulled = result.unwrap_or_default();
        pulled.records = n;
        pulled
    }

    /// Opens a batch of records and checks them, grouped by sender, off the blocking pool:
    /// everything of an ingest but the commit.
    async fn check(self: &Arc<Self>, live: &Arc<Live>, records: Vec<Record>) -> Vec<Group> {
        let agent = self.clone();
        let l = live.clone();
        tokio::task::spawn_blocking(move || {
            let segments = agent.open_records(&l, &records);
            agent.check_segments(&l, segments)
        })
        .await
        .unwrap_or_default()
    }

    /// Opens records in parallel (sealing is the dominant cost of a catch-up); records that do
    /// not open are refused and reported.
    fn open_records(&self, live: &Live, records: &[Record]) -> Vec<Segment> {
        let threads = wire_log::cores().min(8);
        let chunk = records.len().div_ceil(threads).max(OPEN_PER_THREAD_MIN);
        let open_all = |part: &[Record]| {
            part.iter()
                .map(|r| {
                    live.session
                        .open_segment(&r.bytes)
                        .map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        };
        // A live line brings a record or a few: a thread would cost more than it saves.
        let opened: Vec<Vec<Result<Segment, String>>> = if records.len() <= OPEN_PER_THREAD_MIN {
            vec![open_all(records)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = records
                    .chunks(chunk)
                    .map(|part| s.spawn(move || open_all(part)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        let mut out = Vec::with_capacity(records.len());
        for r in opened.into_iter().flatten() {
            match r {
                Ok(seg) => out.push(seg),
                Err(e) => live.refuse("a blob in our mailbox", e),
            }
        }
        out
    }

    /// Ingests opened segments: consecutive segments of one peer go in one transaction; a
    /// refused group is retried one segment at a time so one bad segment costs only itself.
    pub(super) fn ingest_segments(
        self: &Arc<Self>,
        live: &Arc<Live>,
        segments: Vec<Segment>,
    ) -> Pulled {
        let groups = self.check_segments(live, segments);
        self.commit_groups(live, groups)
    }

    /// Groups segments by sender and checks each group as one (decode, batch verification).
    fn check_segments(&self, live: &Live, segments: Vec<Segment>) -> Vec<Group> {
        let mut by_peer: BTreeMap<AuthorKey, Vec<Segment>> = BTreeMap::new();
        for s in segments {
            by_peer.entry(s.from).or_default().push(s);
        }
        by_peer
            .into_iter()
            .map(|(peer, segs)| {
                let merged = Segment {
                    from: segs[0].from,
                    to: segs[0].to,
                    log: segs[0].log,
                    have: segs.iter().map(|s| s.have).max().unwrap_or(0),
                    sent_ms: segs.iter().map(|s| s.sent_ms).max().unwrap_or(0),
                    events: segs.iter().flat_map(|s| s.events.iter().cloned()).collect(),
                };
                let checked = live
                    .session
                    .check_segment(&merged)
                    .map_err(|e| e.to_string());
                Group {
                    peer,
                    checked,
                    segments: segs,
                }
            })
            .collect()
    }

    /// Commits checked groups, each after the events its peer had waiting aside.
    fn commit_groups(self: &Arc<Self>, live: &Arc<Live>, groups: Vec<Group>) -> Pulled {
        let mut pulled = Pulled::default();
        for Group {
            peer,
            checked,
            segments,
        } in groups
        {
            let held = std::mem::take(
                live.held
                    .lock()
                    .expect("held lock")
                    .entry(peer)
                    .or_default(),
            );
            let outcome = checked.and_then(|checked| {
                live.session
                    .commit_segment(held_first(live, &segments[0], held, checked))
                    .map_err(|e| e.to_string())
            });
            match outcome {
                Ok(report) => self.after_ingest(live, &peer, report, &mut pulled),
                Err(_) if segments.len() > 1 => {
                    for s in segments {
                        match live.session.ingest_segment(&s) {
                            Ok(report) => self.after_ingest(live, &peer, report, &mut pulled),
                            Err(e) => {
                                pulled.refused += 1;
                                live.refuse(format!("segment from {peer}"), e.to_string());
                            }
                        }
                    }
                }
                Err(e) => {
                    pulled.refused += 1;
                    live.refuse(format!("segment from {peer}"), e);
                }
            }
        }
        pulled
    }

    fn after_ingest(
        self: &Arc<Self>,
        live: &Arc<Live>,
        peer: &AuthorKey,
        report: wire_engine::IngestReport,
        pulled: &mut Pulled,
    ) {
        pulled.stored += report.stored.len() as u64;
        if let Some((pos, _)) = report.stored.last() {
            live.appended.send_replace(*pos);
        }
        live.contact(peer, |c| c.received_ms = Some(super::now_ms()));
        self.notify_messages(live, peer, &report);
        if let Some((expected, got)) = report.gap {
            let mut held = live.held.lock().expect("held lock");
            let h = held.entry(*peer).or_default();
            h.extend(report.held);
            if h.len() > HELD_EVENTS_MAX {
                // The sender still has them; dropping costs a resend, never a loss.
                h.clear();
            }
            drop(held);
            live.refuse(
                format!("events from {peer}"),
                format!("waiting aside: seq {expected} is missing (got {got}); asked the sender to resend"),
            );
        }
        // A confirmation flushes what we queued for the peer, and a gap asks for a resend:
        // both go out at once. A plain acknowledgement waits for the next tick (100 ms), so a
        // busy line costs the sender one cursor event per tick, not one per message.
        if report.confirmed || report.gap.is_some() {
            let agent = self.clone();
            let l = live.clone();
            let p = *peer;
            self.runtime().spawn(async move {
                let _ = agent.push(&l, &p, Why::Tick).await;
            });
        }
        if let Some(have) = report.acked {
            let _ = have;
        }
    }

    /// One notification for the messages a peer's segment brought (never for our own events,
    /// never for resent ones: only what this ingest stored counts).
    fn notify_messages(&self, live: &Live, peer: &AuthorKey, report: &wire_engine::IngestReport) {
        let Some(notifier) = self.notifier() else {
            return;
        };
        let messages: Vec<&wire_log::VerifiedEvent> = report
            .stored
            .iter()
            .map(|(_, e)| e)
            .filter(|e| {
                e.event().author != live.key && wire_engine::is_message_kind(e.event().kind)
            })
            .collect();
        let Some(latest) = messages.last() else {
            return;
        };
        let who = match live.session.find_peer(peer) {
            Ok(Some(p)) => format!("{} ({})", p.character.label(true), p.handle),
            _ => peer.to_hex()[..12].to_owned(),
        };
        let text = match std::str::from_utf8(&latest.event().body) {
            Ok(t) => crate::notify::preview(t),
            Err(_) => format!("({} bytes, not text)", latest.event().body.len()),
        };
        let body = if messages.len() == 1 {
            text
        } else {
            format!("{} new messages; the latest: {text}", messages.len())
        };
        notifier.raise(crate::notify::Notice {
            kind: crate::notify::NoticeKind::Message,
            session: live.name.clone(),
            peer: peer.to_hex(),
            title: format!("wire: {who}"),
            body,
            ids: messages.iter().map(|e| e.id().to_hex()).collect(),
        });
    }

    /// One notification for a pair request from someone not already waiting.
    fn notify_request(&self, live: &Live, p: &wire_engine::Pending) {
        let Some(notifier) = self.notifier() else {
            return;
        };
        notifier.raise(crate::notify::Notice {
            kind: crate::notify::NoticeKind::PairRequest,
            session: live.name.clone(),
            peer: p.key.to_hex(),
            title: "wire: pair request".into(),
            body: format!(
                "{} ({}) wants to pair with you. `wire accept {}` or `wire reject {}`.",
                p.character.label(true),
                p.handle,
                p.character.nickname,
                p.character.nickname
            ),
            ids: vec![format!(
                "pair:{}:{}:{}",
                live.name,
                p.key.to_hex(),
                p.received_ms
            )],
        });
    }

    /// Reads the intro queues of our slots and records the pair requests in them. Junk is
    /// counted and acknowledged, so it never blocks the queue.
    pub fn poll_intros(self: &Arc<Self>, live: &Arc<Live>) -> anyhow::Result<(u64, u64)> {
        let identity = live.session.identity()?;
        if identity.claimed.is_empty() {
            return Ok((0, 0));
        }
        let (mut taken, mut junk) = (0, 0);
        let mut unreachable = None;
        // A sender already waiting is not news when it asks again.
        let mut waiting: std::collections::HashSet<AuthorKey> = live
            .session
            .pending()
            .map(|v| v.into_iter().map(|p| p.key).collect())
            .unwrap_or_default();
        for ep in identity.slots {
            let token = live.session.slot_token(&ep)?;
            let client = self.client(&ep.relay)?;
            loop {
                // One relay down must not keep the others' intros from being read.
                let page = match self.block_on(client.intros(&ep.slot, &token, 0, 256)) {
                    Ok(p) => p,
                    Err(e) => {
                        unreachable = Some(e);
                        break;
                    }
                };
                let Some(end) = page.records.last().map(|r| r.seq) else {
                    break;
                };
                for r in &page.records {
                    let outcome = live.session.open_pair_request(&r.bytes).and_then(|req| {
                        if req.invite.is_some() {
                            self.take_invited(live, &req)
                        } else {
                            live.session.take_pair_request(&req)
                        }
                    });
                    match outcome {
                        Ok(RequestOutcome::Pending(p)) => {
                            taken += 1;
                            if waiting.insert(p.key) {
                                self.notify_request(live, &p);
                            }
                        }
                        Ok(RequestOutcome::Paired(_)) => taken += 1,
                        Ok(RequestOutcome::Dropped(_)) => {
                            live.report.lock().expect("report lock").dropped_requests += 1;
                        }
                        Err(e) => {
                            junk += 1;
                            live.report.lock().expect("report lock").junk_intros += 1;
                            live.refuse("an intro", e.to_string());
                        }
                    }
                }
                self.block_on(client.ack_intros(&ep.slot, &token, end))?;
                if !page.more {
                    break;
                }
            }
        }
        if taken == 0
            && junk == 0
            && let Some(e) = unreachable
        {
            return Err(e.into());
        }
        Ok((taken, junk))
    }

    /// A request that names one of our invites pairs at once if the invite is valid (the
    /// invite was our consent); otherwise it is dropped with the reason, and never falls back
    /// to a pending request (a stranger must not make up an invite to get in line).
    fn take_invited(
        self: &Arc<Self>,
        live: &Arc<Live>,
        req: &wire_log::pair::PairRequest,
    ) -> Result<RequestOutcome, wire_engine::EngineError> {
        let refused = |why: String| {
            live.refuse(
                format!("a pair request from {}", req.card.signed.handle),
                format!("refused: {why}"),
            );
            Ok(RequestOutcome::Dropped(why))
        };
        let Some(nonce) = req.invite else {
            return live.session.take_pair_request(req);
        };
        if let wire_engine::InviteCheck::Refused(why) = live.session.check_invite(&nonce)? {
            return refused(why);
        }
        match live.session.find_peer(&req.card.key)?.map(|p| p.state) {
            // We dialed them too: both consented, the invite adds nothing.
            Some(wire_engine::PeerState::Dialed) => return live.session.take_pair_request(req),
            Some(wire_engine::PeerState::Paired) => return refused("already paired".into()),
            Some(wire_engine::PeerState::Rejected) => {
                return refused("you rejected this key before; the refusal sticks".into());
            }
            None => {}
        }
        let minted = match self.block_on(self.mint_caps(live)) {
            Ok(m) => m,
            Err(e) => return refused(format!("could not mint its capabilities: {e:#}")),
        };
        match live.session.accept_invited(req, &minted) {
            Ok(peer) => Ok(RequestOutcome::Paired(Box::new(peer))),
            Err(wire_engine::EngineError::Refused(why)) => refused(why),
            Err(e) => Err(e),
        }
    }
}

/// Acknowledges to the relay whatever `through` says has been ingested, coalescing updates,
/// until the sender is dropped; then sends the last one if it is still due. Each goes only once
/// the ingests are durable (invariant 56).
async fn acknowledge_behind(
    live: Arc<Live>,
    client: wire_net::RelayClient,
    slot: String,
    token: String,
    mut through: tokio::sync::watch::Receiver<u64>,
) -> anyhow::Result<()> {
    let mut acked = *through.borrow_and_update();
    loop {
        let open = through.changed().await.is_ok();
        let due = *through.borrow_and_update();
        if due > acked {
            live.durable().await?;
            client.ack(&slot, &token, due).await?;
            acked = due;
        }
        if !open {
            return Ok(());
        }
    }
}

/// The segments of one sender in a batch, checked together.
#[derive(Debug)]
pub(super) struct Group {
    peer: AuthorKey,
    checked: Result<CheckedSegment, String>,
    segments: Vec<Segment>,
}

/// Puts the events `peer` had waiting aside (raw, from an earlier gap) before `checked`.
fn held_first(
    live: &Live,
    like: &Segment,
    held: Vec<Vec<u8>>,
    checked: CheckedSegment,
) -> CheckedSegment {
    if held.is_empty() {
        return checked;
    }
    let waiting = Segment {
        events: held,
        have: 0,
        ..like.clone()
    };
    // They were checked once already; a failure now can only mean damage in memory, and
    // dropping them costs a resend.
    match live.session.check_segment(&waiting) {
        Ok(mut first) => {
            first.absorb(checked);
            first
        }
        Err(_) => checked,
    }
}

fn tracing_like(live: &Live, ep: &Endpoint, e: &anyhow::Error) {
    let mut r = live.report.lock().expect("report lock");
    r.queued
        .insert(format!("reading {}", ep.relay), format!("{e:#}"));
}
