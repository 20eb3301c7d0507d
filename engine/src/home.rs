//! The state root (`WIRE_HOME`) and the sessions under it.

use std::path::{Path, PathBuf};

use crate::EngineError;

/// The state root: `$WIRE_HOME`, else `$XDG_STATE_HOME/wire`, else `~/.local/state/wire`.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

/// A session found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub name: String,
    pub dir: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// Resolves the root from the environment.
    pub fn from_env() -> Result<Home, EngineError> {
        if let Some(root) = std::env::var_os("WIRE_HOME").filter(|v| !v.is_empty()) {
            return Ok(Home::new(root));
        }
        if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return Ok(Home::new(PathBuf::from(state).join("wire")));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(Home::new(PathBuf::from(home).join(".local/state/wire"))),
            None => Err(EngineError::Refused(
                "cannot find a place for wire's state: set WIRE_HOME (or HOME)".into(),
            )),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.root.join("sessions")
    }

    pub fn session_dir(&self, name: &str) -> PathBuf {
        self.sessions_dir().join(name)
    }

    /// Every session directory, sorted by name. A missing root means no sessions.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>, EngineError> {
        let dir = self.sessions_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(EngineError::Io { path: dir, source }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| EngineError::Io {
                path: dir.clone(),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if check_session_name(&name).is_ok() && entry.path().is_dir() {
                out.push(SessionInfo {
                    name,
                    dir: entry.path(),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Session names: 1 to 32 of a-z, 0-9, '-', '_'.
pub fn check_session_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.starts_with(['-', '_']);
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid {
            what: "session name",
            value: name.to_owned(),
            reason: "use 1 to 32 of a-z, 0-9, '-' and '_', starting with a letter or digit".into(),
        })
    }
}
