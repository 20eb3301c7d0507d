//! Ingest: a segment from a peer checked (addressing, sender, decoding, signatures, dates;
//! nothing written) and then committed (events, any confirmation and the cursor, one
//! transaction). The two steps are separate so a catch-up can check one page while the
//! previous one commits.

use wire_log::body::{Body, PeerRef};
use wire_log::segment::Segment;
use wire_log::store::APPEND_BATCH_MAX;
use wire_log::{AppendOutcome, AuthorKey, Kind, LogId, SignedEvent, VerifiedEvent};
use wire_projections::{PeerState, RedbState, apply};

use crate::{EngineError, Session};

/// How far in the future an event's timestamp may be before it is refused.
pub const FUTURE_SKEW_MS: u64 = 10 * 60 * 1000;

/// What one ingested segment did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub peer: Option<AuthorKey>,
    /// Events appended, with their positions.
    pub stored: Vec<(u64, VerifiedEvent)>,
    /// Events we already held (replays and resends).
    pub duplicates: usize,
    /// The peer's acceptance arrived with this segment.
    pub confirmed: bool,
    /// The segment starts past our head: `(expected seq, first seq offered)`; the events from
    /// the gap on are returned in `held` to wait aside.
    pub gap: Option<(u64, u64)>,
    pub held: Vec<Vec<u8>>,
    /// The peer now confirms holding our chain up to here (when it moved).
    pub acked: Option<u64>,
}

/// A segment whose events decoded and verified ([`Session::check_segment`]), waiting for
/// [`Session::commit_segment`].
#[derive(Debug, Clone)]
pub struct CheckedSegment {
    pub from: AuthorKey,
    pub log: LogId,
    pub have: u64,
    pub events: Vec<VerifiedEvent>,
}

impl CheckedSegment {
    /// Puts `other` (from the same sender, in the same log) after this one.
    pub fn absorb(&mut self, other: CheckedSegment) {
        debug_assert!(other.from == self.from && other.log == self.log);
        self.have = self.have.max(other.have);
        self.events.extend(other.events);
    }
}

/// Only a paired peer, or one we dialed (whose acceptance may be arriving), writes to us.
fn may_write_to_us(from: &AuthorKey, state: Option<PeerState>) -> Result<(), EngineError> {
    if matches!(state, Some(PeerState::Paired | PeerState::Dialed)) {
        Ok(())
    } else {
        Err(EngineError::Refused(format!(
            "segment from {from}, who is not a peer; it was not stored"
        )))
    }
}

impl Session {
    /// Ingests a checked segment: every event must be by its sender, in our pair log with it,
    /// and not dated in the future; the sender must be paired, or dialed by us with its endpoint
    /// offer first (its acceptance, confirmed in the same transaction). Events we hold are
    /// skipped, a fork is refused, and a segment that starts past our head is held aside.
    /// Events, confirmation, cursor and projections commit in one transaction.
    pub fn ingest_segment(&self, seg: &Segment) -> Result<IngestReport, EngineError> {
        let checked = self.check_segment(seg)?;
        self.commit_segment(checked)
    }

    /// The half of an ingest that writes nothing: the segment's addressing, that its sender
    /// may write to us (checked first, so a stranger costs no signature check), and each
    /// event's encoding, signature (batch-verified on all cores), author, log and date. A caller
    /// may check the next segment while the previous one commits.
    pub fn check_segment(&self, seg: &Segment) -> Result<CheckedSegment, EngineError> {
        let me = self.key();
        let from = seg.from;
        if seg.to != me || seg.log != LogId::pair_log(&me, &from) || from == me {
            return Err(EngineError::Refused(
                "segment is not addressed to us in the log we share with its sender".into(),
            ));
        }
        if seg.events.len() > APPEND_BATCH_MAX {
            return Err(EngineError::Refused("segment holds too many events".into()));
        }
        may_write_to_us(&from, self.peer_state(&from)?)?;
        let decoded = seg
            .events
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SignedEvent::decode(b).map_err(|e| {
                    EngineError::Refused(format!("event {i} from {from} does not decode: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let verified = wire_log::verify_all(decoded).map_err(|(i, e)| {
            EngineError::Refused(format!("event {i} from {from} fails verification: {e}"))
        })?;
        let now = self.now_ms();
        for e in &verified {
            if e.author != from || e.log != seg.log {
                return Err(EngineError::Refused(format!(
                    "segment from {from} carries an event by {} or for another log",
                    e.author
                )));
            }
            if e.ts_ms > now.saturating_add(FUTURE_SKEW_MS) {
                return Err(EngineError::Refused(format!(
                    "event seq {} from {from} is dated {} s in the future",
                    e.seq,
                    (e.ts_ms - now) / 1000
                )));
            }
        }
        Ok(CheckedSegment {
            from,
            log: seg.log,
            have: seg.have,
            events: verified,
        })
    }

    /// The half of an ingest that writes: the sender must be a peer that may write to us; then
    /// the events, any confirmation and the cursor commit in one transaction. The commit is
    /// relaxed (`EventStore::write_relaxed`): visible at once, durable at the next
    /// [`Session::sync`], which must come before any acknowledgement or push.
    pub fn commit_segment(&self, checked: CheckedSegment) -> Result<IngestReport, EngineError> {
        let CheckedSegment {
            from,
            log,
            have,
            events: mut verified,
        } = checked;
        let me = self.key();
        let mut report = IngestReport {
            peer: Some(from),
            ..IngestReport::default()
        };
        // Again: the peer may have been forgotten since the check.
        let peer_state = self.peer_state(&from)?;
        may_write_to_us(&from, peer_state)?;
        verified.sort_by_key(|e| e.seq);
        let head = self.store().head(&log, &from)?.map_or(0, |h| h.0);
        // Split: already held, contiguous new ones, and what lies past a gap.
        let mut next = head + 1;
        let mut fresh = Vec::new();
        let mut old = Vec::new();
        for e in verified {
            if e.seq < next && fresh.is_empty() {
                old.push(e);
            } else if e.seq == next {
                next += 1;
                fresh.push(e);
            } else if e.seq < next {
                // A repeat inside the segment: the store decides whether it is the same event.
                old.push(e);
            } else {
                if report.gap.is_none() {
                    report.gap = Some((next, e.seq));
                }
                report.held.push(e.signed_bytes().to_vec());
            }
        }
        let confirm = peer_state == Some(PeerState::Dialed);
        if confirm {
            let first_is_offer = fresh
                .first()
                .is_some_and(|e| e.seq == 1 && e.kind == Kind::ENDPOINT_OFFERED);
            if !first_is_offer {
                return Err(EngineError::Refused(format!(
                    "{from} has not accepted our request yet; its events wait until its acceptance arrives"
                )));
            }
        }
        let our_head = self.store().head(&log, &me)?.map_or(0, |h| h.0);
        let acked_before = self
            .cursor(&wire_projections::CursorKey { log, peer: from })?
            .map_or(0, |c| c.acked_seq);
        let new_ack = have.min(our_head);
        let advance = new_ack > acked_before;
        // Relaxed: the peer holds these events until we acknowledge them, and nothing of this
        // transaction leaves the process before a sync (invariant 56).
        let (stored, duplicates) = self.store().write_relaxed(|w| {
            let mut projection = RedbState::open(w.txn)?;
            let mut own = Vec::new();
            if confirm {
                own.push((
                    self.self_log(),
                    Kind::PAIR_CONFIRMED,
                    PeerRef { peer: from }.encode(),
                ));
            }
            if !own.is_empty() {
                self.append_own(w, &mut projection, own)?;
            }
            let mut duplicates = 0;
            for e in &old {
                match w.append(e)? {
                    AppendOutcome::Duplicate => duplicates += 1,
                    AppendOutcome::Stored { .. } => {
                        return Err(EngineError::Refused(
                            "an old event was stored out of order".into(),
                        ));
                    }
                }
            }
            let mut stored = Vec::with_capacity(fresh.len());
            for e in fresh {
                match w.append(&e)? {
                    AppendOutcome::Stored { position } => {
                        apply(&mut projection, &e, position)?;
                        stored.push((position, e));
                    }
                    AppendOutcome::Duplicate => duplicates += 1,
                }
            }
            if advance {
                let body = wire_log::body::CursorAdvanced {
                    log,
                    peer: from,
                    acked_seq: new_ack,
                };
                self.append_own(
                    w,
                    &mut projection,
                    vec![(self.self_log(), Kind::CURSOR_ADVANCED, body.encode())],
                )?;
            }
            Ok::<_, EngineError>((stored, duplicates))
        })?;
        report.stored = stored;
        report.duplicates = duplicates;
        report.confirmed = confirm;
        report.acked = advance.then_some(new_ack);
        Ok(report)
    }
}
