//! The relay's configuration and shared state.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::commit::Committer;
use crate::history::{History, HistoryConfig};
use crate::hub::{Hub, HubLimits};
use crate::limits::{Limit, Limiter, Rate, Source};
use crate::metrics::{Gauges, Metrics};
use crate::store::{BlobStore, PgStore, Quotas, RedbStore, StoreError};

/// The default address of a local relay.
pub const DEFAULT_BIND: &str = "127.0.0.1:8771";

/// Everything a relay is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL clients reach this relay at, without a trailing slash.
    pub public_url: String,
    /// The domain part of handles on this relay (`host[:port]` of `public_url`).
    pub domain: String,
    /// Hide the handle listing (and, at the server level, refuse non-loopback binds).
    pub local_only: bool,
    pub data_dir: PathBuf,
    /// A `postgres://` URL: keep everything in that database instead of redb files in
    /// `data_dir` (which then holds only the metrics history).
    pub store_url: Option<String>,
    pub quotas: Quotas,
    pub hub: HubLimits,
    /// redb page cache, split between the mailbox and intro files.
    pub cache_bytes: usize,
    pub blob_bytes_max: usize,
    pub batch_bytes_max: usize,
    pub batch_blobs_max: usize,
    pub read_blobs_max: usize,
    pub read_bytes_max: usize,
    pub rates: Rates,
    /// How far an intro's timestamp may be from the relay's clock.
    pub intro_skew_ms: u64,
    /// How often the metrics history behind `/stats` takes a point.
    pub history: HistoryConfig,
    /// Longest a group of a store with several append lanes waits for the requests its
    /// thread's last group answered (decision (at)); zero: it never waits.
    pub group_wait: std::time::Duration,
}

/// Rate limits for unauthenticated routes.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub slots_per_source: Rate,
    pub claims_per_source: Rate,
    pub intros_per_source: Rate,
    pub intros_per_target: Rate,
    /// Malformed intros a source may send before it is refused without a look.
    pub junk_per_source: Rate,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            slots_per_source: Rate {
                per_second: 1.0,
                burst: 60.0,
            },
            claims_per_source: Rate {
                per_second: 1.0,
                burst: 30.0,
            },
            intros_per_source: Rate {
                per_second: 0.2,
                burst: 20.0,
            },
            intros_per_target: Rate {
                per_second: 1.0,
                burst: 60.0,
            },
            junk_per_source: Rate {
                per_second: 1.0,
                burst: 20.0,
            },
        }
    }
}

impl Rates {
    /// No effective limit (benchmarks and closed test rigs).
    pub fn unlimited() -> Rates {
        let r = Rate {
            per_second: 1e9,
            burst: 1e9,
        };
        Rates {
            slots_per_source: r,
            claims_per_source: r,
            intros_per_source: r,
            intros_per_target: r,
            junk_per_source: r,
        }
    }
}

impl Config {
    /// Defaults for a relay reachable at `public_url`, storing in `data_dir`.
    pub fn new(public_url: &str, data_dir: PathBuf) -> Result<Config, String> {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let domain = domain_of(&public_url)?;
        Ok(Config {
            public_url,
            domain,
            local_only: false,
            data_dir,
            store_url: None,
            quotas: Quotas::default(),
            hub: HubLimits::default(),
            cache_bytes: 16 << 20,
            blob_bytes_max: 1 << 20,
            batch_bytes_max: 16 << 20,
            batch_blobs_max: 4096,
            read_blobs_max: 4096,
            read_bytes_max: 4 << 20,
            rates: Rates::default(),
            intro_skew_ms: 15 * 60 * 1000,
            history: HistoryConfig::default(),
            group_wait: crate::commit::REJOIN_WAIT,
        })
    }
}

/// `host[:port]` of an `http://` or `https://` URL.
pub fn domain_of(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("public URL {url:?} must start with http:// or https://"))?;
    let host = rest
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    wire_log::card::check_domain(&host).map_err(|e| format!("public URL {url:?}: {e}"))?;
    Ok(host)
}

/// Rate limiters, one per limited thing.
#[derive(Debug)]
pub struct Limiters {
    pub slots: Limiter<Source>,
    pub claims: Limiter<Source>,
    pub intro_sources: Limiter<Source>,
    pub intro_targets: Limiter<String>,
    pub junk: Limiter<Source>,
}

const LIMITER_KEYS_MAX: usize = 65_536;

/// One of [`Limiters`], by the kind of key it counts.
#[derive(Debug, Clone, Copy)]
pub enum LimiterRef<'a> {
    Source(&'a Limiter<Source>),
    Handle(&'a Limiter<String>),
}

/// What a limit counts: a source address or a handle.
#[derive(Debug, Clone)]
pub enum LimitKey {
    Source(Source),
    Handle(String),
}

impl LimitKey {
    fn bytes(&self) -> Vec<u8> {
        match self {
            LimitKey::Source(s) => s.key_bytes(),
            LimitKey::Handle(h) => [&b"h"[..], h.as_bytes()].concat(),
        }
    }
}

impl Rates {
    pub fn of(&self, limit: Limit) -> Rate {
        match limit {
            Limit::Slots => self.slots_per_source,
            Limit::Claims => self.claims_per_source,
            Limit::IntroSources => self.intros_per_source,
            Limit::IntroTargets => self.intros_per_target,
            Limit::Junk => self.junk_per_source,
        }
    }
}

impl App {
    /// Takes a token of `limit` for `key` (or with `peek` only looks): in the store's shared
    /// buckets when it has them (instances on one PostgreSQL database count together,
    /// decision (ah)), else in this relay's memory. Blocks on the store: call it off the
    /// async workers. `Ok(Err(secs))`: limited, retry in `secs`.
    pub fn take_limit(
        &self,
        limit: Limit,
        key: &LimitKey,
        peek: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        let rate = self.config.rates.of(limit);
        if rate.is_unlimited() {
            return Ok(Ok(()));
        }
        if self.store.shares_rate_limits() {
            return self.store.take_token(limit as u8, &key.bytes(), rate, peek);
        }
        Ok(match (self.limiters.of(limit), key) {
            (LimiterRef::Source(l), LimitKey::Source(s)) if peek => l.would_take(s),
            (LimiterRef::Source(l), LimitKey::Source(s)) => l.take(s),
            (LimiterRef::Handle(l), LimitKey::Handle(h)) if peek => l.would_take(h),
            (LimiterRef::Handle(l), LimitKey::Handle(h)) => l.take(h),
            // A key of the wrong kind for the limit: a bug here, never a reason to refuse.
            _ => Ok(()),
        })
    }
}

impl Limiters {
    /// The in-memory limiter of `limit`.
    pub fn of(&self, limit: Limit) -> LimiterRef<'_> {
        match limit {
            Limit::Slots => LimiterRef::Source(&self.slots),
            Limit::Claims => LimiterRef::Source(&self.claims),
            Limit::IntroSources => LimiterRef::Source(&self.intro_sources),
            Limit::IntroTargets => LimiterRef::Handle(&self.intro_targets),
            Limit::Junk => LimiterRef::Source(&self.junk),
        }
    }

    fn new(r: &Rates) -> Limiters {
        Limiters {
            slots: Limiter::new(r.slots_per_source, LIMITER_KEYS_MAX),
            claims: Limiter::new(r.claims_per_source, LIMITER_KEYS_MAX),
            intro_sources: Limiter::new(r.intros_per_source, LIMITER_KEYS_MAX),
            intro_targets: Limiter::new(r.intros_per_target, LIMITER_KEYS_MAX),
            junk: Limiter::new(r.junk_per_source, LIMITER_KEYS_MAX),
        }
    }
}

/// Shared state behind every request.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Arc<dyn BlobStore>,
    pub committer: Committer,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub limiters: Limiters,
    pub history: History,
    pub started: Instant,
    /// Pairings by code in progress (memory only).
    pub pairs: crate::pairs::PairSlots,
    /// Owners and capabilities the append pre-check has read (`seen.rs`).
    pub seen: crate::seen::Seen,
    /// Wall-clock start, for the uptime shown on the landing page.
    pub started_ms: u64,
}

impl std::fmt::Debug for dyn BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobStore")
    }
}

impl App {
    /// Opens the store (PostgreSQL at `config.store_url`, else redb in `config.data_dir`) and
    /// the metrics history in `config.data_dir`, and starts the commit thread. The thread ends
    /// once the returned `App` (and every clone of its committer) is dropped.
    pub fn open(config: Config) -> Result<(Arc<App>, JoinHandle<()>), StoreError> {
        let store: Arc<dyn BlobStore> = match &config.store_url {
            Some(url) => {
                // Only the metrics history lives in the data directory then.
                std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                    StoreError(format!("cannot create {}: {e}", config.data_dir.display()))
                })?;
                Arc::new(PgStore::open(url, config.quotas.clone())?)
            }
            None => Arc::new(RedbStore::open(
                &config.data_dir,
                config.quotas.clone(),
                config.cache_bytes,
            )?),
        };
        let history = History::load(&config.data_dir, config.history)?;
        Ok(App::with_store(config, store, history))
    }

    /// Serves from any [`BlobStore`].
    pub fn with_store(
        config: Config,
        store: Arc<dyn BlobStore>,
        history: History,
    ) -> (Arc<App>, JoinHandle<()>) {
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(config.hub, metrics.clone());
        let (committer, thread) = Committer::start(
            store.clone(),
            hub.clone(),
            metrics.clone(),
            config.group_wait,
        );
        // Appends through other instances on a shared database wake the streams held here.
        let (wake_hub, wanted_hub, watched_hub) = (hub.clone(), hub.clone(), hub.clone());
        let watched = store.watch_others(
            Arc::new(move |stored| wake_hub.publish(stored)),
            Arc::new(move |slot| wanted_hub.has_subscribers(slot)),
            Arc::new(move || watched_hub.subscribed_slots()),
        );
        if let Err(e) = watched {
            eprintln!(
                "wire relay: streams here will not see appends made through other relays on this database: {e}"
            );
        }
        let limiters = Limiters::new(&config.rates);
        let app = App {
            config,
            store,
            committer,
            hub,
            metrics,
            limiters,
            pairs: crate::pairs::PairSlots::default(),
            seen: crate::seen::Seen::default(),
            history,
            started: Instant::now(),
            started_ms: now_ms(),
        };
        (Arc::new(app), thread)
    }

    pub fn gauges(&self) -> Result<Gauges, StoreError> {
        let t = self.store.totals()?;
        Ok(Gauges {
            slots: t.slots,
            blobs: t.blobs,
            bytes: t.bytes,
            handles: t.handles,
            intros: t.intros,
        })
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
