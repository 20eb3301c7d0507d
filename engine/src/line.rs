//! The line between two agents: slots we receive at, handles we claim, pairing by intro, and
//! the segments that carry a pair log from one side to the other. Network calls are the
//! caller's (the daemon's); everything here is signing, sealing, checking and appending.

use std::collections::BTreeMap;
use std::sync::Arc;

use wire_log::body::{
    Body, CapGranted, Endpoint, EndpointLearned, EndpointOffer, HandleClaimed, PeerCard, PeerRef,
    SlotChange,
};
use wire_log::card::{SignedCard, VerifiedCard};
use wire_log::line::{LineId, LineKeys};
use wire_log::pair::{PairRequest, PairRequestError};
use wire_log::segment::{
    SEGMENT_BYTES_MAX, SEGMENT_EVENTS_MAX, SEGMENT_FIXED_COST, Segment, SegmentError, segment_cost,
};
use wire_log::store::{APPEND_BATCH_MAX, Scan};
use wire_log::{
    AppendOutcome, AuthorKey, Intro, Kind, KindClass, LogId, SignedEvent, VerifiedEvent,
};
use wire_projections::{Peer, PeerState, Pending, RedbState, apply};

use crate::secrets;
use crate::{EngineError, Session};

/// How far in the future an event's timestamp may be before it is refused.
pub const FUTURE_SKEW_MS: u64 = 10 * 60 * 1000;

/// Most pair requests waiting for a decision; more are dropped until some are decided.
pub const PENDING_MAX: usize = 1024;

/// What became of a pair request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Waiting for `wire accept` or `wire reject`.
    Pending(Box<Pending>),
    /// We had dialed them too: both sides consented, so the line is open.
    Paired(Box<Peer>),
    /// Not recorded, with the reason (a refusal sticks, already paired, too many waiting).
    Dropped(String),
}

/// A sealed segment ready to push, and the last seq of ours it carries.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub last_seq: u64,
    pub events: usize,
    pub bytes: Vec<u8>,
}

/// Where replication with one peer stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineState {
    /// Our chain in the pair log.
    pub our_head: u64,
    /// The peer's chain we hold.
    pub their_head: u64,
    /// How much of our chain the peer confirmed holding.
    pub acked: u64,
}

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

/// What the commit needs of a segment besides its events.
struct SegmentHead {
    log: LogId,
    have: u64,
}

/// A message in a pair log, as `wire tail` shows it.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub position: u64,
    pub peer: AuthorKey,
    pub outgoing: bool,
    pub event: VerifiedEvent,
}

/// Whether a kind is shown as a message: any kind but wire's own reserved ones.
pub fn is_message_kind(kind: Kind) -> bool {
    !kind.is_reserved() && kind.class() != KindClass::Ephemeral
}

impl Session {
    /// Records a slot we receive at; the owner token goes to the key directory first.
    pub fn attach_slot(&self, endpoint: &Endpoint, token: &str) -> Result<(), EngineError> {
        endpoint.check().map_err(|e| EngineError::Invalid {
            what: "endpoint",
            value: format!("{} {}", endpoint.relay, endpoint.slot),
            reason: e.to_string(),
        })?;
        secrets::save_slot_token(self.dir(), endpoint, token)?;
        let body = SlotChange {
            endpoint: endpoint.clone(),
        };
        self.append(self.self_log(), Kind::SLOT_ATTACHED, body.encode())?;
        Ok(())
    }

    /// Stops reading a slot (after every peer moved off it).
    pub fn retire_slot(&self, endpoint: &Endpoint) -> Result<(), EngineError> {
        let body = SlotChange {
            endpoint: endpoint.clone(),
        };
        self.append(self.self_log(), Kind::SLOT_RETIRED, body.encode())?;
        Ok(())
    }

    /// The owner token of one of our slots.
    pub fn slot_token(&self, endpoint: &Endpoint) -> Result<String, EngineError> {
        secrets::load_slot_token(self.dir(), endpoint)
    }

    /// Our slots, newest first: where peers should write, in priority order.
    pub fn our_endpoints(&self) -> Result<Vec<Endpoint>, EngineError> {
        let mut slots = self.identity()?.slots;
        slots.reverse();
        Ok(slots)
    }

    /// Records that a relay directory holds `handle` (`nick@domain`) for us.
    pub fn record_claim(&self, handle: &str) -> Result<(), EngineError> {
        if self.identity()?.claimed.iter().any(|h| h == handle) {
            return Ok(());
        }
        let body = HandleClaimed {
            handle: handle.to_owned(),
        };
        self.append(self.self_log(), Kind::HANDLE_CLAIMED, body.encode())?;
        Ok(())
    }

    /// Signs our agent card for `handle` (`nick@domain`).
    pub fn sign_card(&self, handle: &str) -> Result<SignedCard, EngineError> {
        SignedCard::sign(self.secret(), handle, self.now_ms()).map_err(|e| EngineError::Invalid {
            what: "handle",
            value: handle.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Builds the intro that asks `card`'s owner to pair: our card, our endpoints and the
    /// capability we minted for them, sealed to their X25519 key and signed by us.
    pub fn pair_intro(
        &self,
        our_card: &SignedCard,
        their_card: &VerifiedCard,
        cap: &str,
    ) -> Result<Intro, EngineError> {
        let endpoints = self.our_endpoints()?;
        let sealed = PairRequest::seal(our_card, &endpoints, cap, &their_card.x25519)
            .map_err(|e| EngineError::Refused(format!("cannot build the pair request: {e}")))?;
        let to = format!("{}@{}", their_card.nick, their_card.domain);
        Intro::sign(self.secret(), &to, self.now_ms(), sealed)
            .map_err(|e| EngineError::Refused(format!("cannot sign the intro: {e}")))
    }

    /// Records that we dialed `card`'s owner and granted it `cap_id` on `endpoint`, in one
    /// transaction.
    pub fn record_dialed(
        &self,
        card: &VerifiedCard,
        endpoint: &Endpoint,
        cap_id: &str,
    ) -> Result<Peer, EngineError> {
        self.check_not_me(&card.key)?;
        match self.peer_state(&card.key)? {
            Some(PeerState::Paired) => {
                return Err(EngineError::Refused(format!(
                    "already paired with {}; `wire send {} <message>` talks to them",
                    card.signed.handle, card.signed.handle
                )));
            }
            Some(PeerState::Rejected) => {
                return Err(EngineError::Refused(format!(
                    "you rejected {} earlier; `wire forget {}` clears that before dialing",
                    card.signed.handle, card.signed.handle
                )));
            }
            _ => {}
        }
        let dialed = PeerCard {
            peer: card.key,
            handle: card.signed.handle.clone(),
            x25519: card.x25519,
        };
        let grant = CapGranted {
            peer: card.key,
            endpoint: endpoint.clone(),
            cap_id: cap_id.to_owned(),
        };
        self.append_batch(vec![
            (self.self_log(), Kind::PAIR_DIALED, dialed.encode()),
            (self.self_log(), Kind::CAP_GRANTED, grant.encode()),
        ])?;
        self.peer(&card.key)
    }

    /// Opens and checks a pair request from our intro queue. The intro must be addressed to a
    /// handle we claimed.
    pub fn open_pair_request(&self, envelope: &[u8]) -> Result<PairRequest, EngineError> {
        let intro = Intro::decode(envelope)
            .map_err(|e| EngineError::Refused(format!("intro refused: {e}")))?;
        let identity = self.identity()?;
        if !identity.claimed.contains(&intro.to) {
            return Err(EngineError::Refused(format!(
                "intro addressed to {}, which is not a handle we claimed",
                intro.to
            )));
        }
        if intro.from == identity.key {
            return Err(EngineError::Refused("intro from ourselves".into()));
        }
        PairRequest::open(self.secret(), &intro).map_err(|e: PairRequestError| {
            EngineError::Refused(format!("pair request from {} refused: {e}", intro.from))
        })
    }

    /// Records a checked pair request. A rejected key stays rejected; a key we dialed too is
    /// paired at once (both sides consented).
    pub fn take_pair_request(&self, req: &PairRequest) -> Result<RequestOutcome, EngineError> {
        let peer = req.card.key;
        self.check_not_me(&peer)?;
        let state = self.state()?;
        let current = state.peers.get(&peer).map(|p| p.state);
        match current {
            Some(PeerState::Rejected) => {
                return Ok(RequestOutcome::Dropped(
                    "you rejected this key before; the refusal sticks".into(),
                ));
            }
            Some(PeerState::Paired) => {
                return Ok(RequestOutcome::Dropped("already paired".into()));
            }
            _ => {}
        }
        if current.is_none()
            && !state.pending.contains_key(&peer)
            && state.pending.len() >= PENDING_MAX
        {
            return Ok(RequestOutcome::Dropped(format!(
                "{PENDING_MAX} requests are already waiting; accept or reject some first"
            )));
        }
        let card = PeerCard {
            peer,
            handle: req.card.signed.handle.clone(),
            x25519: req.card.x25519,
        };
        let learned = EndpointLearned {
            peer,
            endpoints: req.endpoints.clone(),
            cap: req.cap.clone(),
        };
        let mut items = vec![
            (self.self_log(), Kind::PAIR_REQUESTED, card.encode()),
            (self.self_log(), Kind::ENDPOINT_LEARNED, learned.encode()),
        ];
        if current == Some(PeerState::Dialed) {
            items.push((
                self.self_log(),
                Kind::PAIR_CONFIRMED,
                PeerRef { peer }.encode(),
            ));
            self.append_batch(items)?;
            return Ok(RequestOutcome::Paired(Box::new(self.peer(&peer)?)));
        }
        self.append_batch(items)?;
        let pending = self.state()?.pending.remove(&peer).ok_or_else(|| {
            EngineError::Refused("the request was recorded but is not pending".into())
        })?;
        Ok(RequestOutcome::Pending(Box::new(pending)))
    }

    /// Accepts a pending request: pins the peer, records the capability we minted for it on
    /// `endpoint`, and writes our endpoint offer (with the capability) as our first event in
    /// the pair log, all in one transaction. Returns the peer and the offer to push.
    pub fn accept_with_grant(
        &self,
        peer: &AuthorKey,
        endpoint: &Endpoint,
        cap_id: &str,
        cap: &str,
    ) -> Result<(Peer, VerifiedEvent), EngineError> {
        let Some(pending) = self.state()?.pending.remove(peer) else {
            return Err(EngineError::Refused(format!(
                "no pending pair request from {peer}; `wire pending` lists the requests waiting"
            )));
        };
        if pending.endpoint.is_none() {
            return Err(EngineError::Refused(format!(
                "the request from {} did not say where to answer; ask them to dial again",
                pending.handle
            )));
        }
        let grant = CapGranted {
            peer: *peer,
            endpoint: endpoint.clone(),
            cap_id: cap_id.to_owned(),
        };
        let offer = EndpointOffer {
            endpoints: self.our_endpoints()?,
            cap: cap.to_owned(),
        };
        let me = self.key();
        let mut events = self.append_batch(vec![
            (
                self.self_log(),
                Kind::PAIR_ACCEPTED,
                PeerRef { peer: *peer }.encode(),
            ),
            (self.self_log(), Kind::CAP_GRANTED, grant.encode()),
            (
                LogId::pair_log(&me, peer),
                Kind::ENDPOINT_OFFERED,
                offer.encode(),
            ),
        ])?;
        let offer_event = events.pop().expect("three events appended");
        Ok((self.peer(peer)?, offer_event))
    }

    /// Tells a peer where to reach us now (slot rotation), granting `cap` on `endpoint`.
    pub fn offer_endpoint(
        &self,
        peer: &AuthorKey,
        endpoint: &Endpoint,
        cap_id: &str,
        cap: &str,
    ) -> Result<VerifiedEvent, EngineError> {
        if self.peer_state(peer)? != Some(PeerState::Paired) {
            return Err(EngineError::Refused(format!(
                "{peer} is not paired with us"
            )));
        }
        let grant = CapGranted {
            peer: *peer,
            endpoint: endpoint.clone(),
            cap_id: cap_id.to_owned(),
        };
        let offer = EndpointOffer {
            endpoints: self.our_endpoints()?,
            cap: cap.to_owned(),
        };
        let mut events = self.append_batch(vec![
            (self.self_log(), Kind::CAP_GRANTED, grant.encode()),
            (
                LogId::pair_log(&self.key(), peer),
                Kind::ENDPOINT_OFFERED,
                offer.encode(),
            ),
        ])?;
        Ok(events.pop().expect("two events appended"))
    }

    /// Where replication with `peer` stands.
    pub fn line(&self, peer: &AuthorKey) -> Result<LineState, EngineError> {
        let me = self.key();
        let log = LogId::pair_log(&me, peer);
        let our_head = self.store().head(&log, &me)?.map_or(0, |h| h.0);
        let their_head = self.store().head(&log, peer)?.map_or(0, |h| h.0);
        let acked = self
            .cursor(&wire_projections::CursorKey { log, peer: *peer })?
            .map_or(0, |c| c.acked_seq);
        Ok(LineState {
            our_head,
            their_head,
            acked,
        })
    }

    /// Our events in the pair log with `peer` after `after_seq`, at most `limit`, verified.
    pub fn chain_after(
        &self,
        peer: &AuthorKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<VerifiedEvent>, EngineError> {
        let me = self.key();
        Ok(self
            .store()
            .read_chain(&LogId::pair_log(&me, peer), &me, after_seq, limit)?)
    }

    /// Packs our events for `peer` into as few sealed segments as fit, each carrying `have`
    /// (the peer's chain we hold). No events gives one acknowledgement segment.
    pub fn seal_segments(
        &self,
        peer: &Peer,
        have: u64,
        events: &[VerifiedEvent],
    ) -> Result<Vec<SealedSegment>, EngineError> {
        let line = self.line_keys(peer)?;
        let seal = |chunk: &[&VerifiedEvent]| -> Result<SealedSegment, EngineError> {
            let raw: Vec<&[u8]> = chunk.iter().map(|e| e.signed_bytes()).collect();
            let bytes = Segment::seal_line(&line, have, self.now_ms(), &raw)
                .map_err(|e| EngineError::Refused(format!("cannot seal a segment: {e}")))?;
            Ok(SealedSegment {
                last_seq: chunk.last().map_or(0, |e| e.seq),
                events: chunk.len(),
                bytes,
            })
        };
        if events.is_empty() {
            return Ok(vec![seal(&[])?]);
        }
        let mut out = Vec::new();
        let mut chunk: Vec<&VerifiedEvent> = Vec::new();
        let mut size = SEGMENT_FIXED_COST;
        for e in events {
            let cost = segment_cost(e.signed_bytes().len());
            if !chunk.is_empty()
                && (size + cost > SEGMENT_BYTES_MAX || chunk.len() == SEGMENT_EVENTS_MAX)
            {
                out.push(seal(&chunk)?);
                chunk.clear();
                size = SEGMENT_FIXED_COST;
            }
            chunk.push(e);
            size += cost;
        }
        out.push(seal(&chunk)?);
        Ok(out)
    }

    /// Opens a sealed segment addressed to us: a line box (§19.2) from a peer we are paired
    /// with or have dialed, or an HPKE box (§19.1, whose segment must carry its sender's
    /// signature).
    pub fn open_segment(&self, sealed: &[u8]) -> Result<Segment, SegmentError> {
        let Some(id) = wire_log::line::line_id(sealed) else {
            return Segment::open(self.secret(), sealed);
        };
        let line = match self.line_by_recv_id(&id) {
            Some(line) => line,
            None => {
                // Maybe a peer we learned of since the cache was filled.
                self.fill_lines().map_err(|_| SegmentError::NoLine)?;
                self.line_by_recv_id(&id).ok_or(SegmentError::NoLine)?
            }
        };
        Segment::open_line(&line, sealed)
    }

    fn line_by_recv_id(&self, id: &LineId) -> Option<Arc<LineKeys>> {
        self.lines
            .read()
            .expect("line cache lock: no writer panics while holding it")
            .by_recv_id
            .get(id)
            .cloned()
    }

    /// The line keys for `peer`, derived once and cached.
    pub fn line_keys(&self, peer: &Peer) -> Result<Arc<LineKeys>, EngineError> {
        if let Some(line) = self
            .lines
            .read()
            .expect("line cache lock: no writer panics while holding it")
            .by_peer
            .get(&peer.key)
        {
            return Ok(line.clone());
        }
        let line = Arc::new(
            LineKeys::derive(self.secret(), &peer.key, &peer.x25519.0).map_err(|e| {
                EngineError::Refused(format!(
                    "cannot derive the line key for {}: {e}",
                    peer.handle
                ))
            })?,
        );
        let mut lines = self
            .lines
            .write()
            .expect("line cache lock: no writer panics while holding it");
        lines.by_recv_id.insert(line.recv_id(), line.clone());
        lines.by_peer.insert(peer.key, line.clone());
        Ok(line)
    }

    /// Derives the line of every peer that may write to us (paired, or dialed by us).
    fn fill_lines(&self) -> Result<(), EngineError> {
        for peer in self.state()?.peers.values() {
            if matches!(peer.state, PeerState::Paired | PeerState::Dialed) {
                // A peer whose key cannot make a line simply has no line.
                let _ = self.line_keys(peer);
            }
        }
        Ok(())
    }

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
    /// the events, any confirmation and the cursor commit in one transaction.
    pub fn commit_segment(&self, checked: CheckedSegment) -> Result<IngestReport, EngineError> {
        let CheckedSegment {
            from,
            log,
            have,
            events: mut verified,
        } = checked;
        let me = self.key();
        let seg = SegmentHead { log, have };
        let mut report = IngestReport {
            peer: Some(from),
            ..IngestReport::default()
        };
        // Again: the peer may have been forgotten since the check.
        let peer_state = self.peer_state(&from)?;
        may_write_to_us(&from, peer_state)?;
        verified.sort_by_key(|e| e.seq);
        let head = self.store().head(&seg.log, &from)?.map_or(0, |h| h.0);
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
        let our_head = self.store().head(&seg.log, &me)?.map_or(0, |h| h.0);
        let acked_before = self
            .cursor(&wire_projections::CursorKey {
                log: seg.log,
                peer: from,
            })?
            .map_or(0, |c| c.acked_seq);
        let new_ack = seg.have.min(our_head);
        let advance = new_ack > acked_before;
        let (stored, duplicates) = self.store().write(|w| {
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
                    log: seg.log,
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

    /// The newest `limit` messages (all peers, or one), oldest first.
    pub fn messages(
        &self,
        peer: Option<&AuthorKey>,
        limit: usize,
    ) -> Result<Vec<MessageView>, EngineError> {
        self.scan_messages(Scan::Latest, peer, limit)
    }

    /// Messages appended after `position`, oldest first.
    pub fn messages_after(
        &self,
        position: u64,
        peer: Option<&AuthorKey>,
        limit: usize,
    ) -> Result<Vec<MessageView>, EngineError> {
        self.scan_messages(Scan::After(position), peer, limit)
    }

    fn scan_messages(
        &self,
        from: Scan,
        peer: Option<&AuthorKey>,
        limit: usize,
    ) -> Result<Vec<MessageView>, EngineError> {
        let me = self.key();
        let logs: BTreeMap<LogId, AuthorKey> = self
            .state()?
            .peers
            .keys()
            .filter(|k| peer.is_none_or(|p| p == *k))
            .map(|k| (LogId::pair_log(&me, k), *k))
            .collect();
        let backwards = !matches!(from, Scan::After(_));
        // Keys carry no kind, so scan pair-log events and keep the messages; a pair log holds
        // little else (one endpoint offer per pairing or rotation).
        let batch_len = limit.clamp(16, 4096);
        let mut out: Vec<MessageView> = Vec::new();
        let mut cursor = from;
        while out.len() < limit {
            let batch = self
                .store()
                .scan(cursor, batch_len, |k| logs.contains_key(&k.log))?;
            let full = batch.len() == batch_len;
            let edge = if backwards {
                batch.first().map(|(p, _)| *p)
            } else {
                batch.last().map(|(p, _)| *p)
            };
            let mut views: Vec<MessageView> = batch
                .into_iter()
                .filter(|(_, e)| is_message_kind(e.kind))
                .filter_map(|(position, event)| {
                    Some(MessageView {
                        position,
                        peer: *logs.get(&event.log)?,
                        outgoing: event.author == me,
                        event,
                    })
                })
                .collect();
            if backwards {
                views.append(&mut out);
                out = views;
            } else {
                out.append(&mut views);
            }
            match (full, edge) {
                (true, Some(p)) => {
                    cursor = if backwards {
                        Scan::Before(p)
                    } else {
                        Scan::After(p)
                    }
                }
                _ => break,
            }
        }
        if out.len() > limit {
            if backwards {
                out.drain(..out.len() - limit);
            } else {
                out.truncate(limit);
            }
        }
        Ok(out)
    }
}
