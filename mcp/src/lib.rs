//! wire's MCP server: the tools (`wire_send`, `wire_wait`, …) and the inbox resources an AI
//! host loads over stdio, built on the official Rust SDK (`rmcp`). The only crate that speaks
//! JSON-RPC. It knows nothing of stores or relays: every tool runs a wire command line through
//! a [`Backend`] (the CLI implements it over the daemon's control socket), and arrivals come
//! from the backend's change stream ([`Backend::follow`]), pushed, never polled.
//!
//! Both protocol generations are served by rmcp itself: the `initialize` handshake (2025-11-25
//! and the older versions a client asks for) and the stateless 2026-07-28 revision
//! (`server/discover`, per-request `_meta`, `subscriptions/listen`). [`transport`] is the thin
//! stdio layer in front of it, which bounds every line and answers what rmcp would drop
//! silently (unparsable JSON, oversized lines) with a JSON-RPC error.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod envelope;
mod server;
mod tools;
pub mod transport;

use std::future::Future;

use serde::Serialize;
use serde_json::Value;

pub use envelope::{envelope, message_view};
pub use server::{INSTRUCTIONS, WireServer, serve, serve_stdio};
pub use tools::{TOOL_NAMES, tool_list};

/// What one wire command printed, and how it exited (0 done, 1 `verify` found damage, 2 error,
/// 3 a message kept but not delivered yet).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub code: u8,
    /// One JSON document (wire runs in JSON mode for the server).
    pub stdout: String,
    pub stderr: String,
}

/// The session the server acts for, and why that one.
#[derive(Debug, Clone, Serialize)]
pub struct SessionChoice {
    pub name: String,
    /// `WIRE_SESSION` or `default` (directory bindings come later).
    pub rule: String,
    /// The state root (`WIRE_HOME`, else the XDG default).
    pub home: String,
    /// One sentence on why this session and this root, for `wire_whoami`.
    pub why: String,
}

/// Receives the backend's change stream: one JSON object per event (`ready`, `message`,
/// `peers`), as `wire watch` prints them. Bounded; closed when the stream ends.
pub type Changes = tokio::sync::mpsc::Receiver<Value>;

/// Where the server's tools run. Implemented by the CLI over the daemon's control socket.
pub trait Backend: Send + Sync + 'static {
    /// Runs `wire <args…>` in JSON mode for the chosen session. `Err` means the command could
    /// not be run at all (no daemon could be reached or started), with what to do about it.
    fn run(&self, args: Vec<String>) -> impl Future<Output = Result<Reply, String>> + Send;

    /// Opens the change stream (`wire watch`).
    fn follow(&self) -> impl Future<Output = Result<Changes, String>> + Send;

    /// The session this server acts for.
    fn session(&self) -> SessionChoice;
}

/// Writes one line of diagnostics to stderr (stdout belongs to JSON-RPC).
pub fn log(line: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "wire mcp: {line}");
}

/// Byte-bounded prefix of `s` on a char boundary, for messages that quote input.
pub(crate) fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
