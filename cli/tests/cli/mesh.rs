//! `wire mesh`, as real processes: a hub session with nine sister sessions on its daemon and
//! one peer on another state root through the relay; one broadcast gives ten outcomes and one
//! id, each peer holds exactly one message with it, and `mesh status` lists every peer with a
//! last contact.

use std::path::Path;

use serde_json::Value;

use crate::line::{COMMAND_DEADLINE, Rig, Run, pair, poll, run_wire_in};

fn wire(home: &Path, args: &[&str]) -> Run {
    run_wire_in(home, None, args, &[], COMMAND_DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

fn json(home: &Path, args: &[&str]) -> Value {
    wire(home, args).ok().json()
}

#[test]
fn a_broadcast_reaches_ten_peers_once_each_with_one_id() {
    let rig = Rig::new(&[]);
    let hub = rig.agent("hub");
    let far = rig.agent("far");
    pair(&hub, &far);
    let url = rig.url();
    let sisters: Vec<String> = (1..=9).map(|i| format!("s{i}")).collect();
    for s in &sisters {
        json(
            &hub.home,
            &["session", "new", s, "--relay", &url, "--no-bind"],
        );
    }
    let mesh = json(&hub.home, &["session", "pair-all-local"]);
    assert_eq!(mesh["sessions"], 10, "{mesh}");

    let r = wire(&hub.home, &["mesh", "broadcast", "all hands: standup in 5"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let v = r.json();
    let id = v["broadcast"].as_str().expect("broadcast id").to_owned();
    assert_eq!(id.len(), 32, "{v}");
    let outcomes = v["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), 10, "{v}");
    let delivered = outcomes
        .iter()
        .filter(|o| o["outcome"] == "delivered")
        .count();
    let stored = outcomes.iter().filter(|o| o["outcome"] == "stored").count();
    assert_eq!((delivered, stored), (9, 1), "{v}");
    assert_eq!(v["refused"], 0, "{v}");

    // Each peer holds exactly one message, with that id.
    let one_with_id = |home: &Path, session: Option<&str>| {
        let mut args = vec!["tail", "-n", "100"];
        if let Some(s) = session {
            args.splice(0..0, ["--session", s]);
        }
        poll("the broadcast at a peer", || {
            let t = json(home, &args);
            let msgs: Vec<&Value> = t["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .filter(|m| m["outgoing"] == false)
                .collect();
            match msgs.as_slice() {
                [m] if m["broadcast"] == id.as_str() && m["body"] == "all hands: standup in 5" => {
                    assert_eq!(m["kind"], 1000, "{m}");
                    Ok(())
                }
                [] => Err("nothing yet".into()),
                other => panic!("not exactly one message with the id: {other:?}"),
            }
        });
    };
    for s in &sisters {
        one_with_id(&hub.home, Some(s));
    }
    one_with_id(&far.home, None);

    // mesh status: every peer, with a last contact; the sisters marked as such; each has
    // acknowledged the broadcast.
    let seqs: Vec<(String, u64)> = outcomes
        .iter()
        .map(|o| {
            (
                o["peer"]["key"].as_str().expect("key").to_owned(),
                o["seq"].as_u64().expect("seq"),
            )
        })
        .collect();
    let status = poll("every peer to acknowledge the broadcast", || {
        let s = json(&hub.home, &["mesh", "status"]);
        let peers = s["peers"].as_array().expect("peers").clone();
        let behind: Vec<String> = seqs
            .iter()
            .filter(|(key, seq)| {
                !peers.iter().any(|p| {
                    p["peer"]["key"] == key.as_str()
                        && p["acknowledged"]["seq"].as_u64().is_some_and(|a| a >= *seq)
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        if behind.is_empty() {
            Ok(s)
        } else {
            Err(format!("{behind:?} behind: {s}"))
        }
    });
    let peers = status["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 10, "{status}");
    assert!(
        peers
            .iter()
            .all(|p| p["last_contact_ms"].as_u64().is_some()),
        "{status}"
    );
    assert_eq!(
        peers.iter().filter(|p| p["sister"] == true).count(),
        9,
        "{status}"
    );
    let (prose, code) = {
        let r = run_wire_in(
            &hub.home,
            None,
            &["mesh", "status"],
            &[("WIRE_NO_AUTO_JSON", "1")],
            COMMAND_DEADLINE,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (r.stdout, r.code)
    };
    assert_eq!(code, 0);
    assert!(
        prose.contains("far@") && prose.contains("acknowledged #"),
        "{prose}"
    );

    // A broadcast with no one to reach is refused, nothing sent.
    let lonely = rig.agent("lonely");
    let r = wire(&lonely.home, &["mesh", "broadcast", "anyone?"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("no paired peers"), "{}", r.describe());
}
