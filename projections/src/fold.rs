//! The fold: how one verified event changes the projected state. Pure: it reads and writes only
//! through [`State`].

use wire_log::body::{
    Body, BodyError, CapGranted, CursorAdvanced, EndpointLearned, EndpointOffer, HandleClaimed,
    IdentityCreated, InviteIssued, InviteRedeemed, PeerCard, PeerRef, Renamed, SlotChange,
};
use wire_log::{AuthorKey, Character, Did, Kind, KindClass, LogId, VerifiedEvent};

use crate::State;
use crate::types::{
    Cursor, CursorKey, Grant, INVITE_KEPT_AFTER_EXPIRY_MS, INVITES_KEPT_MAX, Identity,
    InviteRecord, Peer, PeerEndpoint, PeerState, Pending, did_of,
};

/// Why an event cannot be folded in: either the state store failed, or the event breaks the
/// session's state machine (which the engine checks first, so this is a second line).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProjectionError {
    #[error("projection store: {0}")]
    Store(String),
    #[error("projection table {table} holds an unreadable record: {reason}")]
    Record { table: &'static str, reason: String },
    #[error("{kind} (seq {seq}): {reason}")]
    Rejected {
        kind: Kind,
        seq: u64,
        reason: String,
    },
    #[error("{kind} (seq {seq}): body does not decode: {source}")]
    Body {
        kind: Kind,
        seq: u64,
        source: BodyError,
    },
}

fn rejected(event: &VerifiedEvent, reason: impl Into<String>) -> ProjectionError {
    ProjectionError::Rejected {
        kind: event.kind,
        seq: event.seq,
        reason: reason.into(),
    }
}

fn body<B: Body>(event: &VerifiedEvent) -> Result<B, ProjectionError> {
    B::decode(&event.body).map_err(|source| ProjectionError::Body {
        kind: event.kind,
        seq: event.seq,
        source,
    })
}

/// Folds one event, appended at order `position`, into `state`.
pub fn apply(
    state: &mut impl State,
    event: &VerifiedEvent,
    position: u64,
) -> Result<(), ProjectionError> {
    let Some(identity) = state.identity()? else {
        return genesis(state, event, position);
    };
    let me = identity.key;
    if event.log == LogId::self_log(&me) {
        if event.author != me {
            return Err(rejected(event, "someone else wrote into our self log"));
        }
        self_event(state, identity, event)?;
    } else if event.author != me && event.kind.class() != KindClass::Ephemeral {
        // An event a peer wrote into the pair log we share: the replication cursor moves.
        let key = CursorKey {
            log: event.log,
            peer: event.author,
        };
        let mut cursor = state.cursor(&key)?.unwrap_or_default();
        cursor.received_seq = cursor.received_seq.max(event.seq);
        state.set_cursor(key, cursor)?;
        if event.kind == Kind::ENDPOINT_OFFERED {
            peer_offer(state, event)?;
        }
    }
    state.set_applied(position)
}

fn genesis(
    state: &mut impl State,
    event: &VerifiedEvent,
    position: u64,
) -> Result<(), ProjectionError> {
    if event.kind != Kind::IDENTITY_CREATED
        || event.seq != 1
        || event.log != LogId::self_log(&event.author)
    {
        return Err(rejected(
            event,
            "the log must begin with identity.created at seq 1 of the author's self log",
        ));
    }
    let created: IdentityCreated = body(event)?;
    let (did, character) = did_of(&event.author);
    state.set_identity(Identity {
        key: event.author,
        did,
        handle: created.handle,
        x25519: AuthorKey(created.x25519),
        created_ms: event.ts_ms,
        character,
        renamed: false,
        slots: Vec::new(),
        claimed: Vec::new(),
        invites: Vec::new(),
    })?;
    state.set_applied(position)
}

fn self_event(
    state: &mut impl State,
    mut identity: Identity,
    event: &VerifiedEvent,
) -> Result<(), ProjectionError> {
    match event.kind {
        Kind::IDENTITY_CREATED => Err(rejected(event, "identity already created")),
        Kind::IDENTITY_RENAMED => {
            let r: Renamed = body(event)?;
            let derived = Character::of(&Did::from_key(&identity.key));
            identity.renamed = r.nickname.is_some() || r.emoji.is_some();
            identity.character = derived.renamed(r.nickname.as_deref(), r.emoji.as_deref());
            state.set_identity(identity)
        }
        Kind::PAIR_REQUESTED => {
            let card: PeerCard = body(event)?;
            not_self(event, &identity, &card.peer)?;
            match state.peer(&card.peer)?.map(|p| p.state) {
                // A refusal sticks, and a paired peer needs no request: both are dropped.
                Some(PeerState::Rejected | PeerState::Paired) => Ok(()),
                Some(PeerState::Dialed) | None => {
                    let (did, character) = did_of(&card.peer);
                    state.set_pending(Pending {
                        key: card.peer,
                        did,
                        handle: card.handle,
                        x25519: AuthorKey(card.x25519),
                        received_ms: event.ts_ms,
                        character,
                        endpoint: None,
                    })
                }
            }
        }
        Kind::PAIR_DIALED => {
            let card: PeerCard = body(event)?;
            not_self(event, &identity, &card.peer)?;
            if state.peer(&card.peer)?.map(|p| p.state) == Some(PeerState::Paired) {
                return Err(rejected(event, "already paired with this peer"));
            }
            let (did, character) = did_of(&card.peer);
            // Dialing again keeps what we already hold for the peer.
            let (endpoint, grants) = state
                .peer(&card.peer)?
                .map(|p| (p.endpoint, p.grants))
                .unwrap_or_default();
            state.set_peer(Peer {
                key: card.peer,
                did,
                handle: card.handle,
                x25519: AuthorKey(card.x25519),
                state: PeerState::Dialed,
                since_ms: event.ts_ms,
                character,
                endpoint,
                grants,
            })
        }
        Kind::PAIR_ACCEPTED | Kind::PAIR_REJECTED => {
            let r: PeerRef = body(event)?;
            let Some(p) = state.pending(&r.peer)? else {
                return Err(rejected(event, "no pending request from this peer"));
            };
            state.remove_pending(&r.peer)?;
            let accepted = event.kind == Kind::PAIR_ACCEPTED;
            state.set_peer(Peer {
                key: p.key,
                did: p.did,
                handle: p.handle,
                x25519: p.x25519,
                state: if accepted {
                    PeerState::Paired
                } else {
                    PeerState::Rejected
                },
                since_ms: event.ts_ms,
                character: p.character,
                endpoint: if accepted { p.endpoint } else { None },
                grants: Vec::new(),
            })
        }
        Kind::PAIR_CONFIRMED => {
            let r: PeerRef = body(event)?;
            match state.peer(&r.peer)? {
                Some(mut peer) if peer.state == PeerState::Dialed => {
                    peer.state = PeerState::Paired;
                    peer.since_ms = event.ts_ms;
                    // Both sides dialed: their request told us where to reach them.
                    if let Some(p) = state.pending(&r.peer)?
                        && p.endpoint.is_some()
                    {
                        peer.endpoint = p.endpoint;
                    }
                    state.remove_pending(&r.peer)?;
                    state.set_peer(peer)
                }
                _ => Err(rejected(event, "we did not dial this peer")),
            }
        }
        Kind::PEER_FORGOTTEN => {
            let r: PeerRef = body(event)?;
            if state.peer(&r.peer)?.is_none() && state.pending(&r.peer)?.is_none() {
                return Err(rejected(event, "no such peer"));
            }
            state.remove_peer(&r.peer)?;
            state.remove_pending(&r.peer)
        }
        Kind::CURSOR_ADVANCED => {
            let c: CursorAdvanced = body(event)?;
            if c.log != LogId::pair_log(&identity.key, &c.peer) {
                return Err(rejected(
                    event,
                    "cursor for a log we do not share with that peer",
                ));
            }
            let key = CursorKey {
                log: c.log,
                peer: c.peer,
            };
            let mut cursor: Cursor = state.cursor(&key)?.unwrap_or_default();
            cursor.acked_seq = cursor.acked_seq.max(c.acked_seq);
            state.set_cursor(key, cursor)
        }
        Kind::SLOT_ATTACHED => {
            let c: SlotChange = body(event)?;
            if !identity.slots.contains(&c.endpoint) {
                identity.slots.push(c.endpoint);
            }
            state.set_identity(identity)
        }
        Kind::SLOT_RETIRED => {
            let c: SlotChange = body(event)?;
            let before = identity.slots.len();
            identity.slots.retain(|s| *s != c.endpoint);
            if identity.slots.len() == before {
                return Err(rejected(event, "no such slot is attached"));
            }
            state.set_identity(identity)
        }
        Kind::HANDLE_CLAIMED => {
            let c: HandleClaimed = body(event)?;
            if !identity.claimed.contains(&c.handle) {
                identity.claimed.push(c.handle);
            }
            state.set_identity(identity)
        }
        Kind::INVITE_ISSUED => {
            let i: InviteIssued = body(event)?;
            // Invites a day past their expiry are forgotten: nothing can redeem them any more.
            identity.invites.retain(|r| {
                r.expires_ms.saturating_add(INVITE_KEPT_AFTER_EXPIRY_MS) >= event.ts_ms
            });
            if identity.invites.iter().any(|r| r.nonce == i.nonce) {
                return Err(rejected(
                    event,
                    "an invite with this nonce was issued already",
                ));
            }
            if identity.invites.len() >= INVITES_KEPT_MAX {
                return Err(rejected(
                    event,
                    format!("{INVITES_KEPT_MAX} invites are open already"),
                ));
            }
            identity.invites.push(InviteRecord {
                nonce: i.nonce,
                issued_ms: event.ts_ms,
                expires_ms: i.expires_ms,
                uses: i.uses,
                used: 0,
                redeemed_by: Vec::new(),
            });
            state.set_identity(identity)
        }
        Kind::PAIR_CODE_CONFIRMED => {
            // Recorded between the card (as a request) and the acceptance it leads to.
            let r: PeerRef = body(event)?;
            if state.pending(&r.peer)?.is_none() {
                return Err(rejected(event, "no card from this peer is waiting"));
            }
            Ok(())
        }
        Kind::INVITE_REDEEMED => {
            let r: InviteRedeemed = body(event)?;
            not_self(event, &identity, &r.peer)?;
            let Some(invite) = identity.invites.iter_mut().find(|i| i.nonce == r.nonce) else {
                return Err(rejected(event, "no such invite was issued"));
            };
            if event.ts_ms > invite.expires_ms {
                return Err(rejected(event, "the invite had expired"));
            }
            if invite.used >= invite.uses {
                return Err(rejected(event, "the invite's uses are spent"));
            }
            invite.used += 1;
            invite.redeemed_by.push(r.peer);
            state.set_identity(identity)
        }
        Kind::ENDPOINT_LEARNED => {
            let l: EndpointLearned = body(event)?;
            let endpoint = Some(PeerEndpoint {
                endpoints: l.endpoints,
                cap: l.cap,
                more_caps: l.more_caps,
                since_ms: event.ts_ms,
            });
            if let Some(mut p) = state.pending(&l.peer)? {
                p.endpoint = endpoint;
                state.set_pending(p)
            } else if let Some(mut p) = state.peer(&l.peer)? {
                p.endpoint = endpoint;
                state.set_peer(p)
            } else {
                Err(rejected(event, "no peer or pending request with this key"))
            }
        }
        Kind::CAP_GRANTED => {
            let g: CapGranted = body(event)?;
            match state.peer(&g.peer)? {
                Some(mut p) if p.state != PeerState::Rejected => {
                    p.grants.push(Grant {
                        endpoint: g.endpoint,
                        cap_id: g.cap_id,
                    });
                    state.set_peer(p)
                }
                _ => Err(rejected(
                    event,
                    "a capability for a key we did not dial or accept",
                )),
            }
        }
        // Kinds this build does not project (including ephemeral ones) are kept in the log and
        // left alone, so newer writers stay readable.
        _ => Ok(()),
    }
}

/// A peer told us, in the pair log, where to reach it: the first such offer from a peer we dialed
/// is its acceptance, which the engine records as `pair.confirmed` just before.
fn peer_offer(state: &mut impl State, event: &VerifiedEvent) -> Result<(), ProjectionError> {
    let offer: EndpointOffer = body(event)?;
    match state.peer(&event.author)? {
        Some(mut p) if p.state == PeerState::Paired => {
            p.endpoint = Some(PeerEndpoint {
                endpoints: offer.endpoints,
                cap: offer.cap,
                more_caps: offer.more_caps,
                since_ms: event.ts_ms,
            });
            state.set_peer(p)
        }
        _ => Err(rejected(
            event,
            "an endpoint offer from a key we are not paired with",
        )),
    }
}

fn not_self(
    event: &VerifiedEvent,
    identity: &Identity,
    peer: &AuthorKey,
) -> Result<(), ProjectionError> {
    if *peer == identity.key {
        return Err(rejected(event, "an agent cannot pair with itself"));
    }
    Ok(())
}
