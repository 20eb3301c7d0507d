//! Fault injection (issue 8): a hundred SIGKILLs at random instants, of the relay and of either
//! daemon, while one agent sends to the other without pause. Whatever a send acknowledged
//! (`stored`, `delivered`, or `queued` in the sender's log) must reach the receiver exactly
//! once, and both logs must audit clean. A send whose command died with its daemon has no
//! outcome; it may arrive or not, but never twice. `WIRE_TEST_SEED` replays a run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::line::{Rig, Rng, bodies_from, daemons_of, kill9, pair, poll_for};

/// Kills to inflict, at least.
const KILLS: usize = 100;

#[test]
fn a_hundred_random_sigkills_of_relay_and_daemons_lose_no_acknowledged_message() {
    let mut rig = Rig::new(&[]);
    let alice = rig.agent("kalice");
    let bob = rig.agent("kbob");
    pair(&alice, &bob);
    let mut rng = Rng::seeded("a_hundred_random_sigkills");
    let stop = AtomicBool::new(false);
    // body -> exit code of its `wire send` (0 stored/delivered, 3 queued, else unknown).
    let sent: Mutex<BTreeMap<String, i32>> = Mutex::new(BTreeMap::new());
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = format!("k{i:05}");
                let r = alice.send(&bob, &body);
                sent.lock().expect("sent lock").insert(body, r.code);
            }
        });
        // Bob reads too, so his daemon comes back after each kill.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = bob.run(&["tail", "-n", "1"]);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let mut done = 0;
        while done < KILLS {
            std::thread::sleep(Duration::from_millis(30 + rng.next() % 220));
            match rng.next() % 3 {
                0 => {
                    rig.kill_relay();
                    // Down for a moment: sends queue meanwhile.
                    std::thread::sleep(Duration::from_millis(rng.next() % 100));
                    rig.restart_relay();
                    *kills.entry("relay").or_default() += 1;
                    done += 1;
                }
                n => {
                    let (who, agent) = if n == 1 {
                        ("alice's daemon", &alice)
                    } else {
                        ("bob's daemon", &bob)
                    };
                    if let Some(pid) = daemons_of(&agent.home).first() {
                        kill9(*pid);
                        *kills.entry(who).or_default() += 1;
                        done += 1;
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let sent = sent.into_inner().expect("sent lock");
    let acknowledged: BTreeSet<&String> = sent
        .iter()
        .filter(|(_, code)| **code == 0 || **code == 3)
        .map(|(b, _)| b)
        .collect();
    let unknown = sent.len() - acknowledged.len();
    eprintln!(
        "sigkills: {kills:?} in {:?}; {} sends, {} acknowledged, {unknown} died with their daemon",
        started.elapsed(),
        sent.len(),
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= KILLS,
        "too few acknowledged sends to mean anything: {sent:?}"
    );
    // Everything acknowledged arrives; nothing arrives twice; nothing arrives that was not sent.
    let limit = (sent.len() + 100).to_string();
    let got = poll_for(
        "every acknowledged message at bob",
        Duration::from_secs(120),
        || {
            let tail = bob.run(&["tail", "-n", &limit]);
            if tail.code != 0 {
                return Err(tail.describe());
            }
            let v = tail.json();
            let got: Vec<String> =
                bodies_from(v["messages"].as_array().ok_or("no messages")?, &alice);
            let have: BTreeSet<&String> = got.iter().collect();
            let missing: Vec<&&String> = acknowledged
                .iter()
                .filter(|b| !have.contains(**b))
                .collect();
            if missing.is_empty() {
                Ok(got)
            } else {
                Err(format!(
                    "{} of {} acknowledged missing, first {:?}",
                    missing.len(),
                    acknowledged.len(),
                    missing.iter().take(5).collect::<Vec<_>>()
                ))
            }
        },
    );
    let mut seen: BTreeMap<&String, usize> = BTreeMap::new();
    for b in &got {
        *seen.entry(b).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates at bob: {dups:?}");
    let strangers: Vec<_> = got.iter().filter(|b| !sent.contains_key(*b)).collect();
    assert!(strangers.is_empty(), "bodies nobody sent: {strangers:?}");
    alice.verify_clean();
    bob.verify_clean();
    assert!(
        !rig.relay_log().contains("panicked"),
        "the relay panicked:\n{}",
        rig.relay_log()
    );
}
