//! Line keys: the symmetric keys two paired agents derive once from their X25519 keys, and the
//! line box (seal version 2) that carries segments between them.
//!
//! Wire form, normative in `docs/PROTOCOL.md` §19.2:
//!
//! ```text
//! dh       = X25519(our secret, their public)           (an all-zero result is refused)
//! key(a→b) = BLAKE3-derive-key("wire 2026-12-01 line key v1", dh ‖ a ‖ b)      a, b: Ed25519
//! id(a→b)  = first 16 bytes of BLAKE3-derive-key("wire 2026-12-01 line id v1", key(a→b))
//! box      = 0x02 ‖ id(a→b) ‖ nonce (24 random bytes) ‖ XChaCha20-Poly1305(key(a→b), nonce,
//!            plaintext, aad = 0x02 ‖ id(a→b))
//! ```
//!
//! Only `a` and `b` can compute `key(a→b)`, and each direction has its own key, so a box that
//! opens under `key(a→b)` was written by `a` (its recipient `b` knows it did not write it). The
//! id tells the recipient which key to use without a trial per peer; it is a pseudonym of the
//! direction, which the relay could already link by the capability each peer appends with.
//! Versus HPKE per box (§19.1) this costs an AEAD instead of a Diffie-Hellman on each side, and
//! gives up the sender-side ephemeral key: see THREAT_MODEL.md.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::keyfile::SecretKey;
use crate::seal::SealError;
use crate::types::AuthorKey;

const KEY_CONTEXT: &str = "wire 2026-12-01 line key v1";
const ID_CONTEXT: &str = "wire 2026-12-01 line id v1";

/// The first byte of a line box.
pub const LINE_BOX_VERSION: u8 = 2;

/// Bytes of the direction id a line box starts with (after its version byte).
pub const LINE_ID_BYTES: usize = 16;

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// Bytes a line box adds to its plaintext.
pub const LINE_BOX_OVERHEAD: usize = 1 + LINE_ID_BYTES + NONCE_BYTES + TAG_BYTES;

/// The id of one direction of a line, as it appears in clear at the front of a line box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineId(pub [u8; LINE_ID_BYTES]);

/// Both directions of the line between us and one peer.
pub struct LineKeys {
    ours: AuthorKey,
    peer: AuthorKey,
    send: Zeroizing<[u8; 32]>,
    send_id: LineId,
    recv: Zeroizing<[u8; 32]>,
    recv_id: LineId,
}

impl std::fmt::Debug for LineKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineKeys")
            .field("ours", &self.ours)
            .field("peer", &self.peer)
            .field("send_id", &self.send_id)
            .field("recv_id", &self.recv_id)
            .finish_non_exhaustive()
    }
}

fn direction(dh: &[u8; 32], from: &AuthorKey, to: &AuthorKey) -> (Zeroizing<[u8; 32]>, LineId) {
    let mut material = Zeroizing::new([0u8; 96]);
    material[..32].copy_from_slice(dh);
    material[32..64].copy_from_slice(&from.0);
    material[64..].copy_from_slice(&to.0);
    let key = Zeroizing::new(blake3::derive_key(KEY_CONTEXT, &material[..]));
    let id = blake3::derive_key(ID_CONTEXT, &key[..]);
    let mut short = [0u8; LINE_ID_BYTES];
    short.copy_from_slice(&id[..LINE_ID_BYTES]);
    (key, LineId(short))
}

impl LineKeys {
    /// Derives the line between `me` and `peer`, whose X25519 key is `peer_x25519`.
    pub fn derive(
        me: &SecretKey,
        peer: &AuthorKey,
        peer_x25519: &[u8; 32],
    ) -> Result<LineKeys, SealError> {
        let ours = me.author();
        if ours == *peer {
            return Err(SealError::RecipientKey);
        }
        let dh = Zeroizing::new(
            me.x25519_secret()
                .diffie_hellman(&x25519_dalek::PublicKey::from(*peer_x25519))
                .to_bytes(),
        );
        // A low-order public key gives an all-zero secret that anyone could compute.
        if dh.iter().all(|b| *b == 0) {
            return Err(SealError::RecipientKey);
        }
        let (send, send_id) = direction(&dh, &ours, peer);
        let (recv, recv_id) = direction(&dh, peer, &ours);
        Ok(LineKeys {
            ours,
            peer: *peer,
            send,
            send_id,
            recv,
            recv_id,
        })
    }

    /// Our own key: the `from` of what we seal, the `to` of what we open.
    pub fn ours(&self) -> &AuthorKey {
        &self.ours
    }

    /// The peer's key: the only author a box under this line can come from.
    pub fn peer(&self) -> &AuthorKey {
        &self.peer
    }

    /// The id on boxes we write to the peer.
    pub fn send_id(&self) -> LineId {
        self.send_id
    }

    /// The id on boxes the peer writes to us.
    pub fn recv_id(&self) -> LineId {
        self.recv_id
    }

    /// Seals `plaintext` to the peer with fresh randomness from the OS.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::fill(&mut nonce[..]);
        self.seal_with_nonce(plaintext, &nonce)
    }

    /// Seals with a caller's nonce: only for golden vectors and tests.
    #[doc(hidden)]
    pub fn seal_with_nonce(&self, plaintext: &[u8], nonce: &[u8; NONCE_BYTES]) -> Vec<u8> {
        let mut head = [0u8; 1 + LINE_ID_BYTES];
        head[0] = LINE_BOX_VERSION;
        head[1..].copy_from_slice(&self.send_id.0);
        let cipher = XChaCha20Poly1305::new((&*self.send).into());
        let ct = cipher
            .encrypt(
                &XNonce::from(*nonce),
                Payload {
                    msg: plaintext,
                    aad: &head,
                },
            )
            // ChaCha20 refuses only plaintexts past 256 GiB; our callers cap theirs at 1 MiB.
            .expect("a plaintext under 256 GiB always seals");
        let mut out = Vec::with_capacity(head.len() + NONCE_BYTES + ct.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a line box the peer wrote to us.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < LINE_BOX_OVERHEAD {
            return Err(SealError::TooShort(sealed.len()));
        }
        if sealed[0] != LINE_BOX_VERSION {
            return Err(SealError::Version(sealed[0]));
        }
        let (head, rest) = sealed.split_at(1 + LINE_ID_BYTES);
        if head[1..] != self.recv_id.0 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Open)?;
        let cipher = XChaCha20Poly1305::new((&*self.recv).into());
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: head })
            .map_err(|_| SealError::Open)
    }
}

/// The direction id of a line box, or `None` when `sealed` is not one.
pub fn line_id(sealed: &[u8]) -> Option<LineId> {
    if sealed.len() < LINE_BOX_OVERHEAD || sealed[0] != LINE_BOX_VERSION {
        return None;
    }
    let mut id = [0u8; LINE_ID_BYTES];
    id.copy_from_slice(&sealed[1..1 + LINE_ID_BYTES]);
    Some(LineId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_derive_the_same_line_and_each_direction_is_its_own() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let bob = SecretKey::from_seed(&[2; 32]);
        let carol = SecretKey::from_seed(&[3; 32]);
        let a = LineKeys::derive(&alice, &bob.author(), &bob.x25519_public()).expect("a");
        let b = LineKeys::derive(&bob, &alice.author(), &alice.x25519_public()).expect("b");
        assert_eq!(a.send_id(), b.recv_id());
        assert_eq!(a.recv_id(), b.send_id());
        assert_ne!(a.send_id(), a.recv_id());

        let sealed = a.seal(b"hello");
        assert_eq!(sealed.len(), 5 + LINE_BOX_OVERHEAD);
        assert_eq!(line_id(&sealed), Some(a.send_id()));
        assert_eq!(b.open(&sealed).expect("open"), b"hello");
        // Our own box does not open as one from the peer (no reflection).
        assert_eq!(a.open(&sealed), Err(SealError::Open));
        // A third party's line with bob has other ids and keys.
        let c = LineKeys::derive(&carol, &bob.author(), &bob.x25519_public()).expect("c");
        assert_ne!(c.send_id(), a.send_id());
        let from_carol = c.seal(b"hello");
        assert_eq!(b.open(&from_carol), Err(SealError::Open));
        // Every byte matters, the id included.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(b.open(&bad).is_err(), "byte {i}");
        }
        assert_eq!(b.open(&sealed[..20]), Err(SealError::TooShort(20)));
        // Two seals of one plaintext differ (fresh nonces).
        assert_ne!(a.seal(b"hello"), a.seal(b"hello"));
    }

    #[test]
    fn a_low_order_peer_key_and_ourselves_are_refused() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let bob = SecretKey::from_seed(&[2; 32]);
        assert!(matches!(
            LineKeys::derive(&alice, &bob.author(), &[0u8; 32]),
            Err(SealError::RecipientKey)
        ));
        assert!(matches!(
            LineKeys::derive(&alice, &alice.author(), &alice.x25519_public()),
            Err(SealError::RecipientKey)
        ));
    }
}
