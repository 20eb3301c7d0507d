//! Bodies of wire's own kinds: decoding never panics, and what decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_log::body::{
    Body, CapGranted, CursorAdvanced, EndpointLearned, EndpointOffer, HandleClaimed,
    IdentityCreated, PeerCard, PeerRef, Renamed, SlotChange,
};

fn check<B: Body>(data: &[u8]) {
    if let Ok(b) = B::decode(data) {
        assert_eq!(b.encode(), data);
    }
}

fuzz_target!(|data: &[u8]| {
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
