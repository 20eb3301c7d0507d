//! Small fixed-size types that name things in the log: authors, logs, events, signatures.

use std::fmt;

/// Writes the first 8 bytes as hex, which is enough to tell values apart in messages.
fn short_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes.iter().take(8) {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Full lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses full lowercase or uppercase hex of the exact length.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                short_hex(&self.0, f)?;
                write!(f, "..)")
            }
        }

        impl serde::Serialize for $name {
            /// Hex in human-readable formats (JSON), a byte string otherwise (CBOR).
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} bytes or {} hex digits", $len, 2 * $len)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_hex(v).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        <[u8; $len]>::try_from(v)
                            .map($name)
                            .map_err(|_| E::invalid_length(v.len(), &self))
                    }
                }
                if d.is_human_readable() {
                    d.deserialize_str(V)
                } else {
                    d.deserialize_bytes(V)
                }
            }
        }

        impl fmt::Display for $name {
            /// The first 16 hex digits: short enough for prose, long enough to be unique in practice.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                short_hex(&self.0, f)
            }
        }
    };
}

fixed_bytes!(
    /// An Ed25519 public key: the author of events, and the identity of an agent.
    AuthorKey,
    32
);
fixed_bytes!(
    /// Names one log: a session's self log, or the pair log two agents share.
    LogId,
    32
);
fixed_bytes!(
    /// BLAKE3 (derive-key mode) of an event's canonical encoding.
    EventId,
    32
);
fixed_bytes!(
    /// An Ed25519 signature over an [`EventId`].
    Signature,
    64
);

/// Derive-key context for log ids. Fixed forever: changing it renames every log.
const LOG_ID_CONTEXT: &str = "wire 2026-11-25 log id v1";

impl LogId {
    /// The self log of a session: its identity, renames, pins and decisions.
    pub fn self_log(author: &AuthorKey) -> Self {
        let mut material = Vec::with_capacity(4 + 32);
        material.extend_from_slice(b"self");
        material.extend_from_slice(&author.0);
        Self(blake3::derive_key(LOG_ID_CONTEXT, &material))
    }

    /// The pair log two agents share. Symmetric: both sides compute the same id.
    pub fn pair_log(a: &AuthorKey, b: &AuthorKey) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut material = Vec::with_capacity(4 + 64);
        material.extend_from_slice(b"pair");
        material.extend_from_slice(&lo.0);
        material.extend_from_slice(&hi.0);
        Self(blake3::derive_key(LOG_ID_CONTEXT, &material))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_log_is_symmetric_and_distinct_from_self_logs() {
        let a = AuthorKey([1; 32]);
        let b = AuthorKey([2; 32]);
        assert_eq!(LogId::pair_log(&a, &b), LogId::pair_log(&b, &a));
        assert_ne!(LogId::pair_log(&a, &b), LogId::self_log(&a));
        assert_ne!(LogId::self_log(&a), LogId::self_log(&b));
    }

    #[test]
    fn hex_round_trips_and_debug_is_short() {
        let id = EventId([0xab; 32]);
        assert_eq!(EventId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(EventId::from_hex("abc"), None);
        assert_eq!(format!("{id:?}"), "EventId(abababababababab..)");
    }
}
