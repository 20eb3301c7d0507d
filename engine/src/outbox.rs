//! The file contract and broadcasts, on the engine side: consuming outbox lines (each line's
//! message and its `outbox.consumed` record in one transaction, so the consumed offset is
//! durable exactly when the message is), reading those records back, and the messages of a
//! broadcast (one `message.broadcast` per peer, one transaction).

use wire_log::body::{
    BROADCAST_ID_BYTES, BROADCAST_OVERHEAD_BYTES, Body, BroadcastMessage, OUTBOX_ERROR_BYTES_MAX,
    OutboxConsumed,
};
use wire_log::store::{APPEND_BATCH_MAX, Scan};
use wire_log::{AuthorKey, BODY_BYTES_MAX, Kind, LogId, VerifiedEvent};
use wire_projections::PeerState;

use crate::{EngineError, Session};

/// One consumed outbox line: where it was, and the message it asks for (or why it cannot be
/// sent).
#[derive(Debug, Clone)]
pub struct OutboxLine {
    pub file: String,
    pub line: u64,
    pub start: u64,
    pub end: u64,
    pub send: Result<(AuthorKey, Kind, Vec<u8>), String>,
}

/// A consumed outbox line as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub consumed: OutboxConsumed,
    /// Our seq of the message in the pair log, when one was sent.
    pub seq: Option<u64>,
}

/// The largest body a broadcast message may carry.
pub const BROADCAST_BODY_BYTES_MAX: usize = BODY_BYTES_MAX - BROADCAST_OVERHEAD_BYTES;

fn clip(mut reason: String) -> String {
    if reason.len() > OUTBOX_ERROR_BYTES_MAX {
        let mut cut = OUTBOX_ERROR_BYTES_MAX - 3;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
}

impl Session {
    /// Consumes outbox lines in one durable transaction: for each line a message to a paired
    /// peer (if it asks for one and the peer is paired) and its `outbox.consumed` record. A
    /// line that cannot be sent is recorded with its reason and nothing else. At most
    /// `APPEND_BATCH_MAX / 2` lines per call.
    pub fn consume_outbox(&self, lines: Vec<OutboxLine>) -> Result<Vec<OutboxRecord>, EngineError> {
        if lines.len() * 2 > APPEND_BATCH_MAX {
            return Err(EngineError::Refused(format!(
                "{} outbox lines in one batch; at most {}",
                lines.len(),
                APPEND_BATCH_MAX / 2
            )));
        }
        let state = self.state()?;
        let me = self.key();
        let mut items = Vec::with_capacity(lines.len() * 2);
        // Per line: whether a message precedes its record.
        let mut sends = Vec::with_capacity(lines.len());
        let mut pending: Vec<OutboxConsumed> = Vec::with_capacity(lines.len());
        for l in lines {
            let send = l.send.and_then(|(peer, kind, body)| {
                match state.peers.get(&peer).map(|p| p.state) {
                    Some(PeerState::Paired) => Ok((peer, kind, body)),
                    _ => Err("not a paired peer (any more); nothing was sent".to_owned()),
                }
            });
            let (peer, error) = match send {
                Ok((peer, kind, body)) => {
                    items.push((LogId::pair_log(&me, &peer), kind, body));
                    sends.push(true);
                    (Some(peer), None)
                }
                Err(reason) => {
                    sends.push(false);
                    (None, Some(clip(reason)))
                }
            };
            pending.push(OutboxConsumed {
                file: l.file,
                line: l.line,
                start: l.start,
                end: l.end,
                peer,
                message: None,
                error,
            });
        }
        // The records name the message ids, which exist only once signed: lay out and sign
        // the messages first, then the records, in the same transaction.
        let records = self.store().write(|w| {
            let mut projection = wire_projections::RedbState::open(w.txn)?;
            let messages = self.append_own(w, &mut projection, items)?;
            let mut messages = messages.into_iter();
            let mut out = Vec::with_capacity(pending.len());
            let mut record_items = Vec::with_capacity(pending.len());
            for (mut consumed, sent) in pending.into_iter().zip(sends) {
                let seq = if sent {
                    let m = messages
                        .next()
                        .ok_or_else(|| EngineError::Refused("a message went missing".into()))?;
                    consumed.message = Some(m.id().0);
                    Some(m.seq)
                } else {
                    None
                };
                record_items.push((self.self_log(), Kind::OUTBOX_CONSUMED, consumed.encode()));
                out.push(OutboxRecord { consumed, seq });
            }
            self.append_own(w, &mut projection, record_items)?;
            Ok::<_, EngineError>(out)
        })?;
        Ok(records)
    }

    /// Every `outbox.consumed` record of our self log, oldest first. One pass over the self
    /// log (the file contract does this once when it starts).
    pub fn outbox_records(&self) -> Result<Vec<OutboxRecord>, EngineError> {
        let self_log = self.self_log();
        let mut out = Vec::new();
        let mut from = Scan::After(0);
        // Position 0 is identity.created, never a record.
        loop {
            let batch = self.store().scan(from, 4096, |k| k.log == self_log)?;
            let full = batch.len() == 4096;
            let last = batch.last().map(|(p, _)| *p);
            for (_, e) in batch {
                if e.kind != Kind::OUTBOX_CONSUMED {
                    continue;
                }
                let consumed = OutboxConsumed::decode(&e.body).map_err(|err| {
                    EngineError::Refused(format!(
                        "outbox.consumed at seq {} does not decode: {err}; run `wire verify`",
                        e.seq
                    ))
                })?;
                let seq = match (&consumed.peer, &consumed.message) {
                    (Some(peer), Some(id)) => self.message_seq(peer, id),
                    _ => None,
                };
                out.push(OutboxRecord { consumed, seq });
            }
            match (full, last) {
                (true, Some(p)) => from = Scan::After(p),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Our seq of the message with this id in the pair log with `peer`, if we hold it.
    fn message_seq(&self, peer: &AuthorKey, id: &[u8; 32]) -> Option<u64> {
        let txn = self.store().read_txn().ok()?;
        let ids = txn.open_table(wire_log::store::EVENT_IDS).ok()?;
        let key = ids.get(id).ok()??;
        let key = wire_log::EventKey::from_bytes(key.value());
        (key.author == self.key() && key.log == LogId::pair_log(&self.key(), peer))
            .then_some(key.seq)
    }

    /// The messages of one broadcast: a `message.broadcast` with `id`, `kind` and `body` to
    /// each peer, all in one transaction. Every peer must be paired.
    pub fn send_broadcast(
        &self,
        peers: &[AuthorKey],
        id: [u8; BROADCAST_ID_BYTES],
        kind: Kind,
        body: &[u8],
    ) -> Result<Vec<VerifiedEvent>, EngineError> {
        if body.len() > BROADCAST_BODY_BYTES_MAX {
            return Err(EngineError::Refused(format!(
                "the body is {} bytes; a broadcast message holds at most {BROADCAST_BODY_BYTES_MAX}. Nothing was sent",
                body.len()
            )));
        }
        if peers.len() > APPEND_BATCH_MAX {
            return Err(EngineError::Refused(format!(
                "{} peers in one broadcast; at most {APPEND_BATCH_MAX}",
                peers.len()
            )));
        }
        let state = self.state()?;
        let me = self.key();
        let encoded = BroadcastMessage {
            id,
            kind: kind.number(),
            body: body.to_vec(),
        }
        .encode();
        let mut items = Vec::with_capacity(peers.len());
        for peer in peers {
            if state.peers.get(peer).map(|p| p.state) != Some(PeerState::Paired) {
                return Err(EngineError::Refused(format!(
                    "{peer} is not paired with us; nothing was sent"
                )));
            }
            items.push((
                LogId::pair_log(&me, peer),
                Kind::MESSAGE_BROADCAST,
                encoded.clone(),
            ));
        }
        self.append_batch(items)
    }
}
