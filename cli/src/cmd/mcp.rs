//! `wire mcp`: the MCP server on stdin/stdout ([`wire_mcp`]), backed by the daemon. Every tool
//! is a wire command line handed to the daemon over its control socket (started on demand,
//! as the CLI does), and arrivals come from `wire watch` on a second connection: pushed by the
//! daemon as it appends, never polled. stdout carries JSON-RPC only; diagnostics go to stderr.

use std::process::ExitCode;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use wire_engine::Home;
use wire_mcp::{Backend, Changes, Reply, SessionChoice};

use super::Chosen;
use crate::daemon;
use crate::output::Style;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// Largest output one tool call may collect from the daemon.
const OUTPUT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest single line in the change stream (one message, JSON-escaped at worst).
const CHANGE_LINE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Changes buffered between the daemon and the server.
const CHANGES_MAX: usize = 64;

use wire_net::control::Frame;

/// The daemon, as `wire_mcp` sees it.
#[derive(Debug, Clone)]
pub struct DaemonBackend {
    home: Home,
    chosen: Chosen,
}

impl DaemonBackend {
    pub fn new(home: Home, chosen: Chosen) -> DaemonBackend {
        DaemonBackend { home, chosen }
    }

    async fn connect(&self) -> Result<UnixStream, String> {
        if let Ok(s) = UnixStream::connect(daemon::socket_path(&self.home)).await {
            return Ok(s);
        }
        let home = self.home.clone();
        let std = tokio::task::spawn_blocking(move || daemon::start(&home))
            .await
            .map_err(|e| format!("could not start the wire daemon: {e}"))?
            .map_err(|e| format!("{e:#}"))?;
        std.set_nonblocking(true)
            .map_err(|e| format!("cannot use the daemon's socket: {e}"))?;
        UnixStream::from_std(std).map_err(|e| format!("cannot use the daemon's socket: {e}"))
    }

    /// Connects and hands over `wire --json <args…>`.
    async fn request(&self, args: Vec<String>) -> Result<BufReader<UnixStream>, String> {
        let mut stream = self.connect().await?;
        let mut argv = vec!["wire".to_owned(), "--json".to_owned()];
        argv.extend(args);
        let request = daemon::Request {
            v: wire_net::control::CONTROL_VERSION,
            argv,
            style: Style {
                json: true,
                emoji: true,
                colour: false,
                chatter: false,
            },
            chosen: self.chosen.clone(),
            cwd: std::env::current_dir()
                .ok()
                .and_then(|d| d.to_str().map(str::to_owned)),
        };
        let line = wire_net::control::encode_request(&request);
        stream.write_all(line.as_bytes()).await.map_err(|e| {
            format!(
                "cannot talk to the wire daemon ({e}); see {}",
                daemon::log_path(&self.home).display()
            )
        })?;
        Ok(BufReader::new(stream))
    }

    fn lost(&self) -> String {
        format!(
            "the wire daemon hung up mid-command; see {} (or run `wire daemon --foreground` to watch it)",
            daemon::log_path(&self.home).display()
        )
    }
}

/// Reads one frame line of at most `max` bytes; `Ok(None)` at the end of the stream.
async fn frame(reader: &mut BufReader<UnixStream>, max: u64) -> Result<Option<Frame>, String> {
    let mut line = String::new();
    let n = (&mut *reader)
        .take(max + 1)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("lost the wire daemon: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if n as u64 > max {
        return Err(format!(
            "the answer is larger than {max} bytes; ask for less (a smaller limit)"
        ));
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| format!("the wire daemon sent an unreadable line ({e})"))
}

impl Backend for DaemonBackend {
    async fn run(&self, args: Vec<String>) -> Result<Reply, String> {
        let mut reader = self.request(args).await?;
        let mut reply = Reply::default();
        loop {
            let budget =
                OUTPUT_BYTES_MAX.saturating_sub((reply.stdout.len() + reply.stderr.len()) as u64);
            let Some(f) = frame(&mut reader, budget).await? else {
                return Err(self.lost());
            };
            if let Some(o) = f.o {
                reply.stdout.push_str(&o);
            }
            if let Some(e) = f.e {
                reply.stderr.push_str(&e);
            }
            if let Some(x) = f.x {
                reply.code = x;
                return Ok(reply);
            }
        }
    }

    async fn follow(&self) -> Result<Changes, String> {
        let mut reader = self.request(vec!["watch".into()]).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHANGES_MAX);
        // Wait for the first event, so a stream that cannot start says why.
        let mut pending = String::new();
        let mut stderr = String::new();
        let mut first: Vec<serde_json::Value> = Vec::new();
        while first.is_empty() {
            let Some(f) = frame(&mut reader, CHANGE_LINE_BYTES_MAX).await? else {
                return Err(self.lost());
            };
            if let Some(e) = f.e
                && stderr.len() < 4096
            {
                stderr.push_str(&e);
            }
            if let Some(o) = f.o {
                pending.push_str(&o);
                first = split_lines(&mut pending);
            }
            if f.x.is_some() && first.is_empty() {
                let why = stderr.trim();
                return Err(why.strip_prefix("wire: ").unwrap_or(why).to_owned());
            }
        }
        tokio::spawn(async move {
            for v in first {
                if tx.send(v).await.is_err() {
                    return;
                }
            }
            loop {
                let Ok(Some(f)) = frame(&mut reader, CHANGE_LINE_BYTES_MAX).await else {
                    return;
                };
                if let Some(o) = f.o {
                    pending.push_str(&o);
                    if pending.len() as u64 > CHANGE_LINE_BYTES_MAX {
                        return;
                    }
                    for v in split_lines(&mut pending) {
                        if tx.send(v).await.is_err() {
                            return;
                        }
                    }
                }
                if f.x.is_some() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    fn session(&self) -> SessionChoice {
        let name = &self.chosen.name;
        let by = match self.chosen.rule.as_str() {
            "WIRE_SESSION" => format!(
                "WIRE_SESSION={name} is set in this server's environment (the MCP host's entry for `wire mcp`)"
            ),
            "--session" => format!("the host runs `wire mcp --session {name}`"),
            "binding" => format!(
                "the server runs in {}, which `wire session new` or `wire session bind` bound to `{name}`",
                self.chosen
                    .binding
                    .as_deref()
                    .unwrap_or("a bound directory")
            ),
            "WIRE_HOME" => format!("WIRE_HOME names the directory of session `{name}`"),
            _ => format!(
                "neither WIRE_SESSION nor --session is set and no binding covers the server's directory, so the session named `{name}` is used"
            ),
        };
        let root = self.home.root().display().to_string();
        let under = if std::env::var_os("WIRE_HOME").is_some_and(|v| !v.is_empty()) {
            format!("under WIRE_HOME={root}")
        } else {
            format!("under the default state root {root} (WIRE_HOME is not set)")
        };
        SessionChoice {
            name: name.clone(),
            rule: self.chosen.rule.clone(),
            home: root,
            why: format!("{by}, {under}"),
        }
    }
}

/// Complete lines out of `buf` as JSON values (unreadable lines are skipped).
fn split_lines(buf: &mut String) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some(i) = buf.find('\n') {
        let line: String = buf.drain(..=i).collect();
        if let Ok(v) = serde_json::from_str(line.trim()) {
            out.push(v);
        }
    }
    out
}

/// Runs the server until stdin ends. Never prints to stdout itself.
pub fn run(chosen: Chosen, _args: Args) -> ExitCode {
    let home = match Home::from_env() {
        Ok(h) => h,
        Err(e) => {
            wire_mcp::log(&format!("{e}"));
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            wire_mcp::log(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    let backend = DaemonBackend::new(home, chosen);
    let result = rt.block_on(wire_mcp::serve_stdio(backend));
    // The watcher and any wait still running end with the runtime.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            wire_mcp::log(&e);
            ExitCode::from(2)
        }
    }
}
