//! The bounded load test (`wire bench-load`, issue 8) in miniature, as behaviour: a real relay
//! process, a hundred mailboxes each with its stream open, a steady rate of appends; every
//! acknowledged message is delivered exactly once and the relay's memory stays bounded. The
//! full run (1,000 pairs, 5,000 messages/s, a minute) is the bench; its numbers are in
//! docs/BENCHMARKS.md.

use crate::line::{COMMAND_DEADLINE, run_wire_in};

#[test]
fn a_hundred_pairs_under_steady_load_lose_and_duplicate_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let r = run_wire_in(
        home.path(),
        None,
        &[
            "bench-load",
            "--json",
            "--pairs",
            "100",
            "--rate",
            "300",
            "--seconds",
            "4",
        ],
        &[],
        COMMAND_DEADLINE * 2,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.code, 0, "{}", r.describe());
    let v = r.json();
    assert_eq!(v["streams_open"], 100, "{v}");
    assert_eq!(v["planned"], 1200, "{v}");
    assert_eq!(v["stored"], 1200, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["delivered"], 1200, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["delivery_us"]["n"], 1200, "{v}");
    let peak = v["relay_rss_peak_kib"]
        .as_u64()
        .expect("relay memory sampled");
    assert!(
        peak > 0 && peak < 256 * 1024,
        "relay peak RSS {peak} KiB: {v}"
    );
}
