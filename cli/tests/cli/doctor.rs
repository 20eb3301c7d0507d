//! `wire doctor`, `wire status` and notifications against real daemons and a real relay: a
//! healthy pair passes every check (prose and JSON snapshots); each failure class, created on
//! purpose, is reported as WARN or FAIL with its fix; notifications are raised once per pair
//! request and per message, never for our own sends, and not at all when quiet.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::http;
use crate::line::{Agent, EXE, Rig, Run, pair, poll, wire};

/// `wire doctor` for `agent` with HOME at `home_dir` (where the MCP host configs live).
fn doctor(agent: &Agent, home_dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["doctor"];
    args.extend_from_slice(extra);
    wire(
        &agent.home,
        &args,
        &[("HOME", home_dir.to_str().expect("utf-8 path"))],
    )
}

/// The checks of a doctor run that are not PASS, as `level check: detail | fix`.
fn problems(r: &Run) -> Vec<String> {
    let v = r.json();
    v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {}", r.describe()))
        .iter()
        .filter(|c| c["level"] != "pass")
        .map(|c| {
            format!(
                "{} {}: {} | {}",
                c["level"].as_str().unwrap_or(""),
                c["check"].as_str().unwrap_or(""),
                c["detail"].as_str().unwrap_or(""),
                c["fix"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Asserts one problem line contains every needle, and returns it.
fn has_problem(r: &Run, needles: &[&str]) -> String {
    let all = problems(r);
    all.iter()
        .find(|p| needles.iter().all(|n| p.contains(n)))
        .cloned()
        .unwrap_or_else(|| panic!("no problem with {needles:?} in {all:#?}\n{}", r.describe()))
}

/// Replaces what changes from run to run (pids, ports, times, paths, names) in doctor output.
fn settle(text: &str, rig: &Rig, root: &Path, a: &Agent, b: &Agent) -> String {
    let mut s = text
        .replace(&root.display().to_string(), "[ROOT]")
        .replace(&rig.addr_str(), "[RELAY]");
    for (agent, name) in [(a, "ALICE"), (b, "BOB")] {
        s = s.replace(&agent.nickname, &format!("[{name}]"));
    }
    let mut out = String::new();
    let mut rest = s.as_str();
    // Numbers after "pid " and "up " and before " ms" vary.
    while let Some(i) = rest.find(|c: char| c.is_ascii_digit()) {
        let (head, tail) = rest.split_at(i);
        let end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(tail.len());
        let (num, after) = tail.split_at(end);
        let varies = head.ends_with("pid ")
            || head.ends_with("up ")
            || after.starts_with(" ms")
            || head.ends_with("\"uptime_s\": ")
            || head.ends_with("\"pid\": ");
        out.push_str(head);
        out.push_str(if varies { "N" } else { num });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn rig_root(a: &Agent) -> PathBuf {
    a.home.parent().expect("the rig root").to_owned()
}

#[test]
fn doctor_passes_a_healthy_pair_and_reports_each_failure_with_its_fix() {
    let mut rig = Rig::new(&[]);
    let alice = rig.agent("alice");
    let bob = rig.agent("bob");
    pair(&alice, &bob);
    alice.send_stored(&bob, "hello");
    poll("bob to receive hello", || {
        let got = bob.tail(5);
        if got.iter().any(|m| m["body"] == "hello") {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    let root = rig_root(&alice);
    let user_home = tempfile::tempdir().expect("tempdir");

    // Healthy: every check passes, exit 0.
    let healthy = poll("alice's doctor to pass everything", || {
        let r = doctor(&alice, user_home.path(), &[]);
        if r.code == 0 && problems(&r).is_empty() {
            Ok(r)
        } else {
            Err(r.describe())
        }
    });
    let v = healthy.json();
    assert_eq!(v["ok"], true);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["check"].as_str().unwrap_or(""))
        .collect();
    for want in ["daemon", "slot", "relay", "peer", "permissions"] {
        assert!(names.contains(&want), "no {want} check in {names:?}");
    }
    insta::assert_snapshot!(
        "doctor_healthy_json",
        settle(&healthy.stdout, &rig, &root, &alice, &bob)
    );
    let prose = wire(
        &alice.home,
        &["doctor"],
        &[
            ("HOME", user_home.path().to_str().expect("utf-8")),
            ("WIRE_NO_AUTO_JSON", "1"),
        ],
    );
    assert_eq!(prose.code, 0, "{}", prose.describe());
    insta::assert_snapshot!(
        "doctor_healthy_prose",
        settle(&prose.stdout, &rig, &root, &alice, &bob)
    );

    // `wire status --peer`: one peer's line, with the relay probed and the slot's backlog.
    let st = alice.json(&["status", "--peer", &bob.nickname]);
    let peers = st["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 1, "{st}");
    assert_eq!(peers[0]["key"], bob.key.as_str(), "{st}");
    assert!(peers[0]["last_pushed_ms"].as_u64().is_some(), "{st}");
    assert_eq!(st["relays"][0]["reachable"], true, "{st}");
    assert!(st["relays"][0]["latency_ms"].as_f64().is_some(), "{st}");
    assert_eq!(st["receiving"][0]["read"], true, "{st}");
    // No notification service in this environment (no session bus): notices go to the log.
    assert_eq!(st["notifications"]["backend"], "log", "{st}");
    let typo = alice.run(&["status", "--peer", "nobody-at-all"]);
    assert_ne!(typo.code, 0, "{}", typo.describe());

    // A pair request waits for a decision.
    let carol = rig.agent("carol");
    carol.json(&["dial", &alice.handle]);
    let r = poll("alice's doctor to see carol's request", || {
        let r = doctor(&alice, user_home.path(), &[]);
        if problems(&r).iter().any(|p| p.contains("pending")) {
            Ok(r)
        } else {
            Err(r.describe())
        }
    });
    assert_eq!(r.code, 0, "a warning is not a failure: {}", r.describe());
    has_problem(&r, &["warn pending", "carol", "`wire pending`"]);
    alice.run(&["reject", &carol.nickname]).ok();

    // An MCP host config that launches another binary, or one that is gone.
    let claude = user_home.path().join(".claude.json");
    std::fs::write(
        &claude,
        r#"{"mcpServers": {"wire": {"type": "stdio", "command": "/bin/true", "args": ["mcp"]}}}"#,
    )
    .expect("write .claude.json");
    let r = doctor(&alice, user_home.path(), &[]);
    has_problem(&r, &["warn mcp", "/bin/true", "`wire setup --apply`"]);
    std::fs::write(
        &claude,
        r#"{"mcpServers": {"wire": {"command": "/nonexistent/wire", "args": ["mcp"]}}}"#,
    )
    .expect("write .claude.json");
    let r = doctor(&alice, user_home.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.describe());
    has_problem(
        &r,
        &[
            "fail mcp",
            "/nonexistent/wire",
            "does not exist",
            "`wire setup --apply`",
        ],
    );
    std::fs::write(
        &claude,
        format!(r#"{{"mcpServers": {{"wire": {{"command": "{EXE}", "args": ["mcp"]}}}}}}"#),
    )
    .expect("write .claude.json");
    let r = doctor(&alice, user_home.path(), &[]);
    assert!(problems(&r).is_empty(), "{}", r.describe());

    // A key file others may read.
    let key = alice.home.join("sessions/default/keys/identity.key");
    assert!(key.exists(), "no key file at {}", key.display());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = doctor(&alice, user_home.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.describe());
    has_problem(
        &r,
        &[
            "fail permissions",
            &key.display().to_string(),
            "mode 644",
            &format!("chmod 600 '{}'", key.display()),
        ],
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod back");

    // Another process that looks like a daemon of this state root.
    let mut fake = Command::new("tail")
        .arg0("wire")
        .args(["-f", "/dev/null", "--", "daemon", "--foreground"])
        .env("WIRE_HOME", &alice.home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the look-alike daemon");
    let r = doctor(&alice, user_home.path(), &[]);
    let _ = fake.kill();
    let _ = fake.wait();
    assert_eq!(r.code, 1, "{}", r.describe());
    has_problem(
        &r,
        &[
            "fail daemon",
            "more daemon processes",
            &format!("kill {}", fake.id()),
        ],
    );

    // Bob's daemon goes down; alice sends two messages and stops hers at once (a resend only
    // comes 5 s after a push, so each message travels in a blob of its own). The blob with
    // the first is then deleted from bob's slot before bob reads it.
    bob.stop_daemon();
    let (slot, token) = bob.slot();
    let last_seq = |rig: &Rig| -> u64 {
        http::request(
            &rig.target(),
            "GET",
            &format!("/v1/slots/{slot}"),
            &[("authorization", &format!("Bearer {token}"))],
            b"",
        )
        .expect("slot info")
        .json()["last_seq"]
            .as_u64()
            .expect("last_seq")
    };
    alice.send_stored(&bob, "are you there?");
    let through = last_seq(&rig);
    alice.send_stored(&bob, "after the gap");
    alice.stop_daemon();

    // A peer that does not read its mail: alice's events wait unconfirmed.
    let r = doctor(&alice, user_home.path(), &["--stale-after", "0s"]);
    has_problem(
        &r,
        &["warn peer", &bob.nickname, "not confirmed", "`wire sync`"],
    );
    let r = doctor(&alice, user_home.path(), &[]);
    assert!(
        !problems(&r).iter().any(|p| p.contains("warn peer")),
        "unconfirmed for seconds is not stale under the 2-day default: {}",
        r.describe()
    );

    // Events waiting aside: bob reads the second message past the gap the first left.
    let acked = http::request(
        &rig.target(),
        "POST",
        &format!("/v1/slots/{slot}/ack"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        format!(r#"{{"through": {through}}}"#).as_bytes(),
    )
    .expect("ack");
    assert_eq!(acked.status, 200, "{}", acked.text());
    bob.run(&["peers"]).ok(); // starts bob's daemon, which reads the slot
    let r = poll("bob's doctor to see events waiting aside", || {
        let r = doctor(&bob, user_home.path(), &[]);
        if problems(&r).iter().any(|p| p.contains("aside for seq")) {
            Ok(r)
        } else {
            Err(r.describe())
        }
    });
    has_problem(
        &r,
        &[
            "warn peer",
            &alice.nickname,
            "waits aside for seq",
            "`wire sync`",
        ],
    );

    // No daemon: alice's is stopped (above).
    let r = doctor(&alice, user_home.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.describe());
    has_problem(
        &r,
        &["fail daemon", "no daemon is running", "`wire daemon`"],
    );
    assert!(
        !alice.home.join("daemon.sock").exists(),
        "the doctor must not start a daemon"
    );
    let status = wire(&alice.home, &["status"], &[]).ok().json();
    assert_eq!(status["daemon"], false, "{status}");
    assert!(!alice.home.join("daemon.sock").exists(), "nor must status");

    // A clock twenty minutes fast (libfaketime shifts this one process).
    let skewed = Command::new("faketime")
        .args(["-f", "+20m", EXE, "doctor", "--no-daemon", "--json"])
        .env_clear()
        .env("WIRE_HOME", &alice.home)
        .env("HOME", user_home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("faketime must be installed (scripts/test installs it)");
    let skewed = Run {
        argv: "doctor --no-daemon (under faketime +20m)".into(),
        code: skewed.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&skewed.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&skewed.stderr).into_owned(),
    };
    assert_eq!(skewed.code, 1, "{}", skewed.describe());
    has_problem(&skewed, &["fail clock", "ahead of", "timedatectl"]);

    // The relay we receive at is down.
    rig.kill_relay();
    let r = doctor(&bob, user_home.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.describe());
    has_problem(
        &r,
        &[
            "fail relay",
            "unreachable",
            "`wire relay-server --bind 127.0.0.1:",
        ],
    );
    let prose = wire(
        &bob.home,
        &["doctor"],
        &[
            ("HOME", user_home.path().to_str().expect("utf-8")),
            ("WIRE_NO_AUTO_JSON", "1"),
        ],
    );
    assert_eq!(prose.code, 1, "{}", prose.describe());
    insta::assert_snapshot!(
        "doctor_relay_down_events_aside_prose",
        settle(&prose.stdout, &rig, &root, &alice, &bob)
    );
}

#[test]
fn a_retired_slot_that_still_holds_blobs_fails_until_synced() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("alice");
    let bob = rig.agent("bob");
    pair(&alice, &bob);
    let (old_slot, old_token) = bob.slot();
    bob.json(&["rotate-slot"]);
    // Bob retires the old slot once alice has his new endpoint and the old one is empty.
    poll("bob to retire his old slot", || {
        let st = bob.status();
        let receiving = st["receiving"].as_array().cloned().unwrap_or_default();
        if receiving.len() == 1 && receiving[0]["slot"] != old_slot.as_str() {
            Ok(())
        } else {
            alice.send_stored(&bob, "nudge");
            Err(st["receiving"].to_string())
        }
    });
    // A blob lands in the retired slot (written with its owner token, as a stale writer would)
    // while no daemon runs; the daemon that starts next reads only the current slot.
    bob.stop_daemon();
    let put = http::request(
        &rig.target(),
        "POST",
        &format!("/v1/slots/{old_slot}/blobs"),
        &[
            ("authorization", &format!("Bearer {old_token}")),
            ("content-type", "application/octet-stream"),
        ],
        b"a late blob",
    )
    .expect("append");
    assert_eq!(put.status, 201, "{}", put.text());
    bob.run(&["peers"]).ok();
    let user_home = tempfile::tempdir().expect("tempdir");
    let r = doctor(&bob, user_home.path(), &[]);
    assert_eq!(r.code, 1, "{}\nstatus: {}", r.describe(), bob.status());
    has_problem(
        &r,
        &["fail slot", "we retired", "1 blob", "`wire sync --retired`"],
    );
    bob.json(&["sync", "--retired"]);
    let r = doctor(&bob, user_home.path(), &[]);
    assert!(
        !problems(&r).iter().any(|p| p.contains("retired")),
        "{}",
        r.describe()
    );
}

/// The notices the daemon wrote to its sink file.
fn notices(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON notice"))
        .collect()
}

fn count(path: &Path, kind: &str) -> usize {
    notices(path).iter().filter(|n| n["kind"] == kind).count()
}

#[test]
fn notifications_come_once_per_request_and_message_never_for_our_sends_nor_when_quiet() {
    let rig = Rig::new(&[]);
    let sinks = tempfile::tempdir().expect("tempdir");
    let sink_a = sinks.path().join("alice.jsonl");
    let sink_b = sinks.path().join("bob.jsonl");
    let alice = rig.agent_with(
        "alice",
        &[("WIRE_NOTIFY_SINK", sink_a.to_str().expect("utf-8"))],
    );
    let bob = rig.agent_with(
        "bob",
        &[("WIRE_NOTIFY_SINK", sink_b.to_str().expect("utf-8"))],
    );

    // Alice asks twice: bob is told once.
    alice.json(&["dial", &bob.handle]);
    poll("bob to be told of alice's request", || {
        match count(&sink_b, "pair_request") {
            0 => Err(format!("{:?}", notices(&sink_b))),
            _ => Ok(()),
        }
    });
    alice.json(&["dial", &bob.handle]);
    poll("bob's agent to take the second request", || {
        let p = bob.pending();
        if p.len() == 1 {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });
    // The intro queue is polled every second: give the second request two polls to show up.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let requests: Vec<Value> = notices(&sink_b)
        .into_iter()
        .filter(|n| n["kind"] == "pair_request")
        .collect();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert!(
        requests[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains(&alice.nickname) && b.contains("wire accept")),
        "{requests:#?}"
    );
    bob.run(&["accept", &alice.nickname]).ok();
    poll("alice to see bob paired", || {
        match alice.peer_state(&bob).as_str() {
            "paired" => Ok(()),
            s => Err(s.to_owned()),
        }
    });

    // One message, one notice for bob; none for alice, who sent it.
    alice.send_stored(&bob, "first");
    poll("bob to be told of the message", || {
        match count(&sink_b, "message") {
            0 => Err(format!("{:?}", notices(&sink_b))),
            _ => Ok(()),
        }
    });
    let msgs: Vec<Value> = notices(&sink_b)
        .into_iter()
        .filter(|n| n["kind"] == "message")
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(msgs[0]["body"], "first", "{msgs:#?}");
    assert!(
        msgs[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains(&alice.nickname)),
        "{msgs:#?}"
    );
    assert_eq!(count(&sink_a, "message"), 0, "{:?}", notices(&sink_a));

    // Quiet: the message arrives, the notice does not.
    let q = bob.json(&["quiet", "on"]);
    assert_eq!(q["quiet"], true, "{q}");
    assert_eq!(q["backend"], "file", "{q}");
    alice.send_stored(&bob, "hush");
    poll("bob to receive hush", || {
        if bob.tail(5).iter().any(|m| m["body"] == "hush") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(count(&sink_b, "message"), 1, "{:?}", notices(&sink_b));

    // Back on: the next message is news again; a reply from bob tells alice, not bob.
    assert_eq!(bob.json(&["quiet", "off"])["quiet"], false);
    alice.send_stored(&bob, "loud");
    poll("bob to be told of loud", || {
        match count(&sink_b, "message") {
            2 => Ok(()),
            n => Err(format!("{n}: {:?}", notices(&sink_b))),
        }
    });
    bob.send_stored(&alice, "reply");
    poll("alice to be told of the reply", || {
        match count(&sink_a, "message") {
            1 => Ok(()),
            n => Err(format!("{n}: {:?}", notices(&sink_a))),
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        count(&sink_b, "message"),
        2,
        "bob's own send raised nothing"
    );
    assert_eq!(count(&sink_a, "pair_request"), 0);

    // WIRE_NO_TOASTS in the daemon's environment: nothing, whatever arrives.
    let sink_c = sinks.path().join("carol.jsonl");
    let carol = rig.agent_with(
        "carol",
        &[
            ("WIRE_NOTIFY_SINK", sink_c.to_str().expect("utf-8")),
            ("WIRE_NO_TOASTS", "1"),
        ],
    );
    pair(&alice, &carol);
    alice.send_stored(&carol, "silent");
    poll("carol to receive silent", || {
        if carol.tail(5).iter().any(|m| m["body"] == "silent") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(notices(&sink_c).is_empty(), "{:?}", notices(&sink_c));
    let q = carol.json(&["quiet"]);
    assert_eq!(q["quiet"], true, "{q}");
}
