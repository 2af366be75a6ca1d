//! The timestamp of a line read from its raw bytes, without parsing it: the value of the
//! timestamp key when it is the line's **first** key (`{"@timestamp":"2026-...",...`, as Beats,
//! Elastic Agent, Vector and the load generator write it) and occurs nowhere else in the line.
//!
//! Used for every line the prefilter skips, and for every line that fails to parse (with or
//! without the prefilter), so that the watermark sees the same event time for a line in both
//! modes (see `pipeline::decode`). For a valid JSON object the answer, when there is one, is the
//! value the parser would give: the key is at the top level (it is the first key), it is the
//! only occurrence (so no duplicate key or nested field can add a value), and a string without
//! backslashes is its own unescaped value.
//!
//! Conservative: `None` whenever the key is not first, occurs twice, holds anything but a plain
//! string or an integer, or the string has a backslash; the caller then parses the line.

use crate::metrics::InvalidReason;
use crate::time::{self, Precision};

/// Longer number tokens are left to the real parser (it may read them as floats or reject them).
const MAX_NUMBER_LEN: usize = 18;

/// A scalar found by [`LeadingTime`]: the raw token, borrowed from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawScalar<'a> {
    /// A string's content (no escapes, so the content is the value).
    Str(&'a str),
    /// An integer token, e.g. `1709632800000`.
    Int(i64),
}

/// JSON whitespace.
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && is_ws(line[i]) {
        i += 1;
    }
    i
}

/// Length of the strict JSON number at the start of `s` (RFC 8259 grammar), or None.
fn number_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    if s.first() == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while s.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return None,
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    (i <= MAX_NUMBER_LEN).then_some(i)
}

/// The value of `key` when it is the first key of the line's object and occurs only once in the
/// line (as any string; `quoted_key` finds `"key"`), and holds a plain string or an integer.
fn leading_scalar_with<'a>(
    line: &'a [u8],
    key: &str,
    quoted_key: &memchr::memmem::Finder<'_>,
) -> Option<RawScalar<'a>> {
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(line, i + 1);
    let k = key.as_bytes();
    // `"key"` here, and nowhere else.
    let quoted_at = i;
    if line.get(i) != Some(&b'"') || !line[i + 1..].starts_with(k) || line.get(i + 1 + k.len()) != Some(&b'"') {
        return None;
    }
    i += k.len() + 2;
    debug_assert_eq!(&line[quoted_at..i], quoted_key.needle());
    if quoted_key.find(&line[i..]).is_some() {
        return None;
    }
    i = skip_ws(line, i);
    if line.get(i) != Some(&b':') {
        return None;
    }
    i = skip_ws(line, i + 1);
    let rest = &line[i..];
    match rest.first()? {
        b'"' => {
            let end = memchr::memchr2(b'"', b'\\', &rest[1..])?;
            if rest[1 + end] != b'"' {
                return None;
            }
            std::str::from_utf8(&rest[1..1 + end]).ok().map(RawScalar::Str)
        }
        b'-' | b'0'..=b'9' => {
            let len = number_len(rest)?;
            let after = rest.get(len).copied().unwrap_or(b' ');
            if !(is_ws(after) || matches!(after, b',' | b'}')) {
                return None;
            }
            // Only plain integers: simd-json reads them as the same i64 (floats and huge numbers
            // are left to the parser).
            std::str::from_utf8(&rest[..len]).ok()?.parse().ok().map(RawScalar::Int)
        }
        _ => None,
    }
}

/// Reads the event time of lines from their raw bytes ([`LeadingTime`]), with the searcher
/// for the quoted key built once.
#[derive(Debug)]
pub struct LeadingTime {
    key: String,
    quoted_key: memchr::memmem::Finder<'static>,
    precision: Precision,
}

impl LeadingTime {
    /// A reader for the top-level `key`.
    pub fn new(key: &str, precision: Precision) -> LeadingTime {
        let quoted = format!("\"{key}\"");
        LeadingTime {
            key: key.to_string(),
            quoted_key: memchr::memmem::Finder::new(quoted.as_bytes()).into_owned(),
            precision,
        }
    }

    /// `Some(Ok(ns))`; `Some(Err(reason))` when the value is there but is not a usable
    /// timestamp; `None` when the raw bytes do not tell.
    pub fn of(&self, line: &[u8]) -> Option<Result<i64, InvalidReason>> {
        Some(match leading_scalar_with(line, &self.key, &self.quoted_key)? {
            RawScalar::Str(s) => time::parse_timestamp(s, self.precision).map_err(|_| InvalidReason::BadTimestamp),
            RawScalar::Int(ms) => time::scalar_timestamp(crate::event::Scalar::I64(ms), self.precision)
                .map_err(|_| InvalidReason::BadTimestamp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TS: &str = "@timestamp";

    fn leading_scalar<'a>(line: &'a [u8], key: &str) -> Option<RawScalar<'a>> {
        let quoted = format!("\"{key}\"");
        leading_scalar_with(line, key, &memchr::memmem::Finder::new(quoted.as_bytes()))
    }

    #[test]
    fn reads_a_leading_timestamp_only() {
        let line = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","x":{"a":1}}"#;
        assert_eq!(leading_scalar(line, TS), Some(RawScalar::Str("2026-03-05T10:00:00.000Z")));
        assert_eq!(leading_scalar(br#" { "@timestamp" : 1709632800000 }"#, TS), Some(RawScalar::Int(1709632800000)));
        assert_eq!(leading_scalar(br#"{"@timestamp":1709632800000,"a":1}"#, TS), Some(RawScalar::Int(1709632800000)));
        // Not first, repeated (as a key or a value), not a plain string or integer: unknown.
        for unsure in [
            &br#"{"x":1,"@timestamp":"2026-03-05T10:00:00.000Z"}"#[..],
            br#"{"@timestamp":"a","@timestamp":"b"}"#,
            br#"{"@timestamp":"a","x":{"@timestamp":"b"}}"#,
            br#"{"@timestamp":"a","x":"@timestamp"}"#,
            br#"{"@timestamp":["a"]}"#,
            br#"{"@timestamp":null}"#,
            br#"{"@timestamp":1.5}"#,
            br#"{"@timestamp":12x}"#,
            br#"{"@timestamp":"a\"b"}"#,
            br#"{"@timestamp":"unterminated"#,
            br#"{"@timestamps":"a"}"#,
            br#"["@timestamp"]"#,
            b"",
        ] {
            assert_eq!(leading_scalar(unsure, TS), None, "{}", String::from_utf8_lossy(unsure));
        }
    }

    #[test]
    fn leading_time_classifies_bad_values() {
        let t = LeadingTime::new(TS, Precision::Millis);
        assert_eq!(t.of(br#"{"@timestamp":"yesterday"}"#), Some(Err(InvalidReason::BadTimestamp)));
        assert_eq!(t.of(br#"{"@timestamp":1772704800000}"#), Some(Ok(1_772_704_800_000_000_000)));
        assert_eq!(t.of(br#"{"a":1}"#), None);
    }

    proptest! {
        /// Whenever the raw scan reads a timestamp from a line that simd-json parses as an object,
        /// it is the value of the object's only top-level timestamp key.
        #[test]
        fn agrees_with_the_parser(m in proptest::collection::btree_map("[a-z@]{1,11}", prop_oneof![
                any::<i64>().prop_map(serde_json::Value::from),
                "[ -~&&[^\"\\\\]]{0,10}".prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
            ], 0..6),
            first in prop_oneof![
                "[ -~&&[^\"\\\\]]{0,10}".prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
            ],
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut obj = serde_json::Map::new();
            obj.insert(TS.to_string(), first.clone());
            for (k, v) in m {
                obj.insert(k, v);
            }
            let s = serde_json::to_string(&obj).unwrap();
            if let Some(v) = leading_scalar(s.as_bytes(), TS) {
                let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
                match v {
                    RawScalar::Str(x) => prop_assert_eq!(&parsed[TS], &serde_json::Value::from(x)),
                    RawScalar::Int(x) => prop_assert_eq!(&parsed[TS], &serde_json::Value::from(x)),
                }
            }
            // Truncated lines never make it panic.
            let _ = leading_scalar(&s.as_bytes()[..cut.index(s.len() + 1)], TS);
        }
    }
}
