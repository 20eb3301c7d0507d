//! Integration tests of the engine on real redb files: incremental projections equal a rebuild,
//! tampering behind the engine's back is caught by verify, damaged files are never replaced.

mod damage;
mod invite;
mod rebuild;
mod tamper;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wire_engine::{Clock, Home, Session};
use wire_log::SecretKey;

/// A clock that advances one millisecond per reading.
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        1_795_600_000_000 + self.0.fetch_add(1, Ordering::Relaxed)
    }
}

pub fn new_session(dir: &std::path::Path, seed: u8) -> Session {
    Session::create(
        &Home::new(dir),
        "default",
        "alice",
        Some(SecretKey::from_seed(&[seed; 32])),
        Box::new(TestClock::default()),
    )
    .expect("create session")
}

pub fn reopen(dir: &std::path::Path) -> Session {
    Session::open(&Home::new(dir), "default", Box::new(TestClock::default())).expect("open session")
}
