//! The state root (`WIRE_HOME`), the sessions under it, and the directory bindings that pick a
//! session by working directory (`bindings.json`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Most directory bindings one state root keeps.
pub const BINDINGS_MAX: usize = 4096;

/// Largest `bindings.json` read, in bytes.
const BINDINGS_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The state root: `$WIRE_HOME`, else `$XDG_STATE_HOME/wire`, else `~/.local/state/wire`.
///
/// `WIRE_HOME` may also name one session's directory (`<root>/sessions/<name>`, as older
/// releases' `session env` printed it): the root is then two levels up and that session is
/// pinned.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    pinned: Option<String>,
}

/// `bindings.json`: which session each bound directory (and everything under it) uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bindings {
    pub v: u32,
    /// Canonical directory → session name.
    pub bindings: BTreeMap<String, String>,
}

impl Bindings {
    /// The binding of `dir` or of its nearest ancestor.
    pub fn nearest(&self, dir: &Path) -> Option<(&str, &str)> {
        dir.ancestors().find_map(|a| {
            let key = a.to_str()?;
            self.bindings
                .get_key_value(key)
                .map(|(k, v)| (k.as_str(), v.as_str()))
        })
    }

    /// Directories bound to `session`.
    pub fn dirs_of(&self, session: &str) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|(_, s)| s.as_str() == session)
            .map(|(d, _)| d.clone())
            .collect()
    }
}

/// A directory as bindings key it: absolute, symlinks resolved, UTF-8.
pub fn binding_key(dir: &Path) -> Result<String, EngineError> {
    let canonical = std::fs::canonicalize(dir).map_err(|source| EngineError::Io {
        path: dir.to_owned(),
        source,
    })?;
    canonical
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| EngineError::Invalid {
            what: "directory",
            value: canonical.display().to_string(),
            reason: "only directories with UTF-8 paths can be bound".into(),
        })
}

/// A session found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub name: String,
    pub dir: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home {
            root: root.into(),
            pinned: None,
        }
    }

    /// Resolves the root from the environment.
    pub fn from_env() -> Result<Home, EngineError> {
        if let Some(root) = std::env::var_os("WIRE_HOME").filter(|v| !v.is_empty()) {
            let root = PathBuf::from(root);
            if let Some(home) = Home::of_session_dir(&root) {
                return Ok(home);
            }
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

    /// `dir` as a session's directory, if it is one: `<root>/sessions/<name>` holding a store.
    fn of_session_dir(dir: &Path) -> Option<Home> {
        let name = dir.file_name()?.to_str()?;
        let sessions = dir.parent()?;
        if sessions.file_name()? != "sessions" || check_session_name(name).is_err() {
            return None;
        }
        if !dir.join(crate::session::STORE_FILE).is_file() {
            return None;
        }
        Some(Home {
            root: sessions.parent()?.to_owned(),
            pinned: Some(name.to_owned()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The session `WIRE_HOME` named by its directory, if it did.
    pub fn pinned_session(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// Whether a session of that name exists (has a store).
    pub fn has_session(&self, name: &str) -> bool {
        check_session_name(name).is_ok()
            && self
                .session_dir(name)
                .join(crate::session::STORE_FILE)
                .is_file()
    }

    pub fn bindings_path(&self) -> PathBuf {
        self.root.join("bindings.json")
    }

    /// The directory bindings. A missing file means none; a damaged one is an error and is
    /// never replaced.
    pub fn bindings(&self) -> Result<Bindings, EngineError> {
        let path = self.bindings_path();
        let bytes = match std::fs::File::open(&path) {
            Ok(f) => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, BINDINGS_BYTES_MAX + 1),
                    &mut buf,
                )
                .map_err(|source| EngineError::Io {
                    path: path.clone(),
                    source,
                })?;
                buf
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Bindings::default()),
            Err(source) => return Err(EngineError::Io { path, source }),
        };
        let damaged = |reason: String| EngineError::Damaged {
            path: path.clone(),
            reason: format!(
                "{reason}; fix or remove it (`wire session bind` rewrites it from what is left)"
            ),
        };
        if bytes.len() as u64 > BINDINGS_BYTES_MAX {
            return Err(damaged(format!("larger than {BINDINGS_BYTES_MAX} bytes")));
        }
        let b: Bindings =
            serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not valid: {e}")))?;
        if b.v != 1 {
            return Err(damaged(format!(
                "version {} is not one this wire reads",
                b.v
            )));
        }
        Ok(b)
    }

    /// Changes the bindings under a lock file and writes them atomically (a temporary file,
    /// fsynced, renamed over the old one), so concurrent writers never lose each other's work.
    pub fn update_bindings<R>(
        &self,
        change: impl FnOnce(&mut Bindings) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| EngineError::Io { path, source }
        };
        wire_log::keyfile::create_private_dir(&self.root).map_err(io(&self.root))?;
        let lock_path = self.root.join("bindings.lock");
        let lock = private_file(&lock_path, false).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let mut b = self.bindings()?;
        b.v = 1;
        let out = change(&mut b)?;
        if b.bindings.len() > BINDINGS_MAX {
            return Err(EngineError::Refused(format!(
                "at most {BINDINGS_MAX} directories can be bound; `wire session list` shows them"
            )));
        }
        let tmp = self.root.join("bindings.json.tmp");
        let mut f = private_file(&tmp, true).map_err(io(&tmp))?;
        let json = serde_json::to_vec_pretty(&b).expect("bindings serialise");
        f.write_all(&json).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, self.bindings_path()).map_err(io(&tmp))?;
        Ok(out)
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

/// Opens (creating 0600 if missing) a file under the root.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)
}
