//! The A2A card checked by the official `a2a-sdk` Python package (strict protobuf parse plus
//! required-field validation). `.ci/run` installs the SDK into `.venv`; set WIRE_PYTHON to use
//! another interpreter. Without either, the test fails and says how to set it up.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use axum::http::{Method, StatusCode};
use serde_json::json;
use wire_log::SecretKey;
use wire_log::card::SignedCard;

use crate::harness::{DOMAIN, Relay};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("WIRE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with a2a-sdk: run `scripts/python-env` (or .ci/run) to create .venv, or set WIRE_PYTHON"
    );
    venv
}

fn validate(card: &str) -> Result<String, String> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/validate_a2a_card.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(card.as_bytes())
        .expect("write card");
    let out = child.wait_with_output().expect("python");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn the_served_a2a_card_passes_the_official_sdk() {
    let relay = Relay::new();
    let (slot, owner) = relay.slot().await;
    let key = SecretKey::from_seed(&[3; 32]);
    let card = SignedCard::sign(&key, &format!("alice@{DOMAIN}"), 1).expect("sign");
    let r = relay
        .req(Method::PUT, "/v1/handles/alice")
        .bearer(&owner)
        .json(&json!({ "slot": slot, "card": card }))
        .send(&relay)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let served = relay
        .req(Method::GET, "/.well-known/agent-card.json?handle=alice")
        .send(&relay)
        .await;
    assert_eq!(served.status, StatusCode::OK);
    let summary =
        validate(&served.text()).unwrap_or_else(|e| panic!("a2a-sdk refused the card: {e}"));
    assert!(summary.contains("alice@relay.test:8771"), "{summary}");

    // The validator is not a rubber stamp: the same card without a required field fails.
    let mut broken = served.json();
    broken.as_object_mut().expect("object").remove("skills");
    assert!(validate(&broken.to_string()).is_err());
}
