//! Pairing without trusting discovery. By invite: issuing a signed invite (recorded in our self
//! log with its use count), redeeming someone else's (a pair request that names it), and
//! taking a request that names one of ours; the invite is the issuer's consent, so a valid
//! redemption pairs at once, and the issuer's own log decides whether it is still valid, never
//! the relay. By code (SPAKE2 + SAS): recording the pairing once the operator confirmed the
//! short authentication string and the other side's card box opened.

use wire_log::body::{
    Body, CapGranted, Endpoint, EndpointLearned, EndpointOffer, InviteIssued, InviteRedeemed,
    PeerCard, PeerRef,
};
use wire_log::card::{SignedCard, VerifiedCard};
use wire_log::invite::{INVITE_USES_MAX, Invite, InviteNonce};
use wire_log::pair::PairRequest;
use wire_log::{Intro, Kind, LogId};
use wire_projections::{INVITES_KEPT_MAX, Peer, PeerState};

use crate::{EngineError, Session};

/// Shortest and longest time an invite may stay valid.
pub const INVITE_TTL_MS_MIN: u64 = 10_000;
pub const INVITE_TTL_MS_MAX: u64 = 7 * 24 * 3600 * 1000;

/// When an invite we issued is checked against a pair request that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteCheck {
    /// Unexpired with uses left: the request pairs.
    Valid,
    /// Refused, with the reason for `wire status`.
    Refused(String),
}

fn minutes(ms: u64) -> String {
    if ms < 120_000 {
        format!("{} s", ms / 1000)
    } else {
        format!("{} min", ms / 60_000)
    }
}

impl Session {
    /// Signs an invite for our card `card` (claimed at `relay`), valid `ttl_ms` from now for
    /// `uses` pairings, and records it (`invite.issued`) before it leaves this process.
    pub fn issue_invite(
        &self,
        card: &SignedCard,
        relay: &str,
        ttl_ms: u64,
        uses: u64,
    ) -> Result<Invite, EngineError> {
        if !(INVITE_TTL_MS_MIN..=INVITE_TTL_MS_MAX).contains(&ttl_ms) {
            return Err(EngineError::Invalid {
                what: "ttl",
                value: format!("{ttl_ms} ms"),
                reason: "an invite lives 10 s to 7 days".into(),
            });
        }
        if uses == 0 || uses > INVITE_USES_MAX {
            return Err(EngineError::Invalid {
                what: "uses",
                value: uses.to_string(),
                reason: format!("an invite grants 1 to {INVITE_USES_MAX} pairings"),
            });
        }
        let now = self.now_ms();
        let open = self
            .identity()?
            .invites
            .iter()
            .filter(|i| i.expires_ms >= now && i.used < i.uses)
            .count();
        if open >= INVITES_KEPT_MAX {
            return Err(EngineError::Refused(format!(
                "{INVITES_KEPT_MAX} invites are still open; wait for some to expire"
            )));
        }
        let nonce = InviteNonce::generate();
        let expires_ms = now + ttl_ms;
        let invite = Invite::sign(self.secret(), card, relay, nonce, expires_ms, uses)
            .map_err(|e| EngineError::Refused(format!("cannot sign the invite: {e}")))?;
        let body = InviteIssued {
            nonce: nonce.0,
            expires_ms,
            uses,
        };
        self.append(self.self_log(), Kind::INVITE_ISSUED, body.encode())?;
        Ok(invite)
    }

    /// Whether the invite `nonce`, which a request from `peer_handle` names, may pair now.
    pub fn check_invite(&self, nonce: &InviteNonce) -> Result<InviteCheck, EngineError> {
        let now = self.now_ms();
        let identity = self.identity()?;
        let Some(i) = identity.invites.iter().find(|i| i.nonce == nonce.0) else {
            return Ok(InviteCheck::Refused(format!(
                "it names invite {}, which this session never issued (or forgot a day after it expired)",
                nonce.to_hex()
            )));
        };
        if now > i.expires_ms {
            return Ok(InviteCheck::Refused(format!(
                "invite {} expired {} ago",
                nonce.to_hex(),
                minutes(now - i.expires_ms)
            )));
        }
        if i.used >= i.uses {
            return Ok(InviteCheck::Refused(format!(
                "invite {} is used up ({} of {} uses spent)",
                nonce.to_hex(),
                i.used,
                i.uses
            )));
        }
        Ok(InviteCheck::Valid)
    }

    /// Takes a request that redeems one of our invites: records the request, the use of the
    /// invite, our acceptance, the capability we minted for the peer on `endpoint` and our
    /// endpoint offer, in one transaction. The fold refuses the whole batch if the invite is
    /// unknown, expired or used up, so a race between two redemptions cannot overspend it.
    pub fn accept_invited(
        &self,
        req: &PairRequest,
        endpoint: &Endpoint,
        cap_id: &str,
        cap: &str,
    ) -> Result<Peer, EngineError> {
        let Some(nonce) = req.invite else {
            return Err(EngineError::Refused(
                "the request names no invite; it waits in `wire pending`".into(),
            ));
        };
        let peer = req.card.key;
        self.check_not_me(&peer)?;
        if let InviteCheck::Refused(why) = self.check_invite(&nonce)? {
            return Err(EngineError::Refused(why));
        }
        match self.peer_state(&peer)? {
            Some(PeerState::Rejected) => {
                return Err(EngineError::Refused(
                    "you rejected this key before; the refusal sticks, invite or not".into(),
                ));
            }
            Some(PeerState::Paired) => {
                return Err(EngineError::Refused("already paired".into()));
            }
            Some(PeerState::Dialed) => {
                return Err(EngineError::Refused(
                    "we dialed this key too; its request waits in `wire pending`".into(),
                ));
            }
            None => {}
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
        let redeemed = InviteRedeemed {
            nonce: nonce.0,
            peer,
        };
        let grant = CapGranted {
            peer,
            endpoint: endpoint.clone(),
            cap_id: cap_id.to_owned(),
        };
        let offer = EndpointOffer {
            endpoints: self.our_endpoints()?,
            cap: cap.to_owned(),
        };
        let me = self.key();
        self.append_batch(vec![
            (self.self_log(), Kind::PAIR_REQUESTED, card.encode()),
            (self.self_log(), Kind::ENDPOINT_LEARNED, learned.encode()),
            (self.self_log(), Kind::INVITE_REDEEMED, redeemed.encode()),
            (
                self.self_log(),
                Kind::PAIR_ACCEPTED,
                PeerRef { peer }.encode(),
            ),
            (self.self_log(), Kind::CAP_GRANTED, grant.encode()),
            (
                LogId::pair_log(&me, &peer),
                Kind::ENDPOINT_OFFERED,
                offer.encode(),
            ),
        ])?;
        self.peer(&peer)
    }

    /// Pins the peer whose card box opened under the key of a pairing by code, after our
    /// operator confirmed the SAS: the card, where it receives and the capability it gave us,
    /// `pair.code_confirmed`, our acceptance, the capability we minted for it on `endpoint`,
    /// and our endpoint offer, in one transaction.
    pub fn accept_by_code(
        &self,
        their: &PairRequest,
        endpoint: &Endpoint,
        cap_id: &str,
        cap: &str,
    ) -> Result<Peer, EngineError> {
        let peer = their.card.key;
        self.check_not_me(&peer)?;
        match self.peer_state(&peer)? {
            Some(PeerState::Paired) => {
                return Err(EngineError::Refused(format!(
                    "already paired with {}",
                    their.card.signed.handle
                )));
            }
            Some(PeerState::Rejected) => {
                return Err(EngineError::Refused(format!(
                    "you rejected {} earlier; `wire forget` clears that before pairing",
                    their.card.signed.handle
                )));
            }
            _ => {}
        }
        let card = PeerCard {
            peer,
            handle: their.card.signed.handle.clone(),
            x25519: their.card.x25519,
        };
        let learned = EndpointLearned {
            peer,
            endpoints: their.endpoints.clone(),
            cap: their.cap.clone(),
        };
        let grant = CapGranted {
            peer,
            endpoint: endpoint.clone(),
            cap_id: cap_id.to_owned(),
        };
        let offer = EndpointOffer {
            endpoints: self.our_endpoints()?,
            cap: cap.to_owned(),
        };
        let me = self.key();
        self.append_batch(vec![
            (self.self_log(), Kind::PAIR_REQUESTED, card.encode()),
            (self.self_log(), Kind::ENDPOINT_LEARNED, learned.encode()),
            (
                self.self_log(),
                Kind::PAIR_CODE_CONFIRMED,
                PeerRef { peer }.encode(),
            ),
            (
                self.self_log(),
                Kind::PAIR_ACCEPTED,
                PeerRef { peer }.encode(),
            ),
            (self.self_log(), Kind::CAP_GRANTED, grant.encode()),
            (
                LogId::pair_log(&me, &peer),
                Kind::ENDPOINT_OFFERED,
                offer.encode(),
            ),
        ])?;
        self.peer(&peer)
    }

    /// The intro that redeems `invite`: our card, endpoints and the capability we minted for
    /// its issuer, naming the invite, sealed to the issuer and signed by us.
    pub fn invite_intro(
        &self,
        our_card: &SignedCard,
        invite: &Invite,
        cap: &str,
    ) -> Result<Intro, EngineError> {
        let their: &VerifiedCard = &invite.card;
        let endpoints = self.our_endpoints()?;
        let sealed = PairRequest::seal(
            our_card,
            &endpoints,
            cap,
            Some(&invite.nonce),
            &their.x25519,
        )
        .map_err(|e| EngineError::Refused(format!("cannot build the pair request: {e}")))?;
        let to = format!("{}@{}", their.nick, their.domain);
        Intro::sign(self.secret(), &to, self.now_ms(), sealed)
            .map_err(|e| EngineError::Refused(format!("cannot sign the intro: {e}")))
    }
}
