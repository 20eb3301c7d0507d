//! Wire's network side. Today: the client of a relay (PROTOCOL.md §18) and the binary bodies
//! both ends of that API share. Later also the replication types and the local transports.
//!
//! - [`RelayClient`] speaks HTTP/1.1 to one relay at `http://host[:port]`, `https://host[:port]`
//!   (rustls with ring, verified against the system roots plus `WIRE_CA_FILE`: [`tls`]) or
//!   `unix:/path/to/relay.sock`. Every route is one
//!   async call returning typed answers or a [`NetError`] that says what to do;
//!   [`NetError::is_transient`] tells a caller whether to queue and retry.
//! - Connections are kept alive in a pool per client (at most
//!   [`ClientOptions::connections_max`], 32 by default, including idle ones; concurrent calls
//!   open more up to that bound; an idle connection is closed after 60 s), with TCP_NODELAY. A pooled connection found broken is dropped
//!   and the request sent once more on a new connection, but only when the request is safe to
//!   repeat (reads, acknowledgements, appends, which the relay dedupes by content hash, intros)
//!   or provably never left. Connecting has a 5 s timeout, a whole call 30 s
//!   ([`ClientOptions`]); a [`RecordStream`] only times reaching its headers, then ends when no
//!   byte (not even a heartbeat) came for 60 s.
//! - Answers are size-capped before they are parsed: JSON 1 MiB, pages 32 MiB, records 1 MiB.
//! - [`resolver_url`] maps `nick@domain` to the relay to ask: loopback with a port over
//!   `http://`, everything else over `https://`.
//! - [`frames`] is the one codec of `application/vnd.wire.blobs` and `application/vnd.wire.records`
//!   bodies, used by the relay (re-exported as `wire_relay::frames`) and by this client.
//! - [`control`] is the daemon's control protocol (PROTOCOL.md §23): the request and frame types
//!   the CLI, the daemon and the fuzz target share, and the bounded decoder of a request line.

pub mod client;
pub mod control;
mod endpoint;
pub mod error;
pub mod frames;
mod http;
pub mod tls;
pub mod types;

pub use client::{INTRO_CONTENT_TYPE, RecordStream, RelayClient};
pub use endpoint::resolver_url;
pub use error::{NetError, RelayError};
pub use http::ClientOptions;
pub use types::{
    Acked, Appended, CapGrant, ClaimStatus, Claimed, IntroEndpoint, IntroQueued, IntroStatus, Page,
    Record, RelayInfo, RelayLimits, Resolved, SlotGrant, SlotInfo,
};
