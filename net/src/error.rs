//! What can go wrong talking to a relay, phrased so that the caller (and the person behind it)
//! knows what to do next.

/// Why a call to a relay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The base URL (or a URL derived from a handle) is not one this client can use.
    #[error(
        "{0}; a relay URL looks like http://127.0.0.1:8771, https://relay.example or unix:/path/to/relay.sock"
    )]
    BadUrl(String),
    /// An argument cannot be sent as given (an id with characters a URL path cannot carry, a
    /// token a header cannot carry, a card that is not JSON, a malformed handle).
    #[error("{0}")]
    BadInput(String),
    /// No connection could be made: refused, unknown host, TLS failure, or no answer to the
    /// connection attempt in time. Nothing was sent.
    #[error(
        "cannot reach the relay at {url}: {reason}; is the relay running? start one with `wire relay-server`, or check the URL"
    )]
    Unreachable { url: String, reason: String },
    /// The relay's TLS certificate was refused (an unknown CA, another name, expired…).
    /// Nothing was sent. Someone has to act: this machine's trust (`WIRE_CA_FILE`) or the
    /// relay's certificate.
    #[error("the certificate of {url} {problem}")]
    Certificate { url: String, problem: String },
    /// This machine's TLS trust cannot be set up (`WIRE_CA_FILE` unreadable or holding no
    /// certificate, no system roots). Nothing was sent.
    #[error("{0}")]
    Trust(String),
    /// Connected, but the whole request did not finish in time. The request may or may not have
    /// taken effect.
    #[error(
        "the relay at {url} did not answer within {after_ms} ms; it may be overloaded or the network slow: retry later"
    )]
    Timeout { url: String, after_ms: u64 },
    /// The connection broke after the request was (partly) sent and it could not be retried
    /// safely. The request may or may not have taken effect.
    #[error(
        "the connection to the relay at {url} broke mid-request ({reason}); the request may or may not have taken effect: retry (appends and acknowledgements are safe to repeat)"
    )]
    ConnectionLost { url: String, reason: String },
    /// The relay answered with an error (PROTOCOL.md §18.1). `message` is the relay's own
    /// explanation; `code` its stable machine-readable code (`http_<status>` when the body was not
    /// the relay's JSON error shape, e.g. from a proxy in front of it).
    #[error("the relay refused ({status} {code}): {message}")]
    Relay {
        status: u16,
        code: String,
        message: String,
        /// Seconds to wait before retrying, from `Retry-After`.
        retry_after: Option<u64>,
    },
    /// The relay answered something this client does not understand: a body that does not
    /// parse, a missing header, a body over its size cap.
    #[error(
        "the relay at {url} sent an answer this client does not understand: {problem}; is that URL a wire relay of a compatible version?"
    )]
    Protocol { url: String, problem: String },
}

impl NetError {
    /// True when trying again later may succeed without anyone changing anything: the relay
    /// is unreachable or slow, the connection broke, or the relay asked to wait (429, 502,
    /// 503, 504). Callers queue the work and retry; other errors need a fix first.
    pub fn is_transient(&self) -> bool {
        match self {
            NetError::Unreachable { .. }
            | NetError::Timeout { .. }
            | NetError::ConnectionLost { .. } => true,
            NetError::Relay { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            NetError::BadUrl(_)
            | NetError::BadInput(_)
            | NetError::Protocol { .. }
            | NetError::Certificate { .. }
            | NetError::Trust(_) => false,
        }
    }

    /// The relay's error code, when the relay refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            NetError::Relay { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One refused blob in a batch (`{"error", "code"}`, PROTOCOL.md §18.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, thiserror::Error)]
#[error("{error} ({code})")]
pub struct RelayError {
    pub code: String,
    pub error: String,
}
