//! Deterministic CBOR on top of ciborium: one encoder, and a decoder that accepts only the bytes
//! that encoder would produce.
//!
//! The rule is the one RFC 8949 §4.2.1 calls "core deterministic encoding" restricted to what wire
//! uses: unsigned integers in their shortest form, definite-length byte and text strings, arrays of
//! definite length, null. The decoder re-encodes what it parsed and refuses any input that is not
//! byte-identical, so every value has exactly one accepted encoding.

use ciborium::Value;

/// Why bytes were not accepted as canonical CBOR.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CborError {
    #[error("not valid CBOR: {0}")]
    Malformed(String),
    #[error("valid CBOR but not in canonical form (re-encoding differs)")]
    NonCanonical,
    #[error("{0} bytes is over the limit of {1} bytes")]
    TooLarge(usize, usize),
}

/// Encodes a value. Writing into a `Vec` cannot fail, so neither can this.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

/// Encodes a value onto the end of `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    // Invariant: ciborium's serializer only fails when the writer fails, and a Vec never does.
    ciborium::into_writer(value, out).expect("encoding CBOR into a Vec cannot fail");
}

/// Decodes exactly one canonical CBOR item spanning all of `bytes`.
pub fn decode_canonical(bytes: &[u8], bytes_max: usize) -> Result<Value, CborError> {
    if bytes.len() > bytes_max {
        return Err(CborError::TooLarge(bytes.len(), bytes_max));
    }
    // A recursion limit of 8 is far beyond any wire structure (they nest at most 3 deep).
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, 8)
        .map_err(|e| CborError::Malformed(e.to_string()))?;
    if !reader.is_empty() {
        return Err(CborError::Malformed(format!(
            "{} trailing bytes after the item",
            reader.len()
        )));
    }
    if encode(&value) != bytes {
        return Err(CborError::NonCanonical);
    }
    Ok(value)
}

/// Positional reader over the items of a CBOR array, with errors that name the field.
#[derive(Debug)]
pub struct Fields {
    what: &'static str,
    items: std::vec::IntoIter<Value>,
}

/// A field was missing or of the wrong type.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{what}: {problem}")]
pub struct FieldError {
    pub what: &'static str,
    pub problem: String,
}

impl Fields {
    /// Expects `value` to be an array of exactly `len` items.
    pub fn new(what: &'static str, value: Value, len: usize) -> Result<Self, FieldError> {
        match value {
            Value::Array(items) if items.len() == len => Ok(Self {
                what,
                items: items.into_iter(),
            }),
            Value::Array(items) => Err(FieldError {
                what,
                problem: format!("expected {len} fields, found {}", items.len()),
            }),
            _ => Err(FieldError {
                what,
                problem: "expected an array".into(),
            }),
        }
    }

    /// Expects `value` to be an array of `min` to `max` items (a body whose later version added
    /// trailing fields).
    pub fn new_range(
        what: &'static str,
        value: Value,
        min: usize,
        max: usize,
    ) -> Result<Self, FieldError> {
        match value {
            Value::Array(items) if (min..=max).contains(&items.len()) => Ok(Self {
                what,
                items: items.into_iter(),
            }),
            Value::Array(items) => Err(FieldError {
                what,
                problem: format!("expected {min} to {max} fields, found {}", items.len()),
            }),
            _ => Err(FieldError {
                what,
                problem: "expected an array".into(),
            }),
        }
    }

    /// Fields not read yet.
    pub fn left(&self) -> usize {
        self.items.len()
    }

    fn next(&mut self, field: &str) -> Result<Value, FieldError> {
        self.items.next().ok_or_else(|| FieldError {
            what: self.what,
            problem: format!("missing field {field}"),
        })
    }

    fn wrong(&self, field: &str, expected: &str) -> FieldError {
        FieldError {
            what: self.what,
            problem: format!("field {field} is not {expected}"),
        }
    }

    pub fn uint(&mut self, field: &str) -> Result<u64, FieldError> {
        match self.next(field)? {
            Value::Integer(i) => {
                u64::try_from(i).map_err(|_| self.wrong(field, "an unsigned integer"))
            }
            _ => Err(self.wrong(field, "an unsigned integer")),
        }
    }

    pub fn bytes(&mut self, field: &str) -> Result<Vec<u8>, FieldError> {
        match self.next(field)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(self.wrong(field, "a byte string")),
        }
    }

    pub fn array32(&mut self, field: &str) -> Result<[u8; 32], FieldError> {
        let b = self.bytes(field)?;
        <[u8; 32]>::try_from(b.as_slice()).map_err(|_| self.wrong(field, "32 bytes"))
    }

    pub fn opt_array32(&mut self, field: &str) -> Result<Option<[u8; 32]>, FieldError> {
        match self.next(field)? {
            Value::Null => Ok(None),
            Value::Bytes(b) => <[u8; 32]>::try_from(b.as_slice())
                .map(Some)
                .map_err(|_| self.wrong(field, "32 bytes or null")),
            _ => Err(self.wrong(field, "32 bytes or null")),
        }
    }

    pub fn text(&mut self, field: &str) -> Result<String, FieldError> {
        match self.next(field)? {
            Value::Text(t) => Ok(t),
            _ => Err(self.wrong(field, "a text string")),
        }
    }

    /// An array of at most `max` items.
    pub fn array(&mut self, field: &str, max: usize) -> Result<Vec<Value>, FieldError> {
        match self.next(field)? {
            Value::Array(items) if items.len() <= max => Ok(items),
            Value::Array(_) => Err(self.wrong(field, &format!("an array of at most {max} items"))),
            _ => Err(self.wrong(field, "an array")),
        }
    }

    pub fn opt_text(&mut self, field: &str) -> Result<Option<String>, FieldError> {
        match self.next(field)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t)),
            _ => Err(self.wrong(field, "a text string or null")),
        }
    }
}

/// Shorthands for building values.
pub fn uint(v: u64) -> Value {
    Value::Integer(v.into())
}

pub fn bytes(v: &[u8]) -> Value {
    Value::Bytes(v.to_vec())
}

pub fn opt_bytes(v: Option<&[u8; 32]>) -> Value {
    v.map_or(Value::Null, |b| Value::Bytes(b.to_vec()))
}

pub fn text(v: &str) -> Value {
    Value::Text(v.to_owned())
}

pub fn opt_text(v: Option<&str>) -> Value {
    v.map_or(Value::Null, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_minimal_integer() {
        // 0x18 0x05 is 5 written in two bytes; canonical is 0x05.
        assert_eq!(
            decode_canonical(&[0x18, 0x05], 16),
            Err(CborError::NonCanonical)
        );
        assert_eq!(decode_canonical(&[0x05], 16), Ok(uint(5)));
    }

    #[test]
    fn rejects_indefinite_length_and_trailing_bytes() {
        // Indefinite-length byte string made of one chunk "a".
        assert_eq!(
            decode_canonical(&[0x5f, 0x41, 0x61, 0xff], 16),
            Err(CborError::NonCanonical)
        );
        assert!(matches!(
            decode_canonical(&[0x05, 0x05], 16),
            Err(CborError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_oversized_input_before_parsing() {
        assert_eq!(
            decode_canonical(&[0u8; 17], 16),
            Err(CborError::TooLarge(17, 16))
        );
    }
}
