//! Pairing by a spoken code: the code phrase, the pair-slot id a relay keys the exchange by,
//! the SPAKE2 messages, the short authentication string (SAS) both operators compare, and the
//! AEAD boxes that carry each side's card once its operator confirmed.
//!
//! Normative in `docs/PROTOCOL.md` §25:
//!
//! ```text
//! code        = NNNN "-" adj "-" noun "-" adj "-" noun      (4 digits, then our word lists)
//! slot        = BLAKE3-derive-key("wire 2026-12-01 pair slot v1", NNNN)[0..16]     as hex
//! host hello  = [1, flags: uint, spake2 msg A: bstr33]     flags bit 0: the SAS must be typed
//! join hello  = [1, spake2 msg B: bstr33]
//! K           = SPAKE2-Ed25519(password = code, idA = "wire pair host v1", idB = "wire pair join v1")
//! transcript  = BLAKE3-derive-key("wire 2026-12-01 pair transcript v1", K ‖ host hello ‖ join hello)
//! sas         = BLAKE3-derive-key("wire 2026-12-01 pair sas v1", transcript)
//!               digits = u32be(sas[0..4]) mod 10^6 (6 digits), emoji = EMOJI[sas[4..8][i] & 0x7f]
//! aead key    = BLAKE3-derive-key("wire 2026-12-01 pair aead v1", transcript)
//! card box    = 0x03 ‖ nonce (24) ‖ XChaCha20-Poly1305(aead key, nonce, bundle, aad = 0x03 ‖ side)
//! bundle      = a version 1 or 2 pair request: [1, card, endpoints, cap] or [2, …, more_caps]
//! ```
//!
//! Only the nameplate (`NNNN`) is hashed into the slot id: hashing the whole code would let the
//! relay, which sees the slot id, test every code offline. The words stay between the two
//! operators, and an online guess costs one failed pairing.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ciborium::Value;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::body::Endpoint;
use crate::card::SignedCard;
use crate::cbor::{self, CborError, FieldError, Fields};
use crate::identity::{ADJECTIVES, EMOJI, NOUNS};
use crate::pair::{PairRequest, PairRequestError};

const SLOT_CONTEXT: &str = "wire 2026-12-01 pair slot v1";
const TRANSCRIPT_CONTEXT: &str = "wire 2026-12-01 pair transcript v1";
const SAS_CONTEXT: &str = "wire 2026-12-01 pair sas v1";
const AEAD_CONTEXT: &str = "wire 2026-12-01 pair aead v1";
const ID_HOST: &[u8] = b"wire pair host v1";
const ID_JOIN: &[u8] = b"wire pair join v1";

/// The only hello version this build writes or reads.
pub const PAKE_VERSION: u64 = 1;
/// First byte of a card box.
pub const CARD_BOX_VERSION: u8 = 3;
/// Bytes of a SPAKE2 message (Ed25519 group: a side byte and a point).
pub const SPAKE2_MSG_BYTES: usize = 33;
/// Largest message a pair-slot cell holds.
pub const PAIR_MESSAGE_BYTES_MAX: usize = 8 * 1024;
/// Host flag: both operators must type the SAS digits, not just answer yes.
pub const FLAG_REQUIRE_SAS: u64 = 1;
/// How many emoji a SAS shows beside its digits.
pub const SAS_EMOJI: usize = 4;

const NONCE_BYTES: usize = 24;
const CARD_BOX_OVERHEAD: usize = 1 + NONCE_BYTES + 16;

/// Which side of a pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Host,
    Join,
}

impl Side {
    fn byte(self) -> u8 {
        match self {
            Side::Host => 1,
            Side::Join => 2,
        }
    }

    /// `host` or `join`, as the relay's paths spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Host => "host",
            Side::Join => "join",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Host => Side::Join,
            Side::Join => Side::Host,
        }
    }
}

/// Why a code, a hello or a card box was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PakeError {
    #[error(
        "`{0}` is not a pairing code: it is four digits and four words, like 4821-brave-otter-quiet-meadow; check what the host's screen shows"
    )]
    Code(String),
    #[error("the pairing message is malformed: {0}")]
    Malformed(String),
    #[error(
        "pairing message version {0} is not supported (this build reads version {PAKE_VERSION})"
    )]
    Version(u64),
    #[error(
        "the key exchange failed ({0}): the other side is not running wire's pairing, or the relay changed its message"
    )]
    Spake2(String),
    #[error(
        "the other side's card does not open under our key: the code was wrong on one side, or someone in the middle changed the exchange; nothing was paired, start again with a new code"
    )]
    Open,
    #[error("the card the other side sent is not acceptable: {0}")]
    Bundle(#[from] PairRequestError),
}

impl From<CborError> for PakeError {
    fn from(e: CborError) -> Self {
        PakeError::Malformed(e.to_string())
    }
}

impl From<FieldError> for PakeError {
    fn from(e: FieldError) -> Self {
        PakeError::Malformed(e.to_string())
    }
}

/// A code phrase: a 4-digit nameplate and four words (about 45 bits).
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The words are the secret: only the nameplate is printed.
        write!(f, "Code({}-..)", self.nameplate())
    }
}

impl Code {
    /// A fresh code from the operating system's random source.
    pub fn generate() -> Code {
        let mut r = [0u8; 6];
        rand::fill(&mut r[..]);
        let nameplate = u16::from_be_bytes([r[0], r[1]]) % 10_000;
        Code(format!(
            "{nameplate:04}-{}-{}-{}-{}",
            ADJECTIVES[usize::from(r[2])],
            NOUNS[usize::from(r[3])],
            ADJECTIVES[usize::from(r[4])],
            NOUNS[usize::from(r[5])]
        ))
    }

    /// Parses what an operator typed: any case, words separated by `-` or spaces.
    pub fn parse(text: &str) -> Result<Code, PakeError> {
        let bad = || PakeError::Code(text.chars().take(80).collect());
        if text.len() > 128 {
            return Err(bad());
        }
        let lower = text.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let [n, a1, n1, a2, n2] = parts.as_slice() else {
            return Err(bad());
        };
        if n.len() != 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        for (w, list) in [(a1, ADJECTIVES), (n1, NOUNS), (a2, ADJECTIVES), (n2, NOUNS)] {
            if !list.contains(w) {
                return Err(bad());
            }
        }
        Ok(Code(format!("{n}-{a1}-{n1}-{a2}-{n2}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The four digits before the words: the only part the relay learns (through the slot id).
    pub fn nameplate(&self) -> &str {
        &self.0[..4]
    }

    /// The relay's pair-slot id for this code: 32 lower-case hex characters.
    pub fn slot(&self) -> String {
        slot_of(self.nameplate())
    }
}

/// The pair-slot id of a nameplate.
pub fn slot_of(nameplate: &str) -> String {
    hex::encode(&blake3::derive_key(SLOT_CONTEXT, nameplate.as_bytes())[..16])
}

/// The host's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHello {
    pub flags: u64,
    pub spake: Vec<u8>,
}

impl HostHello {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::uint(PAKE_VERSION),
            cbor::uint(self.flags),
            cbor::bytes(&self.spake),
        ]))
    }

    pub fn decode(bytes: &[u8]) -> Result<HostHello, PakeError> {
        let mut f = Fields::new("host hello", cbor::decode_canonical(bytes, 256)?, 3)?;
        let version = f.uint("version")?;
        if version != PAKE_VERSION {
            return Err(PakeError::Version(version));
        }
        let flags = f.uint("flags")?;
        let spake = f.bytes("spake2")?;
        if spake.len() != SPAKE2_MSG_BYTES {
            return Err(PakeError::Malformed(
                "the SPAKE2 message is not 33 bytes".into(),
            ));
        }
        Ok(HostHello { flags, spake })
    }

    pub fn require_sas(&self) -> bool {
        self.flags & FLAG_REQUIRE_SAS != 0
    }
}

/// The joiner's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinHello {
    pub spake: Vec<u8>,
}

impl JoinHello {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::uint(PAKE_VERSION),
            cbor::bytes(&self.spake),
        ]))
    }

    pub fn decode(bytes: &[u8]) -> Result<JoinHello, PakeError> {
        let mut f = Fields::new("join hello", cbor::decode_canonical(bytes, 256)?, 2)?;
        let version = f.uint("version")?;
        if version != PAKE_VERSION {
            return Err(PakeError::Version(version));
        }
        let spake = f.bytes("spake2")?;
        if spake.len() != SPAKE2_MSG_BYTES {
            return Err(PakeError::Malformed(
                "the SPAKE2 message is not 33 bytes".into(),
            ));
        }
        Ok(JoinHello { spake })
    }
}

/// One side's SPAKE2 state, from its first message until the other's arrives.
pub struct Exchange {
    side: Side,
    state: Spake2<Ed25519Group>,
    hello: Vec<u8>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Exchange({:?}, ..)", self.side)
    }
}

impl Exchange {
    /// Starts the host's side; `hello` is what it posts first.
    pub fn host(code: &Code, flags: u64) -> Exchange {
        let (state, msg) = Spake2::<Ed25519Group>::start_a(
            &Password::new(code.as_str().as_bytes()),
            &Identity::new(ID_HOST),
            &Identity::new(ID_JOIN),
        );
        let hello = HostHello { flags, spake: msg }.encode();
        Exchange {
            side: Side::Host,
            state,
            hello,
        }
    }

    /// Starts the joiner's side.
    pub fn join(code: &Code) -> Exchange {
        let (state, msg) = Spake2::<Ed25519Group>::start_b(
            &Password::new(code.as_str().as_bytes()),
            &Identity::new(ID_HOST),
            &Identity::new(ID_JOIN),
        );
        let hello = JoinHello { spake: msg }.encode();
        Exchange {
            side: Side::Join,
            state,
            hello,
        }
    }

    /// Our first message.
    pub fn hello(&self) -> &[u8] {
        &self.hello
    }

    /// Finishes with the other side's first message: the keys both sides hold if the codes
    /// matched and nobody changed a message. Nothing here can tell a wrong code: the SAS and
    /// the card boxes do.
    pub fn finish(self, their_hello: &[u8]) -> Result<Keys, PakeError> {
        let (host_hello, join_hello, spake) = match self.side {
            Side::Host => {
                let j = JoinHello::decode(their_hello)?;
                (self.hello.clone(), their_hello.to_vec(), j.spake)
            }
            Side::Join => {
                let h = HostHello::decode(their_hello)?;
                (their_hello.to_vec(), self.hello.clone(), h.spake)
            }
        };
        let k = self
            .state
            .finish(&spake)
            .map_err(|e| PakeError::Spake2(format!("{e:?}")))?;
        let k: [u8; 32] = k
            .try_into()
            .map_err(|_| PakeError::Spake2("the shared key is not 32 bytes".into()))?;
        Ok(Keys::derive(self.side, &k, &host_hello, &join_hello))
    }
}

/// What both sides derive from the SPAKE2 key and the two hellos.
pub struct Keys {
    side: Side,
    transcript: [u8; 32],
    aead: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({:?}, ..)", self.side)
    }
}

/// The short authentication string: six digits and a few emoji (with ASCII tags).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sas {
    pub digits: String,
    pub emoji: Vec<String>,
    pub tags: Vec<String>,
}

impl Sas {
    /// `123 456  🐅 🦊 🐙 🌵`, or the tags where emoji can't render.
    pub fn display(&self, emoji: bool) -> String {
        let pics = if emoji { &self.emoji } else { &self.tags };
        format!(
            "{} {}  {}",
            &self.digits[..3],
            &self.digits[3..],
            pics.join(" ")
        )
    }

    /// Whether what an operator typed is these digits (spaces and dashes ignored).
    pub fn matches(&self, typed: &str) -> bool {
        let t: String = typed.chars().filter(|c| c.is_ascii_digit()).collect();
        let extra = typed
            .chars()
            .any(|c| !c.is_ascii_digit() && c != ' ' && c != '-');
        !extra && t == self.digits
    }
}

/// The SAS of a transcript hash.
pub fn sas_of(transcript: &[u8; 32]) -> Sas {
    let h = blake3::derive_key(SAS_CONTEXT, transcript);
    let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
    let picks: Vec<(&str, &str)> = h[4..4 + SAS_EMOJI]
        .iter()
        .map(|b| EMOJI[usize::from(b & 0x7f)])
        .collect();
    Sas {
        digits: format!("{n:06}"),
        emoji: picks.iter().map(|(e, _)| (*e).to_owned()).collect(),
        tags: picks.iter().map(|(_, t)| format!("[{t}]")).collect(),
    }
}

/// The transcript hash of a SPAKE2 key and the two hellos.
pub fn transcript_of(k: &[u8; 32], host_hello: &[u8], join_hello: &[u8]) -> [u8; 32] {
    let mut m = Vec::with_capacity(32 + host_hello.len() + join_hello.len());
    m.extend_from_slice(k);
    m.extend_from_slice(host_hello);
    m.extend_from_slice(join_hello);
    blake3::derive_key(TRANSCRIPT_CONTEXT, &m)
}

/// The AEAD key of a transcript hash.
pub fn aead_key_of(transcript: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(AEAD_CONTEXT, transcript)
}

impl Keys {
    /// Derives from a SPAKE2 key (public for vectors and tests).
    pub fn derive(side: Side, k: &[u8; 32], host_hello: &[u8], join_hello: &[u8]) -> Keys {
        let transcript = transcript_of(k, host_hello, join_hello);
        Keys {
            side,
            transcript,
            aead: aead_key_of(&transcript),
        }
    }

    pub fn sas(&self) -> Sas {
        sas_of(&self.transcript)
    }

    /// Seals our card, endpoints and the capability we minted for the other side.
    pub fn seal_card(
        &self,
        card: &SignedCard,
        endpoints: &[Endpoint],
        cap: &str,
        more_caps: &[String],
    ) -> Result<Vec<u8>, PakeError> {
        let plain = PairRequest::encode_plain(card, endpoints, cap, more_caps, None)?;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::fill(&mut nonce[..]);
        Ok(self.seal_with_nonce(self.side, &plain, &nonce))
    }

    #[doc(hidden)]
    pub fn seal_with_nonce(&self, side: Side, plain: &[u8], nonce: &[u8; NONCE_BYTES]) -> Vec<u8> {
        let aad = [CARD_BOX_VERSION, side.byte()];
        let ct = XChaCha20Poly1305::new((&self.aead).into())
            .encrypt(
                &XNonce::from(*nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            // ChaCha20 refuses only plaintexts past 256 GiB; a bundle is a few KiB.
            .expect("a plaintext under 256 GiB always seals");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + ct.len());
        out.push(CARD_BOX_VERSION);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens the other side's card box and checks the bundle in it.
    pub fn open_card(&self, sealed: &[u8]) -> Result<PairRequest, PakeError> {
        let plain = open_box(&self.aead, self.side.other(), sealed)?;
        Ok(PairRequest::decode_own(&plain)?)
    }
}

/// Opens a card box written by `side` under `key`.
pub fn open_box(key: &[u8; 32], side: Side, sealed: &[u8]) -> Result<Vec<u8>, PakeError> {
    if sealed.len() < CARD_BOX_OVERHEAD
        || sealed.len() > PAIR_MESSAGE_BYTES_MAX
        || sealed[0] != CARD_BOX_VERSION
    {
        return Err(PakeError::Open);
    }
    let nonce: [u8; NONCE_BYTES] = sealed[1..1 + NONCE_BYTES]
        .try_into()
        .map_err(|_| PakeError::Open)?;
    let aad = [CARD_BOX_VERSION, side.byte()];
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &sealed[1 + NONCE_BYTES..],
                aad: &aad,
            },
        )
        .map_err(|_| PakeError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::SecretKey;

    fn endpoints() -> Vec<Endpoint> {
        vec![Endpoint {
            relay: "http://127.0.0.1:8771".into(),
            slot: "00112233445566778899aabbccddeeff".into(),
        }]
    }

    #[test]
    fn codes_parse_in_any_spelling_and_refuse_strangers() {
        for _ in 0..50 {
            let c = Code::generate();
            assert_eq!(Code::parse(c.as_str()), Ok(c.clone()));
            let spoken = c.as_str().replace('-', " ").to_uppercase();
            assert_eq!(Code::parse(&spoken), Ok(c.clone()));
            assert_eq!(c.slot().len(), 32);
        }
        for bad in [
            "",
            "4821",
            "482-brave-otter-quiet-meadow",
            "4821-otter-brave-quiet-meadow",
            "4821-brave-otter-quiet-meadow-x",
            "abcd-brave-otter-quiet-meadow",
        ] {
            assert!(Code::parse(bad).is_err(), "{bad}");
        }
        let c = Code::generate();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(&c.as_str()[5..]),
            "Debug shows the words: {shown}"
        );
    }

    #[test]
    fn matching_codes_agree_and_a_wrong_code_fails_closed() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let card = SignedCard::sign(&alice, "alice@127.0.0.1:8771", 5).expect("card");
        let cap = format!("wac1_{}", "A".repeat(43));
        let code = Code::generate();
        let host = Exchange::host(&code, FLAG_REQUIRE_SAS);
        let join = Exchange::join(&Code::parse(code.as_str()).expect("code"));
        let (hh, jh) = (host.hello().to_vec(), join.hello().to_vec());
        assert!(HostHello::decode(&hh).expect("hello").require_sas());
        let hk = host.finish(&jh).expect("host");
        let jk = join.finish(&hh).expect("join");
        assert_eq!(hk.sas(), jk.sas());
        let sealed = hk.seal_card(&card, &endpoints(), &cap, &[]).expect("seal");
        let got = jk.open_card(&sealed).expect("open");
        assert_eq!(got.card.key, alice.author());
        // A box cannot be reflected to its writer.
        assert_eq!(hk.open_card(&sealed).err(), Some(PakeError::Open));

        // A different code on one side: different SAS, and the box does not open.
        let other = loop {
            let c = Code::generate();
            if c != code {
                break c;
            }
        };
        let host = Exchange::host(&code, 0);
        let join = Exchange::join(&other);
        let (hh, jh) = (host.hello().to_vec(), join.hello().to_vec());
        let hk = host.finish(&jh).expect("host");
        let jk = join.finish(&hh).expect("join");
        assert_ne!(hk.sas(), jk.sas());
        let sealed = hk.seal_card(&card, &endpoints(), &cap, &[]).expect("seal");
        assert_eq!(jk.open_card(&sealed).err(), Some(PakeError::Open));
    }

    #[test]
    fn the_sas_matches_only_its_digits() {
        let sas = sas_of(&[7; 32]);
        assert!(sas.matches(&sas.digits));
        assert!(sas.matches(&format!("{} {}", &sas.digits[..3], &sas.digits[3..])));
        assert!(!sas.matches("000000") || sas.digits == "000000");
        assert!(!sas.matches(&format!("{}x", sas.digits)));
        assert_eq!(sas.emoji.len(), SAS_EMOJI);
    }
}
