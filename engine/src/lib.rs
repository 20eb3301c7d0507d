//! A wire session: its directory and keys, appends that sign + store + project in one write
//! transaction, queries of the projections, ingest of events from peers, and the audit behind
//! `wire verify`.

mod audit;
mod error;
mod home;
mod ingest;
mod invite;
mod line;
mod secrets;
mod session;

pub use audit::{Progress, VerifyFailure, VerifyReport};
pub use error::EngineError;
pub use home::{Home, SessionInfo, check_session_name};
pub use ingest::{CheckedSegment, FUTURE_SKEW_MS, IngestReport};
pub use invite::{INVITE_TTL_MS_MAX, INVITE_TTL_MS_MIN, InviteCheck};
pub use line::{
    LineState, MessageView, PENDING_MAX, RequestOutcome, SealedSegment, is_message_kind,
};
pub use session::{Clock, Session, SystemClock};
pub use wire_projections::{
    Cursor, CursorKey, Grant, Identity, MemState, Peer, PeerEndpoint, PeerState, Pending,
};
