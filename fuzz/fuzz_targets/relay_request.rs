//! Every relay route through the real router, with real redb files behind it: requests built
//! from the input (method, path, headers, body; `$SLOT`, `$OWNER`, `$CAP`, `$CAPID`, `$NICK`
//! stand for real credentials so inputs get past the checks). Properties in
//! `common/relay_request.rs`.
#![no_main]

#[path = "../common/relay_request.rs"]
mod relay_request;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One relay for the whole run (opening one per input would be all the fuzzer did).
fn shared() -> &'static relay_request::Fixture {
    static FIXTURE: OnceLock<relay_request::Fixture> = OnceLock::new();
    FIXTURE.get_or_init(relay_request::fixture)
}

fuzz_target!(|data: &[u8]| {
    let _ = relay_request::run(shared(), data);
});
