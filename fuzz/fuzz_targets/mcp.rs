//! The MCP server fed a host's stdin: line transport, JSON-RPC dispatch, tool argument checks
//! and command lines, down to a backend that runs nothing; and the fence of a message of any
//! shape. Properties in `common/mcp_session.rs`.
#![no_main]

#[path = "../common/mcp_session.rs"]
mod mcp_session;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mcp_session::run(data);
});
