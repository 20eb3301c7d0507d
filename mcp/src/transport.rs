//! The stdio transport: newline-delimited JSON-RPC, every incoming line bounded
//! ([`LINE_BYTES_MAX`]), and one writer task that owns stdout so responses, notifications and
//! our own error replies never interleave. Where rmcp's own transport would drop input
//! silently, this one answers: unparsable JSON gets `-32700`, an oversized line `-32600`, a
//! well-formed message of the wrong shape `-32600` (or `-32602` for a known method with bad
//! params), each with the request id when one can be read. Nothing here ends the session
//! except the end of stdin.

use std::future::Future;
use std::io;

use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::RoleServer;
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Longest JSON-RPC message accepted: a 256 KiB body JSON-escaped at worst, and room to spare.
pub const LINE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Lines waiting for the writer task.
const WRITE_QUEUE_MAX: usize = 1024;

/// Methods rmcp knows; a message naming one with params it cannot read is `-32602`.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/templates/list",
    "subscriptions/listen",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

/// A transport over any reader and writer (stdin and stdout in `wire mcp`).
#[derive(Debug)]
pub struct LineTransport<R> {
    read: BufReader<R>,
    line: Vec<u8>,
    /// Inside a line that went over the bound: drop bytes until its newline.
    discarding: bool,
    out: mpsc::Sender<Vec<u8>>,
    /// A lifecycle has begun (`initialize`, or a request carrying its own protocol version):
    /// before that rmcp ends the session on a stray notification or response, so those are
    /// dropped here with a note on stderr.
    started: bool,
}

impl<R: AsyncRead + Unpin + Send + 'static> LineTransport<R> {
    /// Starts the writer task on the current runtime.
    pub fn new<W: AsyncWrite + Unpin + Send + 'static>(read: R, write: W) -> Self {
        let (out, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE_MAX);
        tokio::spawn(async move {
            let mut write = write;
            while let Some(line) = rx.recv().await {
                if write.write_all(&line).await.is_err() || write.flush().await.is_err() {
                    return;
                }
            }
        });
        LineTransport {
            read: BufReader::with_capacity(64 * 1024, read),
            line: Vec::new(),
            discarding: false,
            out,
            started: false,
        }
    }

    /// Queues an error reply we make ourselves (never blocks: a client that does not read its
    /// replies loses these first).
    fn reply_error(&self, id: Option<Value>, code: i64, message: String) {
        let doc = json!({
            "jsonrpc": "2.0",
            "id": id.unwrap_or(Value::Null),
            "error": { "code": code, "message": message },
        });
        let mut line = doc.to_string().into_bytes();
        line.push(b'\n');
        let _ = self.out.try_send(line);
    }

    /// Reads up to a newline without ever holding more than [`LINE_BYTES_MAX`]. Cancel safe:
    /// bytes move from the reader's buffer into `self.line` with no await in between.
    /// `Ok(None)` is the end of input; `Ok(Some(false))` a line that was too long.
    async fn read_line(&mut self) -> io::Result<Option<bool>> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(None);
            }
            let (take, done) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let mut over = false;
            if !self.discarding {
                if self.line.len() + take > LINE_BYTES_MAX + 1 {
                    self.discarding = true;
                    self.line.clear();
                    over = true;
                } else {
                    self.line.extend_from_slice(&available[..take]);
                }
            }
            self.read.consume(take);
            if over && !done {
                // Keep discarding until this line's newline.
                continue;
            }
            if done {
                if self.discarding {
                    self.discarding = false;
                    return Ok(Some(false));
                }
                return Ok(Some(true));
            }
        }
    }

    /// Turns one line into a message rmcp can take, or answers it ourselves.
    fn parse(&mut self, raw: &[u8]) -> Option<ClientJsonRpcMessage> {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let value: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                self.reply_error(
                    None,
                    -32700,
                    format!("parse error: the line is not JSON ({e}); send one JSON-RPC 2.0 object per line"),
                );
                return None;
            }
        };
        let Some(obj) = value.as_object() else {
            let what = if value.is_array() {
                "batches are not supported by MCP; send one JSON-RPC object per line"
            } else {
                "a JSON-RPC message is a JSON object"
            };
            self.reply_error(None, -32600, format!("invalid request: {what}"));
            return None;
        };
        let id = obj.get("id").cloned();
        let method = obj.get("method").and_then(Value::as_str).map(str::to_owned);
        let is_request = id.is_some() && method.is_some();
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            if is_request || id.is_some() {
                self.reply_error(
                    id,
                    -32600,
                    "invalid request: `jsonrpc` must be \"2.0\"".into(),
                );
            }
            return None;
        }
        if !self.started {
            match method.as_deref() {
                Some("initialize") if is_request => self.started = true,
                Some("ping" | "server/discover") => {}
                Some(_) if is_request => {
                    let has_version = obj
                        .get("params")
                        .and_then(|p| p.get("_meta"))
                        .and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"))
                        .is_some();
                    if has_version {
                        self.started = true;
                    }
                }
                _ => {
                    crate::log(&format!(
                        "ignored a {} before the session began (send `initialize` first, or put the protocol version in each request's _meta)",
                        method.as_deref().map_or("response", |_| "notification")
                    ));
                    return None;
                }
            }
        }
        match serde_json::from_value::<ClientJsonRpcMessage>(value) {
            Ok(m) => Some(m),
            Err(e) => {
                // A notification gets no reply, whatever is wrong with it.
                if id.is_none() {
                    crate::log(&format!("ignored an unreadable notification: {e}"));
                    return None;
                }
                let (code, message) = match method.as_deref() {
                    Some(m) if KNOWN_METHODS.contains(&m) => {
                        (-32602, format!("invalid params for {m}: {e}"))
                    }
                    Some(m) => (
                        -32600,
                        format!("invalid request `{}`: {e}", crate::clip(m, 100)),
                    ),
                    None => (
                        -32600,
                        format!(
                            "invalid request: neither a request (`method`) nor a response to one of ours ({e})"
                        ),
                    ),
                };
                self.reply_error(id, code, message);
                None
            }
        }
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> Transport<RoleServer> for LineTransport<R> {
    type Error = io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let out = self.out.clone();
        async move {
            let mut line = serde_json::to_vec(&item).map_err(io::Error::other)?;
            line.push(b'\n');
            out.send(line)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stdout is closed"))
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            match self.read_line().await {
                Ok(None) => return None,
                Err(e) => {
                    crate::log(&format!("cannot read stdin: {e}"));
                    return None;
                }
                Ok(Some(false)) => {
                    self.reply_error(
                        None,
                        -32600,
                        format!(
                            "invalid request: a message may be at most {LINE_BYTES_MAX} bytes; it was dropped"
                        ),
                    );
                }
                Ok(Some(true)) => {
                    let raw = std::mem::take(&mut self.line);
                    let parsed = self.parse(&raw);
                    // Keep the allocation for the next line, but not a huge one.
                    if raw.capacity() <= 1024 * 1024 {
                        self.line = raw;
                        self.line.clear();
                    }
                    if let Some(m) = parsed {
                        return Some(m);
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
