//! Slot owner tokens: bearer secrets that read and manage our mailboxes. They live in the key
//! directory (0700), one file per slot, created 0600 and never overwritten; never in the log.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wire_log::body::Endpoint;

use crate::EngineError;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    relay: String,
    slot: String,
    token: String,
}

fn token_path(session_dir: &Path, endpoint: &Endpoint) -> PathBuf {
    let name = blake3::hash(format!("{}\n{}", endpoint.relay, endpoint.slot).as_bytes());
    session_dir
        .join("keys")
        .join(format!("slot-{}.token", &name.to_hex()[..32]))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes the owner token of a slot we just allocated.
pub(crate) fn save_slot_token(
    session_dir: &Path,
    endpoint: &Endpoint,
    token: &str,
) -> Result<(), EngineError> {
    let path = token_path(session_dir, endpoint);
    let body = serde_json::to_vec(&TokenFile {
        relay: endpoint.relay.clone(),
        slot: endpoint.slot.clone(),
        token: token.to_owned(),
    })
    .map_err(|e| EngineError::Refused(format!("cannot encode a slot token: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    file.write_all(&body).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    Ok(())
}

/// Reads the owner token of one of our slots.
pub(crate) fn load_slot_token(
    session_dir: &Path,
    endpoint: &Endpoint,
) -> Result<String, EngineError> {
    let path = token_path(session_dir, endpoint);
    let meta = std::fs::metadata(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EngineError::Refused(format!(
                "the owner token for slot {} at {} is missing ({}); the slot cannot be read. Run `wire rotate-slot` to move to a new one",
                endpoint.slot,
                endpoint.relay,
                path.display()
            ))
        } else {
            io(&path)(e)
        }
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(EngineError::Refused(format!(
            "{} is readable by other users; run `chmod 600 {}` and try again",
            path.display(),
            path.display()
        )));
    }
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let file: TokenFile = serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Refused(format!("{} is damaged: {e}", path.display())))?;
    if file.relay != endpoint.relay || file.slot != endpoint.slot {
        return Err(EngineError::Refused(format!(
            "{} holds the token of another slot",
            path.display()
        )));
    }
    Ok(file.token)
}
