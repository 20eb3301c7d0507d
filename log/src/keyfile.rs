//! The session's secret key: generation, the key file (0600 inside a 0700 directory) and its
//! strict parser. Secrets never appear in `Debug` output, logs or stdout.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::types::AuthorKey;

const HEADER: &str = "wire-secret-key v1";
const X25519_CONTEXT: &str = "wire 2026-11-25 x25519 from ed25519 seed v1";

/// An Ed25519 signing key, with the X25519 key for sealing derived from the same seed.
pub struct SecretKey {
    signing: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// What went wrong with a key file, with the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "key file {path} already exists; refusing to overwrite a secret key (move it away first if you really mean to replace it)"
    )]
    Exists { path: PathBuf },
    #[error(
        "key file {path} is corrupt ({reason}); it was left untouched. Restore it from a backup; wire never replaces a damaged key"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and check nobody copied it"
    )]
    TooOpen { path: PathBuf, mode: u32 },
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SecretKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::fill(&mut seed[..]);
        SecretKey::from_seed(&seed)
    }

    /// A key from its 32-byte seed (tests and key import).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey {
            signing: SigningKey::from_bytes(seed),
        }
    }

    pub fn author(&self) -> AuthorKey {
        AuthorKey(self.signing.verifying_key().to_bytes())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Signs a 32-byte digest (an event id, or a derive-key hash of a card or intro).
    pub(crate) fn sign_digest(&self, digest: &[u8; 32]) -> crate::types::Signature {
        use ed25519_dalek::Signer;
        crate::types::Signature(self.signing.sign(digest).to_bytes())
    }

    /// The X25519 public key this identity receives sealed events on.
    pub fn x25519_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.x25519_secret()).to_bytes()
    }

    /// The X25519 secret, derived from the Ed25519 seed with a fixed BLAKE3 context.
    pub fn x25519_secret(&self) -> x25519_dalek::StaticSecret {
        let seed = Zeroizing::new(self.signing.to_bytes());
        let derived = Zeroizing::new(blake3::derive_key(X25519_CONTEXT, &seed[..]));
        x25519_dalek::StaticSecret::from(*derived)
    }

    /// Writes a new key file, mode 0600, creating its directory 0700. Never overwrites.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let write_err = |source| KeyFileError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(write_err)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyFileError::Exists {
                        path: path.to_owned(),
                    }
                } else {
                    write_err(e)
                }
            })?;
        let seed = Zeroizing::new(hex::encode(self.signing.to_bytes()));
        let text = Zeroizing::new(format!(
            "{HEADER}\ned25519-seed {}\ned25519-public {}\n",
            seed.as_str(),
            self.author().to_hex()
        ));
        file.write_all(text.as_bytes()).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        Ok(())
    }

    /// Reads a key file, refusing anything but the exact format with a matching public key.
    pub fn read(path: &Path) -> Result<SecretKey, KeyFileError> {
        let meta = fs::metadata(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
        let raw = Zeroizing::new(fs::read(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?);
        SecretKey::parse(&raw).map_err(|reason| KeyFileError::Corrupt {
            path: path.to_owned(),
            reason,
        })
    }

    fn parse(raw: &[u8]) -> Result<SecretKey, String> {
        let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8 text".to_owned())?;
        let mut lines = text.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(format!("first line is not `{HEADER}`"));
        }
        let seed_hex = field(lines.next(), "ed25519-seed")?;
        let public_hex = field(lines.next(), "ed25519-public")?;
        if lines.next() != Some("") || lines.next().is_some() {
            return Err("unexpected content after the public key line".into());
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(seed_hex, &mut seed[..])
            .map_err(|_| "seed is not 64 hex digits".to_owned())?;
        let public = AuthorKey::from_hex(public_hex)
            .ok_or_else(|| "public key is not 64 hex digits".to_owned())?;
        let key = SecretKey::from_seed(&seed);
        if key.author() != public {
            return Err("the seed does not produce the recorded public key".into());
        }
        Ok(key)
    }
}

fn field<'a>(line: Option<&'a str>, name: &str) -> Result<&'a str, String> {
    line.and_then(|l| l.strip_prefix(name))
        .and_then(|l| l.strip_prefix(' '))
        .ok_or_else(|| format!("missing `{name}` line"))
}

/// Creates `dir` (and any missing parents) with mode 0700, and repairs an existing one that is
/// open to others.
///
/// A directory this creates is 0700 from the start (`DirBuilder::mode`; a umask can only take
/// bits away), so it is never chmodded after the fact. One that already existed with group or
/// other bits (a `WIRE_HOME` the operator made by hand) is set to 0700: it is about to hold keys.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_private_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("keys").join("identity.key");
        let key = SecretKey::from_seed(&[7; 32]);
        key.write_new(&path).expect("write");
        let file_mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        let dir_mode = fs::metadata(path.parent().expect("parent"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!((file_mode, dir_mode), (0o600, 0o700));
        assert_eq!(SecretKey::read(&path).expect("read").author(), key.author());
        assert!(matches!(
            key.write_new(&path),
            Err(KeyFileError::Exists { .. })
        ));
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }

    #[test]
    fn corrupt_truncated_and_open_files_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("identity.key");
        SecretKey::from_seed(&[9; 32])
            .write_new(&path)
            .expect("write");
        let good = fs::read_to_string(&path).expect("read");

        // Truncation, a flipped digit in the seed, a garbage file: all corrupt, never replaced.
        for bad in [
            good[..good.len() / 2].to_owned(),
            good.replacen("ed25519-seed 0", "ed25519-seed 1", 1)
                .replacen("ed25519-seed 9", "ed25519-seed 8", 1),
            "hello".to_owned(),
            String::new(),
        ] {
            fs::write(&path, &bad).expect("write");
            let err = SecretKey::read(&path).expect_err("must refuse");
            assert!(matches!(err, KeyFileError::Corrupt { .. }), "{err}");
            assert_eq!(fs::read_to_string(&path).expect("read"), bad);
        }

        fs::write(&path, &good).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            SecretKey::read(&path),
            Err(KeyFileError::TooOpen { mode: 0o644, .. })
        ));
    }
}
