//! Hostile lines for `--invalid-rate`: input an engine must survive and pass through, and that
//! must never take part in a sequence. Lines that look like events are copies of a *background*
//! event (names outside every scenario's namespace, see `scenario.rs`), so even an engine that
//! accepted them could not form a sequence from them. Never counted in the truth.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Size of the rare oversized line (`--huge-lines`): a little over 1 MiB.
pub const HUGE_LINE_BYTES: usize = (1 << 20) + 4096;

/// Nesting depth of the "very deep" line.
pub const DEEP_NESTING: usize = 10_000;

/// The kinds of hostile line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// Plain text, not JSON.
    NotJson,
    /// A JSON-looking line with bytes that are not UTF-8.
    InvalidUtf8,
    /// A background event cut off in the middle.
    Truncated,
    /// A JSON array.
    Array,
    /// A JSON scalar (number, string, `null`, `true`).
    Scalar,
    /// An empty line.
    Empty,
    /// A background event ending in `\r\n`.
    Crlf,
    /// `{"a":{"a":...}}` nested [`DEEP_NESTING`] levels.
    DeepNesting,
    /// A background event without `@timestamp`.
    NoTimestamp,
    /// A background event whose `@timestamp` is not a date.
    BadTimestamp,
    /// A JSON object larger than 1 MiB (only with `--huge-lines`).
    Huge,
}

const KINDS: &[Hostile] = &[
    Hostile::NotJson,
    Hostile::InvalidUtf8,
    Hostile::Truncated,
    Hostile::Array,
    Hostile::Scalar,
    Hostile::Empty,
    Hostile::Crlf,
    Hostile::DeepNesting,
    Hostile::NoTimestamp,
    Hostile::BadTimestamp,
];

/// Picks a kind; `Huge` only when `huge` is set, and then rarely (1 in 1000 hostile lines).
pub fn pick(rng: &mut ChaCha8Rng, huge: bool) -> Hostile {
    if huge && rng.random_range(0..1000) == 0 {
        return Hostile::Huge;
    }
    KINDS[rng.random_range(0..KINDS.len())]
}

/// Appends the hostile line (with its line terminator) to `out`. `bg` is a complete background
/// event line ending in `\n`.
pub fn write(out: &mut Vec<u8>, rng: &mut ChaCha8Rng, kind: Hostile, bg: &[u8]) {
    let body = bg.strip_suffix(b"\n").unwrap_or(bg);
    match kind {
        Hostile::NotJson => out.extend_from_slice(b"kernel: audit: backlog limit exceeded -- not json {\n"),
        Hostile::InvalidUtf8 => out.extend_from_slice(
            b"{\"@timestamp\":\"2026-03-05T10:00:00.000Z\",\"message\":\"\xff\xfe\xc3\x28 bad utf-8\"}\n",
        ),
        Hostile::Truncated => {
            let cut = if body.len() > 2 { rng.random_range(1..body.len() - 1) } else { 0 };
            out.extend_from_slice(&body[..cut]);
            out.push(b'\n');
        }
        Hostile::Array => out.extend_from_slice(b"[{\"event\":{\"kind\":\"event\"}},1,\"two\",null]\n"),
        Hostile::Scalar => {
            let s: &[u8] = match rng.random_range(0..4) {
                0 => b"42\n",
                1 => b"\"just a string\"\n",
                2 => b"null\n",
                _ => b"true\n",
            };
            out.extend_from_slice(s);
        }
        Hostile::Empty => out.push(b'\n'),
        Hostile::Crlf => {
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        Hostile::DeepNesting => {
            for _ in 0..DEEP_NESTING {
                out.extend_from_slice(b"{\"a\":");
            }
            out.extend_from_slice(b"1");
            out.extend(std::iter::repeat_n(b'}', DEEP_NESTING));
            out.push(b'\n');
        }
        Hostile::NoTimestamp => {
            // Background lines start with `{"@timestamp":"<24 chars>",`.
            const PREFIX: usize = "{\"@timestamp\":\"2026-03-05T10:00:00.000Z\",".len();
            out.push(b'{');
            out.extend_from_slice(body.get(PREFIX..).unwrap_or(b"}"));
            out.push(b'\n');
        }
        Hostile::BadTimestamp => {
            const TS_START: usize = "{\"@timestamp\":\"".len();
            const TS_END: usize = TS_START + 24;
            out.extend_from_slice(&body[..TS_START.min(body.len())]);
            out.extend_from_slice(b"yesterday at noon");
            out.extend_from_slice(body.get(TS_END..).unwrap_or(b"\"}"));
            out.push(b'\n');
        }
        Hostile::Huge => {
            out.extend_from_slice(b"{\"message\":\"");
            out.extend(std::iter::repeat_n(b'x', HUGE_LINE_BYTES));
            out.extend_from_slice(b"\"}\n");
        }
    }
}
