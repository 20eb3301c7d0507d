//! Everything the CLI prints goes through here: prose on a terminal, exactly one JSON document
//! on stdout otherwise; emoji where they render, ASCII tags where they don't; colour only on a
//! terminal.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use wire_log::Character;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub emoji: bool,
    pub colour: bool,
    /// stderr is a terminal: progress bars are welcome.
    pub progress: bool,
}

impl Out {
    pub fn from_env(json_flag: bool) -> Out {
        let stdout_tty = std::io::stdout().is_terminal();
        let auto_json = !stdout_tty && !env_is("WIRE_NO_AUTO_JSON", "1");
        Out {
            json: json_flag || auto_json,
            emoji: emoji_ok(),
            colour: stdout_tty && std::env::var_os("NO_COLOR").is_none(),
            progress: std::io::stderr().is_terminal(),
        }
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
        let mut stdout = std::io::stdout().lock();
        let text = if self.json {
            // Invariant: our result types are plain data that always serialize.
            let mut s = serde_json::to_string_pretty(json).expect("results serialize to JSON");
            s.push('\n');
            s
        } else {
            prose()
        };
        // A closed stdout (e.g. `wire whoami | head -0`) is not worth a panic.
        let _ = stdout.write_all(text.as_bytes());
    }

    /// Reports a failure: on stderr always, and as the JSON document in JSON mode.
    pub fn error(&self, e: &anyhow::Error) {
        let message = format!("{e:#}");
        eprintln!("wire: {message}");
        if self.json {
            let doc = serde_json::json!({ "error": message, "code": error_code(e) });
            let _ = writeln!(std::io::stdout().lock(), "{doc:#}");
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
