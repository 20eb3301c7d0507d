//! Records bodies and streams (`application/vnd.wire.records`): the whole-body decoder never
//! panics, and the incremental reader fed the same bytes in two pieces agrees with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire_relay::frames::{RecordReader, decode_records};

const LEN_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let whole = decode_records(data, LEN_MAX);

    // The same bytes, fed in two pieces split at data[0] (as an index).
    let split = data.first().map_or(0, |&b| usize::from(b).min(data.len()));
    let mut reader = RecordReader::new(LEN_MAX);
    let mut got = Vec::new();
    let mut failed = None;
    for piece in [&data[..split], &data[split..]] {
        reader.feed(piece);
        loop {
            match reader.next_record() {
                Ok(Some(r)) => got.push(r),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_some() {
            break;
        }
    }

    match whole {
        Ok(records) => {
            assert_eq!(
                failed, None,
                "the reader refused what decode_records accepted"
            );
            assert!(reader.is_clean());
            assert_eq!(got, records);
            // Strictly increasing sequence numbers, no heartbeats among them.
            assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(records.iter().all(|(seq, _)| *seq != 0));
        }
        Err(wire_relay::frames::RecordError::Truncated { index }) => {
            // Every whole record was read, then bytes were left over.
            assert_eq!(
                failed, None,
                "the reader refused a body that is only cut short"
            );
            assert_eq!(got.len(), index);
            assert!(!reader.is_clean());
        }
        Err(e) => {
            // The reader meets the same problem once it has the bytes that show it.
            assert_eq!(failed, Some(e));
        }
    }
});
