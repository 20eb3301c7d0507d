//! End-to-end tests of the `wire` binary as a process: prose and JSON output (insta snapshots),
//! exit codes, `wire verify` catching damage written behind its back, and agents on a line
//! (relay, daemons, pairing, floods, crashes, tampering) in `line`, and many sessions on one
//! machine in `session`, and relays on two hosts (network namespaces) over HTTPS in
//! `federation`.

mod crash;
mod doctor;
mod errors;
mod faults;
mod federation;
mod files;
mod http;
mod invite;
mod line;
mod load;
mod mcp;
mod mesh;
mod modes;
mod output;
mod pair;
mod pentest;
/// The relay tests' private PostgreSQL server, shared with this binary.
#[path = "../../../relay/tests/relay/pg.rs"]
#[allow(dead_code)]
mod pg;
mod relay;
mod session;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Output;

/// A state root with a session made from a fixed key, so output is reproducible.
#[derive(Debug)]
pub struct Env {
    pub home: tempfile::TempDir,
}

impl Env {
    pub fn empty() -> Env {
        Env {
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `wire init alice --offline` from the key with seed [1; 32].
    pub fn with_alice() -> Env {
        let env = Env::empty();
        let key = env.home.path().join("import.key");
        wire_log::SecretKey::from_seed(&[1; 32])
            .write_new(&key)
            .expect("key file");
        let out = env.run(
            &[
                "init",
                "alice",
                "--offline",
                "--key-file",
                key.to_str().expect("utf-8"),
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    pub fn store(&self) -> PathBuf {
        self.home.path().join("sessions/default/store.redb")
    }

    /// Runs `wire` with stdout piped (so JSON by default) and a clean, fixed environment,
    /// without a daemon (`WIRE_NO_DAEMON`: the command opens the store itself, so a test can
    /// open it behind wire's back afterwards and no process outlives the test). `vars` may
    /// override it, as `("WIRE_NO_DAEMON", "false")`.
    pub fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wire"));
        cmd.args(args)
            .env_clear()
            .env("WIRE_HOME", self.home.path())
            // `true`, not `1`: clap takes only true/false for this flag's variable (see
            // `errors::wire_no_daemon_1_is_accepted`).
            .env("WIRE_NO_DAEMON", "true")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("run wire")
    }

    /// Prose output, as on a terminal (without colour).
    pub fn prose(&self, args: &[&str], vars: &[(&str, &str)]) -> (String, i32) {
        let mut all = vec![("WIRE_NO_AUTO_JSON", "1")];
        all.extend_from_slice(vars);
        let out = self.run(args, &all);
        (
            self.scrub(&String::from_utf8_lossy(&out.stdout)),
            out.status.code().unwrap_or(-1),
        )
    }

    /// Stdout parsed as the one JSON document it must be.
    pub fn json(&self, args: &[&str]) -> (serde_json::Value, i32) {
        let out = self.run(args, &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(&self.scrub(&text))
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {text}"));
        (value, out.status.code().unwrap_or(-1))
    }

    fn scrub(&self, s: &str) -> String {
        s.replace(&self.home.path().display().to_string(), "[HOME]")
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
