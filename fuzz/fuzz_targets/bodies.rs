//! Bodies of wire's own kinds: decoding never panics, and what decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::BODY_BYTES_MAX;
use wire_log::body::{
    Body, CapGranted, CursorAdvanced, EndpointLearned, EndpointOffer, HandleClaimed,
    IdentityCreated, PeerCard, PeerRef, Renamed, SlotChange,
};
use wire_log::cbor::decode_canonical;

fn check<B: Body>(data: &[u8]) {
    if let Ok(b) = B::decode(data) {
        assert_eq!(b.encode(), data);
    }
}

fuzz_target!(|data: &[u8]| {
    // Every `Body::decode` (the trait's and the two overrides, `EndpointOffer` and
    // `EndpointLearned`) starts with exactly this call and returns its error: bytes it refuses
    // every body refuses, the same way. Checking it once, not ten times, made the target seven
    // times faster (most mutations are not canonical CBOR); whatever passes is decoded by all
    // ten as before.
    if decode_canonical(data, BODY_BYTES_MAX).is_err() {
        return;
    }
    check::<IdentityCreated>(data);
    check::<PeerCard>(data);
    check::<PeerRef>(data);
    check::<Renamed>(data);
    check::<CursorAdvanced>(data);
    check::<EndpointOffer>(data);
    check::<EndpointLearned>(data);
    check::<CapGranted>(data);
    check::<SlotChange>(data);
    check::<HandleClaimed>(data);
});
