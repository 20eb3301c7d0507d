//! The pair request: what a dialer seals into the intro it leaves in a handle's queue.
//!
//! Wire form, normative in `docs/PROTOCOL.md` §21:
//!
//! ```text
//! request = [1, card: text (the dialer's signed agent card, JSON), endpoints: [1*4 [relay, slot]],
//!            cap: text]                      canonical CBOR, sealed with Purpose::PairRequest
//! request = [2, card, endpoints, cap, invite: bstr16]     the same, redeeming an invite (§24)
//! ```
//!
//! The intro envelope around it is signed by the dialer; the card inside must be signed by the
//! same key. The endpoints and the capability let the callee answer once its operator accepts:
//! dialing is the dialer's consent to hear back.

use ciborium::Value;

use crate::body::{BodyError, ENDPOINTS_MAX, Endpoint, check_capability};
use crate::card::{CardError, SignedCard, VerifiedCard};
use crate::cbor::{self, CborError, FieldError, Fields};
use crate::intro::{INTRO_SEALED_MAX, Intro};
use crate::invite::InviteNonce;
use crate::keyfile::SecretKey;
use crate::seal::{self, Purpose, SEAL_OVERHEAD, SealError};
use crate::types::AuthorKey;

/// The pair request version of a plain dial.
pub const PAIR_REQUEST_VERSION: u64 = 1;

/// The pair request version that names an invite it redeems.
pub const PAIR_REQUEST_INVITE_VERSION: u64 = 2;

/// Why a pair request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairRequestError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("pair request is not canonical CBOR: {0}")]
    Cbor(#[from] CborError),
    #[error("pair request is malformed: {0}")]
    Field(#[from] FieldError),
    #[error("pair request: {0}")]
    Body(#[from] BodyError),
    #[error(
        "pair request version {0} is not supported (this build reads versions {PAIR_REQUEST_VERSION} and {PAIR_REQUEST_INVITE_VERSION})"
    )]
    Version(u64),
    #[error("pair request card: {0}")]
    Card(#[from] CardError),
    #[error("the card in the pair request belongs to another key than the intro's sender")]
    CardMismatch,
    #[error("pair request is too large to fit an intro")]
    TooLarge,
}

/// A checked pair request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    pub card: VerifiedCard,
    pub endpoints: Vec<Endpoint>,
    pub cap: String,
    /// The invite this request redeems (version 2), if any.
    pub invite: Option<InviteNonce>,
}

impl PairRequest {
    /// Builds the sealed payload of an intro: our card, where to reach us and the capability
    /// that lets the callee answer, sealed to the callee's X25519 key.
    pub fn seal(
        card: &SignedCard,
        endpoints: &[Endpoint],
        cap: &str,
        invite: Option<&InviteNonce>,
        to_x25519: &[u8; 32],
    ) -> Result<Vec<u8>, PairRequestError> {
        if endpoints.is_empty() || endpoints.len() > ENDPOINTS_MAX {
            return Err(BodyError::Invalid {
                field: "endpoints",
                reason: format!("must list 1 to {ENDPOINTS_MAX} endpoints"),
            }
            .into());
        }
        for e in endpoints {
            e.check()?;
        }
        check_capability(cap)?;
        let card_json = serde_json::to_string(card).map_err(|e| CardError::Json(e.to_string()))?;
        let version = match invite {
            None => PAIR_REQUEST_VERSION,
            Some(_) => PAIR_REQUEST_INVITE_VERSION,
        };
        let mut items = vec![
            cbor::uint(version),
            cbor::text(&card_json),
            Value::Array(
                endpoints
                    .iter()
                    .map(|e| Value::Array(vec![cbor::text(&e.relay), cbor::text(&e.slot)]))
                    .collect(),
            ),
            cbor::text(cap),
        ];
        if let Some(n) = invite {
            items.push(cbor::bytes(&n.0));
        }
        let plain = cbor::encode(&Value::Array(items));
        if plain.len() + SEAL_OVERHEAD > INTRO_SEALED_MAX {
            return Err(PairRequestError::TooLarge);
        }
        Ok(seal::seal(to_x25519, Purpose::PairRequest, &plain)?)
    }

    /// The version-1 plaintext: what a pairing by code seals in its card box (PROTOCOL.md §25).
    pub fn encode_plain(
        card: &SignedCard,
        endpoints: &[Endpoint],
        cap: &str,
    ) -> Result<Vec<u8>, PairRequestError> {
        if endpoints.is_empty() || endpoints.len() > ENDPOINTS_MAX {
            return Err(BodyError::Invalid {
                field: "endpoints",
                reason: format!("must list 1 to {ENDPOINTS_MAX} endpoints"),
            }
            .into());
        }
        for e in endpoints {
            e.check()?;
        }
        check_capability(cap)?;
        let card_json = serde_json::to_string(card).map_err(|e| CardError::Json(e.to_string()))?;
        Ok(cbor::encode(&Value::Array(vec![
            cbor::uint(PAIR_REQUEST_VERSION),
            cbor::text(&card_json),
            Value::Array(
                endpoints
                    .iter()
                    .map(|e| Value::Array(vec![cbor::text(&e.relay), cbor::text(&e.slot)]))
                    .collect(),
            ),
            cbor::text(cap),
        ])))
    }

    /// Checks a plaintext whose sender is whoever its card names (a card box, where the AEAD
    /// key, not a signature, says who wrote it).
    pub fn decode_own(plain: &[u8]) -> Result<PairRequest, PairRequestError> {
        Self::decode_from(plain, None)
    }

    /// Opens the request inside a checked intro and checks it: the card verifies and belongs to
    /// the intro's sender, the endpoints and capability are well-formed.
    pub fn open(key: &SecretKey, intro: &Intro) -> Result<PairRequest, PairRequestError> {
        let plain = seal::open(key, Purpose::PairRequest, &intro.sealed)?;
        Self::decode(&plain, &intro.from)
    }

    /// Checks an opened request from `from`.
    pub fn decode(plain: &[u8], from: &AuthorKey) -> Result<PairRequest, PairRequestError> {
        Self::decode_from(plain, Some(from))
    }

    fn decode_from(
        plain: &[u8],
        from: Option<&AuthorKey>,
    ) -> Result<PairRequest, PairRequestError> {
        let value = cbor::decode_canonical(plain, INTRO_SEALED_MAX)?;
        // The version (the first item) says how many items follow.
        let version = match &value {
            Value::Array(items) => items.first().and_then(|v| v.as_integer()),
            _ => None,
        }
        .and_then(|v| u64::try_from(v).ok());
        let len = match version {
            Some(PAIR_REQUEST_VERSION) => 4,
            Some(PAIR_REQUEST_INVITE_VERSION) => 5,
            Some(v) => return Err(PairRequestError::Version(v)),
            None => 4,
        };
        let mut f = Fields::new("pair request", value, len)?;
        let version = f.uint("version")?;
        let card_json = f.text("card")?;
        let items = f.array("endpoints", ENDPOINTS_MAX)?;
        let cap = f.text("cap")?;
        let invite = if version == PAIR_REQUEST_INVITE_VERSION {
            let n = f.bytes("invite")?;
            Some(InviteNonce(<[u8; 16]>::try_from(n.as_slice()).map_err(
                |_| FieldError {
                    what: "pair request",
                    problem: "field invite is not 16 bytes".into(),
                },
            )?))
        } else {
            None
        };
        if items.is_empty() {
            return Err(BodyError::Invalid {
                field: "endpoints",
                reason: "must list at least one endpoint".into(),
            }
            .into());
        }
        let mut endpoints = Vec::with_capacity(items.len());
        for item in items {
            let mut e = Fields::new("endpoint", item, 2)?;
            let endpoint = Endpoint {
                relay: e.text("relay")?,
                slot: e.text("slot")?,
            };
            endpoint.check()?;
            endpoints.push(endpoint);
        }
        check_capability(&cap)?;
        let card = SignedCard::from_json(card_json.as_bytes())?.verify()?;
        if from.is_some_and(|f| card.key != *f) {
            return Err(PairRequestError::CardMismatch);
        }
        Ok(PairRequest {
            card,
            endpoints,
            cap,
            invite,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_opens_for_its_callee_and_checks_the_card_owner() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let bob = SecretKey::from_seed(&[2; 32]);
        let card = SignedCard::sign(&alice, "alice@127.0.0.1:8771", 5).expect("card");
        let endpoints = [Endpoint {
            relay: "http://127.0.0.1:8771".into(),
            slot: "00112233445566778899aabbccddeeff".into(),
        }];
        let cap = format!("wac1_{}", "A".repeat(43));
        let sealed =
            PairRequest::seal(&card, &endpoints, &cap, None, &bob.x25519_public()).expect("seal");
        let intro = Intro::sign(&alice, "bob@127.0.0.1:8771", 9, sealed.clone()).expect("intro");
        let req = PairRequest::open(&bob, &intro).expect("open");
        assert_eq!(req.card.key, alice.author());
        assert_eq!(req.endpoints, endpoints);
        assert_eq!(req.cap, cap);

        // The same sealed request forwarded by someone else is refused.
        let mallory = SecretKey::from_seed(&[4; 32]);
        let forwarded = Intro::sign(&mallory, "bob@127.0.0.1:8771", 9, sealed).expect("intro");
        assert_eq!(
            PairRequest::open(&bob, &forwarded),
            Err(PairRequestError::CardMismatch)
        );
        assert!(PairRequest::seal(&card, &[], &cap, None, &bob.x25519_public()).is_err());
        assert!(
            PairRequest::seal(&card, &endpoints, "wac1_short", None, &bob.x25519_public()).is_err()
        );
        assert_eq!(req.invite, None);

        // A request that redeems an invite names it, and the name survives the seal.
        let nonce = InviteNonce([7; 16]);
        let sealed = PairRequest::seal(&card, &endpoints, &cap, Some(&nonce), &bob.x25519_public())
            .expect("seal");
        let intro = Intro::sign(&alice, "bob@127.0.0.1:8771", 9, sealed).expect("intro");
        assert_eq!(
            PairRequest::open(&bob, &intro).expect("open").invite,
            Some(nonce)
        );
    }
}
