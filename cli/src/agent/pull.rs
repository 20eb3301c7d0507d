//! Pulling: reading our slots (pages to catch up, then the live stream), opening and ingesting
//! segments, acknowledging to the relay only after the ingest committed, and taking pair
//! requests from the intro queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use wire_engine::RequestOutcome;
use wire_log::AuthorKey;
use wire_log::body::Endpoint;
use wire_log::segment::Segment;
use wire_net::types::Record;

use super::push::Why;
use super::{Agent, HELD_EVENTS_MAX, Live};

/// Records read per page while catching up.
const PAGE: u32 = 4096;
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
                client.ack(&ep.slot, &token, *last).await?;
                acked = *last;
                last_ack = Instant::now();
            }
        }
    }

    async fn catch_up(
        self: &Arc<Self>,
        live: &Arc<Live>,
        ep: &Endpoint,
        client: &wire_net::RelayClient,
        token: &str,
        last: &mut u64,
    ) -> anyhow::Result<Pulled> {
        let mut pulled = Pulled::default();
        loop {
            let page = client.read(&ep.slot, token, *last, PAGE).await?;
            let Some(end) = page.records.last().map(|r| r.seq) else {
                break;
            };
            pulled.records += page.records.len() as u64;
            let p = self.process(live, page.records).await;
            pulled.stored += p.stored;
            pulled.refused += p.refused;
            client.ack(&ep.slot, token, end).await?;
            *last = end;
            if !page.more {
                break;
            }
        }
        Ok(pulled)
    }

    /// One pass over every slot and the intro queue (`wire sync`, and `--no-daemon`).
    pub async fn pull_once(self: &Arc<Self>, live: &Arc<Live>) -> anyhow::Result<Pulled> {
        let mut total = Pulled::default();
        for ep in live.session.identity()?.slots {
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

    /// Opens records in parallel (sealing is the dominant cost of a catch-up); records that do
    /// not open are refused and reported.
    fn open_records(&self, live: &Live, records: &[Record]) -> Vec<Segment> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let chunk = records.len().div_ceil(threads).max(64);
        let opened: Vec<Vec<Result<Segment, String>>> = std::thread::scope(|s| {
            let handles: Vec<_> = records
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|r| {
                                live.session
                                    .open_segment(&r.bytes)
                                    .map_err(|e| e.to_string())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
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
        let mut pulled = Pulled::default();
        let mut groups: BTreeMap<AuthorKey, Vec<Segment>> = BTreeMap::new();
        for s in segments {
            groups.entry(s.from).or_default().push(s);
        }
        for (peer, segs) in groups {
            let mut merged = Segment {
                from: segs[0].from,
                to: segs[0].to,
                log: segs[0].log,
                have: segs.iter().map(|s| s.have).max().unwrap_or(0),
                sent_ms: segs.iter().map(|s| s.sent_ms).max().unwrap_or(0),
                events: Vec::new(),
            };
            // Events held aside from an earlier gap go first.
            let held = std::mem::take(
                live.held
                    .lock()
                    .expect("held lock")
                    .entry(peer)
                    .or_default(),
            );
            merged.events.extend(held);
            for s in &segs {
                merged.events.extend(s.events.iter().cloned());
            }
            match live.session.ingest_segment(&merged) {
                Ok(report) => self.after_ingest(live, &peer, report, &mut pulled),
                Err(_) if segs.len() > 1 => {
                    for s in segs {
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
                    live.refuse(format!("segment from {peer}"), e.to_string());
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
        let has_new = !report.stored.is_empty() || report.confirmed;
        if has_new || report.gap.is_some() {
            // Acknowledge (and, on a confirmation, flush what we queued) without waiting for
            // the tick.
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

    /// Reads the intro queues of our slots and records the pair requests in them. Junk is
    /// counted and acknowledged, so it never blocks the queue.
    pub fn poll_intros(self: &Arc<Self>, live: &Arc<Live>) -> anyhow::Result<(u64, u64)> {
        let identity = live.session.identity()?;
        if identity.claimed.is_empty() {
            return Ok((0, 0));
        }
        let (mut taken, mut junk) = (0, 0);
        for ep in identity.slots {
            let token = live.session.slot_token(&ep)?;
            let client = self.client(&ep.relay)?;
            loop {
                let page = self.block_on(client.intros(&ep.slot, &token, 0, 256))?;
                let Some(end) = page.records.last().map(|r| r.seq) else {
                    break;
                };
                for r in &page.records {
                    match live
                        .session
                        .open_pair_request(&r.bytes)
                        .and_then(|req| live.session.take_pair_request(&req))
                    {
                        Ok(RequestOutcome::Pending(_) | RequestOutcome::Paired(_)) => taken += 1,
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
        Ok((taken, junk))
    }
}

fn tracing_like(live: &Live, ep: &Endpoint, e: &anyhow::Error) {
    let mut r = live.report.lock().expect("report lock");
    r.queued
        .insert(format!("reading {}", ep.relay), format!("{e:#}"));
}
