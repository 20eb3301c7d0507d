//! Pairing without trusting discovery. By invite: issuing a signed invite (recorded in our self
//! log with its use count), redeeming someone else's (a pair request that names it), and
//! taking a request that names one of ours; the invite is the issuer's consent, so a valid
//! redemption pairs at once, and the issuer's own log decides whether it is still valid, never
//! the relay. By code (SPAKE2 + SAS): recording the pairing once the operator confirmed the
//! short authentication string and the other side's card box opened.

use wire_log::body::{Body, InviteIssued, InviteRedeemed, PeerRef};
use wire_log::card::{SignedCard, VerifiedCard};
use wire_log::invite::{INVITE_USES_MAX, Invite, InviteNonce};
use wire_log::pair::PairRequest;
use wire_log::{Intro, Kind};
use wire_projections::{INVITES_KEPT_MAX, Peer, PeerState};

use crate::line::offer_parts;
use crate::{EngineError, Minted, Session};

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
    /// invite, our acceptance, the capabilities we minted for the peer (`minted`) and our
    /// endpoint offer, in one transaction. The fold refuses the whole batch if the invite is
    /// unknown, expired or used up, so a race between two redemptions cannot overspend it.
    pub fn accept_invited(
        &self,
        req: &PairRequest,
        minted: &[Minted],
    ) -> Result<Peer, EngineError> {
        let Some(nonce) = req.invite else {
            return Err(EngineError::Refused(
                "the request names no invite; it waits in `wire pending`".into(),
            ));
        };
        self.check_not_me(&req.card.key)?;
        if let InviteCheck::Refused(why) = self.check_invite(&nonce)? {
            return Err(EngineError::Refused(why));
        }
        let redeemed = InviteRedeemed {
            nonce: nonce.0,
            peer: req.card.key,
        };
        self.pin_consented(
            req,
            minted,
            Some((Kind::INVITE_REDEEMED, redeemed.encode())),
            "invite or not",
        )
    }

    /// Request, learned endpoints, `extra` (what made the consent), acceptance, grants and our
    /// offer, in one transaction: the shape of a pairing whose consent is already given.
    pub(crate) fn pin_consented(
        &self,
        req: &PairRequest,
        minted: &[Minted],
        extra: Option<(Kind, Vec<u8>)>,
        how: &str,
    ) -> Result<Peer, EngineError> {
        let peer = req.card.key;
        match self.peer_state(&peer)? {
            Some(PeerState::Rejected) => {
                return Err(EngineError::Refused(format!(
                    "you rejected {} before; the refusal sticks, {how}",
                    req.card.signed.handle
                )));
            }
            Some(PeerState::Paired) => {
                return Err(EngineError::Refused(format!(
                    "already paired with {}",
                    req.card.signed.handle
                )));
            }
            _ => {}
        }
        let mut items = self.request_items(req);
        if let Some((kind, body)) = extra {
            items.push((self.self_log(), kind, body));
        }
        items.push((
            self.self_log(),
            Kind::PAIR_ACCEPTED,
            PeerRef { peer }.encode(),
        ));
        items.extend(self.grants_and_offer(&peer, minted)?);
        self.append_batch(items)?;
        self.peer(&peer)
    }

    /// Pins the peer whose card box opened under the key of a pairing by code, after our
    /// operator confirmed the SAS: the card, where it receives and the capabilities it gave us,
    /// `pair.code_confirmed`, our acceptance, the capabilities we minted for it (`minted`), and
    /// our endpoint offer, in one transaction.
    pub fn accept_by_code(
        &self,
        their: &PairRequest,
        minted: &[Minted],
    ) -> Result<Peer, EngineError> {
        self.check_not_me(&their.card.key)?;
        let confirmed = PeerRef {
            peer: their.card.key,
        };
        self.pin_consented(
            their,
            minted,
            Some((Kind::PAIR_CODE_CONFIRMED, confirmed.encode())),
            "code or not",
        )
    }

    /// The intro that redeems `invite`: our card, the endpoints we minted capabilities on for
    /// its issuer (each with its capability), naming the invite, sealed to the issuer and
    /// signed by us.
    pub fn invite_intro(
        &self,
        our_card: &SignedCard,
        invite: &Invite,
        minted: &[Minted],
    ) -> Result<Intro, EngineError> {
        let their: &VerifiedCard = &invite.card;
        let (endpoints, cap, more_caps) = offer_parts(minted)?;
        let sealed = PairRequest::seal_invite(
            our_card,
            &endpoints,
            &cap,
            &more_caps,
            &invite.nonce,
            &their.x25519,
        )
        .map_err(|e| EngineError::Refused(format!("cannot build the pair request: {e}")))?;
        let to = format!("{}@{}", their.nick, their.domain);
        Intro::sign(self.secret(), &to, self.now_ms(), sealed)
            .map_err(|e| EngineError::Refused(format!("cannot sign the intro: {e}")))
    }
}
