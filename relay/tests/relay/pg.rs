//! A private PostgreSQL server for the relay tests, when they run on the PostgreSQL store
//! (`WIRE_RELAY_TEST_STORE=postgres`; `scripts/test` runs this binary both ways).
//!
//! One server per test process, started on first use with `initdb` and `postgres` in a
//! temporary directory, on a free loopback port, as `nobody` when the tests run as root (the
//! server refuses root). It is owned by a small shell that holds the read end of a pipe from
//! this process: when the test process exits, however it exits, the pipe closes and the shell
//! stops the server and removes its directory. Each relay data directory gets a database of its
//! own, named after the directory, so a relay reopened on the same directory finds its data.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The environment variable that picks the store the relay tests run on.
pub const STORE_ENV: &str = "WIRE_RELAY_TEST_STORE";

/// Whether the relay tests run on PostgreSQL rather than redb.
pub fn enabled() -> bool {
    match std::env::var(STORE_ENV).as_deref() {
        Ok("postgres") => true,
        Ok("redb") | Err(_) => false,
        Ok(other) => panic!("{STORE_ENV}={other:?}: expected \"redb\" or \"postgres\""),
    }
}

struct Server {
    port: u16,
    /// The shell that owns the server; its stdin is the pipe whose closing stops it.
    _shell: Mutex<Child>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "{STORE_ENV}=postgres but no PostgreSQL server binaries (initdb) were found; \
             run scripts/tools-env (it installs Debian's postgresql)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn start() -> Server {
    let bin = bin_dir();
    let dir = tempfile::Builder::new()
        .prefix("wire-relay-pg-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let script = r#"
        "$BIN/initdb" -D "$DIR/data" -U wire --auth=trust -N -E UTF8 >"$DIR/initdb.log" 2>&1 \
            || { cat "$DIR/initdb.log" >&2; exit 1; }
        "$BIN/postgres" -D "$DIR/data" -p "$PORT" -k "$DIR" -c listen_addresses=127.0.0.1 \
            -c fsync=off -c max_connections=600 -c shared_buffers=32MB >"$DIR/server.log" 2>&1 &
        pid=$!
        echo started
        read -r _ || true
        kill -INT "$pid"
        wait "$pid"
        rm -rf "$DIR"
    "#;
    let mut cmd = if is_root() {
        let status = Command::new("chown")
            .args(["nobody:nogroup"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success(), "cannot chown {} to nobody", dir.display());
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    };
    let mut shell = cmd
        .env("BIN", &bin)
        .env("DIR", &dir)
        .env("PORT", port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the PostgreSQL shell");
    let mut line = String::new();
    let stdout = shell.stdout.take().expect("piped stdout");
    BufReader::new(stdout).read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "started", "initdb failed (see above)");
    let server = Server {
        port,
        _shell: Mutex::new(shell),
    };
    // Ready once it accepts a connection.
    let url = server.url("postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    on_thread(move || {
        loop {
            match postgres::Client::connect(&url, postgres::NoTls) {
                Ok(_) => return,
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("the test PostgreSQL on {url} never came up: {e}")
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    });
    server
}

impl Server {
    fn url(&self, db: &str) -> String {
        format!("postgres://wire@127.0.0.1:{}/{db}", self.port)
    }
}

/// The `postgres` client runs a runtime of its own: keep it off the tests' async workers.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f)
        .join()
        .expect("PostgreSQL helper thread")
}

/// The URL of the database for relay data directory `data_dir`, created on first use.
pub fn database_for(data_dir: &Path) -> String {
    let server = SERVER.get_or_init(start);
    let key = blake3::hash(data_dir.as_os_str().as_encoded_bytes());
    let name = format!("relay_{}", &key.to_hex()[..20]);
    let admin = server.url("postgres");
    let db = name.clone();
    on_thread(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        let exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .expect("query")
            .is_some();
        if !exists {
            c.batch_execute(&format!("CREATE DATABASE {db}"))
                .expect("create database");
        }
    });
    server.url(&name)
}

/// Runs SQL on the database at `url` (for tests that set up what a relay will find).
pub fn execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_thread(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.batch_execute(&sql).expect("sql");
    });
}

/// A fresh database on the test server, whatever store the other tests run on.
pub fn fresh_database() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    database_for(&dir.path().join("fresh"))
}
