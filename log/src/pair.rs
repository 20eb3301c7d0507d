//! The pair request: what a dialer seals into the intro it leaves in a handle's queue.
//!
//! Wire form, normative in `docs/PROTOCOL.md` §21:
//!
//! ```text
//! request = [1, card: text (the dialer's signed agent card, JSON), endpoints: [1*4 [relay, slot]],
//!            cap: text]                      canonical CBOR, sealed with Purpose::PairRequest
//! request = [2, card, endpoints, cap, more_caps: [1*3 text]]      a capability per endpoint
//! request = [3, card, endpoints, cap, more_caps: [0*3 text], invite: bstr16]
//!                                            the same, redeeming an invite (§24)
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

/// The only pair request version this build writes or reads.
pub const PAIR_REQUEST_VERSION: u64 = 1;
/// The version of a pair request that carries a capability per endpoint (`more_caps`).
pub const PAIR_REQUEST_VERSION_CAPS: u64 = 2;
/// The version of a pair request that names an invite it redeems (PROTOCOL.md §24).
pub const PAIR_REQUEST_VERSION_INVITE: u64 = 3;

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
        "pair request version {0} is not supported (this build reads versions {PAIR_REQUEST_VERSION} to {PAIR_REQUEST_VERSION_INVITE})"
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
    /// One capability per endpoint after the first, or empty when `cap` serves them all.
    pub more_caps: Vec<String>,
    /// The invite this request redeems (version 3), if any.
    pub invite: Option<InviteNonce>,
}

impl PairRequest {
    /// Builds the sealed payload of an intro: our card, where to reach us and the capability
    /// that lets the callee answer, sealed to the callee's X25519 key.
    pub fn seal(
        card: &SignedCard,
        endpoints: &[Endpoint],
        cap: &str,
        more_caps: &[String],
        to_x25519: &[u8; 32],
    ) -> Result<Vec<u8>, PairRequestError> {
        let plain = Self::encode_plain(card, endpoints, cap, more_caps, None)?;
        Self::seal_plain(&plain, to_x25519)
    }

    /// The same, naming the invite `invite` it redeems (version 3).
    pub fn seal_invite(
        card: &SignedCard,
        endpoints: &[Endpoint],
        cap: &str,
        more_caps: &[String],
        invite: &InviteNonce,
        to_x25519: &[u8; 32],
    ) -> Result<Vec<u8>, PairRequestError> {
        let plain = Self::encode_plain(card, endpoints, cap, more_caps, Some(invite))?;
        Self::seal_plain(&plain, to_x25519)
    }

    fn seal_plain(plain: &[u8], to_x25519: &[u8; 32]) -> Result<Vec<u8>, PairRequestError> {
        if plain.len() + SEAL_OVERHEAD > INTRO_SEALED_MAX {
            return Err(PairRequestError::TooLarge);
        }
        Ok(seal::seal(to_x25519, Purpose::PairRequest, plain)?)
    }

    /// The plaintext of a request, checked: version 1 (one capability), 2 (one per endpoint)
    /// or 3 (naming an invite). A pairing by code seals it in its card box (PROTOCOL.md §25).
    pub fn encode_plain(
        card: &SignedCard,
        endpoints: &[Endpoint],
        cap: &str,
        more_caps: &[String],
        invite: Option<&InviteNonce>,
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
        if !more_caps.is_empty() && more_caps.len() + 1 != endpoints.len() {
            return Err(BodyError::Invalid {
                field: "more_caps",
                reason: "must hold one capability for each endpoint after the first".into(),
            }
            .into());
        }
        for c in more_caps {
            check_capability(c)?;
        }
        let card_json = serde_json::to_string(card).map_err(|e| CardError::Json(e.to_string()))?;
        let version = match (invite, more_caps.is_empty()) {
            (Some(_), _) => PAIR_REQUEST_VERSION_INVITE,
            (None, true) => PAIR_REQUEST_VERSION,
            (None, false) => PAIR_REQUEST_VERSION_CAPS,
        };
        // Do not reorder or change: the callee decodes these positions.
        let mut fields = vec![
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
        if !more_caps.is_empty() || invite.is_some() {
            fields.push(Value::Array(
                more_caps.iter().map(|c| cbor::text(c)).collect(),
            ));
        }
        if let Some(n) = invite {
            fields.push(cbor::bytes(&n.0));
        }
        Ok(cbor::encode(&Value::Array(fields)))
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
        let mut f = Fields::new_range("pair request", value, 4, 6)?;
        let version = f.uint("version")?;
        let fields = match version {
            PAIR_REQUEST_VERSION => 4,
            PAIR_REQUEST_VERSION_CAPS => 5,
            PAIR_REQUEST_VERSION_INVITE => 6,
            v => return Err(PairRequestError::Version(v)),
        };
        if f.left() + 1 != fields {
            return Err(BodyError::Invalid {
                field: "version",
                reason: format!("version {version} has {fields} fields"),
            }
            .into());
        }
        let card_json = f.text("card")?;
        let items = f.array("endpoints", ENDPOINTS_MAX)?;
        let cap = f.text("cap")?;
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
        let mut more_caps = Vec::new();
        if f.left() > 0 {
            let items = f.array("more_caps", ENDPOINTS_MAX)?;
            // Version 3 may leave it empty (one capability for every endpoint); version 2 not.
            let may_be_empty = version == PAIR_REQUEST_VERSION_INVITE;
            if (items.is_empty() && !may_be_empty)
                || (!items.is_empty() && items.len() + 1 != endpoints.len())
            {
                return Err(BodyError::Invalid {
                    field: "more_caps",
                    reason: "must hold one capability for each endpoint after the first".into(),
                }
                .into());
            }
            for item in items {
                let Value::Text(c) = item else {
                    return Err(BodyError::Invalid {
                        field: "more_caps",
                        reason: "must hold text strings".into(),
                    }
                    .into());
                };
                check_capability(&c)?;
                more_caps.push(c);
            }
        }
        let invite = if f.left() > 0 {
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
        let card = SignedCard::from_json(card_json.as_bytes())?.verify()?;
        if from.is_some_and(|f| card.key != *f) {
            return Err(PairRequestError::CardMismatch);
        }
        Ok(PairRequest {
            card,
            endpoints,
            cap,
            more_caps,
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
            PairRequest::seal(&card, &endpoints, &cap, &[], &bob.x25519_public()).expect("seal");
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
        assert!(PairRequest::seal(&card, &[], &cap, &[], &bob.x25519_public()).is_err());
        assert!(
            PairRequest::seal(&card, &endpoints, "wac1_short", &[], &bob.x25519_public()).is_err()
        );
    }

    #[test]
    fn a_request_that_redeems_an_invite_names_it_as_version_3() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let bob = SecretKey::from_seed(&[2; 32]);
        let card = SignedCard::sign(&alice, "alice@127.0.0.1:8771", 5).expect("card");
        let endpoints = [Endpoint {
            relay: "http://127.0.0.1:8771".into(),
            slot: "00112233445566778899aabbccddeeff".into(),
        }];
        let cap = format!("wac1_{}", "A".repeat(43));
        let nonce = InviteNonce([7; 16]);
        let sealed =
            PairRequest::seal_invite(&card, &endpoints, &cap, &[], &nonce, &bob.x25519_public())
                .expect("seal");
        let intro = Intro::sign(&alice, "bob@127.0.0.1:8771", 9, sealed).expect("intro");
        let req = PairRequest::open(&bob, &intro).expect("open");
        assert_eq!(req.invite, Some(nonce));
        assert!(req.more_caps.is_empty());
        let plain = PairRequest::encode_plain(&card, &endpoints, &cap, &[], None).expect("plain");
        assert_eq!(PairRequest::decode_own(&plain).expect("own").invite, None);
    }

    #[test]
    fn a_request_carries_one_capability_per_endpoint_as_version_2() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let card = SignedCard::sign(&alice, "alice@127.0.0.1:8771", 5).expect("card");
        let endpoints = [
            Endpoint {
                relay: "http://127.0.0.1:8771".into(),
                slot: "00112233445566778899aabbccddeeff".into(),
            },
            Endpoint {
                relay: "https://relay.example".into(),
                slot: "ffeeddccbbaa99887766554433221100".into(),
            },
        ];
        let (cap, other) = (
            format!("wac1_{}", "A".repeat(43)),
            format!("wac1_{}", "B".repeat(43)),
        );
        let card_json = serde_json::to_string(&card).expect("json");
        let plain = |version: u64, more: Option<Vec<Value>>| {
            let mut v = vec![
                cbor::uint(version),
                cbor::text(&card_json),
                Value::Array(
                    endpoints
                        .iter()
                        .map(|e| Value::Array(vec![cbor::text(&e.relay), cbor::text(&e.slot)]))
                        .collect(),
                ),
                cbor::text(&cap),
            ];
            v.extend(more.map(Value::Array));
            cbor::encode(&Value::Array(v))
        };
        let two = plain(2, Some(vec![cbor::text(&other)]));
        let req = PairRequest::decode(&two, &alice.author()).expect("version 2");
        assert_eq!(req.more_caps, std::slice::from_ref(&other));
        let one = PairRequest::decode(&plain(1, None), &alice.author()).expect("version 1");
        assert!(one.more_caps.is_empty());
        // Each version has exactly its own shape.
        for (bad, why) in [
            (
                plain(1, Some(vec![cbor::text(&other)])),
                "v1 with more_caps",
            ),
            (plain(2, None), "v2 without more_caps"),
            (plain(2, Some(vec![])), "v2 with an empty list"),
            (
                plain(2, Some(vec![cbor::text(&other), cbor::text(&other)])),
                "more caps than endpoints",
            ),
            (
                plain(2, Some(vec![cbor::text("wac1_short")])),
                "a bad capability",
            ),
        ] {
            assert!(PairRequest::decode(&bad, &alice.author()).is_err(), "{why}");
        }
        let bob = SecretKey::from_seed(&[2; 32]);
        assert!(
            PairRequest::seal(
                &card,
                &endpoints,
                &cap,
                &[other.clone(), other],
                &bob.x25519_public()
            )
            .is_err()
        );
    }
}
