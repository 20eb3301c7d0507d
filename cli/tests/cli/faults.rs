//! Fault injection for the daemons (issue 8): while messages flow both ways through a real
//! relay, the sending and the receiving daemon are SIGKILLed at random instants, round after
//! round. The checker: every send that reported `stored` or `delivered` (exit 0), and every one
//! that reported `queued` (exit 3, kept in the sender's log), is eventually in the receiver's
//! `wire tail --json` exactly once; a send whose daemon died under it (its outcome unknown) is
//! there at most once; and `wire verify` is clean on both sides. `WIRE_TEST_SEED` replays a run.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::line::{Agent, Rig, Rng, await_messages, bodies_from, kill9, pair, poll_for};

/// What a send reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Exit 0 (`stored` or `delivered`) or exit 3 (`queued`): it must arrive.
    Kept,
    /// The daemon died mid-command: it may or may not have been written.
    Unknown,
}

fn send(from: &Agent, to: &Agent, body: &str) -> Outcome {
    let r = from.send(to, body);
    match r.code {
        0 | 3 => {
            let outcome = r.json()["outcome"].as_str().unwrap_or("").to_owned();
            assert!(
                matches!(outcome.as_str(), "stored" | "delivered" | "queued"),
                "{}",
                r.describe()
            );
            Outcome::Kept
        }
        2 if r.stderr.contains("daemon") => Outcome::Unknown,
        _ => panic!(
            "a send either reports its outcome or says its daemon went away: {}",
            r.describe()
        ),
    }
}

#[test]
fn daemons_killed_at_random_instants_lose_and_duplicate_nothing() {
    const ROUNDS: usize = 8;
    const PER_ROUND: usize = 6;
    let rig = Rig::new(&[]);
    let alice = rig.agent("faultalice");
    let bob = rig.agent("faultbob");
    pair(&alice, &bob);
    let mut rng = Rng::seeded("daemon faults");
    // (from, body) → outcome.
    let mut sent: BTreeMap<(String, String), Outcome> = BTreeMap::new();
    let mut kills = 0;
    for round in 0..ROUNDS {
        // Whose daemon dies this round: the sender's, the receiver's, or both.
        let victims: Vec<&Agent> = match rng.next() % 3 {
            0 => vec![&alice],
            1 => vec![&bob],
            _ => vec![&alice, &bob],
        };
        let pids: Vec<u32> = victims
            .iter()
            .map(|a| {
                // Any command but `status` (which reports a daemon that is down) starts one.
                a.run(&["peers"]).ok();
                a.daemon_pid().expect("a daemon runs (`peers` starts one)")
            })
            .collect();
        let delay_ms = rng.next() % 400;
        let outcomes = std::thread::scope(|s| {
            let a = s.spawn(|| {
                (0..PER_ROUND)
                    .map(|i| {
                        let body = format!("fault a{round:02}-{i:02}");
                        let o = send(&alice, &bob, &body);
                        (("a".to_owned(), body), o)
                    })
                    .collect::<Vec<_>>()
            });
            let b = s.spawn(|| {
                (0..PER_ROUND)
                    .map(|i| {
                        let body = format!("fault b{round:02}-{i:02}");
                        let o = send(&bob, &alice, &body);
                        (("b".to_owned(), body), o)
                    })
                    .collect::<Vec<_>>()
            });
            std::thread::sleep(Duration::from_millis(delay_ms));
            for pid in &pids {
                kill9(*pid);
            }
            let mut all = a.join().expect("alice's sender");
            all.extend(b.join().expect("bob's sender"));
            all
        });
        kills += pids.len();
        for (k, o) in outcomes {
            sent.insert(k, o);
        }
    }
    let unknown = sent.values().filter(|o| **o == Outcome::Unknown).count();
    eprintln!(
        "daemon faults: {ROUNDS} rounds, {kills} SIGKILLs, {} sends, {unknown} with an unknown outcome",
        sent.len()
    );

    for (reader, writer, tag) in [(&bob, &alice, "a"), (&alice, &bob, "b")] {
        let must: Vec<String> = sent
            .iter()
            .filter(|((who, _), o)| who == tag && **o == Outcome::Kept)
            .map(|((_, body), _)| body.clone())
            .collect();
        // Everything kept arrives; unknown ones may arrive too, so wait on the kept ones and
        // then count every body.
        poll_for(
            &format!(
                "{} to hold every kept message from {}",
                reader.handle, writer.handle
            ),
            Duration::from_secs(90),
            || {
                let got = bodies_from(&reader.tail(1000), writer);
                let missing: Vec<&String> = must.iter().filter(|m| !got.contains(m)).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} missing, first {:?}",
                        missing.len(),
                        missing.first()
                    ))
                }
            },
        );
        let got = bodies_from(&reader.tail(1000), writer);
        let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
        for b in got.iter().filter(|b| b.starts_with("fault ")) {
            *counts.entry(b).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "{} holds duplicates: {twice:?}",
            reader.handle
        );
        for b in counts.keys() {
            assert!(
                sent.contains_key(&(tag.to_owned(), (*b).clone())),
                "{} holds {b:?}, which nobody sent",
                reader.handle
            );
        }
    }
    // The line still works both ways, and both logs are sound.
    alice.send_stored(&bob, "fault after");
    await_messages(
        &bob,
        &alice,
        "fault after",
        &["fault after".to_owned()],
        Duration::from_secs(30),
    );
    alice.verify_clean();
    bob.verify_clean();
}
