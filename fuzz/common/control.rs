//! The daemon's control-socket request line (PROTOCOL.md §23), as any process of the same uid
//! can write it: decoding never panics, and what decodes re-encodes to a line that decodes to
//! the same request. Shared, word for word, by the `control` fuzz target and the corpus test
//! that replays its corpus (`relay/tests/relay/corpus.rs`).

use wire_net::control::{encode_request, parse_request};

/// Runs one input (see the module's properties).
pub fn run(data: &[u8]) {
    if let Ok(request) = parse_request(data) {
        let line = encode_request(&request);
        assert_eq!(parse_request(line.as_bytes()), Ok(request));
    }
}
