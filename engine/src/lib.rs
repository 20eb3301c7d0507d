//! A wire session: its directory and keys, appends that sign + store + project in one write
//! transaction, queries of the projections, ingest of events from peers, and the audit behind
//! `wire verify`.

mod audit;
mod error;
mod home;
mod ingest;
mod invite;
mod line;
mod outbox;
mod secrets;
mod session;

pub use audit::{Progress, VerifyFailure, VerifyReport};
pub use error::EngineError;
pub use home::{BINDINGS_MAX, Bindings, Home, SessionInfo, binding_key, check_session_name};
pub use ingest::{CheckedSegment, FUTURE_SKEW_MS, IngestReport};
pub use invite::{INVITE_TTL_MS_MAX, INVITE_TTL_MS_MIN, InviteCheck};
pub use line::{
    LineState, MessageView, Minted, PENDING_MAX, RequestOutcome, SealedSegment, is_message_kind,
};
pub use outbox::{BROADCAST_BODY_BYTES_MAX, OutboxLine, OutboxRecord};
pub use session::{Clock, Session, SystemClock};
pub use wire_projections::{
    Cursor, CursorKey, Grant, Identity, MemState, Peer, PeerEndpoint, PeerState, Pending,
};

/// Measurement floors for the benchmarks: what one durable redb commit costs on this disk.
pub mod floor {
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Times `n` durable commits of one small row each into a fresh database at `path`.
    pub fn durable_commits(path: &Path, n: usize) -> Result<Vec<Duration>, redb::Error> {
        let db = redb::Database::create(path)?;
        let table: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("floor");
        let mut v = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let t = Instant::now();
            let tx = db.begin_write()?;
            tx.open_table(table)?.insert(i, i)?;
            tx.commit()?;
            v.push(t.elapsed());
        }
        Ok(v)
    }
}
