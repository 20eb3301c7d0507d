//! Live subscribers: the owner of a slot streaming new blobs as they commit.
//!
//! After each group commit the committer hands the stored blobs to [`Hub::publish`], which
//! pushes them into each subscriber's bounded queue without waiting. A subscriber whose queue
//! is full (by count or by bytes) is cut off: its queue is dropped, its stream ends, and it
//! reconnects with `after=` its last sequence number. Memory per subscriber is therefore bounded
//! whatever the subscriber does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::token::SlotId;

/// Bounds for subscribers.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    pub per_slot: usize,
    pub total: usize,
    pub queue_frames: usize,
    pub queue_bytes: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            per_slot: 8,
            total: 10_000,
            queue_frames: 1024,
            queue_bytes: 4 << 20,
        }
    }
}

#[derive(Debug)]
struct Sub {
    id: u64,
    tx: mpsc::Sender<(u64, Bytes)>,
    queued_bytes: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<SlotId, Vec<Sub>>,
    total: usize,
    next_id: u64,
    closed: bool,
}

/// The registry of live subscribers.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    limits: HubLimits,
    metrics: Arc<Metrics>,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    SlotBusy { max: usize },
    RelayBusy,
    ShuttingDown,
}

/// One live subscription; dropping it unregisters it.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<(u64, Bytes)>,
    queued_bytes: Arc<AtomicUsize>,
    hub: Arc<Hub>,
    slot: SlotId,
    id: u64,
}

impl Subscription {
    /// The next committed blob, or `None` once cut off or shut down.
    pub async fn recv(&mut self) -> Option<(u64, Bytes)> {
        let item = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(item.1.len(), Ordering::Relaxed);
        Some(item)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.slot, self.id);
    }
}

impl Hub {
    pub fn new(limits: HubLimits, metrics: Arc<Metrics>) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(Inner::default()),
            limits,
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(self: &Arc<Self>, slot: SlotId) -> Result<Subscription, SubscribeError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(SubscribeError::ShuttingDown);
        }
        if inner.total >= self.limits.total {
            return Err(SubscribeError::RelayBusy);
        }
        let subs = inner.slots.entry(slot).or_default();
        if subs.len() >= self.limits.per_slot {
            return Err(SubscribeError::SlotBusy {
                max: self.limits.per_slot,
            });
        }
        let (tx, rx) = mpsc::channel(self.limits.queue_frames.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        inner.next_id += 1;
        let id = inner.next_id;
        inner.slots.entry(slot).or_default().push(Sub {
            id,
            tx,
            queued_bytes: queued_bytes.clone(),
        });
        inner.total += 1;
        self.metrics.subscribers.fetch_add(1, Ordering::Relaxed);
        Ok(Subscription {
            rx,
            queued_bytes,
            hub: self.clone(),
            slot,
            id,
        })
    }

    fn remove(&self, slot: SlotId, id: u64) {
        let mut inner = self.lock();
        let Some(subs) = inner.slots.get_mut(&slot) else {
            return;
        };
        let before = subs.len();
        subs.retain(|s| s.id != id);
        let removed = before - subs.len();
        if subs.is_empty() {
            inner.slots.remove(&slot);
        }
        inner.total -= removed;
        self.metrics
            .subscribers
            .fetch_sub(removed as u64, Ordering::Relaxed);
    }

    /// Whether any stream here waits for `slot`.
    pub fn has_subscribers(&self, slot: SlotId) -> bool {
        self.lock().slots.contains_key(&slot)
    }

    /// Every slot with a subscriber now.
    pub fn subscribed_slots(&self) -> Vec<SlotId> {
        self.lock().slots.keys().copied().collect()
    }

    /// Offers freshly committed blobs to the subscribers of their slots. Never blocks.
    pub fn publish(&self, stored: &[(SlotId, u64, Bytes)]) {
        let mut inner = self.lock();
        if inner.slots.is_empty() {
            return;
        }
        let mut cut = 0usize;
        let limits = self.limits;
        for (slot, seq, blob) in stored {
            let Some(subs) = inner.slots.get_mut(slot) else {
                continue;
            };
            subs.retain(|sub| {
                let queued = sub.queued_bytes.load(Ordering::Relaxed);
                let fits = queued + blob.len() <= limits.queue_bytes || queued == 0;
                if fits && sub.tx.try_send((*seq, blob.clone())).is_ok() {
                    sub.queued_bytes.fetch_add(blob.len(), Ordering::Relaxed);
                    true
                } else {
                    cut += 1;
                    false
                }
            });
        }
        if cut > 0 {
            inner.slots.retain(|_, subs| !subs.is_empty());
            inner.total -= cut;
            self.metrics
                .subscribers
                .fetch_sub(cut as u64, Ordering::Relaxed);
            self.metrics
                .subscribers_cut
                .fetch_add(cut as u64, Ordering::Relaxed);
        }
    }

    /// Ends every stream (shutdown) and refuses new ones.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        let n = inner.total as u64;
        inner.slots.clear();
        inner.total = 0;
        self.metrics.subscribers.fetch_sub(n, Ordering::Relaxed);
    }
}
