//! The wire MCP stdio server (rmcp): the only crate that speaks JSON-RPC. (Filled by the MCP work.)
