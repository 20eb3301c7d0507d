//! Binary bodies: batched appends going in, sequenced records coming out.
//!
//! ```text
//! blobs   (application/vnd.wire.blobs)   = 1*( len: u32be, bytes[len] )        len ≥ 1
//! records (application/vnd.wire.records) = *( seq: u64be, len: u32be, bytes[len] )
//! ```
//!
//! A stream is a `records` body that never ends on its own; a record with `seq = 0` and
//! `len = 0` is a heartbeat and carries nothing.

use bytes::{BufMut, Bytes, BytesMut};

pub const BLOBS_CONTENT_TYPE: &str = "application/vnd.wire.blobs";
pub const RECORDS_CONTENT_TYPE: &str = "application/vnd.wire.records";

/// Why a batch body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("batch is empty")]
    Empty,
    #[error("frame {index} is cut short: it declares {declared} bytes, {available} remain")]
    Truncated {
        index: usize,
        declared: usize,
        available: usize,
    },
    #[error("frame {index} is empty; a blob has at least one byte")]
    EmptyBlob { index: usize },
    #[error("frame {index} holds {len} bytes; a blob holds at most {max}")]
    BlobTooLarge {
        index: usize,
        len: usize,
        max: usize,
    },
    #[error("batch holds more than {max} blobs")]
    TooMany { max: usize },
}

/// Splits a batch body into blobs without copying. Refuses the whole batch on the first
/// problem, so a half-valid batch never half-stores.
pub fn decode_blobs(
    body: &Bytes,
    blob_max: usize,
    count_max: usize,
) -> Result<Vec<Bytes>, FrameError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let index = out.len();
        if index >= count_max {
            return Err(FrameError::TooMany { max: count_max });
        }
        let Some(header) = body.get(at..at + 4) else {
            return Err(FrameError::Truncated {
                index,
                declared: 4,
                available: body.len() - at,
            });
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        at += 4;
        if len == 0 {
            return Err(FrameError::EmptyBlob { index });
        }
        if len > blob_max {
            return Err(FrameError::BlobTooLarge {
                index,
                len,
                max: blob_max,
            });
        }
        if body.len() - at < len {
            return Err(FrameError::Truncated {
                index,
                declared: len,
                available: body.len() - at,
            });
        }
        out.push(body.slice(at..at + len));
        at += len;
    }
    if out.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(out)
}

/// Encodes blobs as a batch body (the client side of [`decode_blobs`]).
pub fn encode_blobs<'a>(blobs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for blob in blobs {
        out.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        out.extend_from_slice(blob);
    }
    out
}

/// The 12-byte header of one record.
pub fn record_header(seq: u64, len: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(12);
    b.put_u64(seq);
    b.put_u32(len as u32);
    b.freeze()
}

/// Encodes records into one body.
pub fn encode_records(items: &[(u64, Bytes)]) -> Bytes {
    let total: usize = items.iter().map(|(_, b)| 12 + b.len()).sum();
    let mut out = BytesMut::with_capacity(total);
    for (seq, blob) in items {
        out.put_u64(*seq);
        out.put_u32(blob.len() as u32);
        out.put_slice(blob);
    }
    out.freeze()
}

/// Why a records body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record {index} is cut short")]
    Truncated { index: usize },
    #[error("record {index} holds {len} bytes, more than the {max} allowed")]
    TooLarge {
        index: usize,
        len: usize,
        max: usize,
    },
    #[error("record {index} has sequence number {seq}, not after {previous}")]
    OutOfOrder {
        index: usize,
        seq: u64,
        previous: u64,
    },
}

/// Incremental reader of a records body or stream: feed bytes, take whole records.
#[derive(Debug, Default)]
pub struct RecordReader {
    buf: BytesMut,
    index: usize,
    last_seq: u64,
    len_max: usize,
}

impl RecordReader {
    pub fn new(len_max: usize) -> RecordReader {
        RecordReader {
            len_max,
            ..RecordReader::default()
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole record, skipping heartbeats. `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<(u64, Bytes)>, RecordError> {
        loop {
            if self.buf.len() < 12 {
                return Ok(None);
            }
            let seq = u64::from_be_bytes(self.buf[..8].try_into().unwrap_or_default());
            let len = u32::from_be_bytes(self.buf[8..12].try_into().unwrap_or_default()) as usize;
            if len > self.len_max {
                return Err(RecordError::TooLarge {
                    index: self.index,
                    len,
                    max: self.len_max,
                });
            }
            if seq == 0 && len == 0 {
                let _ = self.buf.split_to(12);
                continue;
            }
            if seq <= self.last_seq {
                return Err(RecordError::OutOfOrder {
                    index: self.index,
                    seq,
                    previous: self.last_seq,
                });
            }
            if self.buf.len() < 12 + len {
                return Ok(None);
            }
            let _ = self.buf.split_to(12);
            let blob = self.buf.split_to(len).freeze();
            self.index += 1;
            self.last_seq = seq;
            return Ok(Some((seq, blob)));
        }
    }

    /// True when no partial record is buffered.
    pub fn is_clean(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Reads a complete records body.
pub fn decode_records(body: &[u8], len_max: usize) -> Result<Vec<(u64, Bytes)>, RecordError> {
    let mut reader = RecordReader::new(len_max);
    reader.feed(body);
    let mut out = Vec::new();
    while let Some(r) = reader.next_record()? {
        out.push(r);
    }
    if !reader.is_clean() {
        return Err(RecordError::Truncated { index: out.len() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_bad_batches_are_refused_whole() {
        let body = Bytes::from(encode_blobs([&b"one"[..], b"two"]));
        let blobs = decode_blobs(&body, 16, 16).expect("decode");
        assert_eq!(
            blobs,
            vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")]
        );
        assert_eq!(decode_blobs(&Bytes::new(), 16, 16), Err(FrameError::Empty));
        assert!(matches!(
            decode_blobs(&body.slice(..body.len() - 1), 16, 16),
            Err(FrameError::Truncated { index: 1, .. })
        ));
        assert!(matches!(
            decode_blobs(&body.slice(..2), 16, 16),
            Err(FrameError::Truncated { .. })
        ));
        assert_eq!(
            decode_blobs(&Bytes::from(encode_blobs([&b""[..]])), 16, 16),
            Err(FrameError::EmptyBlob { index: 0 })
        );
        assert!(matches!(
            decode_blobs(&body, 2, 16),
            Err(FrameError::BlobTooLarge { .. })
        ));
        assert_eq!(
            decode_blobs(&body, 16, 1),
            Err(FrameError::TooMany { max: 1 })
        );
    }

    #[test]
    fn records_round_trip_skip_heartbeats_and_refuse_disorder() {
        let items = vec![
            (3, Bytes::from_static(b"abc")),
            (9, Bytes::from_static(b"z")),
        ];
        let mut body = record_header(0, 0).to_vec();
        body.extend_from_slice(&encode_records(&items));
        assert_eq!(decode_records(&body, 16).expect("decode"), items);
        assert!(decode_records(&body[..body.len() - 1], 16).is_err());
        let backwards =
            encode_records(&[(9, Bytes::from_static(b"a")), (3, Bytes::from_static(b"b"))]);
        assert!(matches!(
            decode_records(&backwards, 16),
            Err(RecordError::OutOfOrder { .. })
        ));
        assert!(matches!(
            decode_records(&encode_records(&items), 2),
            Err(RecordError::TooLarge { .. })
        ));
    }
}
