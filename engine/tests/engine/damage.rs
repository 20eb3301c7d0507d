//! Damaged key files and stores give clear errors and are never silently replaced.

use wire_engine::{EngineError, Home, Session};

use crate::{TestClock, new_session};

fn open(dir: &std::path::Path) -> Result<Session, EngineError> {
    Session::open(&Home::new(dir), "default", Box::new(TestClock::default()))
}

#[test]
fn truncated_or_corrupt_key_file_is_refused_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(new_session(dir.path(), 1));
    let path = dir.path().join("sessions/default/keys/identity.key");
    let good = std::fs::read(&path).expect("read");
    for bad in [
        &good[..good.len() / 2],
        b"wire-secret-key v1\nnonsense\n",
        b"",
    ] {
        std::fs::write(&path, bad).expect("write");
        let err = open(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(err.to_string().contains("never replaces"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), bad);
    }
    // Creating over it is refused as well.
    let err = Session::create(
        &Home::new(dir.path()),
        "default",
        "alice",
        None,
        Box::new(TestClock::default()),
    )
    .expect_err("exists");
    assert!(matches!(err, EngineError::SessionExists { .. }), "{err}");
}

#[test]
fn missing_key_file_is_reported_as_incomplete() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(new_session(dir.path(), 1));
    std::fs::remove_file(dir.path().join("sessions/default/keys/identity.key")).expect("rm");
    let err = open(dir.path()).expect_err("refused");
    assert!(matches!(err, EngineError::Incomplete { .. }), "{err}");
}

#[test]
fn truncated_or_garbage_store_is_refused_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = new_session(dir.path(), 1);
    for i in 0..50 {
        s.append(s.self_log(), wire_log::Kind::MESSAGE, vec![i; 200])
            .expect("append");
    }
    drop(s);
    let path = dir.path().join("sessions/default/store.redb");
    let good = std::fs::read(&path).expect("read");
    for bad in [
        good[..good.len() / 3].to_vec(),
        vec![0x42; 4096],
        Vec::new(),
    ] {
        std::fs::write(&path, &bad).expect("write");
        let err = open(dir.path()).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("store.redb"), "{msg}");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bad,
            "the damaged store was modified"
        );
    }
}

#[test]
fn a_key_from_another_session_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(new_session(dir.path(), 1));
    let other = tempfile::tempdir().expect("tempdir");
    drop(new_session(other.path(), 2));
    std::fs::copy(
        other.path().join("sessions/default/keys/identity.key"),
        dir.path().join("sessions/default/keys/identity.key"),
    )
    .expect("copy");
    let err = open(dir.path()).expect_err("mismatch");
    assert!(matches!(err, EngineError::KeyMismatch { .. }), "{err}");
}
