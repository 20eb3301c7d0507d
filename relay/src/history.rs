//! The relay's own metrics history, for `/stats` and `/stats/history.json`: two series of a
//! fixed number of points each (the last hour at one-minute steps, the last day at fifteen-minute
//! steps by default), kept in memory and written to `history.json` in the data directory after
//! every new point, so the charts survive a restart and the file never grows.
//!
//! A point is the difference between two snapshots of the counters in [`Metrics`], plus the
//! gauges at its end. The sampler ([`run`]) takes the snapshots; [`History::tick`] takes a clock
//! reading, so the arithmetic is tested without waiting.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::app::{App, now_ms};
use crate::metrics::Metrics;
use crate::store::StoreError;

/// Points kept in the hour series.
pub const HOUR_POINTS: usize = 60;
/// Points kept in the day series.
pub const DAY_POINTS: usize = 96;
/// The file, in the data directory.
pub const HISTORY_FILE: &str = "history.json";
const FILE_VERSION: u64 = 1;

/// How often each series takes a point. The defaults make 60 points an hour and 96 points a
/// day; tests shorten them to see points in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    pub hour_step_ms: u64,
    pub day_step_ms: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            hour_step_ms: 60_000,
            day_step_ms: 15 * 60_000,
        }
    }
}

/// One point: what happened between `t_ms - span_ms` and `t_ms`, and the gauges at `t_ms`.
/// Commit figures are `None` when no commit happened in the span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub t_ms: u64,
    pub span_ms: u64,
    pub appends_per_s: f64,
    pub bytes_per_s: f64,
    pub slots: u64,
    /// Distinct slots that stored an append during the span (saturates at 65,536).
    #[serde(default)]
    pub active_slots: u64,
    pub streams: u64,
    pub commits: u64,
    pub batch_mean: Option<f64>,
    pub commit_p50_ms: Option<f64>,
    pub commit_p90_ms: Option<f64>,
    pub commit_p99_ms: Option<f64>,
}

/// The counters a point is the difference of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub at_ms: u64,
    pub appends: u64,
    pub bytes: u64,
    pub batch_items: u64,
    pub commit_counts: Vec<u64>,
}

impl Snapshot {
    pub fn of(metrics: &Metrics, at_ms: u64) -> Snapshot {
        use std::sync::atomic::Ordering::Relaxed;
        Snapshot {
            at_ms,
            appends: metrics.appends_stored.load(Relaxed),
            bytes: metrics.bytes_stored.load(Relaxed),
            batch_items: metrics.commit_batch.sum(),
            commit_counts: metrics.commit_seconds.counts(),
        }
    }
}

/// Gauges read at the end of a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Levels {
    pub slots: u64,
    pub streams: u64,
    /// Distinct slots appended to since this series' last point.
    pub active_slots: u64,
}

/// One bounded series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    pub step_ms: u64,
    pub points_max: usize,
    pub points: VecDeque<Point>,
    #[serde(skip)]
    base: Option<Snapshot>,
}

impl Series {
    fn new(step_ms: u64, points_max: usize) -> Series {
        Series {
            step_ms,
            points_max,
            points: VecDeque::with_capacity(points_max),
            base: None,
        }
    }

    /// Takes a point if a whole step has passed since the last snapshot. The first call after
    /// a start only sets the baseline. Returns whether a point was added.
    fn tick(&mut self, snap: &Snapshot, levels: Levels, bounds_ns: &[u64]) -> bool {
        let Some(base) = &self.base else {
            self.base = Some(snap.clone());
            return false;
        };
        let span_ms = snap.at_ms.saturating_sub(base.at_ms);
        if span_ms < self.step_ms {
            return false;
        }
        let per_s = |a: u64, b: u64| a.saturating_sub(b) as f64 * 1000.0 / span_ms as f64;
        let counts: Vec<u64> = snap
            .commit_counts
            .iter()
            .zip(base.commit_counts.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let commits: u64 = counts.iter().sum();
        let items = snap.batch_items.saturating_sub(base.batch_items);
        let ms = |q: f64| quantile(bounds_ns, &counts, q).map(|ns| round3(ns / 1e6));
        self.points.push_back(Point {
            t_ms: snap.at_ms,
            span_ms,
            appends_per_s: round3(per_s(snap.appends, base.appends)),
            bytes_per_s: round3(per_s(snap.bytes, base.bytes)),
            slots: levels.slots,
            active_slots: levels.active_slots,
            streams: levels.streams,
            commits,
            batch_mean: (commits > 0).then(|| round3(items as f64 / commits as f64)),
            commit_p50_ms: ms(0.50),
            commit_p90_ms: ms(0.90),
            commit_p99_ms: ms(0.99),
        });
        while self.points.len() > self.points_max {
            self.points.pop_front();
        }
        self.base = Some(snap.clone());
        true
    }
}

/// Three decimals are plenty for a chart and keep the JSON short and exact to compare.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The `q` quantile of a fixed-bucket histogram (per-bucket `counts`, the last one the
/// overflow), interpolated linearly inside its bucket as Prometheus' `histogram_quantile`
/// does; a quantile in the overflow bucket reports the highest finite bound.
pub fn quantile(bounds: &[u64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = bounds.get(i) else {
                return bounds.last().map(|&b| b as f64);
            };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] as f64 };
            let within = (rank - below as f64) / n as f64;
            return Some(lower + (upper as f64 - lower) * within.clamp(0.0, 1.0));
        }
        below += n;
    }
    bounds.last().map(|&b| b as f64)
}

/// The file's shape.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    v: u64,
    hour: Series,
    day: Series,
}

/// Both series, and where they are kept.
#[derive(Debug)]
pub struct History {
    path: Option<PathBuf>,
    inner: Mutex<(Series, Series)>,
}

impl History {
    /// An empty history that is never written (a relay without a data directory of its own).
    pub fn in_memory(config: HistoryConfig) -> History {
        History {
            path: None,
            inner: Mutex::new((
                Series::new(config.hour_step_ms, HOUR_POINTS),
                Series::new(config.day_step_ms, DAY_POINTS),
            )),
        }
    }

    /// Reads `dir/history.json` if it exists. A series written with another step is dropped
    /// (its points would be drawn at the wrong spacing); a file that cannot be read or parsed
    /// is an error, never an empty history.
    pub fn load(dir: &Path, config: HistoryConfig) -> Result<History, StoreError> {
        let path = dir.join(HISTORY_FILE);
        let mut history = History::in_memory(config);
        history.path = Some(path.clone());
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(history),
            Err(e) => {
                return Err(StoreError(format!(
                    "cannot read the metrics history {}: {e}",
                    path.display()
                )));
            }
        };
        let file: File = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError(format!(
                "the metrics history {} is not readable ({e}); move it aside to start a fresh history",
                path.display()
            )))?;
        if file.v != FILE_VERSION {
            return Err(StoreError(format!(
                "the metrics history {} has version {}, this build reads {FILE_VERSION}; move it aside to start a fresh history",
                path.display(),
                file.v
            )));
        }
        {
            let inner = history.inner.get_mut().unwrap_or_else(|e| e.into_inner());
            for (kept, read) in [(&mut inner.0, file.hour), (&mut inner.1, file.day)] {
                if read.step_ms == kept.step_ms {
                    let skip = read.points.len().saturating_sub(kept.points_max);
                    kept.points = read.points.into_iter().skip(skip).collect();
                }
            }
        }
        Ok(history)
    }

    /// Records a snapshot; returns whether any series took a point.
    pub fn tick(&self, snap: &Snapshot, levels: Levels, bounds_ns: &[u64]) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let a = inner.0.tick(snap, levels, bounds_ns);
        let b = inner.1.tick(snap, levels, bounds_ns);
        a || b
    }

    /// Takes a snapshot of `metrics` now and records it. The clock is read under the lock, as
    /// in [`History::read`], so a reader that saw time `t` saw every point up to `t`.
    pub fn record(&self, metrics: &Metrics, levels: Levels) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let snap = Snapshot::of(metrics, now_ms());
        let bounds = metrics.commit_seconds.bounds();
        let mut active = metrics
            .active_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let with_active = |set: &std::collections::HashSet<_>| Levels {
            active_slots: set.len() as u64,
            ..levels
        };
        let a = inner.0.tick(&snap, with_active(&active[0]), bounds);
        if a {
            active[0].clear();
        }
        let b = inner.1.tick(&snap, with_active(&active[1]), bounds);
        if b {
            active[1].clear();
        }
        a || b
    }

    /// Both series: (hour, day).
    pub fn series(&self) -> (Series, Series) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The time now and both series, read together: no point up to that time is added later.
    pub fn read(&self) -> (u64, Series, Series) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (now_ms(), inner.0.clone(), inner.1.clone())
    }

    /// Writes the file atomically (a temporary file, fsynced, renamed over the old one).
    pub fn persist(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let (hour, day) = self.series();
        let bytes = serde_json::to_vec(&File {
            v: FILE_VERSION,
            hour,
            day,
        })
        .map_err(|e| StoreError(format!("metrics history: {e}")))?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            StoreError(format!(
                "cannot write the metrics history {}: {e}",
                path.display()
            ))
        })
    }
}

/// Samples the relay's counters every hour step until `stop` turns true, writing the file
/// after each new point. A failed write is reported and retried at the next point; it never
/// stops the relay.
pub async fn run(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let step = Duration::from_millis(app.config.history.hour_step_ms.max(10));
    let mut ticks = tokio::time::interval(step);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        let app = app.clone();
        let sampled = tokio::task::spawn_blocking(move || sample(&app)).await;
        if let Ok(Err(e)) = sampled {
            eprintln!("wire relay: {e}");
        }
    }
}

fn sample(app: &App) -> Result<(), StoreError> {
    use std::sync::atomic::Ordering::Relaxed;
    let slots = app.store.totals()?.slots;
    let levels = Levels {
        slots,
        streams: app.metrics.subscribers.load(Relaxed),
        active_slots: 0,
    };
    if app.history.record(&app.metrics, levels) {
        app.history.persist()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(at_ms: u64, appends: u64, counts: Vec<u64>) -> Snapshot {
        Snapshot {
            at_ms,
            appends,
            bytes: appends * 100,
            batch_items: appends,
            commit_counts: counts,
        }
    }

    const BOUNDS: &[u64] = &[1_000_000, 2_000_000, 4_000_000];

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        assert_eq!(quantile(BOUNDS, &[0, 0, 0, 0], 0.5), None);
        // 10 values in (1 ms, 2 ms]: the median is half way.
        assert_eq!(quantile(BOUNDS, &[0, 10, 0, 0], 0.5), Some(1_500_000.0));
        // Everything in the first bucket: interpolate from zero.
        assert_eq!(quantile(BOUNDS, &[4, 0, 0, 0], 0.25), Some(250_000.0));
        // The overflow bucket reports the highest finite bound.
        assert_eq!(quantile(BOUNDS, &[1, 0, 0, 99], 0.99), Some(4_000_000.0));
    }

    #[test]
    fn points_are_rates_over_their_span_and_the_series_stays_bounded() {
        let h = History::in_memory(HistoryConfig {
            hour_step_ms: 1000,
            day_step_ms: 3000,
        });
        let levels = Levels {
            slots: 3,
            streams: 1,
            active_slots: 2,
        };
        assert!(!h.tick(&snap(0, 0, vec![0; 4]), levels, BOUNDS), "baseline");
        assert!(
            !h.tick(&snap(500, 5, vec![0; 4]), levels, BOUNDS),
            "half a step"
        );
        assert!(h.tick(&snap(2000, 40, vec![0, 4, 0, 0]), levels, BOUNDS));
        let (hour, day) = h.series();
        assert!(day.points.is_empty());
        let p = &hour.points[0];
        assert_eq!((p.t_ms, p.span_ms), (2000, 2000));
        assert_eq!(p.appends_per_s, 20.0);
        assert_eq!(p.bytes_per_s, 2000.0);
        assert_eq!((p.slots, p.streams, p.commits), (3, 1, 4));
        assert_eq!(p.active_slots, 2);
        assert_eq!(p.batch_mean, Some(10.0));
        assert_eq!(p.commit_p50_ms, Some(1.5));
        // A quiet step has no commit figures.
        assert!(h.tick(&snap(3000, 40, vec![0, 4, 0, 0]), levels, BOUNDS));
        let (hour, day) = h.series();
        assert_eq!(hour.points[1].commit_p99_ms, None);
        assert_eq!(hour.points[1].appends_per_s, 0.0);
        assert_eq!(day.points.len(), 1, "the day series took its first point");
        for i in 0..200u64 {
            h.tick(&snap(4000 + i * 1000, 40, vec![0, 4, 0, 0]), levels, BOUNDS);
        }
        let (hour, day) = h.series();
        assert_eq!(hour.points.len(), HOUR_POINTS);
        assert!(day.points.len() <= DAY_POINTS);
        assert_eq!(hour.points.back().map(|p| p.t_ms), Some(203_000));
    }

    #[test]
    fn the_file_survives_a_restart_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = HistoryConfig {
            hour_step_ms: 1000,
            day_step_ms: 2000,
        };
        let h = History::load(dir.path(), config).expect("load");
        for i in 0..5u64 {
            h.tick(
                &snap(i * 1000, i * 3, vec![1, 0, 0, 0]),
                Levels::default(),
                BOUNDS,
            );
        }
        h.persist().expect("persist");
        let back = History::load(dir.path(), config).expect("reload");
        assert_eq!(back.series().0.points, h.series().0.points);
        assert_eq!(back.series().1.points, h.series().1.points);
        assert!(!h.series().0.points.is_empty());
        // Another step: that series starts afresh, the other is kept.
        let other = History::load(
            dir.path(),
            HistoryConfig {
                hour_step_ms: 1000,
                day_step_ms: 9000,
            },
        )
        .expect("reload");
        assert_eq!(other.series().0.points, h.series().0.points);
        assert!(other.series().1.points.is_empty());
        std::fs::write(dir.path().join(HISTORY_FILE), b"{\"v\":1,").expect("write");
        let e = History::load(dir.path(), config).expect_err("corrupt");
        assert!(e.0.contains("move it aside"), "{e}");
    }
}
