//! Integration tests of the log: golden vectors, codec properties, and appends that must be
//! refused. One test binary for the crate.

mod golden;
mod journal;
mod properties;
mod refusals;

use wire_log::{Event, Kind, LogId, SecretKey, VerifiedEvent};

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// A chain of `n` events by `key` in its self log.
pub fn chain(key: &SecretKey, n: u64) -> Vec<VerifiedEvent> {
    let mut prev = None;
    (1..=n)
        .map(|seq| {
            let e = Event {
                author: key.author(),
                log: LogId::self_log(&key.author()),
                seq,
                prev,
                ts_ms: 1_790_000_000_000 + seq,
                kind: Kind::MESSAGE,
                body: format!("note {seq}").into_bytes(),
            }
            .sign(key)
            .expect("sign");
            prev = Some(e.id());
            e
        })
        .collect()
}
