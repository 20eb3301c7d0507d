//! Everything the CLI prints goes through here: prose on a terminal, exactly one JSON document
//! on stdout otherwise; emoji where they render, ASCII tags where they don't; colour only on a
//! terminal.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use wire_log::Character;

/// Writes `(is_stderr, bytes)` to a daemon client; false once it has gone away.
pub type RemoteWrite = std::sync::Arc<dyn Fn(bool, &[u8]) -> bool + Send + Sync>;

/// Where output goes: this process's stdout and stderr, or (inside the daemon) back to the
/// client that asked, chunk by chunk.
#[derive(Clone, Default)]
pub enum Sink {
    #[default]
    Std,
    /// Called with `(is_stderr, bytes)`; returns false once the client has gone away.
    Remote(RemoteWrite),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Std => f.write_str("Std"),
            Sink::Remote(_) => f.write_str("Remote"),
        }
    }
}

/// How to print.
#[derive(Debug, Clone)]
pub struct Out {
    pub json: bool,
    pub emoji: bool,
    pub colour: bool,
    /// stderr is a terminal: progress bars are welcome.
    pub progress: bool,
    /// Notes and warnings that are not errors go to stderr: on a terminal, or with
    /// `WIRE_VERBOSE=1`; never otherwise (`WIRE_VERBOSE=0` silences them on a terminal too).
    pub chatter: bool,
    /// `WIRE_VERBOSE=1`: diagnostics on stderr (which session, which rule, where it ran).
    pub verbose: bool,
    pub sink: Sink,
}

/// The presentation choices a client hands the daemon along with its command.
pub use wire_net::control::Style;

impl Out {
    pub fn from_env(json_flag: bool) -> Out {
        let stdout_tty = std::io::stdout().is_terminal();
        let auto_json = !stdout_tty && !env_is("WIRE_NO_AUTO_JSON", "1");
        let stderr_tty = std::io::stderr().is_terminal();
        let verbose = env_is("WIRE_VERBOSE", "1");
        Out {
            json: json_flag || auto_json,
            emoji: emoji_ok(),
            // NO_COLOR: any non-empty value (no-color.org).
            colour: stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            progress: stderr_tty,
            chatter: verbose || (stderr_tty && !env_is("WIRE_VERBOSE", "0")),
            verbose,
            sink: Sink::Std,
        }
    }

    pub fn style(&self) -> Style {
        Style {
            json: self.json,
            emoji: self.emoji,
            colour: self.colour,
            chatter: self.chatter,
        }
    }

    /// Output that goes back to a daemon client.
    pub fn remote(style: Style, sink: Sink) -> Out {
        Out {
            json: style.json,
            emoji: style.emoji,
            colour: style.colour,
            progress: false,
            chatter: style.chatter,
            verbose: false,
            sink,
        }
    }

    /// A note or warning that is not an error: on stderr only when chatter is welcome.
    pub fn note(&self, text: &str) {
        if self.chatter {
            self.write_stderr(text);
        }
    }

    /// A diagnostic line for `WIRE_VERBOSE=1`.
    pub fn diagnostic(&self, text: &str) {
        if self.verbose {
            self.write_stderr(&format!("wire: {text}\n"));
        }
    }

    /// Writes raw bytes to stdout (or the client's); false once nobody is listening.
    pub fn write_stdout(&self, bytes: &[u8]) -> bool {
        match &self.sink {
            Sink::Std => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(bytes).is_ok() && stdout.flush().is_ok()
            }
            Sink::Remote(f) => f(false, bytes),
        }
    }

    /// Writes a line to stderr (or the client's).
    pub fn write_stderr(&self, text: &str) {
        match &self.sink {
            Sink::Std => eprint!("{text}"),
            Sink::Remote(f) => {
                f(true, text.as_bytes());
            }
        }
    }

    /// Prints one JSON value on one line (for `--follow` streams).
    pub fn json_line(&self, value: &impl Serialize) -> bool {
        // Invariant: our result types are plain data that always serialize.
        let mut s = serde_json::to_string(value).expect("results serialize to JSON");
        s.push('\n');
        self.write_stdout(s.as_bytes())
    }

    /// `🐅 winter-bay` (or `[tiger] winter-bay`), coloured on a terminal.
    pub fn face(&self, c: &Character) -> String {
        let label = c.label(self.emoji);
        if self.colour {
            format!("\x1b[1;38;5;{}m{label}\x1b[0m", c.colour)
        } else {
            label
        }
    }

    /// Prints the result: `json` in JSON mode, `prose` otherwise.
    pub fn print(&self, json: &impl Serialize, prose: impl FnOnce() -> String) {
        let text = if self.json {
            // Invariant: our result types are plain data that always serialize.
            let mut s = serde_json::to_string_pretty(json).expect("results serialize to JSON");
            s.push('\n');
            s
        } else {
            prose()
        };
        // A closed stdout (e.g. `wire whoami | head -0`) is not worth a panic.
        self.write_stdout(text.as_bytes());
    }

    /// Reports a failure: on stderr always, and as the JSON document in JSON mode.
    pub fn error(&self, e: &anyhow::Error) {
        let message = format!("{e:#}");
        self.write_stderr(&format!("wire: {message}\n"));
        if self.json {
            let doc = serde_json::json!({ "error": message, "code": error_code(e) });
            self.write_stdout(format!("{doc:#}\n").as_bytes());
        }
    }
}

fn error_code(e: &anyhow::Error) -> &'static str {
    use wire_engine::EngineError as E;
    match e.downcast_ref::<E>() {
        Some(E::NoSession { .. }) => "no_session",
        Some(E::SessionExists { .. }) => "session_exists",
        Some(E::Incomplete { .. }) => "session_incomplete",
        Some(E::Key(_)) => "key_file",
        Some(E::Store(_)) => "store",
        Some(E::Invalid { .. }) => "invalid",
        Some(E::Refused(_)) => "refused",
        Some(_) => "engine",
        None => "error",
    }
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == value)
}

/// Emoji render unless WIRE_EMOJI=off, or the locale is not UTF-8.
fn emoji_ok() -> bool {
    match std::env::var("WIRE_EMOJI").as_deref() {
        Ok("off" | "0" | "false") => return false,
        Ok("on" | "1" | "true") => return true,
        _ => {}
    }
    // The first of LC_ALL, LC_CTYPE, LANG that is set decides, as in POSIX.
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .is_some_and(|locale| {
            let l = locale.to_ascii_lowercase();
            l.contains("utf-8") || l.contains("utf8")
        })
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1 event`, `2 events`.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!(
        "{} {}",
        thousands(n),
        if n == 1 { singular } else { plural }
    )
}
