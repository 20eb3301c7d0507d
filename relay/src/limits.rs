//! Token-bucket rate limits keyed by source address or target handle.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Where a request came from, as far as rate limits are concerned. IPv6 sources are grouped by
/// /64, the smallest block one party usually controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
    /// A Unix socket or an in-process call.
    Local,
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&v6.octets()[..8]);
                    Source::V6Prefix(p)
                }
            },
        }
    }
}

impl Source {
    /// The key of this source in a shared bucket table.
    pub fn key_bytes(&self) -> Vec<u8> {
        match self {
            Source::V4(a) => [&[4u8][..], a].concat(),
            Source::V6Prefix(p) => [&[6u8][..], p].concat(),
            Source::Local => vec![0],
        }
    }
}

/// The limits, by the number that names each in a shared bucket table (never reuse one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Slots = 1,
    Claims = 2,
    IntroSources = 3,
    IntroTargets = 4,
    Junk = 5,
}

/// The time after which a token is back, as `Limiter` answers it.
pub fn wait_secs(tokens: f64, rate: Rate) -> u64 {
    let wait = (1.0 - tokens) / rate.per_second.max(f64::MIN_POSITIVE);
    wait.ceil().max(1.0) as u64
}

impl Rate {
    /// So high that counting it is pointless (`Rates::unlimited`).
    pub fn is_unlimited(&self) -> bool {
        self.per_second >= 1e9
    }
}

/// A rate: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One limit over many keys. Memory is bounded by `keys_max`: when full, buckets that have
/// refilled (and so carry no state worth keeping) are dropped first; if that is not enough the
/// map is cleared, which errs on the side of letting requests through rather than growing.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    keys_max: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub fn new(rate: Rate, keys_max: usize) -> Limiter<K> {
        Limiter {
            rate,
            keys_max,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how many whole seconds until one is available.
    pub fn take(&self, key: &K) -> Result<(), u64> {
        self.take_at(key, Instant::now())
    }

    /// Whether [`take`](Self::take) would succeed now, without taking anything.
    pub fn would_take(&self, key: &K) -> Result<(), u64> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = buckets.get(key) else {
            return Ok(());
        };
        let tokens = refill(bucket, self.rate, Instant::now());
        if tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - tokens) / self.rate.per_second.max(f64::MIN_POSITIVE);
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    pub fn take_at(&self, key: &K, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.keys_max && !buckets.contains_key(key) {
            let rate = self.rate;
            buckets.retain(|_, b| refill(b, rate, now) < rate.burst);
            if buckets.len() >= self.keys_max {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.rate.burst,
            at: now,
        });
        let tokens = refill(bucket, self.rate, now);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            let wait = (1.0 - tokens) / self.rate.per_second.max(f64::MIN_POSITIVE);
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

fn refill(b: &Bucket, rate: Rate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * rate.per_second).min(rate.burst)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills() {
        let l = Limiter::new(
            Rate {
                per_second: 1.0,
                burst: 2.0,
            },
            16,
        );
        let t0 = Instant::now();
        assert!(l.take_at(&1, t0).is_ok());
        assert!(l.take_at(&1, t0).is_ok());
        assert_eq!(l.take_at(&1, t0), Err(1));
        assert!(l.take_at(&2, t0).is_ok(), "keys are independent");
        assert!(l.take_at(&1, t0 + Duration::from_millis(1100)).is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let l = Limiter::new(
            Rate {
                per_second: 1.0,
                burst: 1.0,
            },
            8,
        );
        let t0 = Instant::now();
        for k in 0..1000 {
            let _ = l.take_at(&k, t0);
        }
        assert!(l.buckets.lock().map(|b| b.len()).unwrap_or(0) <= 8);
    }

    #[test]
    fn ipv6_sources_group_by_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2::ffff".parse().expect("ip");
        assert_eq!(Source::of(a), Source::of(b));
        let m: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(Source::of(m), Source::V4([10, 0, 0, 1]));
    }
}
