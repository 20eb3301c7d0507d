//! Counters and histograms for `/metrics` (Prometheus text format) and `/stats.json`.
//!
//! Hand-rolled on atomics: the hot path (one commit) touches a handful of relaxed counters and
//! never takes a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A fixed-bucket histogram. Values are recorded in integer units (`unit` of them per
/// exported unit, e.g. nanoseconds for a histogram exported in seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
    unit: f64,
}

impl Histogram {
    fn new(bounds: &'static [u64], unit: f64) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            unit,
        }
    }

    pub fn observe(&self, v: u64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The upper bounds of the finite buckets, in recorded units.
    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// Per-bucket counts (not cumulative), the last one being the overflow bucket.
    pub fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }

    /// The sum of every recorded value, in recorded units.
    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / self.unit
            );
        }
        cumulative += self.counts[self.bounds.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {cumulative}",
            self.sum.load(Relaxed) as f64 / self.unit
        );
    }
}

const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];
const NANOS_BOUNDS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Everything the relay counts.
#[derive(Debug)]
pub struct Metrics {
    pub appends_stored: AtomicU64,
    pub appends_duplicate: AtomicU64,
    pub appends_refused: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub blobs_served: AtomicU64,
    pub commits: AtomicU64,
    pub intros_queued: AtomicU64,
    pub intros_refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub subscribers: AtomicU64,
    pub subscribers_cut: AtomicU64,
    pub commit_batch: Histogram,
    pub commit_seconds: Histogram,
    pub append_seconds: Histogram,
    /// Distinct slots that stored an append since the hour series and the day series last took
    /// a point (for the "active slots" chart); each set holds at most [`ACTIVE_SLOTS_TRACKED_MAX`].
    pub active_slots: std::sync::Mutex<[std::collections::HashSet<crate::token::SlotId>; 2]>,
}

/// Most distinct active slots counted per history point; past it the count saturates.
pub const ACTIVE_SLOTS_TRACKED_MAX: usize = 65_536;

impl Metrics {
    /// Records that these slots stored an append.
    pub fn touch_slots(&self, slots: impl Iterator<Item = crate::token::SlotId>) {
        let mut sets = self.active_slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots {
            for set in sets.iter_mut() {
                if set.len() < ACTIVE_SLOTS_TRACKED_MAX {
                    set.insert(slot);
                }
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            appends_stored: AtomicU64::new(0),
            appends_duplicate: AtomicU64::new(0),
            appends_refused: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
            blobs_served: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            intros_queued: AtomicU64::new(0),
            intros_refused: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            subscribers: AtomicU64::new(0),
            subscribers_cut: AtomicU64::new(0),
            active_slots: std::sync::Mutex::new(Default::default()),
            commit_batch: Histogram::new(BATCH_BOUNDS, 1.0),
            commit_seconds: Histogram::new(NANOS_BOUNDS, 1e9),
            append_seconds: Histogram::new(NANOS_BOUNDS, 1e9),
        }
    }
}

/// Store-wide gauges read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub slots: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub handles: u64,
    pub intros: u64,
}

impl Metrics {
    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        counter(
            &mut out,
            "wire_relay_appends_stored_total",
            "Blobs stored.",
            &self.appends_stored,
        );
        counter(
            &mut out,
            "wire_relay_appends_duplicate_total",
            "Appends of bytes the slot already held.",
            &self.appends_duplicate,
        );
        counter(
            &mut out,
            "wire_relay_appends_refused_total",
            "Appends refused (unknown slot, bad capability, slot full).",
            &self.appends_refused,
        );
        counter(
            &mut out,
            "wire_relay_bytes_stored_total",
            "Blob bytes stored.",
            &self.bytes_stored,
        );
        counter(
            &mut out,
            "wire_relay_blobs_served_total",
            "Blobs served to readers and subscribers.",
            &self.blobs_served,
        );
        counter(
            &mut out,
            "wire_relay_commits_total",
            "Durable append transactions.",
            &self.commits,
        );
        counter(
            &mut out,
            "wire_relay_intros_queued_total",
            "Intros queued.",
            &self.intros_queued,
        );
        counter(
            &mut out,
            "wire_relay_intros_refused_total",
            "Intros refused (malformed, limited, full).",
            &self.intros_refused,
        );
        counter(
            &mut out,
            "wire_relay_rate_limited_total",
            "Requests refused by a rate limit.",
            &self.rate_limited,
        );
        counter(
            &mut out,
            "wire_relay_subscribers_cut_total",
            "Subscribers disconnected for reading too slowly.",
            &self.subscribers_cut,
        );
        gauge(&mut out, "wire_relay_slots", "Slots allocated.", g.slots);
        gauge(
            &mut out,
            "wire_relay_blobs",
            "Blobs held, not yet acknowledged.",
            g.blobs,
        );
        gauge(
            &mut out,
            "wire_relay_bytes",
            "Bytes of blobs held.",
            g.bytes,
        );
        gauge(
            &mut out,
            "wire_relay_handles",
            "Handles claimed.",
            g.handles,
        );
        gauge(
            &mut out,
            "wire_relay_intros_pending",
            "Intros waiting.",
            g.intros,
        );
        gauge(
            &mut out,
            "wire_relay_subscribers",
            "Open streaming subscribers.",
            self.subscribers.load(Relaxed),
        );
        self.commit_batch.render(
            &mut out,
            "wire_relay_commit_batch_size",
            "Appends per durable transaction (group commit).",
        );
        self.commit_seconds.render(
            &mut out,
            "wire_relay_commit_seconds",
            "Time to write and fsync one group commit.",
        );
        self.append_seconds.render(
            &mut out,
            "wire_relay_append_seconds",
            "Time from an append request's arrival at the committer to its durable commit.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_named() {
        let m = Metrics::default();
        m.commit_batch.observe(1);
        m.commit_batch.observe(3);
        m.commit_batch.observe(100_000);
        let text = m.render(&Gauges::default());
        assert!(text.contains("wire_relay_commit_batch_size_bucket{le=\"1\"} 1"));
        assert!(text.contains("wire_relay_commit_batch_size_bucket{le=\"4\"} 2"));
        assert!(text.contains("wire_relay_commit_batch_size_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("wire_relay_commit_batch_size_count 3"));
    }
}
