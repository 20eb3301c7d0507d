//! Bodies of the kinds wire defines, each with one canonical encoding (a CBOR array, fields in
//! the order written here). Do not reorder or change fields: they are signed bytes.

use ciborium::Value;

use crate::cbor::{self, CborError, FieldError, Fields};
use crate::types::{AuthorKey, LogId};

/// Longest handle, `nick@domain:port`, in bytes.
pub const HANDLE_BYTES_MAX: usize = 255;
/// Longest local nickname in bytes.
pub const NICKNAME_BYTES_MAX: usize = 64;
/// Longest local emoji in bytes (a ZWJ sequence fits).
pub const EMOJI_BYTES_MAX: usize = 32;

/// Why a body did not decode.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error(transparent)]
    Cbor(#[from] CborError),
    #[error("malformed body: {0}")]
    Field(#[from] FieldError),
    #[error("body field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// A body kind with a canonical encoding.
pub trait Body: Sized {
    fn to_value(&self) -> Value;
    fn from_fields(f: &mut Fields) -> Result<Self, BodyError>;
    const NAME: &'static str;
    const FIELDS: usize;

    fn encode(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let value = cbor::decode_canonical(bytes, crate::BODY_BYTES_MAX)?;
        let mut f = Fields::new(Self::NAME, value, Self::FIELDS)?;
        Self::from_fields(&mut f)
    }
}

fn bounded_text(field: &'static str, value: String, max: usize) -> Result<String, BodyError> {
    if value.is_empty() || value.len() > max {
        return Err(BodyError::Invalid {
            field,
            reason: format!("must be 1 to {max} bytes"),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(BodyError::Invalid {
            field,
            reason: "must not contain control characters".into(),
        });
    }
    Ok(value)
}

/// Body of `identity.created`, the first event of a self log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityCreated {
    /// The handle's local part chosen at `wire init`.
    pub handle: String,
    /// The X25519 key sealed events for this identity are addressed to.
    pub x25519: [u8; 32],
}

impl Body for IdentityCreated {
    const NAME: &'static str = "identity.created";
    const FIELDS: usize = 2;

    fn to_value(&self) -> Value {
        Value::Array(vec![cbor::text(&self.handle), cbor::bytes(&self.x25519)])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        Ok(IdentityCreated {
            handle: bounded_text("handle", f.text("handle")?, HANDLE_BYTES_MAX)?,
            x25519: f.array32("x25519")?,
        })
    }
}

/// Body of `pair.requested` and `pair.dialed`: who the other side is, as its card said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCard {
    pub peer: AuthorKey,
    /// `nick@domain`, as dialed or as claimed in the request.
    pub handle: String,
    pub x25519: [u8; 32],
}

impl Body for PeerCard {
    const NAME: &'static str = "peer card";
    const FIELDS: usize = 3;

    fn to_value(&self) -> Value {
        Value::Array(vec![
            cbor::bytes(&self.peer.0),
            cbor::text(&self.handle),
            cbor::bytes(&self.x25519),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        Ok(PeerCard {
            peer: AuthorKey(f.array32("peer")?),
            handle: bounded_text("handle", f.text("handle")?, HANDLE_BYTES_MAX)?,
            x25519: f.array32("x25519")?,
        })
    }
}

/// Body of the decisions about one peer (`pair.accepted`, `pair.rejected`, `pair.confirmed`,
/// `peer.forgotten`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRef {
    pub peer: AuthorKey,
}

impl Body for PeerRef {
    const NAME: &'static str = "peer reference";
    const FIELDS: usize = 1;

    fn to_value(&self) -> Value {
        Value::Array(vec![cbor::bytes(&self.peer.0)])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        Ok(PeerRef {
            peer: AuthorKey(f.array32("peer")?),
        })
    }
}

/// Body of `identity.renamed`: a local display override. `None` restores the derived value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    pub nickname: Option<String>,
    pub emoji: Option<String>,
}

impl Body for Renamed {
    const NAME: &'static str = "identity.renamed";
    const FIELDS: usize = 2;

    fn to_value(&self) -> Value {
        Value::Array(vec![
            cbor::opt_text(self.nickname.as_deref()),
            cbor::opt_text(self.emoji.as_deref()),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let nickname = f
            .opt_text("nickname")?
            .map(|n| bounded_text("nickname", n, NICKNAME_BYTES_MAX))
            .transpose()?;
        let emoji = f
            .opt_text("emoji")?
            .map(|e| bounded_text("emoji", e, EMOJI_BYTES_MAX))
            .transpose()?;
        Ok(Renamed { nickname, emoji })
    }
}

/// Body of `cursor.advanced`: the peer has our chain in `log` up to `acked_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorAdvanced {
    pub log: LogId,
    pub peer: AuthorKey,
    pub acked_seq: u64,
}

impl Body for CursorAdvanced {
    const NAME: &'static str = "cursor.advanced";
    const FIELDS: usize = 3;

    fn to_value(&self) -> Value {
        Value::Array(vec![
            cbor::bytes(&self.log.0),
            cbor::bytes(&self.peer.0),
            cbor::uint(self.acked_seq),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        Ok(CursorAdvanced {
            log: LogId(f.array32("log")?),
            peer: AuthorKey(f.array32("peer")?),
            acked_seq: f.uint("acked_seq")?,
        })
    }
}

/// Longest relay URL in an endpoint, in bytes.
pub const RELAY_URL_BYTES_MAX: usize = 255;
/// Most endpoints one offer may list.
pub const ENDPOINTS_MAX: usize = 4;

fn invalid(field: &'static str, reason: &str) -> BodyError {
    BodyError::Invalid {
        field,
        reason: reason.to_owned(),
    }
}

fn lower_hex(field: &'static str, value: String, len: usize) -> Result<String, BodyError> {
    if value.len() != len
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid(
            field,
            &format!("must be {len} lower-case hex characters"),
        ));
    }
    Ok(value)
}

/// Checks the spelling of a relay URL: `http://`, `https://` or `unix:/absolute/path`.
pub fn check_relay_url(url: &str) -> Result<(), BodyError> {
    if url.is_empty() || url.len() > RELAY_URL_BYTES_MAX {
        return Err(invalid("relay", "must be 1 to 255 bytes"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "relay",
            "must not contain spaces or control characters",
        ));
    }
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(path) = url.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(invalid("relay", "a unix: URL names an absolute path"));
        }
        return Ok(());
    } else {
        return Err(invalid(
            "relay",
            "must start with http://, https:// or unix:/",
        ));
    };
    if rest.is_empty() || rest.starts_with('/') || url.ends_with('/') {
        return Err(invalid("relay", "must name a host and end without a slash"));
    }
    Ok(())
}

/// Checks the spelling of an append capability: `wac1_` and 43 base64url characters.
pub fn check_capability(cap: &str) -> Result<(), BodyError> {
    let ok = cap.len() == 48
        && cap.starts_with("wac1_")
        && cap[5..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid("cap", "must be wac1_ and 43 base64url characters"))
    }
}

/// Where a session receives: a relay and a slot on it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Endpoint {
    /// Base URL of the relay (`http://`, `https://` or `unix:/path`).
    pub relay: String,
    /// Slot id: 32 lower-case hex characters.
    pub slot: String,
}

impl Endpoint {
    pub fn check(&self) -> Result<(), BodyError> {
        check_relay_url(&self.relay)?;
        lower_hex("slot", self.slot.clone(), 32)?;
        Ok(())
    }

    fn to_value(&self) -> Value {
        Value::Array(vec![cbor::text(&self.relay), cbor::text(&self.slot)])
    }

    fn from_value(value: Value) -> Result<Endpoint, BodyError> {
        let mut f = Fields::new("endpoint", value, 2)?;
        let endpoint = Endpoint {
            relay: f.text("relay")?,
            slot: f.text("slot")?,
        };
        endpoint.check()?;
        Ok(endpoint)
    }
}

fn endpoints_value(endpoints: &[Endpoint]) -> Value {
    Value::Array(endpoints.iter().map(Endpoint::to_value).collect())
}

fn endpoints_from(f: &mut Fields) -> Result<Vec<Endpoint>, BodyError> {
    let items = f.array("endpoints", ENDPOINTS_MAX)?;
    if items.is_empty() {
        return Err(invalid("endpoints", "must list at least one endpoint"));
    }
    items.into_iter().map(Endpoint::from_value).collect()
}

/// The capabilities for endpoints after the first (`more_caps`), when each endpoint has its
/// own: empty (and then not encoded: the older form, one capability for every endpoint) or
/// exactly one per endpoint after the first.
fn more_caps_value(more: &[String]) -> Value {
    Value::Array(more.iter().map(|c| cbor::text(c)).collect())
}

fn more_caps_from(f: &mut Fields, endpoints: usize) -> Result<Vec<String>, BodyError> {
    if f.left() == 0 {
        return Ok(Vec::new());
    }
    let items = f.array("more_caps", ENDPOINTS_MAX)?;
    if items.is_empty() {
        // One encoding per value: an empty list is left out.
        return Err(invalid("more_caps", "is left out when empty"));
    }
    if items.len() + 1 != endpoints {
        return Err(invalid(
            "more_caps",
            "must hold one capability for each endpoint after the first",
        ));
    }
    items
        .into_iter()
        .map(|v| match v {
            Value::Text(c) => {
                check_capability(&c)?;
                Ok(c)
            }
            _ => Err(invalid("more_caps", "must hold text strings")),
        })
        .collect()
}

/// The capability for endpoint `i` of a list with `cap` and `more_caps`.
pub fn cap_for<'a>(cap: &'a str, more_caps: &'a [String], i: usize) -> &'a str {
    match i.checked_sub(1).and_then(|j| more_caps.get(j)) {
        Some(c) => c,
        None => cap,
    }
}

/// Body of `endpoint.offered`, written by a slot's owner into a pair log: "reach me at these
/// endpoints, in this order, with this append capability" (the first endpoint's; the others
/// have theirs in `more_caps`, or share it when that is empty). The first one from a peer we
/// dialed is its acceptance; later ones move it (slot rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOffer {
    pub endpoints: Vec<Endpoint>,
    pub cap: String,
    pub more_caps: Vec<String>,
}

impl Body for EndpointOffer {
    const NAME: &'static str = "endpoint.offered";
    const FIELDS: usize = 2;

    fn to_value(&self) -> Value {
        let mut v = vec![endpoints_value(&self.endpoints), cbor::text(&self.cap)];
        if !self.more_caps.is_empty() {
            v.push(more_caps_value(&self.more_caps));
        }
        Value::Array(v)
    }

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let value = cbor::decode_canonical(bytes, crate::BODY_BYTES_MAX)?;
        let mut f = Fields::new_range(Self::NAME, value, Self::FIELDS, Self::FIELDS + 1)?;
        Self::from_fields(&mut f)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let endpoints = endpoints_from(f)?;
        let cap = f.text("cap")?;
        check_capability(&cap)?;
        let more_caps = more_caps_from(f, endpoints.len())?;
        Ok(EndpointOffer {
            endpoints,
            cap,
            more_caps,
        })
    }
}

/// Body of `endpoint.learned` (self log): a peer's endpoints and the capabilities it gave us,
/// learned outside the pair log (from its pair request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLearned {
    pub peer: AuthorKey,
    pub endpoints: Vec<Endpoint>,
    pub cap: String,
    pub more_caps: Vec<String>,
}

impl Body for EndpointLearned {
    const NAME: &'static str = "endpoint.learned";
    const FIELDS: usize = 3;

    fn to_value(&self) -> Value {
        let mut v = vec![
            cbor::bytes(&self.peer.0),
            endpoints_value(&self.endpoints),
            cbor::text(&self.cap),
        ];
        if !self.more_caps.is_empty() {
            v.push(more_caps_value(&self.more_caps));
        }
        Value::Array(v)
    }

    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let value = cbor::decode_canonical(bytes, crate::BODY_BYTES_MAX)?;
        let mut f = Fields::new_range(Self::NAME, value, Self::FIELDS, Self::FIELDS + 1)?;
        Self::from_fields(&mut f)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let peer = AuthorKey(f.array32("peer")?);
        let endpoints = endpoints_from(f)?;
        let cap = f.text("cap")?;
        check_capability(&cap)?;
        let more_caps = more_caps_from(f, endpoints.len())?;
        Ok(EndpointLearned {
            peer,
            endpoints,
            cap,
            more_caps,
        })
    }
}

/// Body of `cap.granted` (self log): we minted an append capability on one of our slots for a
/// peer. Only the capability's public id is kept, so it can be revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapGranted {
    pub peer: AuthorKey,
    pub endpoint: Endpoint,
    pub cap_id: String,
}

impl Body for CapGranted {
    const NAME: &'static str = "cap.granted";
    const FIELDS: usize = 3;

    fn to_value(&self) -> Value {
        Value::Array(vec![
            cbor::bytes(&self.peer.0),
            self.endpoint.to_value(),
            cbor::text(&self.cap_id),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let peer = AuthorKey(f.array32("peer")?);
        let endpoint = Endpoint::from_value(f.array("endpoint", 2).map(Value::Array)?)?;
        let cap_id = lower_hex("cap_id", f.text("cap_id")?, 16)?;
        Ok(CapGranted {
            peer,
            endpoint,
            cap_id,
        })
    }
}

/// Body of `slot.attached` and `slot.retired` (self log): we receive, or stopped receiving, at
/// this endpoint. The owner token itself lives in the key directory, never in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotChange {
    pub endpoint: Endpoint,
}

impl Body for SlotChange {
    const NAME: &'static str = "slot change";
    const FIELDS: usize = 1;

    fn to_value(&self) -> Value {
        Value::Array(vec![self.endpoint.to_value()])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let endpoint = Endpoint::from_value(f.array("endpoint", 2).map(Value::Array)?)?;
        Ok(SlotChange { endpoint })
    }
}

/// Body of `handle.claimed` (self log): the relay directory holds `nick@domain` for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleClaimed {
    pub handle: String,
}

impl Body for HandleClaimed {
    const NAME: &'static str = "handle.claimed";
    const FIELDS: usize = 1;

    fn to_value(&self) -> Value {
        Value::Array(vec![cbor::text(&self.handle)])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        Ok(HandleClaimed {
            handle: bounded_text("handle", f.text("handle")?, HANDLE_BYTES_MAX)?,
        })
    }
}

/// Body of `invite.issued` (self log): we signed an invite that pairs whoever presents it,
/// up to `uses` times until `expires_ms` (the issuer's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteIssued {
    pub nonce: [u8; 16],
    pub expires_ms: u64,
    pub uses: u64,
}

fn array16(f: &mut Fields, field: &'static str) -> Result<[u8; 16], BodyError> {
    let b = f.bytes(field)?;
    <[u8; 16]>::try_from(b.as_slice()).map_err(|_| invalid(field, "must be 16 bytes"))
}

impl Body for InviteIssued {
    const NAME: &'static str = "invite.issued";
    const FIELDS: usize = 3;

    fn to_value(&self) -> Value {
        Value::Array(vec![
            cbor::bytes(&self.nonce),
            cbor::uint(self.expires_ms),
            cbor::uint(self.uses),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let nonce = array16(f, "nonce")?;
        let expires_ms = f.uint("expires_ms")?;
        let uses = f.uint("uses")?;
        if uses == 0 || uses > crate::invite::INVITE_USES_MAX {
            return Err(invalid("uses", "must be 1 to 100"));
        }
        Ok(InviteIssued {
            nonce,
            expires_ms,
            uses,
        })
    }
}

/// Body of `invite.redeemed` (self log): `peer` presented the invite `nonce`, which counts one
/// of its uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRedeemed {
    pub nonce: [u8; 16],
    pub peer: AuthorKey,
}

impl Body for InviteRedeemed {
    const NAME: &'static str = "invite.redeemed";
    const FIELDS: usize = 2;

    fn to_value(&self) -> Value {
        Value::Array(vec![cbor::bytes(&self.nonce), cbor::bytes(&self.peer.0)])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        Ok(InviteRedeemed {
            nonce: array16(f, "nonce")?,
            peer: AuthorKey(f.array32("peer")?),
        })
    }
}

/// Bytes of a broadcast id.
pub const BROADCAST_ID_BYTES: usize = 16;
/// What a `message.broadcast` body adds around the message's own body, at most (the array, the
/// id, the kind and the byte-string header): the inner body may be `BODY_BYTES_MAX` less this.
pub const BROADCAST_OVERHEAD_BYTES: usize = 32;

/// Body of `message.broadcast`: one of the messages a broadcast sends, one per peer, all with
/// the same id. The message is `kind` with `body`, as if sent alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastMessage {
    pub id: [u8; BROADCAST_ID_BYTES],
    /// A message kind: 1000, or 1100 to 9999.
    pub kind: u32,
    pub body: Vec<u8>,
}

impl Body for BroadcastMessage {
    const NAME: &'static str = "message.broadcast";
    const FIELDS: usize = 3;

    fn to_value(&self) -> Value {
        Value::Array(vec![
            cbor::bytes(&self.id),
            cbor::uint(u64::from(self.kind)),
            cbor::bytes(&self.body),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let id = f.bytes("id")?;
        let id = <[u8; BROADCAST_ID_BYTES]>::try_from(id.as_slice())
            .map_err(|_| invalid("id", "must be 16 bytes"))?;
        let kind = u32::try_from(f.uint("kind")?).map_err(|_| invalid("kind", "too large"))?;
        if kind != 1000 && !(1100..=9999).contains(&kind) {
            return Err(invalid("kind", "must be 1000 or 1100 to 9999"));
        }
        Ok(BroadcastMessage {
            id,
            kind,
            body: f.bytes("body")?,
        })
    }
}

/// Longest outbox file name (without `.jsonl`) in an `outbox.consumed` body, in bytes.
pub const OUTBOX_FILE_BYTES_MAX: usize = 255;
/// Longest reason in an `outbox.consumed` body, in bytes.
pub const OUTBOX_ERROR_BYTES_MAX: usize = 1024;

/// Body of `outbox.consumed` (self log): line `line` (from 1) of `outbox/<file>.jsonl`, bytes
/// `start..end` (the newline included), was consumed: sent to `peer` as `message`, or refused
/// with `error`. The last one per file is where reading resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConsumed {
    pub file: String,
    pub line: u64,
    pub start: u64,
    pub end: u64,
    pub peer: Option<AuthorKey>,
    pub message: Option<[u8; 32]>,
    pub error: Option<String>,
}

impl Body for OutboxConsumed {
    const NAME: &'static str = "outbox.consumed";
    const FIELDS: usize = 7;

    fn to_value(&self) -> Value {
        Value::Array(vec![
            cbor::text(&self.file),
            cbor::uint(self.line),
            cbor::uint(self.start),
            cbor::uint(self.end),
            cbor::opt_bytes(self.peer.as_ref().map(|p| &p.0)),
            cbor::opt_bytes(self.message.as_ref()),
            cbor::opt_text(self.error.as_deref()),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, BodyError> {
        let file = bounded_text("file", f.text("file")?, OUTBOX_FILE_BYTES_MAX)?;
        let line = f.uint("line")?;
        let start = f.uint("start")?;
        let end = f.uint("end")?;
        if end <= start || line == 0 {
            return Err(invalid(
                "end",
                "a line is at least one byte, numbered from 1",
            ));
        }
        let peer = f.opt_array32("peer")?.map(AuthorKey);
        let message = f.opt_array32("message")?;
        let error = f.opt_text("error")?;
        if error
            .as_ref()
            .is_some_and(|e| e.len() > OUTBOX_ERROR_BYTES_MAX)
        {
            return Err(invalid("error", "longer than 1024 bytes"));
        }
        if message.is_some() == error.is_some() {
            return Err(invalid(
                "message",
                "exactly one of message and error is set",
            ));
        }
        Ok(OutboxConsumed {
            file,
            line,
            start,
            end,
            peer,
            message,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_bodies_round_trip() {
        let issued = InviteIssued {
            nonce: [3; 16],
            expires_ms: 99,
            uses: 2,
        };
        assert_eq!(InviteIssued::decode(&issued.encode()), Ok(issued));
        let zero = InviteIssued {
            nonce: [3; 16],
            expires_ms: 99,
            uses: 0,
        };
        assert!(InviteIssued::decode(&zero.encode()).is_err());
        let used = InviteRedeemed {
            nonce: [3; 16],
            peer: AuthorKey([5; 32]),
        };
        assert_eq!(InviteRedeemed::decode(&used.encode()), Ok(used));
    }

    #[test]
    fn broadcast_and_outbox_bodies_round_trip_and_refuse_bad_fields() {
        let b = BroadcastMessage {
            id: [7; BROADCAST_ID_BYTES],
            kind: 1000,
            body: b"hello".to_vec(),
        };
        assert_eq!(BroadcastMessage::decode(&b.encode()), Ok(b.clone()));
        let bad = BroadcastMessage { kind: 1001, ..b };
        assert!(BroadcastMessage::decode(&bad.encode()).is_err());
        let o = OutboxConsumed {
            file: "cedar-bayou".into(),
            line: 3,
            start: 10,
            end: 20,
            peer: Some(AuthorKey([1; 32])),
            message: Some([2; 32]),
            error: None,
        };
        assert_eq!(OutboxConsumed::decode(&o.encode()), Ok(o.clone()));
        let both = OutboxConsumed {
            error: Some("x".into()),
            ..o.clone()
        };
        assert!(OutboxConsumed::decode(&both.encode()).is_err());
        let empty = OutboxConsumed { end: 10, ..o };
        assert!(OutboxConsumed::decode(&empty.encode()).is_err());
    }

    #[test]
    fn bodies_round_trip_and_refuse_bad_fields() {
        let card = PeerCard {
            peer: AuthorKey([1; 32]),
            handle: "bob@relay.example".into(),
            x25519: [2; 32],
        };
        assert_eq!(PeerCard::decode(&card.encode()), Ok(card));

        let renamed = Renamed {
            nickname: Some("foxtrot-meadow".into()),
            emoji: None,
        };
        assert_eq!(Renamed::decode(&renamed.encode()), Ok(renamed));

        let bad = Renamed {
            nickname: Some("a\u{7}b".into()),
            emoji: None,
        };
        assert!(matches!(
            Renamed::decode(&bad.encode()),
            Err(BodyError::Invalid {
                field: "nickname",
                ..
            })
        ));
        // A PeerRef is not a PeerCard.
        assert!(
            PeerCard::decode(
                &PeerRef {
                    peer: AuthorKey([1; 32])
                }
                .encode()
            )
            .is_err()
        );
    }
}
