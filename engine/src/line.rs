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
use wire_log::store::Scan;
use wire_log::{AuthorKey, Intro, Kind, KindClass, LogId, VerifiedEvent};
use wire_projections::{Peer, PeerState, Pending};

use crate::secrets;
use crate::{EngineError, Session};

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

/// A message in a pair log, as `wire tail` shows it.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub position: u64,
    pub peer: AuthorKey,
    pub outgoing: bool,
    pub event: VerifiedEvent,
}

/// An append capability the relay minted on one of our slots for a peer: where, its public id
/// (to revoke it) and the secret the peer presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub endpoint: Endpoint,
    pub cap_id: String,
    pub cap: String,
}

/// The endpoints, first capability and `more_caps` of an offer made of `minted`.
pub(crate) fn offer_parts(
    minted: &[Minted],
) -> Result<(Vec<Endpoint>, String, Vec<String>), EngineError> {
    let Some(first) = minted.first() else {
        return Err(EngineError::Refused(
            "this session is not attached to a relay, so the peer could not write to it".into(),
        ));
    };
    let endpoints = minted.iter().map(|m| m.endpoint.clone()).collect();
    let more_caps = if minted.len() > 1 {
        minted[1..].iter().map(|m| m.cap.clone()).collect()
    } else {
        Vec::new()
    };
    Ok((endpoints, first.cap.clone(), more_caps))
}

/// Whether a kind is shown as a message: any kind but wire's own reserved ones, and the
/// messages of a broadcast (`message.broadcast`, shown as the message inside).
pub fn is_message_kind(kind: Kind) -> bool {
    (kind == Kind::MESSAGE_BROADCAST || !kind.is_reserved()) && kind.class() != KindClass::Ephemeral
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

    /// Builds the intro that asks `card`'s owner to pair: our card, the endpoints we minted
    /// capabilities on for them (each with its capability), sealed to their X25519 key and
    /// signed by us.
    pub fn pair_intro(
        &self,
        our_card: &SignedCard,
        their_card: &VerifiedCard,
        minted: &[Minted],
    ) -> Result<Intro, EngineError> {
        let (endpoints, cap, more_caps) = offer_parts(minted)?;
        let sealed = PairRequest::seal(our_card, &endpoints, &cap, &more_caps, &their_card.x25519)
            .map_err(|e| EngineError::Refused(format!("cannot build the pair request: {e}")))?;
        let to = format!("{}@{}", their_card.nick, their_card.domain);
        Intro::sign(self.secret(), &to, self.now_ms(), sealed)
            .map_err(|e| EngineError::Refused(format!("cannot sign the intro: {e}")))
    }

    /// Records that we dialed `card`'s owner and granted it the capabilities in `minted`, in
    /// one transaction.
    pub fn record_dialed(
        &self,
        card: &VerifiedCard,
        minted: &[Minted],
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
        let mut items = vec![(self.self_log(), Kind::PAIR_DIALED, dialed.encode())];
        items.extend(self.grant_items(&card.key, minted));
        self.append_batch(items)?;
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
        let mut items = self.request_items(req);
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

    /// Accepts a pending request: pins the peer, records the capabilities we minted for it
    /// (`minted`, one per endpoint we offer), and writes our endpoint offer (with the
    /// capabilities) as our first event in the pair log, all in one transaction. Returns the
    /// peer and the offer to push.
    pub fn accept_with_grant(
        &self,
        peer: &AuthorKey,
        minted: &[Minted],
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
        let mut items = vec![(
            self.self_log(),
            Kind::PAIR_ACCEPTED,
            PeerRef { peer: *peer }.encode(),
        )];
        items.extend(self.grants_and_offer(peer, minted)?);
        let mut events = self.append_batch(items)?;
        let offer_event = events.pop().expect("the offer was appended last");
        Ok((self.peer(peer)?, offer_event))
    }

    /// Takes a pair request and accepts it in one transaction: what [`Session::take_pair_request`]
    /// and [`Session::accept_with_grant`] write one after the other, for a request whose consent
    /// is already given (a sister session of this machine, paired by its operator's command). A
    /// rejected or already paired key is refused.
    pub fn take_and_accept(
        &self,
        req: &PairRequest,
        minted: &[Minted],
    ) -> Result<Peer, EngineError> {
        let peer = req.card.key;
        self.check_not_me(&peer)?;
        if self.peer_state(&peer)? == Some(PeerState::Dialed) {
            return Err(EngineError::Refused(
                "we dialed this key ourselves; take its request instead".into(),
            ));
        }
        self.pin_consented(req, minted, None, "sister session or not")
    }

    /// Tells a peer where to reach us now (slot rotation): every endpoint in `minted`, each
    /// with the capability minted on it for the peer.
    pub fn offer_endpoint(
        &self,
        peer: &AuthorKey,
        minted: &[Minted],
    ) -> Result<VerifiedEvent, EngineError> {
        if self.peer_state(peer)? != Some(PeerState::Paired) {
            return Err(EngineError::Refused(format!(
                "{peer} is not paired with us"
            )));
        }
        let mut events = self.append_batch(self.grants_and_offer(peer, minted)?)?;
        Ok(events.pop().expect("the offer was appended last"))
    }

    /// `pair.requested` and `endpoint.learned` for a checked request: who asks, where it
    /// receives and the capabilities it gave us.
    pub(crate) fn request_items(&self, req: &PairRequest) -> Vec<(LogId, Kind, Vec<u8>)> {
        let peer = req.card.key;
        let card = PeerCard {
            peer,
            handle: req.card.signed.handle.clone(),
            x25519: req.card.x25519,
        };
        let learned = EndpointLearned {
            peer,
            endpoints: req.endpoints.clone(),
            cap: req.cap.clone(),
            more_caps: req.more_caps.clone(),
        };
        vec![
            (self.self_log(), Kind::PAIR_REQUESTED, card.encode()),
            (self.self_log(), Kind::ENDPOINT_LEARNED, learned.encode()),
        ]
    }

    /// A `cap.granted` for each capability minted for `peer`.
    fn grant_items(&self, peer: &AuthorKey, minted: &[Minted]) -> Vec<(LogId, Kind, Vec<u8>)> {
        minted
            .iter()
            .map(|m| {
                let grant = CapGranted {
                    peer: *peer,
                    endpoint: m.endpoint.clone(),
                    cap_id: m.cap_id.clone(),
                };
                (self.self_log(), Kind::CAP_GRANTED, grant.encode())
            })
            .collect()
    }

    /// The grants of `minted`, then our `endpoint.offered` with those endpoints and
    /// capabilities as the last item (callers pop it from the appended events).
    pub(crate) fn grants_and_offer(
        &self,
        peer: &AuthorKey,
        minted: &[Minted],
    ) -> Result<Vec<(LogId, Kind, Vec<u8>)>, EngineError> {
        let (endpoints, cap, more_caps) = offer_parts(minted)?;
        let offer = EndpointOffer {
            endpoints,
            cap,
            more_caps,
        };
        let mut items = self.grant_items(peer, minted);
        items.push((
            LogId::pair_log(&self.key(), peer),
            Kind::ENDPOINT_OFFERED,
            offer.encode(),
        ));
        Ok(items)
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
