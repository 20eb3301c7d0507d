//! The seal openers (PROTOCOL.md §19) on both sides of the AEAD: the input as a sealed box
//! (HPKE for segments and pair requests, a line box) never panics an opener, and the input as
//! the plaintext of a box that does open (sealed by the peer on the line, or with HPKE to us)
//! reaches the decoders behind it. A box opens to exactly what was sealed, under its own purpose
//! and direction only, and one flipped bit never opens.
//!
//! Shared, word for word, by the `seal_open` fuzz target and the corpus test that replays its
//! corpus (`relay/tests/relay/corpus.rs`).

use std::sync::OnceLock;

use wire_log::SecretKey;
use wire_log::line::{self, LineKeys};
use wire_log::pair::PairRequest;
use wire_log::seal::{self, Purpose};
use wire_log::segment::Segment;

/// Our key, the peer's, the line as each end derives it, and our X25519 public key (each
/// `SecretKey::x25519_public` is a scalar multiplication; the HPKE round trip below needs it).
struct Keys {
    me: SecretKey,
    peer: SecretKey,
    mine: LineKeys,
    theirs: LineKeys,
    me_x25519: [u8; 32],
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let me = SecretKey::from_seed(&[9; 32]);
        let peer = SecretKey::from_seed(&[8; 32]);
        let mine = LineKeys::derive(&me, &peer.author(), &peer.x25519_public()).expect("line");
        let theirs = LineKeys::derive(&peer, &me.author(), &me.x25519_public()).expect("line");
        let me_x25519 = me.x25519_public();
        Keys {
            me,
            peer,
            mine,
            theirs,
            me_x25519,
        }
    })
}

/// Runs one input (see the module's properties).
pub fn run(data: &[u8]) {
    let Keys {
        me,
        peer,
        mine,
        theirs,
        me_x25519,
    } = keys();
    // The input as a box someone left in our mailbox or intro queue.
    let _ = seal::open(me, Purpose::Segment, data);
    let _ = seal::open(me, Purpose::PairRequest, data);
    let _ = line::line_id(data);
    let _ = mine.open(data);

    // The input as the plaintext of a line box the peer sealed to us.
    let nonce = [data.first().copied().unwrap_or(0); 24];
    let sealed = theirs.seal_with_nonce(data, &nonce);
    assert_eq!(line::line_id(&sealed), Some(mine.recv_id()));
    assert_eq!(
        mine.open(&sealed).as_deref(),
        Ok(data),
        "a line box opens to what was sealed"
    );
    assert!(
        theirs.open(&sealed).is_err(),
        "a box opened in the direction it was sent"
    );
    if let Ok(seg) = Segment::open_line(mine, &sealed) {
        assert_eq!(seg.from, peer.author());
        assert_eq!(seg.to, me.author());
    }
    let at = usize::from(nonce[0]) % sealed.len();
    let mut flipped = sealed.clone();
    flipped[at] ^= 0x01;
    assert!(mine.open(&flipped).is_err(), "a flipped bit at {at} opened");

    // The input as the pair request inside an HPKE box to us (an intro's sealed payload): the
    // decoder behind `PairRequest::open`, on every input.
    let _ = PairRequest::decode(data, &peer.author());

    // The input sealed with HPKE to us and opened for real: it opens to exactly itself, and
    // never under the other purpose. Its seven X25519 multiplications (in hpke 0.15 the seal
    // derives an ephemeral key pair, computes its public key again and does the DH; each open
    // does the DH and computes our public key) do not depend on the input: only the AEAD and the
    // framing do. They were most of the target's time, so the round trip runs on one input in 8
    // (`round_trip`: by a hash of the input, so a replay of the same bytes takes the same path),
    // and only up to 2 KiB. The openers on the input itself as a box, above, still run on every
    // input, and so does `PairRequest::decode`.
    if data.len() <= 2048 && round_trip(data) {
        let boxed = seal::seal(me_x25519, Purpose::PairRequest, data).expect("seal");
        assert_eq!(
            seal::open(me, Purpose::PairRequest, &boxed).as_deref(),
            Ok(data)
        );
        assert!(
            seal::open(me, Purpose::Segment, &boxed).is_err(),
            "a box opened under another purpose"
        );
    }
}

/// One input in 8, chosen by the input's FNV-1a hash: deterministic, and spread over lengths
/// and contents alike.
fn round_trip(data: &[u8]) -> bool {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 8 == 0
}
