//! The daemon's control protocol (PROTOCOL.md §23): what a client sends on the control socket
//! and the frames the daemon answers with, and the one bounded decoder of a request line. It
//! lives here, beside the relay client, so the daemon, its clients and the fuzz target share
//! one definition (ARCHITECTURE decision (aa)).
//!
//! ```text
//! client → {"v":1,"argv":[…],"style":{json,emoji,colour},"chosen":{name,rule,binding?},"cwd":…}
//! daemon → {"o":"…"} (stdout) / {"e":"…"} (stderr) … then {"x":<exit code>}
//! ```

use serde::{Deserialize, Serialize};

/// The protocol version a request carries; any other is refused.
pub const CONTROL_VERSION: u32 = 1;

/// Longest request line a client may send: a 256 KiB body JSON-escaped at worst (6 bytes a
/// byte), with room to spare.
pub const REQUEST_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Most words in a request's command line (wire's longest real command lines have a dozen).
pub const ARGV_MAX: usize = 256;

/// The presentation choices a client hands the daemon along with its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Style {
    pub json: bool,
    pub emoji: bool,
    pub colour: bool,
    /// Notes that are not errors may go to the client's stderr (it is a terminal, or
    /// `WIRE_VERBOSE=1`); absent from older clients, which get none.
    #[serde(default)]
    pub chatter: bool,
}

/// The session a command acts on, and the rule that chose it (the client resolves it, because
/// it knows the working directory and the environment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    pub name: String,
    /// `--session`, `WIRE_SESSION`, `WIRE_HOME`, `binding` or `default`.
    pub rule: String,
    /// The bound directory, when a binding chose the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// Why the bindings could not be consulted (a damaged `bindings.json`), for stderr. Never
    /// sent: the client prints it.
    #[serde(skip)]
    pub warning: Option<String>,
}

impl Chosen {
    /// Chosen by `rule`, with no binding and no warning.
    pub fn by(name: impl Into<String>, rule: &str) -> Chosen {
        Chosen {
            name: name.into(),
            rule: rule.into(),
            binding: None,
            warning: None,
        }
    }

    /// The rule in prose: "chosen by …".
    pub fn why(&self) -> String {
        match (&self.binding, self.rule.as_str()) {
            (Some(dir), _) => format!("the binding of {dir}"),
            (None, "WIRE_HOME") => "WIRE_HOME, which names its directory".into(),
            (None, rule) => rule.to_owned(),
        }
    }
}

/// One request: a command line to run as the CLI would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    pub argv: Vec<String>,
    pub style: Style,
    pub chosen: Chosen,
    /// The client's working directory, for the commands that bind it (`session new|bind`).
    #[serde(default)]
    pub cwd: Option<String>,
}

/// One answer frame: a piece of stdout, a piece of stderr, or the exit code (the last frame).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub o: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<u8>,
}

/// Why a request line was refused; the message is what the daemon sends back on stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "the request line is longer than {REQUEST_BYTES_MAX} bytes; a message body is at most 256 KiB, send a shorter one"
    )]
    TooLong,
    #[error("the request line ends before its newline; the client hung up mid-request")]
    Unterminated,
    #[error("the request is not UTF-8 text; the control socket takes one JSON object per line")]
    NotUtf8,
    #[error(
        "the request is not a control request ({0}); is this client a wire of another version?"
    )]
    Json(String),
    #[error(
        "the request speaks control protocol version {0}, this daemon speaks {CONTROL_VERSION}; restart the daemon on this binary (`wire upgrade --local`) or use the matching wire"
    )]
    Version(u32),
    #[error("the request's command line is empty; it starts with the program name (`wire`)")]
    NoArgv,
    #[error("the request's command line has {0} words, more than {ARGV_MAX}")]
    TooManyArgs(usize),
}

/// Decodes one request line as read from the socket (the bytes up to and including its
/// newline, at most [`REQUEST_BYTES_MAX`] of them). Never panics.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let Some(body) = line.strip_suffix(b"\n") else {
        return Err(if line.len() >= REQUEST_BYTES_MAX {
            RequestError::TooLong
        } else {
            RequestError::Unterminated
        });
    };
    if line.len() > REQUEST_BYTES_MAX {
        return Err(RequestError::TooLong);
    }
    let text = std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
    let request: Request =
        serde_json::from_str(text).map_err(|e| RequestError::Json(e.to_string()))?;
    if request.v != CONTROL_VERSION {
        return Err(RequestError::Version(request.v));
    }
    if request.argv.is_empty() {
        return Err(RequestError::NoArgv);
    }
    if request.argv.len() > ARGV_MAX {
        return Err(RequestError::TooManyArgs(request.argv.len()));
    }
    Ok(request)
}

/// The line a client sends for `request` (JSON and a newline).
pub fn encode_request(request: &Request) -> String {
    // Invariant: a struct of strings, booleans and integers always serializes.
    let mut line = serde_json::to_string(request).expect("a control request serializes");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            v: 1,
            argv: vec!["wire".into(), "--json".into(), "whoami".into()],
            style: Style {
                json: true,
                emoji: false,
                colour: false,
                chatter: false,
            },
            chosen: Chosen::by("default", "default"),
            cwd: Some("/tmp".into()),
        }
    }

    #[test]
    fn a_request_round_trips_and_refusals_say_why() {
        let line = encode_request(&request());
        assert_eq!(parse_request(line.as_bytes()), Ok(request()));
        assert_eq!(
            parse_request(line.trim_end().as_bytes()),
            Err(RequestError::Unterminated)
        );
        let other = line.replace("\"v\":1", "\"v\":2");
        assert_eq!(
            parse_request(other.as_bytes()),
            Err(RequestError::Version(2))
        );
        let empty = line.replace(r#"["wire","--json","whoami"]"#, "[]");
        assert_eq!(parse_request(empty.as_bytes()), Err(RequestError::NoArgv));
        assert_eq!(parse_request(b"\xff\xfe\n"), Err(RequestError::NotUtf8));
        assert!(matches!(
            parse_request(b"{\"v\":1}\n"),
            Err(RequestError::Json(_))
        ));
        let long = vec![b' '; REQUEST_BYTES_MAX];
        assert_eq!(parse_request(&long), Err(RequestError::TooLong));
        let many = Request {
            argv: vec!["x".into(); ARGV_MAX + 1],
            ..request()
        };
        assert_eq!(
            parse_request(encode_request(&many).as_bytes()),
            Err(RequestError::TooManyArgs(ARGV_MAX + 1))
        );
        // A warning is the client's own: it never travels.
        let mut warned = request();
        warned.chosen.warning = Some("bindings damaged".into());
        assert!(!encode_request(&warned).contains("bindings damaged"));
    }
}
