//! The file contract, as real processes: a daemon hosting two sister sessions, one with
//! `--with-files`; a thread of the test appends outbox lines in small writes (lines split across
//! two writes, malformed lines, an unknown peer's file) while the daemon runs, is SIGKILLed and
//! restarted; every valid line arrives exactly once and every line has one status. The inbox
//! mirror holds each message once, also across a restart and after the file is removed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::line::{COMMAND_DEADLINE, Rig, Run, alive, kill9, poll, poll_for, run_wire_in};

fn wire(home: &Path, args: &[&str]) -> Run {
    run_wire_in(home, None, args, &[], COMMAND_DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

fn json(home: &Path, args: &[&str]) -> Value {
    wire(home, args).ok().json()
}

/// Two sister sessions `a` (file contract on) and `b`, paired; returns `a`'s directory and
/// `b`'s file name under it.
fn two_sisters(rig: &Rig, home: &Path) -> (PathBuf, String) {
    let url = rig.url();
    let a = json(
        home,
        &[
            "session",
            "new",
            "a",
            "--local-only",
            "--local-relay",
            &url,
            "--no-bind",
            "--with-files",
        ],
    );
    assert_eq!(a["files"], true, "{a}");
    json(
        home,
        &[
            "session",
            "new",
            "b",
            "--local-only",
            "--local-relay",
            &url,
            "--no-bind",
        ],
    );
    let mesh = json(home, &["--session", "a", "session", "pair-all-local"]);
    assert_eq!(mesh["paired"], 1, "{mesh}");
    let files = json(home, &["--session", "a", "files", "status"]);
    assert_eq!(files["enabled"], true, "{files}");
    let name = files["peers"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no file name: {files}"))
        .to_owned();
    (PathBuf::from(a["dir"].as_str().expect("dir")), name)
}

/// The complete lines of a file the daemon writes (a line it is still writing is left out,
/// as the contract tells readers to).
fn lines_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn daemon_pid(home: &Path) -> u32 {
    let v = json(home, &["daemon", "status", "--json"]);
    u32::try_from(v["pid"].as_u64().unwrap_or_else(|| panic!("no pid: {v}"))).expect("pid")
}

/// What line `i` (from 1) of the test's outbox is: `Some(body)` when valid.
fn outbox_line(i: usize) -> (String, Option<String>) {
    if i.is_multiple_of(10) {
        return (format!("not json {i}\n"), None);
    }
    if i.is_multiple_of(17) {
        return ("{\"kind\":\"message\"}\n".into(), None);
    }
    if i.is_multiple_of(250) || i == 333 {
        let big = "x".repeat(300_000);
        return (format!("{{\"body\":\"{big}\"}}\n"), None);
    }
    let body = format!("line-{i}");
    if i.is_multiple_of(7) {
        (
            format!("{{\"body\":\"{body}\",\"kind\":1100}}\n"),
            Some(body),
        )
    } else {
        (format!("{{\"body\":\"{body}\"}}\n"), Some(body))
    }
}

const LINES: usize = 1000;

fn written_is_private(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o700)
}

#[test]
fn outbox_lines_are_sent_exactly_once_across_a_sigkill_and_every_line_has_a_status() {
    let rig = Rig::new(&["--local-only"]);
    let home = rig.home("machine");
    let (dir, b_name) = two_sisters(&rig, &home);
    let outbox = dir.join("outbox");
    assert!(written_is_private(&outbox));
    let file = outbox.join(format!("{b_name}.jsonl"));
    let nobody = outbox.join("nobody-here.jsonl");

    // Another process's way of writing: small write() calls, lines split across two of them.
    let written = Arc::new(AtomicUsize::new(0));
    // The writer waits at line 600 until the daemon was killed, so the kill lands midway.
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (file, nobody, written) = (file.clone(), nobody.clone(), written.clone());
        let killed = killed.clone();
        std::thread::spawn(move || {
            let open = |p: &Path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("open outbox file")
            };
            let (mut f, mut n) = (open(&file), open(&nobody));
            for i in 1..=LINES {
                let (line, _) = outbox_line(i);
                let cut = (i * 7919) % line.len().max(1);
                f.write_all(&line.as_bytes()[..cut]).expect("write");
                if i.is_multiple_of(3) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                f.write_all(&line.as_bytes()[cut..]).expect("write");
                if i.is_multiple_of(100) {
                    n.write_all(format!("{{\"body\":\"to nobody {i}\"}}\n").as_bytes())
                        .expect("write");
                }
                written.store(i, Ordering::SeqCst);
                if i.is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                while i == 600 && !killed.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };

    // SIGKILL the daemon midway, once some lines went, then start it again.
    let status = outbox.join(format!("{b_name}.status.jsonl"));
    poll("some lines to be consumed", || {
        let n = lines_of(&status).len();
        if n >= 100 {
            Ok(())
        } else {
            Err(format!("{n} statuses"))
        }
    });
    let pid = daemon_pid(&home);
    kill9(pid);
    poll("the daemon to die", || {
        if alive(pid) {
            Err(format!("{pid} alive"))
        } else {
            Ok(())
        }
    });
    let after_kill = lines_of(&status).len();
    killed.store(true, Ordering::SeqCst);
    // Any command starts the daemon again; it goes on from the log alone.
    wire(&home, &["--session", "a", "files", "status"]).ok();
    writer.join().expect("the writer");

    let statuses = poll_for("one status per line", Duration::from_secs(60), || {
        let s = lines_of(&status);
        if s.len() >= LINES {
            Ok(s)
        } else {
            Err(format!("{} of {LINES} (SIGKILL at {after_kill})", s.len()))
        }
    });
    let numbers: Vec<u64> = statuses
        .iter()
        .map(|s| s["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(
        numbers,
        (1..=LINES as u64).collect::<Vec<_>>(),
        "one status per line, in order, none twice"
    );
    let mut offset = 0;
    for (i, s) in (1..=LINES).zip(&statuses) {
        let (line, body) = outbox_line(i);
        assert_eq!(s["start"], offset, "line {i}: {s}");
        offset += line.len() as u64;
        assert_eq!(s["end"], offset, "line {i}: {s}");
        match body {
            Some(_) => {
                let o = s["outcome"].as_str().unwrap_or("");
                assert!(
                    ["delivered", "stored", "queued", "up_to_date"].contains(&o),
                    "line {i}: {s}"
                );
                assert_eq!(s["id"].as_str().map(str::len), Some(64), "line {i}: {s}");
            }
            None => {
                assert_eq!(s["outcome"], "invalid", "line {i}: {s}");
                assert!(s["error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
                assert!(s.get("id").is_none(), "nothing sent for line {i}: {s}");
            }
        }
    }
    let big = &statuses[332];
    assert!(
        big["error"]
            .as_str()
            .unwrap_or("")
            .contains("at most 262144"),
        "{big}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&status)
            .expect("status file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the status file is private");
    let nobody_status = lines_of(&outbox.join("nobody-here.status.jsonl"));
    assert_eq!(nobody_status.len(), LINES / 100, "{nobody_status:?}");
    assert!(
        nobody_status.iter().all(|s| s["outcome"] == "invalid"
            && s["error"].as_str().unwrap_or("").contains("no paired peer")),
        "{nobody_status:?}"
    );

    // At the receiver: every valid line exactly once, with its kind.
    let want: Vec<(usize, String)> = (1..=LINES)
        .filter_map(|i| outbox_line(i).1.map(|b| (i, b)))
        .collect();
    let got = poll_for("every valid line at b", Duration::from_secs(60), || {
        let v = json(&home, &["--session", "b", "tail", "-n", "5000"]);
        let mut seen: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for m in v["messages"].as_array().expect("messages") {
            if let Some(b) = m["body"].as_str() {
                let e = seen.entry(b.to_owned()).or_insert((0, 0));
                e.0 += 1;
                e.1 = m["kind"].as_u64().unwrap_or(0);
            }
        }
        if want.iter().all(|(_, b)| seen.contains_key(b)) {
            Ok(seen)
        } else {
            Err(format!("{} of {} arrived", seen.len(), want.len()))
        }
    });
    assert_eq!(got.len(), want.len(), "nothing but the valid lines arrived");
    for (i, b) in &want {
        let (n, kind) = got[b];
        assert_eq!(n, 1, "{b} arrived {n} times");
        assert_eq!(kind, if i % 7 == 0 { 1100 } else { 1000 }, "{b}");
    }
    let v = wire(&home, &["--session", "a", "verify"]);
    assert_eq!(v.code, 0, "{}", v.describe());
}

#[test]
fn the_inbox_mirror_holds_each_message_once_across_restarts() {
    let rig = Rig::new(&["--local-only"]);
    let home = rig.home("machine");
    let (dir, b_name) = two_sisters(&rig, &home);
    let a_nick = json(&home, &["--session", "a", "whoami"])["nickname"]
        .as_str()
        .expect("a's nickname")
        .to_owned();
    let inbox = dir.join("inbox").join(format!("{b_name}.jsonl"));
    let bodies = |want: usize| -> Vec<String> {
        poll(&format!("{want} lines in {}", inbox.display()), || {
            let l = lines_of(&inbox);
            if l.len() >= want {
                Ok(l.iter()
                    .map(|m| m["body"].as_str().unwrap_or("").to_owned())
                    .collect())
            } else {
                Err(format!("{} lines", l.len()))
            }
        })
    };
    for i in 1..=3 {
        json(
            &home,
            &["--session", "b", "send", &a_nick, &format!("hello {i}")],
        );
    }
    assert_eq!(bodies(3), ["hello 1", "hello 2", "hello 3"]);
    // Same fields as `wire tail --json`.
    let tail = json(&home, &["--session", "a", "tail"]);
    let first = &lines_of(&inbox)[0];
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(first), keys(&tail["messages"][0]), "{first}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&inbox).expect("inbox").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // A restart neither loses nor repeats a line.
    wire(&home, &["daemon", "stop"]).ok();
    json(&home, &["--session", "b", "send", &a_nick, "hello 4"]);
    assert_eq!(bodies(4), ["hello 1", "hello 2", "hello 3", "hello 4"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lines_of(&inbox).len(), 4, "no line twice");

    // A file behind the log (here: gone) is rebuilt from the log.
    wire(&home, &["daemon", "stop"]).ok();
    std::fs::remove_file(&inbox).expect("remove the inbox file");
    wire(&home, &["--session", "a", "files", "status"]).ok();
    assert_eq!(bodies(4), ["hello 1", "hello 2", "hello 3", "hello 4"]);

    // Off stops the mirror; the file stays.
    let off = json(&home, &["--session", "a", "files", "off"]);
    assert_eq!(off["enabled"], false, "{off}");
    // A round already running when the task was stopped finishes first.
    std::thread::sleep(Duration::from_millis(300));
    json(&home, &["--session", "b", "send", &a_nick, "hello 5"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lines_of(&inbox).len(), 4, "off: nothing more mirrored");
}
