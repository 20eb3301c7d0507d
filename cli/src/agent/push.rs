//! Pushing our chain of a pair log to the peer: in-process to a sister session, else sealed
//! segments to the peer's endpoints in scope order (Unix socket, loopback, LAN, the rest),
//! failing over from one to the next. One push per peer at a time, so concurrent sends batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wire_engine::{Peer, PeerState};
use wire_log::segment::Segment;
use wire_log::{AuthorKey, LogId};

use super::{Agent, Live, now_ms};

/// Events read from the store per push round.
const PUSH_EVENTS_MAX: usize = 16_384;

/// Most events a push hands to a sister session on the async worker itself; more go through
/// the blocking pool.
const SISTER_INLINE_MAX: usize = 16;

/// How long pushed events may stay unacknowledged before they are pushed again.
const RESEND_AFTER: Duration = Duration::from_secs(5);

/// What one push achieved: the honest outcome `wire send` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PushOutcome {
    /// Durably stored in the peer's mailbox at this relay.
    Stored { relay: String },
    /// Handed to a sister session in this process and committed there.
    Delivered,
    /// Nothing to push.
    UpToDate,
    /// Kept in our log; it will be pushed when possible.
    Queued { reason: String },
    /// Cannot be pushed until someone acts.
    Refused { reason: String },
}

impl PushOutcome {
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            PushOutcome::Stored { .. } | PushOutcome::Delivered | PushOutcome::UpToDate
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A send: push now.
    Send,
    /// The background tick: push what is left, acknowledge what we received, resend what the
    /// peer has not confirmed for a while.
    Tick,
}

/// Push state for one peer.
#[derive(Debug, Default)]
pub(super) struct Pusher {
    /// Our chain is in the peer's mailbox (or store) up to here.
    pushed: Option<u64>,
    /// How the push that reached `pushed` went (`Stored` or `Delivered`): a send whose event a
    /// concurrent push (the tick) already carried reports that, not "up to date".
    carried: Option<PushOutcome>,
    last_push: Option<Instant>,
    /// The `have` we last told the peer.
    told_have: u64,
}

/// The last push to one peer since the daemon started, for `wire mesh status`.
#[derive(Debug, Clone, Serialize)]
pub struct LastPush {
    /// How long ago, in milliseconds.
    pub ago_ms: u64,
    /// How the last push that carried events went (`stored` or `delivered`), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carried: Option<PushOutcome>,
}

impl Live {
    /// The last push to `peer`, if any; `None` as well while a push is running.
    pub fn last_push(&self, peer: &AuthorKey) -> Option<LastPush> {
        let pusher = self
            .pushers
            .lock()
            .expect("pushers lock")
            .get(peer)?
            .clone();
        let p = pusher.try_lock().ok()?;
        Some(LastPush {
            ago_ms: u64::try_from(p.last_push?.elapsed().as_millis()).unwrap_or(u64::MAX),
            carried: p.carried.clone(),
        })
    }
}

/// Endpoint scope: lower is tried first (DESIGN §7: UDS, loopback, LAN, federation).
fn scope(relay: &str) -> u8 {
    if relay.starts_with("unix:") {
        return 0;
    }
    let host = relay
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .trim_matches(['[', ']']);
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => 1,
        Ok(std::net::IpAddr::V4(v4)) if v4.is_private() || v4.is_link_local() => 2,
        Ok(std::net::IpAddr::V6(v6)) if (v6.segments()[0] & 0xfe00) == 0xfc00 => 2,
        _ if host == "localhost" => 1,
        _ if host.ends_with(".local") || host.ends_with(".lan") => 2,
        _ => 3,
    }
}

impl Agent {
    /// Sends one message to a paired peer and pushes it: the append is relaxed and synced before
    /// the push (one fsync shared with every send appended meanwhile: group commit), so a send
    /// that returns is never taken back by a crash (invariant 56). `wire send`, `wire_send` and the
    /// benches all send this way.
    pub(crate) async fn send_now(
        self: &Arc<Self>,
        live: &Arc<Live>,
        peer_key: &AuthorKey,
        kind: wire_log::Kind,
        body: Vec<u8>,
    ) -> anyhow::Result<(wire_log::VerifiedEvent, PushOutcome)> {
        // No I/O of its own (relaxed), so on this thread rather than a hop to the blocking pool.
        let event = live.session.send_relaxed(peer_key, kind, body)?;
        if let Ok(Some(position)) = live.session.store().last_position() {
            // Wake `tail --follow` for our own message too.
            live.appended.send_replace(position);
        }
        // Durable before the push takes the peer's push lock: the fsync is shared with every
        // send appended meanwhile, and a push (which holds that lock across the relay's own
        // commit) never waits on ours.
        live.durable().await?;
        let outcome = self.push(live, peer_key, Why::Send).await?;
        Ok((event, outcome))
    }

    /// Pushes our unpushed events for `peer` (and an acknowledgement when one is due).
    pub(crate) async fn push(
        self: &Arc<Self>,
        live: &Arc<Live>,
        peer_key: &AuthorKey,
        why: Why,
    ) -> anyhow::Result<PushOutcome> {
        let pusher = live.pusher(peer_key);
        let mut p = pusher.lock().await;
        let Some(peer) = live.session.find_peer(peer_key)? else {
            return Ok(PushOutcome::Refused {
                reason: "not a peer".into(),
            });
        };
        if peer.state != PeerState::Paired {
            return Ok(PushOutcome::Refused {
                reason: format!(
                    "{} has not accepted yet; messages go once they run `wire accept`",
                    peer.handle
                ),
            });
        }
        let line = live.session.line(peer_key)?;
        let mut from = p.pushed.unwrap_or(line.acked).max(line.acked);
        match why {
            Why::Tick => {
                if from > line.acked && p.last_push.is_some_and(|t| t.elapsed() > RESEND_AFTER) {
                    from = line.acked;
                }
            }
            Why::Send => {}
        }
        let ack_due = line.their_head > p.told_have;
        if from >= line.our_head && !ack_due && why != Why::Send {
            return Ok(PushOutcome::UpToDate);
        }
        if from >= line.our_head && !ack_due {
            return Ok(match (why, &p.carried) {
                (Why::Send, Some(done)) => done.clone(),
                _ => PushOutcome::UpToDate,
            });
        }
        let mut outcome = PushOutcome::UpToDate;
        loop {
            let events = live.session.chain_after(peer_key, from, PUSH_EVENTS_MAX)?;
            let ack_only = events.is_empty();
            if ack_only && line.their_head <= p.told_have {
                break;
            }
            // The `have` we tell (and anything else we read above) may come from relaxed
            // ingests: durable before it leaves, and after it was read, so that an ingest
            // committing in between is either covered or not told (invariant 56).
            live.durable().await?;
            // A sister session in this process: hand the events over directly.
            if let Some(sister) = self.sister(peer_key) {
                let seg = Segment {
                    from: live.key,
                    to: *peer_key,
                    log: LogId::pair_log(&live.key, peer_key),
                    have: line.their_head,
                    sent_ms: now_ms(),
                    events: events.iter().map(|e| e.signed_bytes().to_vec()).collect(),
                };
                if events.len() <= SISTER_INLINE_MAX {
                    // A relaxed ingest of a few events does no I/O of its own (invariant 56):
                    // committed right here, without a hop to the blocking pool and back.
                    self.ingest_segments(&sister, vec![seg]);
                } else {
                    let agent = self.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        agent.ingest_segments(&sister, vec![seg])
                    })
                    .await;
                    if let Err(e) = done {
                        return Ok(PushOutcome::Queued {
                            reason: format!("in-process delivery failed: {e}"),
                        });
                    }
                }
                p.told_have = line.their_head;
                p.last_push = Some(Instant::now());
                live.contact(peer_key, |c| c.pushed_ms = Some(now_ms()));
                if let Some(last) = events.last() {
                    p.pushed = Some(last.seq);
                    from = last.seq;
                    outcome = PushOutcome::Delivered;
                    p.carried = Some(outcome.clone());
                }
                if ack_only || events.len() < PUSH_EVENTS_MAX {
                    break;
                }
                continue;
            }
            match self
                .push_to_relay(live, &peer, line.their_head, &events)
                .await
            {
                Ok(relay) => {
                    p.told_have = line.their_head;
                    p.last_push = Some(Instant::now());
                    live.contact(peer_key, |c| c.pushed_ms = Some(now_ms()));
                    live.report
                        .lock()
                        .expect("report lock")
                        .queued
                        .remove(&peer_key.to_hex());
                    if let Some(last) = events.last() {
                        p.pushed = Some(last.seq);
                        from = last.seq;
                        outcome = PushOutcome::Stored { relay };
                        p.carried = Some(outcome.clone());
                    }
                    if ack_only || events.len() < PUSH_EVENTS_MAX {
                        break;
                    }
                }
                Err(failed) => {
                    let reason = failed.reason().to_owned();
                    live.report
                        .lock()
                        .expect("report lock")
                        .queued
                        .insert(peer_key.to_hex(), reason.clone());
                    return Ok(match failed {
                        Failed::Transient(_) => PushOutcome::Queued { reason },
                        Failed::Permanent(_) => PushOutcome::Refused { reason },
                    });
                }
            }
        }
        // Only an acknowledgement went: our events had been carried already.
        if why == Why::Send
            && outcome == PushOutcome::UpToDate
            && from >= line.our_head
            && let Some(done) = &p.carried
        {
            return Ok(done.clone());
        }
        Ok(outcome)
    }

    /// Seals and appends the events to the first endpoint that takes them all.
    async fn push_to_relay(
        &self,
        live: &Live,
        peer: &Peer,
        have: u64,
        events: &[wire_log::VerifiedEvent],
    ) -> Result<String, Failed> {
        let Some(endpoint) = &peer.endpoint else {
            return Err(Failed::Transient(format!(
                "{} has not told us where to reach them yet",
                peer.handle
            )));
        };
        let segments = live
            .session
            .seal_segments(peer, have, events)
            .map_err(|e| Failed::Permanent(e.to_string()))?;
        let mut order: Vec<(usize, &wire_log::body::Endpoint)> =
            endpoint.endpoints.iter().enumerate().collect();
        order.sort_by_key(|(_, e)| scope(&e.relay));
        let mut last_error = String::from("no endpoint");
        'endpoints: for (i, ep) in order {
            // Each endpoint has its own capability (PROTOCOL §5).
            let cap = endpoint.cap_for(i);
            let client = match self.client(&ep.relay) {
                Ok(c) => c,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            for seg in &segments {
                match client
                    .append(&ep.slot, cap, bytes::Bytes::from(seg.bytes.clone()))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {
                        last_error = e.to_string();
                        continue 'endpoints;
                    }
                    Err(e) => {
                        let reason = match e.code() {
                            Some("bad_token" | "forbidden" | "unknown_slot") => format!(
                                "{}'s relay no longer takes our capability ({e}); they may have forgotten us or moved: ask them to dial again",
                                peer.handle
                            ),
                            Some("slot_full") => {
                                return Err(Failed::Transient(format!(
                                    "{}'s mailbox is full; it will be retried when they catch up",
                                    peer.handle
                                )));
                            }
                            _ => e.to_string(),
                        };
                        last_error = reason;
                        continue 'endpoints;
                    }
                }
            }
            return Ok(ep.relay.clone());
        }
        Err(Failed::Transient(last_error))
    }
}

enum Failed {
    Transient(String),
    Permanent(String),
}

impl Failed {
    fn reason(&self) -> &str {
        match self {
            Failed::Transient(r) | Failed::Permanent(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scope;

    #[test]
    fn scopes_order_unix_loopback_lan_then_the_rest() {
        assert_eq!(scope("unix:/run/wire.sock"), 0);
        assert_eq!(scope("http://127.0.0.1:8771"), 1);
        assert_eq!(scope("http://[::1]:8771"), 1);
        assert_eq!(scope("http://localhost:8771"), 1);
        assert_eq!(scope("http://192.168.1.4:8771"), 2);
        assert_eq!(scope("https://relay.example"), 3);
    }
}
