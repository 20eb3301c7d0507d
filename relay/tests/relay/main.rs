//! The relay's integration tests: one binary. In-process tests drive the axum router with
//! `tower::ServiceExt::oneshot` against real redb files in temporary directories; process-level
//! tests (real sockets, SIGKILL crash recovery, Unix sockets) live in the CLI's test binary,
//! which has the `wire` executable.

mod browser;
mod client;
mod concurrency;
mod corpus;
mod directory;
mod harness;
mod pages;
mod pairs;
mod pg;
mod postgres;
mod python;
mod routes;
mod streaming;
mod tls;
