//! The signed event log: event type, canonical encoding, ids, signatures, hash chains, the redb
//! event store and its audit.
//!
//! Everything that produces bytes which get signed lives in this crate (`event`, `body`, `cbor`);
//! no other crate builds signed bytes.

pub mod body;
pub mod card;
pub mod cbor;
pub mod event;
pub mod identity;
pub mod intro;
pub mod invite;
pub mod journal;
pub mod keyfile;
pub mod kind;
pub mod line;
pub mod pair;
pub mod pake;
pub mod seal;
pub mod segment;
pub mod store;
pub mod types;

pub use card::{CardError, SignedCard, VerifiedCard};
pub use event::{
    BODY_BYTES_MAX, DecodeError, Event, FORMAT_VERSION, SIGNED_EVENT_BYTES_MAX, SignedEvent,
    VerifiedEvent, sign_all, verify_all,
};
pub use identity::{Character, Did};
pub use intro::{Intro, IntroError};
pub use keyfile::{KeyFileError, SecretKey};
pub use kind::{Kind, KindClass};
pub use store::{AppendError, AppendOutcome, EventKey, EventStore, LogWriter, StoreError};
pub use types::{AuthorKey, EventId, LogId, Signature};

/// The cores this process may use, asked of the OS once: `available_parallelism` reads cgroup
/// files on every call, which costs more than verifying a signature (and far more inside a
/// sandboxed kernel), so the hot paths ask this instead.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
