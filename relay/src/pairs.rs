//! Pair slots: the in-memory meeting point of a pairing by code (PROTOCOL.md §25). Each slot
//! has four write-once cells (host and join, messages 0 and 1) whose bytes are opaque to the
//! relay; a slot is keyed by the hash of a code's nameplate, created by the host's first
//! message, and dropped after a short idle time or a hard lifetime. Nothing is written to disk:
//! a restart forgets every pairing in progress, and both sides fail cleanly and start again.
//! Time is tokio's, so tests with paused time check the timeouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

/// Most pair slots held at once.
pub const PAIR_SLOTS_MAX: usize = 1024;
/// Largest cell.
pub const PAIR_CELL_BYTES_MAX: usize = 4096;
/// A slot nobody touched (written or read) for this long is dropped.
pub const PAIR_IDLE: Duration = Duration::from_secs(60);
/// A slot is dropped this long after it was made, touched or not.
pub const PAIR_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Longest a read waits for its cell.
pub const PAIR_WAIT_MAX: Duration = Duration::from_secs(25);
/// How often a waiting read looks again when the slots are in a shared store (PostgreSQL),
/// where a write through another instance wakes no one here.
pub const PAIR_POLL: Duration = Duration::from_millis(100);

/// Which cell: side (0 host, 1 join) and message index (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub join: bool,
    pub index: usize,
}

impl Cell {
    /// 0–3: host 0, host 1, join 0, join 1.
    pub fn slot_index(self) -> usize {
        usize::from(self.join) * 2 + self.index
    }
}

#[derive(Debug)]
struct Slot {
    cells: [Option<Bytes>; 4],
    made: Instant,
    touched: Instant,
    notify: Arc<Notify>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    Unchanged,
}

/// Why a pair-slot request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairError {
    /// No such slot (never made, idled out, closed, or the relay restarted).
    Unknown,
    /// The cell holds other bytes: another pairing uses this nameplate, or another party
    /// joined first.
    Taken,
    /// Too many slots are open.
    Full,
}

/// Every pair slot, behind one lock (each operation is a few map steps).
#[derive(Debug, Default)]
pub struct PairSlots {
    slots: Mutex<HashMap<[u8; 16], Slot>>,
}

impl PairSlots {
    fn sweep(map: &mut HashMap<[u8; 16], Slot>, now: Instant) {
        map.retain(|_, s| {
            now.duration_since(s.touched) < PAIR_IDLE && now.duration_since(s.made) < PAIR_LIFETIME
        });
    }

    fn alive(s: &Slot, now: Instant) -> bool {
        now.duration_since(s.touched) < PAIR_IDLE && now.duration_since(s.made) < PAIR_LIFETIME
    }

    /// Writes a cell once. The host's first message makes the slot.
    pub fn put(&self, id: [u8; 16], cell: Cell, bytes: Bytes) -> Result<Written, PairError> {
        let now = Instant::now();
        let mut map = self.slots.lock().expect("pair slots lock");
        if map.get(&id).is_some_and(|s| !Self::alive(s, now)) {
            map.remove(&id);
        }
        if !map.contains_key(&id) {
            if cell
                != (Cell {
                    join: false,
                    index: 0,
                })
            {
                return Err(PairError::Unknown);
            }
            if map.len() >= PAIR_SLOTS_MAX {
                Self::sweep(&mut map, now);
                if map.len() >= PAIR_SLOTS_MAX {
                    return Err(PairError::Full);
                }
            }
            map.insert(
                id,
                Slot {
                    cells: Default::default(),
                    made: now,
                    touched: now,
                    notify: Arc::new(Notify::new()),
                },
            );
        }
        let slot = map.get_mut(&id).expect("the slot was just found or made");
        slot.touched = now;
        let at = &mut slot.cells[cell.slot_index()];
        match at {
            Some(held) if *held == bytes => Ok(Written::Unchanged),
            Some(_) => Err(PairError::Taken),
            None => {
                *at = Some(bytes);
                slot.notify.notify_waiters();
                Ok(Written::Stored)
            }
        }
    }

    /// Reads a cell, waiting up to `wait` for it to be written. `Ok(None)`: not yet.
    pub async fn get(
        &self,
        id: [u8; 16],
        cell: Cell,
        wait: Duration,
    ) -> Result<Option<Bytes>, PairError> {
        let deadline = Instant::now() + wait.min(PAIR_WAIT_MAX);
        loop {
            let notify = {
                let now = Instant::now();
                let mut map = self.slots.lock().expect("pair slots lock");
                let Some(slot) = map.get_mut(&id).filter(|s| Self::alive(s, now)) else {
                    map.remove(&id);
                    return Err(PairError::Unknown);
                };
                slot.touched = now;
                if let Some(b) = &slot.cells[cell.slot_index()] {
                    return Ok(Some(b.clone()));
                }
                slot.notify.clone()
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Checked again after enabling, so a write in between is not missed.
            {
                let map = self.slots.lock().expect("pair slots lock");
                match map.get(&id) {
                    None => return Err(PairError::Unknown),
                    Some(s) => {
                        if let Some(b) = &s.cells[cell.slot_index()] {
                            return Ok(Some(b.clone()));
                        }
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Closes a slot (a side gave up); waiting readers see it gone.
    pub fn close(&self, id: [u8; 16]) -> bool {
        let mut map = self.slots.lock().expect("pair slots lock");
        match map.remove(&id) {
            Some(s) => {
                s.notify.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// Slots held now (for `/stats.json`).
    pub fn len(&self) -> usize {
        let mut map = self.slots.lock().expect("pair slots lock");
        Self::sweep(&mut map, Instant::now());
        map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
