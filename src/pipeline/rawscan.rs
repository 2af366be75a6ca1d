//! Cheap questions about a raw line, answered without parsing it: is it certainly a valid JSON
//! object, and what is the value of one top-level key. Used by the prefilter to skip the full
//! simd-json parse of lines that cannot match any rule while still reading their timestamp.
//!
//! Every function here is *conservative*: it answers `None` whenever it is not certain (a
//! backslash escape anywhere, non-UTF-8 bytes, a number it does not recognise as plainly valid,
//! nesting deeper than [`MAX_DEPTH`], a key that occurs twice...), and the caller then parses the
//! line for real. A `Some` answer must agree with simd-json's parse of the same line.

/// Deeper nesting is left to the real parser (simd-json's own limit is 1024).
pub const MAX_DEPTH: usize = 256;
/// Longer number tokens are left to the real parser (it may read them as floats or reject them).
const MAX_NUMBER_LEN: usize = 18;

/// A scalar found by [`top_level_scalar`]: the raw token, borrowed from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawScalar<'a> {
    /// A string's content (the line has no escapes, so the content is the value).
    Str(&'a str),
    /// A number token, e.g. `1709632800000` or `-1.5e3`.
    Num(&'a str),
}

#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Object,
    Array,
}

/// Where the walk is: what may come next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (after `:`, `,` in an array, `[`, or at the root).
    Value,
    /// A key or `}` (right after `{`).
    KeyOrClose,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the closing bracket after a value.
    CommaOrClose,
}

/// Visits a line that is certainly a valid JSON object without escapes.
///
/// Calls `on_top(key, value_start)` for every top-level key with the byte offset of its value.
/// Returns false when the line is not certainly valid (the caller must parse it for real).
fn walk(line: &[u8], mut on_top: impl FnMut(&[u8], usize)) -> bool {
    if memchr::memchr(b'\\', line).is_some() || std::str::from_utf8(line).is_err() {
        return false;
    }
    let quotes = QuoteIndex::new(line);
    let mut stack: smallvec::SmallVec<[Ctx; 32]> = smallvec::SmallVec::new();
    let mut expect = Expect::Value;
    let mut pending_key: Option<(usize, usize)> = None;
    let mut i = 0;
    let n = line.len();
    let mut seen_root = false;
    while i < n {
        let b = line[i];
        if is_ws(b) {
            i += 1;
            continue;
        }
        if stack.is_empty() && seen_root {
            return false; // trailing content after the root value
        }
        match expect {
            Expect::Value => {
                if stack.is_empty() {
                    if b != b'{' {
                        return false; // not an object: let the parser classify it
                    }
                    seen_root = true;
                }
                match b {
                    b'{' | b'[' => {
                        if stack.len() >= MAX_DEPTH {
                            return false;
                        }
                        if stack.len() == 1 {
                            if let Some((ks, ke)) = pending_key.take() {
                                on_top(&line[ks..ke], i);
                            }
                        }
                        let (ctx, next) =
                            if b == b'{' { (Ctx::Object, Expect::KeyOrClose) } else { (Ctx::Array, Expect::Value) };
                        stack.push(ctx);
                        expect = next;
                        i += 1;
                        // `[]`: an empty array closes right away.
                        if ctx == Ctx::Array {
                            let mut j = i;
                            while j < n && is_ws(line[j]) {
                                j += 1;
                            }
                            if j < n && line[j] == b']' {
                                stack.pop();
                                expect = Expect::CommaOrClose;
                                i = j + 1;
                            }
                        }
                        continue;
                    }
                    _ => {}
                }
                if stack.len() == 1 {
                    if let Some((ks, ke)) = pending_key.take() {
                        on_top(&line[ks..ke], i);
                    }
                }
                match b {
                    b'"' => match quotes.string_end(line, i) {
                        Some(e) => i = e,
                        None => return false,
                    },
                    b't' if line[i..].starts_with(b"true") => i += 4,
                    b'f' if line[i..].starts_with(b"false") => i += 5,
                    b'n' if line[i..].starts_with(b"null") => i += 4,
                    b'-' | b'0'..=b'9' => match number_len(&line[i..]) {
                        Some(len) => i += len,
                        None => return false,
                    },
                    _ => return false,
                }
                // A number or literal must be followed by a delimiter.
                if i < n && !(is_ws(line[i]) || matches!(line[i], b',' | b'}' | b']')) {
                    return false;
                }
                expect = Expect::CommaOrClose;
            }
            Expect::KeyOrClose | Expect::Key => {
                if b == b'}' && expect == Expect::KeyOrClose {
                    stack.pop();
                    expect = Expect::CommaOrClose;
                    i += 1;
                    continue;
                }
                if b != b'"' {
                    return false;
                }
                let Some(e) = quotes.string_end(line, i) else { return false };
                if stack.len() == 1 {
                    pending_key = Some((i + 1, e - 1));
                }
                i = e;
                expect = Expect::Colon;
            }
            Expect::Colon => {
                if b != b':' {
                    return false;
                }
                i += 1;
                expect = Expect::Value;
            }
            Expect::CommaOrClose => {
                let Some(&ctx) = stack.last() else { return false };
                match (b, ctx) {
                    (b',', Ctx::Object) => expect = Expect::Key,
                    (b',', Ctx::Array) => expect = Expect::Value,
                    (b'}', Ctx::Object) | (b']', Ctx::Array) => {
                        stack.pop();
                        expect = Expect::CommaOrClose;
                    }
                    _ => return false,
                }
                i += 1;
            }
        }
    }
    seen_root && stack.is_empty()
}

/// Where the quotes of a line are, as one bit per byte (64-byte words), and whether the line
/// has any control character: found in one SIMD pass, so that skipping a string costs a bit
/// scan instead of a `memchr` call per string (a line of ECS JSON has about a hundred).
struct QuoteIndex {
    masks: smallvec::SmallVec<[u64; 64]>,
    has_control: bool,
}

impl QuoteIndex {
    fn new(line: &[u8]) -> QuoteIndex {
        let mut masks = smallvec::SmallVec::new();
        let mut control = 0u64;
        let mut chunks = line.chunks_exact(64);
        for c in &mut chunks {
            let (q, ctl) = classify64(c);
            masks.push(q);
            control |= ctl;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut pad = [b' '; 64];
            pad[..rest.len()].copy_from_slice(rest);
            let (q, ctl) = classify64(&pad);
            masks.push(q);
            control |= ctl;
        }
        QuoteIndex { masks, has_control: control != 0 }
    }

    /// Position of the first quote at or after `from`.
    #[inline]
    fn next_quote(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        let mut m = self.masks.get(w)? & (u64::MAX << (from % 64));
        loop {
            if m != 0 {
                return Some(w * 64 + m.trailing_zeros() as usize);
            }
            w += 1;
            m = *self.masks.get(w)?;
        }
    }

    /// End (exclusive, past the closing quote) of the string starting at `line[start] == '"'`,
    /// if it is closed and has no control characters.
    #[inline]
    fn string_end(&self, line: &[u8], start: usize) -> Option<usize> {
        if self.has_control {
            return string_end(line, start);
        }
        self.next_quote(start + 1).map(|close| close + 1)
    }
}

/// Bit masks of the quotes and of the control characters (< 0x20) among 64 bytes.
#[inline]
fn classify64(c: &[u8]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8,
        };
        debug_assert!(c.len() >= 64);
        let (mut q, mut ctl) = (0u64, 0u64);
        for k in 0..4 {
            // SAFETY: SSE2 is part of the x86_64 baseline; the load reads 16 bytes at offset
            // 16 * k < 64 <= c.len() (checked by the slice index below).
            unsafe {
                let v = _mm_loadu_si128(c[16 * k..16 * k + 16].as_ptr().cast::<__m128i>());
                let quote = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))) as u32 as u64;
                let low = _mm_set1_epi8(0x1f);
                let control = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, low), low)) as u32 as u64;
                q |= quote << (16 * k);
                ctl |= control << (16 * k);
            }
        }
        (q, ctl)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let (mut q, mut ctl) = (0u64, 0u64);
        for (j, &b) in c.iter().take(64).enumerate() {
            q |= u64::from(b == b'"') << j;
            ctl |= u64::from(b < 0x20) << j;
        }
        (q, ctl)
    }
}

/// End (exclusive, past the closing quote) of the string starting at `line[start] == '"'`, if
/// it is closed and has no control characters.
#[inline]
fn string_end(line: &[u8], start: usize) -> Option<usize> {
    let rest = &line[start + 1..];
    let close = memchr::memchr(b'"', rest)?;
    if rest[..close].iter().any(|&c| c < 0x20) {
        return None;
    }
    Some(start + 1 + close + 1)
}

/// True when `line` is certainly a valid JSON object (false: not certain; parse it).
pub fn is_valid_object(line: &[u8]) -> bool {
    walk(line, |_, _| {})
}

/// The value of top-level `key` in a line that is certainly a valid JSON object, when that key
/// occurs exactly once at the top level and holds a string or a number.
///
/// `Some(None)`: the line is certainly valid and the key is certainly absent. `None`: not
/// certain (invalid or unusual line, key repeated, value of another type): parse the line.
pub fn top_level_scalar<'a>(line: &'a [u8], key: &str) -> Option<Option<RawScalar<'a>>> {
    let mut found: Option<usize> = None;
    let mut repeated = false;
    let ok = walk(line, |k, value_at| {
        if k == key.as_bytes() {
            if found.is_some() {
                repeated = true;
            }
            found = Some(value_at);
        }
    });
    if !ok || repeated {
        return None;
    }
    let Some(at) = found else { return Some(None) };
    let rest = &line[at..];
    match rest.first()? {
        b'"' => {
            let end = memchr::memchr(b'"', &rest[1..])?;
            // Valid UTF-8 was checked by the walk.
            std::str::from_utf8(&rest[1..1 + end]).ok().map(|s| Some(RawScalar::Str(s)))
        }
        b'-' | b'0'..=b'9' => {
            let len = number_len(rest)?;
            std::str::from_utf8(&rest[..len]).ok().map(|s| Some(RawScalar::Num(s)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_objects() {
        for ok in [
            r#"{}"#,
            r#" { "a" : 1 } "#,
            r#"{"a":[],"b":[1,2,{"c":null}],"d":{"e":true,"f":false},"g":-0.5e+3,"h":""}"#,
            "{\"a\":\"\u{e9}t\u{e9}\"}\r",
        ] {
            assert!(is_valid_object(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn refuses_anything_uncertain_or_invalid() {
        for bad in [
            "",
            "[]",
            "1",
            "\"s\"",
            "{",
            "{\"a\":}",
            "{\"a\":,}",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{\"a\":[1,]}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":truex}",
            "{\"a\":\"x\\\"y\"}",
            "{\"a\":1}}",
            "{\"a\":1} {}",
            "{\"a\":\"\t\"}",
            "{'a':1}",
            "{\"a\":1}x",
            "{\"a\":123456789012345678901234}",
        ] {
            assert!(!is_valid_object(bad.as_bytes()), "{bad}");
        }
        assert!(!is_valid_object(b"{\"a\":\"\xff\"}"));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(300), "]".repeat(300));
        assert!(!is_valid_object(deep.as_bytes()));
    }

    #[test]
    fn finds_a_top_level_timestamp_only() {
        let line = br#"{"x":{"@timestamp":"nested"},"@timestamp":"2026-03-05T10:00:00.000Z","n":1}"#;
        assert_eq!(top_level_scalar(line, "@timestamp"), Some(Some(RawScalar::Str("2026-03-05T10:00:00.000Z"))));
        assert_eq!(
            top_level_scalar(br#"{"@timestamp":1709632800000}"#, "@timestamp"),
            Some(Some(RawScalar::Num("1709632800000")))
        );
        assert_eq!(top_level_scalar(br#"{"x":{"@timestamp":"nested"}}"#, "@timestamp"), Some(None));
        assert_eq!(top_level_scalar(br#"{"@timestamp":"a","@timestamp":"b"}"#, "@timestamp"), None);
        assert_eq!(top_level_scalar(br#"{"@timestamp":["a"]}"#, "@timestamp"), None);
        assert_eq!(top_level_scalar(br#"{"@timestamp":null}"#, "@timestamp"), None);
        assert_eq!(top_level_scalar(br#"{"@timestamp":"a""#, "@timestamp"), None);
    }

    proptest! {
        /// Soundness against the real parser: whenever the walk says "certainly valid", simd-json
        /// parses the line as an object.
        #[test]
        fn never_certain_about_what_simd_json_rejects(s in "[ {}\\[\\]:,\"a-c0-9.eE+\\-tfrulns]{0,40}") {
            if is_valid_object(s.as_bytes()) {
                let mut b = s.clone().into_bytes();
                let v = simd_json::to_borrowed_value(&mut b);
                prop_assert!(matches!(v, Ok(simd_json::BorrowedValue::Object(_))), "{s}");
            }
        }

        /// Soundness on long lines (several 64-byte words of the quote index): a valid object
        /// with one byte replaced is only called valid when simd-json agrees.
        #[test]
        fn never_certain_about_mutated_long_objects(
            m in proptest::collection::btree_map("[a-z@.]{1,12}", "[ -~&&[^\"\\\\]]{0,30}", 4..20),
            at in any::<proptest::sample::Index>(),
            byte in prop_oneof![Just(b'"'), Just(b'{'), Just(b'}'), Just(b':'), Just(b','), Just(b'\t'), Just(0x01u8), Just(b'a')],
        ) {
            let mut line = serde_json::to_string(&m).unwrap().into_bytes();
            let i = at.index(line.len());
            line[i] = byte;
            if is_valid_object(&line) {
                let mut b = line.clone();
                let v = simd_json::to_borrowed_value(&mut b);
                prop_assert!(matches!(v, Ok(simd_json::BorrowedValue::Object(_))), "{}", String::from_utf8_lossy(&line));
            }
        }

        /// And it is not uselessly strict: serde_json-produced objects are accepted.
        #[test]
        fn accepts_generated_objects(m in proptest::collection::btree_map("[a-z@.]{1,8}", prop_oneof![
            any::<i32>().prop_map(serde_json::Value::from),
            "[ -~&&[^\"\\\\]]{0,10}".prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ], 0..8)) {
            let s = serde_json::to_string(&m).unwrap();
            prop_assert!(is_valid_object(s.as_bytes()), "{s}");
        }
    }
}
