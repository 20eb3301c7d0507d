//! File modes (issue 8): everything wire creates in a state root is owner-only from the moment
//! it exists (keys, stores, secrets, bindings, sockets, logs, the daemon lock), even when the
//! operator's shell has a permissive umask; a state root left open is repaired and a key file
//! left open refused; and the daemon's control socket refuses another user both by its
//! directory and by the uid check behind it.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::line::{COMMAND_DEADLINE, Rig, Run, poll, run_wire_under, stop_daemon};

/// `wire args` for `home`, started under umask 000.
fn wire000(home: &Path, cwd: Option<&Path>, args: &[&str]) -> Run {
    run_wire_under(home, cwd, Some("000"), args, &[], COMMAND_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"))
        .ok()
}

/// Every entry under `root` (itself included) with its mode, file type and path; panics on an
/// entry that is neither a directory, a regular file nor a socket (wire makes no others).
fn walk(root: &Path) -> Vec<(PathBuf, &'static str, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let kind = if meta.is_dir() {
            "directory"
        } else if meta.file_type().is_file() {
            "file"
        } else if meta.file_type().is_socket() {
            "socket"
        } else {
            panic!(
                "{} is neither a directory, a file nor a socket",
                path.display()
            );
        };
        out.push((path.clone(), kind, meta.permissions().mode() & 0o7777));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir").flatten() {
                todo.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// Directories 0700, files and sockets 0600, for every entry under `root`.
fn assert_private(root: &Path) -> Vec<(PathBuf, &'static str, u32)> {
    let entries = walk(root);
    let wrong: Vec<String> = entries
        .iter()
        .filter(|(_, kind, mode)| *mode != if *kind == "directory" { 0o700 } else { 0o600 })
        .map(|(p, kind, mode)| format!("{kind} {} is {mode:o}", p.display()))
        .collect();
    assert!(
        wrong.is_empty(),
        "not owner-only under {}:\n  {}",
        root.display(),
        wrong.join("\n  ")
    );
    entries
}

/// `init` (and the daemon it starts), a pairing by dial and accept, a message each way, a second
/// session bound to a directory: all run under umask 000, and afterwards every directory under
/// both state roots is 0700 and every file and socket 0600. The relay's data directory, made
/// by `wire relay-server` under umask 000 too, is as private.
#[test]
fn everything_in_a_state_root_is_owner_only_under_a_permissive_umask() {
    let rig = Rig::new(&[]);
    let url = rig.url();
    let alice = rig.home("modealice");
    let bob = rig.home("modebob");
    wire000(&alice, None, &["init", "modealice", "--relay", &url]);
    wire000(&bob, None, &["init", "modebob", "--relay", &url]);
    let bob_handle = format!("modebob@{}", rig.addr_str());
    let alice_handle = format!("modealice@{}", rig.addr_str());
    wire000(&alice, None, &["dial", &bob_handle]);
    let nick = poll("bob to see alice's request", || {
        let v = wire000(&bob, None, &["pending"]).json();
        v["pending"][0]["nickname"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| v.to_string())
    });
    let accepted = wire000(&bob, None, &["accept", &nick]).json();
    assert_eq!(accepted["status"], "paired", "{accepted}");
    poll("alice to see bob paired", || {
        let v = wire000(&alice, None, &["peers"]).json();
        if v["peers"][0]["state"] == "paired" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    let sent = wire000(&alice, None, &["send", &bob_handle, "mode hello"]).json();
    assert_eq!(sent["outcome"], "stored", "{sent}");
    let back = wire000(&bob, None, &["send", &alice_handle, "mode reply"]).json();
    assert_eq!(back["outcome"], "stored", "{back}");
    poll("bob to hold alice's message", || {
        let v = wire000(&bob, None, &["tail", "--json"]).json();
        if v.to_string().contains("mode hello") {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    // A second session bound to a directory: bindings.json and its lock.
    let project = rig.home("modeproject");
    std::fs::create_dir_all(&project).expect("project dir");
    wire000(
        &alice,
        Some(&project),
        &["session", "new", "work", "--relay", &url],
    );

    for home in [&alice, &bob] {
        let entries = assert_private(home);
        let names: Vec<String> = entries
            .iter()
            .filter_map(|(p, _, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        for want in [
            "daemon.sock",
            "daemon.lock",
            "daemon.log",
            "sessions",
            "keys",
            "identity.key",
            "store.redb",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "no {want} under {}: {names:?}",
                home.display()
            );
        }
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("slot-") && n.ends_with(".token")),
            "no slot token under {}: {names:?}",
            home.display()
        );
    }
    let names: Vec<String> = walk(&alice)
        .iter()
        .filter_map(|(p, _, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in ["bindings.json", "bindings.lock", "work"] {
        assert!(names.iter().any(|n| n == want), "no {want}: {names:?}");
    }

    // The relay: its own data directory, started under umask 000.
    let relay_root = tempfile::tempdir().expect("tempdir");
    let mut child = {
        let sh = relay_root.path().join("relay-umask000.sh");
        std::fs::write(&sh, "umask 000\nexec \"$@\"\n").expect("script");
        let data = relay_root.path().join("data");
        let mut child = Command::new("sh")
            .arg(&sh)
            .arg(crate::line::EXE)
            .args(["relay-server", "--json", "--bind", "127.0.0.1:0", "--data"])
            .arg(&data)
            .arg("--uds")
            .arg(relay_root.path().join("relay.sock"))
            .env_clear()
            .env("WIRE_HOME", relay_root.path().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the relay");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("the relay's start line");
        assert!(line.contains("listening"), "relay start line: {line:?}");
        child
    };
    let sock = std::fs::symlink_metadata(relay_root.path().join("relay.sock")).expect("socket");
    assert_eq!(
        sock.permissions().mode() & 0o777,
        0o600,
        "the relay's Unix socket under umask 000"
    );
    let leftovers: Vec<_> = std::fs::read_dir(relay_root.path())
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("bind-"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    assert_private(&relay_root.path().join("data"));
    let _ = child.kill();
    let _ = child.wait();
}

/// A state root made by hand with mode 0755 is made 0700 before wire puts a key in it; a key
/// file someone opened to others (0644) is refused with the command that fixes it, and the
/// session works again once it is fixed.
#[test]
fn an_open_state_root_is_repaired_and_an_open_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--no-daemon");
        run_wire_under(&home, None, Some("000"), &all, &[], COMMAND_DEADLINE)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    run(&["init", "modeopen", "--offline"]).ok();
    assert_private(&home);

    let key = home.join("sessions/default/keys/identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = run(&["whoami"]);
    assert_eq!(refused.code, 2, "{}", refused.describe());
    assert!(
        refused.stderr.contains("identity.key") && refused.stderr.contains("chmod 600"),
        "the refusal names the file and the fix: {}",
        refused.describe()
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    run(&["whoami"]).ok();
}

/// Stops the daemon of a home when dropped, also when the test panics.
struct DaemonGuard(PathBuf);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        stop_daemon(&self.0);
    }
}

/// What a process of uid `nobody` gets on connecting to `sock` and sending one request line:
/// `refused: <errno name>` if the connect fails, else `closed after <n> bytes` (what the daemon
/// answered before it closed the connection or reset it).
fn connect_as_nobody(sock: &Path) -> String {
    const CLIENT: &str = r#"
import socket, sys, errno
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused: " + errno.errorcode.get(e.errno, str(e.errno)))
    sys.exit(0)
req = b'{"v":1,"argv":["wire","--json","whoami"],"style":{"json":true,"emoji":false,"colour":false},"chosen":{"name":"default","rule":"default"}}\n'
try:
    s.sendall(req)
except OSError:
    pass
got = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except ConnectionResetError:
    # Closed with our request unread: the kernel answers with a reset.
    pass
except OSError as e:
    print("error: " + str(e))
    sys.exit(0)
print("closed after %d bytes" % len(got))
"#;
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "/usr/bin/python3",
            "-c",
            CLIENT,
        ])
        .arg(sock)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "setpriv/python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Another user cannot use the control socket. First the directory stops it: the state root is
/// 0700, so `nobody` cannot even reach `daemon.sock` (EACCES). Then, with the socket reached
/// through a hard link in an open directory and its mode opened to 0666 (the case of a root or
/// socket someone loosened by hand), the connect succeeds and the daemon's uid check closes
/// the connection unread: not one byte comes back, while the owner through the same link gets
/// its answer.
///
/// Needs root (to switch to `nobody` with `setpriv`, and to make the link); as any other user
/// it says so and checks nothing.
#[test]
fn the_control_socket_refuses_another_user() {
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "the_control_socket_refuses_another_user: not root, cannot act as another user; skipped"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path().join("home");
    run_wire_under(
        &home,
        None,
        None,
        &["init", "modesock", "--offline"],
        &[],
        COMMAND_DEADLINE,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .ok();
    let _guard = DaemonGuard(home.clone());
    // Any command through the daemon starts it.
    run_wire_under(&home, None, None, &["whoami"], &[], COMMAND_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"))
        .ok();
    let sock = home.join("daemon.sock");
    assert_eq!(
        std::fs::metadata(&home).expect("home").permissions().mode() & 0o777,
        0o700
    );

    assert_eq!(connect_as_nobody(&sock), "refused: EACCES");

    let link = dir.path().join("link.sock");
    std::fs::hard_link(&sock, &link).expect("hard link to the socket");
    let meta = std::fs::metadata(&link).expect("link");
    assert_eq!(meta.ino(), std::fs::metadata(&sock).expect("sock").ino());
    assert_eq!(
        connect_as_nobody(&link),
        "refused: EACCES",
        "a 0600 socket refuses another user even when reachable"
    );
    std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let answer = connect_as_nobody(&link);
    // The owner, through the same link, is answered (so the link itself works).
    let owner = {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&link).expect("connect as owner");
        s.write_all(
            b"{\"v\":1,\"argv\":[\"wire\",\"--json\",\"whoami\"],\"style\":{\"json\":true,\"emoji\":false,\"colour\":false},\"chosen\":{\"name\":\"default\",\"rule\":\"default\"}}\n",
        )
        .expect("write");
        let mut got = String::new();
        s.read_to_string(&mut got).expect("read");
        got
    };
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).expect("chmod back");
    std::fs::remove_file(&link).expect("remove link");
    assert!(
        owner.contains("\"x\":0") && owner.contains("modesock"),
        "the owner's request through the link: {owner}"
    );
    assert_eq!(
        answer, "closed after 0 bytes",
        "another uid's connection must be closed unread"
    );
    // And the daemon still serves its owner.
    run_wire_under(&home, None, None, &["whoami"], &[], COMMAND_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"))
        .ok();
}
