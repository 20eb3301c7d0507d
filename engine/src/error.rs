//! Errors a session reports, each saying what went wrong and what to do next.

use std::path::PathBuf;

use wire_log::{AppendError, AuthorKey, KeyFileError, StoreError};
use wire_projections::ProjectionError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("the session's state could not be updated: {0}")]
    Projection(#[from] ProjectionError),
    #[error(
        "no session `{name}` under {home}; create it with `wire init <handle>` (or `wire session new {name}`)"
    )]
    NoSession { name: String, home: PathBuf },
    #[error("session `{name}` already exists at {dir}; `wire whoami` shows who it is")]
    SessionExists { name: String, dir: PathBuf },
    #[error(
        "session directory {dir} has {found} but not {missing}; it was left untouched. Restore the missing file from a backup, or move the directory away to start over"
    )]
    Incomplete {
        dir: PathBuf,
        found: &'static str,
        missing: &'static str,
    },
    #[error(
        "the key file belongs to {key_author} but the store belongs to {store_owner}; the session directory has been mixed up"
    )]
    KeyMismatch {
        key_author: AuthorKey,
        store_owner: AuthorKey,
    },
    #[error("invalid {what} `{value}`: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot use the state directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged and was left untouched: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("{0}")]
    Refused(String),
}
