//! Every relay route through the real router, with real redb files behind it: requests built
//! from the input (method, path, headers, body; `$SLOT`, `$OWNER`, `$CAP`, `$CAPID`, `$NICK`
//! stand for real credentials so inputs get past the checks). Properties in
//! `common/relay_request.rs`.
#![no_main]

#[path = "../common/relay_request.rs"]
mod relay_request;

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

/// Inputs one relay serves before a fresh one replaces it. Opening one per input would be all
/// the fuzzer did; one kept for a whole run holds everything the inputs leave behind (slots,
/// handles, intros): a run's memory grew from 135 to 694 MB over a million inputs.
const INPUTS_PER_RELAY: u32 = 20_000;

fuzz_target!(|data: &[u8]| {
    static FIXTURE: Mutex<Option<(relay_request::Fixture, u32)>> = Mutex::new(None);
    let mut shared = FIXTURE.lock().unwrap_or_else(|p| p.into_inner());
    if shared
        .as_ref()
        .is_none_or(|(_, served)| *served >= INPUTS_PER_RELAY)
    {
        // The old relay (its runtime, its files) goes before the new one starts.
        *shared = None;
        *shared = Some((relay_request::fixture(), 0));
    }
    let (fixture, served) = shared.as_mut().expect("a relay was just made");
    *served += 1;
    let _ = relay_request::run(fixture, data);
});
