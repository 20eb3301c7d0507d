//! The wire relay: a blind, durable mailbox. It holds sealed blobs in slots, hands out per-peer
//! append-only capabilities, keeps a first-come-first-served handle directory of signed agent cards
//! and an intro queue for strangers, and serves it all over HTTP (axum) on TCP (optionally under TLS, `tls`) or a Unix socket.

pub mod a2a;
pub mod api;
pub mod app;
pub mod commit;
pub mod error;
pub mod history;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod pairs;
pub mod seen;
pub mod server;
pub mod store;
pub mod tls;
pub mod token;

/// The binary bodies live in `wire-net`, shared with the client; re-exported under their old path.
pub use wire_net::frames;
