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
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
