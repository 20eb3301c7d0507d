//! Event kinds, their classes, and the kinds wire itself defines.
//!
//! Classes follow Nostr and the original wire: 1000–9999 regular, 10000–19999 replaceable,
//! 20000–29999 ephemeral, 30000–39999 addressable. Any other number is refused by the decoder.

use std::fmt;

/// How the log and projections treat events of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindClass {
    /// Kept, each one matters (messages, decisions).
    Regular,
    /// The latest one per author and log wins (a rename).
    Replaceable,
    /// Not kept by projections; delivered and forgotten (typing indicators, presence).
    Ephemeral,
    /// The latest one per author, log and address wins (a peer's trust, a cursor).
    Addressable,
}

/// An event kind number, known to be inside one of the four classes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind(u32);

impl Kind {
    /// A plain text message in a pair log. Body: UTF-8 text.
    pub const MESSAGE: Kind = Kind(1000);
    /// The first event of every self log. Body: [`crate::body::IdentityCreated`].
    pub const IDENTITY_CREATED: Kind = Kind(1001);
    /// A stranger left a pair request for us. Body: [`crate::body::PeerCard`].
    pub const PAIR_REQUESTED: Kind = Kind(1010);
    /// We asked a peer to pair. Body: [`crate::body::PeerCard`].
    pub const PAIR_DIALED: Kind = Kind(1011);
    /// We accepted a peer's request. Body: [`crate::body::PeerRef`].
    pub const PAIR_ACCEPTED: Kind = Kind(1012);
    /// We refused a peer's request; it sticks. Body: [`crate::body::PeerRef`].
    pub const PAIR_REJECTED: Kind = Kind(1013);
    /// The peer we dialed accepted. Body: [`crate::body::PeerRef`].
    pub const PAIR_CONFIRMED: Kind = Kind(1014);
    /// We dropped a peer and everything pending with it. Body: [`crate::body::PeerRef`].
    pub const PEER_FORGOTTEN: Kind = Kind(1015);
    /// Reach me here, with this capability (pair log, by the slot owner). Body:
    /// [`crate::body::EndpointOffer`].
    pub const ENDPOINT_OFFERED: Kind = Kind(1020);
    /// A peer's endpoints, learned from its pair request. Body: [`crate::body::EndpointLearned`].
    pub const ENDPOINT_LEARNED: Kind = Kind(1021);
    /// We minted an append capability for a peer. Body: [`crate::body::CapGranted`].
    pub const CAP_GRANTED: Kind = Kind(1022);
    /// We receive at a new slot. Body: [`crate::body::SlotChange`].
    pub const SLOT_ATTACHED: Kind = Kind(1023);
    /// We stopped reading a slot. Body: [`crate::body::SlotChange`].
    pub const SLOT_RETIRED: Kind = Kind(1024);
    /// A relay directory holds a handle for us. Body: [`crate::body::HandleClaimed`].
    pub const HANDLE_CLAIMED: Kind = Kind(1025);
    /// We signed an invite URL. Body: [`crate::body::InviteIssued`].
    pub const INVITE_ISSUED: Kind = Kind(1030);
    /// A pair request presented one of our invites; one use is spent. Body:
    /// [`crate::body::InviteRedeemed`].
    pub const INVITE_REDEEMED: Kind = Kind(1031);
    /// Our operator confirmed the SAS of a pairing by code with this peer (just before our
    /// acceptance, in the same transaction). Body: [`crate::body::PeerRef`].
    pub const PAIR_CODE_CONFIRMED: Kind = Kind(1032);
    /// One message of a broadcast (pair log): the broadcast id, the message's own kind and
    /// body. Shown as a message of the inner kind. Body: [`crate::body::BroadcastMessage`].
    pub const MESSAGE_BROADCAST: Kind = Kind(1040);
    /// A line of a file-contract outbox was consumed: sent (with the message id) or refused
    /// (with the reason), appended in the same transaction as the message. Body:
    /// [`crate::body::OutboxConsumed`].
    pub const OUTBOX_CONSUMED: Kind = Kind(1041);
    /// Local display name and emoji. Body: [`crate::body::Renamed`].
    pub const IDENTITY_RENAMED: Kind = Kind(10001);
    /// How far replication with a peer has come in one log. Body: [`crate::body::CursorAdvanced`].
    pub const CURSOR_ADVANCED: Kind = Kind(30001);

    /// Regular kinds wire reserves for itself; applications use 1100 and up.
    pub const fn is_reserved(self) -> bool {
        self.0 > 1000 && self.0 < 1100
    }

    /// Accepts only numbers inside one of the four classes.
    pub const fn new(n: u32) -> Option<Kind> {
        if n >= 1000 && n <= 39_999 {
            Some(Kind(n))
        } else {
            None
        }
    }

    pub const fn number(self) -> u32 {
        self.0
    }

    pub const fn class(self) -> KindClass {
        match self.0 {
            1000..=9999 => KindClass::Regular,
            10_000..=19_999 => KindClass::Replaceable,
            20_000..=29_999 => KindClass::Ephemeral,
            _ => KindClass::Addressable,
        }
    }

    /// The name wire uses for its own kinds, if this is one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::MESSAGE => "message",
            Kind::IDENTITY_CREATED => "identity.created",
            Kind::PAIR_REQUESTED => "pair.requested",
            Kind::PAIR_DIALED => "pair.dialed",
            Kind::PAIR_ACCEPTED => "pair.accepted",
            Kind::PAIR_REJECTED => "pair.rejected",
            Kind::PAIR_CONFIRMED => "pair.confirmed",
            Kind::PEER_FORGOTTEN => "peer.forgotten",
            Kind::ENDPOINT_OFFERED => "endpoint.offered",
            Kind::ENDPOINT_LEARNED => "endpoint.learned",
            Kind::CAP_GRANTED => "cap.granted",
            Kind::SLOT_ATTACHED => "slot.attached",
            Kind::SLOT_RETIRED => "slot.retired",
            Kind::HANDLE_CLAIMED => "handle.claimed",
            Kind::INVITE_ISSUED => "invite.issued",
            Kind::INVITE_REDEEMED => "invite.redeemed",
            Kind::PAIR_CODE_CONFIRMED => "pair.code_confirmed",
            Kind::MESSAGE_BROADCAST => "message.broadcast",
            Kind::OUTBOX_CONSUMED => "outbox.consumed",
            Kind::IDENTITY_RENAMED => "identity.renamed",
            Kind::CURSOR_ADVANCED => "cursor.advanced",
            _ => return None,
        })
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Kind({} {name})", self.0),
            None => write!(f, "Kind({})", self.0),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_ranges() {
        assert_eq!(Kind::new(999), None);
        assert_eq!(Kind::new(40_000), None);
        assert_eq!(Kind::new(1000).map(Kind::class), Some(KindClass::Regular));
        assert_eq!(
            Kind::new(19_999).map(Kind::class),
            Some(KindClass::Replaceable)
        );
        assert_eq!(
            Kind::new(20_000).map(Kind::class),
            Some(KindClass::Ephemeral)
        );
        assert_eq!(
            Kind::new(39_999).map(Kind::class),
            Some(KindClass::Addressable)
        );
        assert_eq!(Kind::IDENTITY_RENAMED.class(), KindClass::Replaceable);
        assert_eq!(Kind::CURSOR_ADVANCED.class(), KindClass::Addressable);
    }
}
