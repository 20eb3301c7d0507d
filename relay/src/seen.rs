//! What the append pre-check learned, so that an append pays no storage round trip for it.
//!
//! Before it reads a body, an append checks its credential (a stranger must not make the relay
//! read a megabyte): the slot's owner, or the capability's slot. That cost a read transaction
//! per append, and on PostgreSQL a transaction of three round trips on a worker connection,
//! more than the append's share of its group's one call. The owner of a slot never changes (no
//! route gives a slot a new owner token, and slots are never deleted), so a slot's owner, once
//! read, answers every later check exactly, a wrong token included. A capability can be
//! revoked, here or through another instance, so one seen live is trusted for
//! [`CAP_TTL`] and forgotten at once on any revocation through this instance. Either way this
//! is only the early filter: the commit checks the credential again inside its transaction
//! (decision (j)), so a capability revoked meanwhile is still refused, with the same 401.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::token::{SlotId, TokenHash};

/// Entries per map before it is emptied and starts again: under 600 KiB each, so that the
/// relay's memory bound (issue 3: 100,000 slots in 64 MiB) holds; a relay with more slots
/// appending at once than this just looks more of them up.
const ENTRIES_MAX: usize = 4_096;
/// How long a capability seen live passes the pre-check without another look.
pub const CAP_TTL: Duration = Duration::from_secs(5);

/// Slot owners and live capabilities the pre-check has read.
#[derive(Debug, Default)]
pub struct Seen {
    owners: Mutex<HashMap<SlotId, TokenHash>>,
    caps: Mutex<HashMap<TokenHash, (SlotId, Instant)>>,
}

fn bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= ENTRIES_MAX && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl Seen {
    /// The owner token hash of `slot`, if read before.
    pub fn owner(&self, slot: SlotId) -> Option<TokenHash> {
        self.owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&slot)
            .copied()
    }

    pub fn note_owner(&self, slot: SlotId, owner: TokenHash) {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bounded(&mut owners, slot, owner);
    }

    /// Whether `cap` was seen live for `slot` within [`CAP_TTL`].
    pub fn cap_grants(&self, cap: TokenHash, slot: SlotId) -> bool {
        self.caps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&cap)
            .is_some_and(|(s, at)| *s == slot && at.elapsed() < CAP_TTL)
    }

    pub fn note_cap(&self, cap: TokenHash, slot: SlotId) {
        let mut caps = self
            .caps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bounded(&mut caps, cap, (slot, Instant::now()));
    }

    /// A capability was revoked through this instance: look every one up again.
    pub fn forget_caps(&self) {
        self.caps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_stay_caps_expire_and_revocation_forgets_and_the_maps_stay_bounded() {
        let seen = Seen::default();
        let (a, b) = (SlotId([1; 16]), SlotId([2; 16]));
        let (h, k) = (TokenHash([7; 32]), TokenHash([8; 32]));
        assert_eq!(seen.owner(a), None);
        seen.note_owner(a, h);
        assert_eq!(seen.owner(a), Some(h));
        seen.note_cap(k, a);
        assert!(seen.cap_grants(k, a));
        assert!(
            !seen.cap_grants(k, b),
            "a capability grants only its own slot"
        );
        seen.forget_caps();
        assert!(!seen.cap_grants(k, a));
        seen.caps
            .lock()
            .expect("caps")
            .insert(k, (a, Instant::now() - CAP_TTL));
        assert!(!seen.cap_grants(k, a), "expired");
        for i in 0..=ENTRIES_MAX as u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            seen.note_owner(SlotId(id), h);
        }
        assert!(seen.owners.lock().expect("owners").len() <= ENTRIES_MAX);
    }
}
