//! Failures: a clear message, the right exit code, exactly one JSON document in JSON mode.

use insta::assert_snapshot;

use crate::Env;

/// Bare `wire init x` attaches to the local relay at 127.0.0.1:8771. With nothing answering
/// there it must refuse, say what to do, and create no session, with or without a daemon. On a
/// machine where something listens on 8771 (a developer's relay) the test cannot make that
/// situation and must not claim a handle on that relay, so it stops early.
#[test]
fn init_without_a_relay_refuses_and_creates_nothing() {
    if std::net::TcpStream::connect(("127.0.0.1", 8771)).is_ok() {
        eprintln!("skipped: something listens on 127.0.0.1:8771, so bare `wire init` would attach");
        return;
    }
    let env = Env::empty();
    let out = env.run(&["init", "alice"], &[("WIRE_NO_AUTO_JSON", "1")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for what_to_do in ["wire relay-server", "--relay URL", "--offline"] {
        assert!(err.contains(what_to_do), "no `{what_to_do}` in: {err}");
    }
    assert_snapshot!("init_no_relay_stderr", err);
    assert!(!env.home.path().join("sessions").exists());

    // Through the daemon: the same refusal, still no session (the daemon's own files may be
    // there), and the daemon is stopped again.
    let out = env.run(
        &["init", "alice"],
        &[("WIRE_NO_AUTO_JSON", "1"), ("WIRE_NO_DAEMON", "false")],
    );
    let stop = env.run(&["daemon", "stop"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--offline"));
    assert!(!env.home.path().join("sessions").exists());
    assert!(stop.status.success(), "{stop:?}");
}

/// `WIRE_NO_DAEMON=1`, as documented in the issue and like `WIRE_NO_AUTO_JSON=1`, selects the
/// in-process mode (the flag takes 1/0/true/false/yes/no/on/off).
#[test]
fn wire_no_daemon_1_is_accepted() {
    let env = Env::with_alice();
    for v in ["1", "true"] {
        let out = env.run(&["whoami"], &[("WIRE_NO_DAEMON", v)]);
        assert!(
            out.status.success(),
            "WIRE_NO_DAEMON={v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = env.run(&["daemon", "status"], &[]);
    assert_eq!(out.status.code(), Some(1), "no daemon may have started");
}

#[test]
fn commands_without_a_session_say_how_to_make_one() {
    let env = Env::empty();
    let (json, code) = env.json(&["whoami"]);
    assert_eq!(code, 2);
    assert_eq!(json["code"], "no_session");
    assert!(
        json["error"].as_str().unwrap_or("").contains("wire init"),
        "{json}"
    );
}

#[test]
fn bad_handle_is_refused() {
    let env = Env::empty();
    let out = env.run(
        &["init", "Alice Smith", "--offline"],
        &[("WIRE_NO_AUTO_JSON", "1")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid handle"), "{err}");
}

#[test]
fn verify_reports_the_first_bad_event_and_exits_non_zero() {
    use redb::{ReadableDatabase, ReadableTable};
    let env = Env::with_alice();
    env.run(&["identity", "rename", "--name", "quiet-harbor"], &[]);
    // Flip one bit in the signature of seq 2 of the self log, behind wire's back.
    let db = redb::Database::open(env.store()).expect("open");
    let (key, mut value) = {
        let txn = db.begin_read().expect("read");
        let t = txn.open_table(wire_log::store::EVENTS).expect("events");
        let mut it = t.iter().expect("iter");
        let (k, v) = it.nth(1).expect("second").expect("entry");
        (*k.value(), v.value().to_vec())
    };
    let last = value.len() - 1;
    value[last] ^= 1;
    let txn = db.begin_write().expect("write");
    txn.open_table(wire_log::store::EVENTS)
        .expect("events")
        .insert(&key, value.as_slice())
        .expect("insert");
    txn.commit().expect("commit");
    drop(db);

    let (prose, code) = env.prose(&["verify"], &[]);
    assert_eq!(code, 1);
    assert_snapshot!("verify_failure_prose", prose);
    let (json, code) = env.json(&["verify"]);
    assert_eq!(code, 1);
    assert_eq!(json["ok"], false);
    assert_eq!(json["failure"]["seq"], 2);
    assert!(
        json["failure"]["problem"]
            .as_str()
            .unwrap_or("")
            .contains("signature")
    );
}

#[test]
fn verify_rebuild_repairs_projections_but_never_a_damaged_log() {
    use redb::{ReadableDatabase, ReadableTable};
    let env = Env::with_alice();
    env.run(&["identity", "rename", "--name", "quiet-harbor"], &[]);

    // Projection damage: the identity record vanishes behind wire's back.
    let db = redb::Database::open(env.store()).expect("open");
    let txn = db.begin_write().expect("write");
    txn.open_table(wire_projections::IDENTITY)
        .expect("identity")
        .remove("self")
        .expect("remove");
    txn.commit().expect("commit");
    drop(db);
    let (json, code) = env.json(&["verify"]);
    assert_eq!(
        (code, &json["ok"]),
        (1, &serde_json::json!(false)),
        "{json}"
    );
    let (json, code) = env.json(&["verify", "--rebuild"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["rebuilt"], true);
    let (whoami, _) = env.json(&["whoami"]);
    assert_eq!(whoami["nickname"], "quiet-harbor");

    // Log damage: a flipped signature bit is not something a rebuild may paper over.
    let db = redb::Database::open(env.store()).expect("open");
    let (key, mut value) = {
        let txn = db.begin_read().expect("read");
        let t = txn.open_table(wire_log::store::EVENTS).expect("events");
        let (k, v) = t
            .iter()
            .expect("iter")
            .next()
            .expect("first")
            .expect("entry");
        (*k.value(), v.value().to_vec())
    };
    let last = value.len() - 1;
    value[last] ^= 1;
    let txn = db.begin_write().expect("write");
    txn.open_table(wire_log::store::EVENTS)
        .expect("events")
        .insert(&key, value.as_slice())
        .expect("insert");
    txn.commit().expect("commit");
    drop(db);
    let (json, code) = env.json(&["verify", "--rebuild"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["rebuilt"], false);
}
