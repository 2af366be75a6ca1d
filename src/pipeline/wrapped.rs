//! Input that a log shipper wrapped in a string field: Fluent Bit's `tail` without `Parser json`
//! sends each line as `{"log":"{\"@timestamp\":...}"}`, Vector's `file` source and Filebeat as
//! `{"message":"{...}"}`. Such lines are valid JSON without a timestamp: every one is passed
//! through and counted as invalid (`reason="no_timestamp"`), and no rule can fire. Nothing in
//! the counts says why, so when most of the invalid lines look wrapped, eqlstream says so on
//! stderr, with how to fix the shipper: once when it first becomes clear (at least
//! [`MIN_WRAPPED`] such lines, and they are at least half of the lines of the batches they came
//! in), then at most every [`REPEAT_EVERY`] while it goes on.
//!
//! Only lines already found invalid for lack of a timestamp are looked at (a `memmem` over the
//! raw line), and the shared counters are touched once per batch that has one: lines that parse
//! cost nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrapped lines needed before the first warning.
pub const MIN_WRAPPED: u64 = 100;
/// Least time between two warnings.
pub const REPEAT_EVERY: Duration = Duration::from_secs(300);

/// The wrapper fields recognised, with the ways they appear in a line (`"log":"{`, `"log": "{`).
const FIELDS: [(&str, [&[u8]; 2]); 2] =
    [("log", [br#""log":"{"#, br#""log": "{"#]), ("message", [br#""message":"{"#, br#""message": "{"#])];

/// The wrapper field of `line` when it holds a JSON object as a string (`"log":"{`), else `None`.
pub fn wrapper_field(line: &[u8]) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(_, spellings)| spellings.iter().any(|s| memchr::memmem::find(line, s).is_some()))
        .map(|(f, _)| *f)
}

/// The run's counts of wrapped lines (shared by the decode workers of every rule-set version).
#[derive(Debug)]
pub struct WrapperWatch {
    /// Wrapped lines seen.
    wrapped: AtomicU64,
    /// Lines of the batches that had a wrapped line.
    lines: AtomicU64,
    /// When the last warning was given (`None`: never).
    last_warning: Mutex<Option<Instant>>,
    timestamp_field: String,
}

impl WrapperWatch {
    /// No line seen yet; the warning names `timestamp_field`.
    pub fn new(timestamp_field: &str) -> WrapperWatch {
        WrapperWatch {
            wrapped: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            last_warning: Mutex::new(None),
            timestamp_field: timestamp_field.to_string(),
        }
    }

    /// Adds a batch of `lines` lines of which `wrapped` were wrapped in `field` (call only when
    /// `wrapped > 0`); warns when it is time. Returns whether it warned.
    pub fn observe(&self, lines: u64, wrapped: u64, field: &str) -> bool {
        let total_wrapped = self.wrapped.fetch_add(wrapped, Ordering::Relaxed) + wrapped;
        let total_lines = self.lines.fetch_add(lines, Ordering::Relaxed) + lines;
        if total_wrapped < MIN_WRAPPED || total_wrapped * 2 < total_lines {
            return false;
        }
        let mut last = match self.last_warning.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if last.is_some_and(|t| t.elapsed() < REPEAT_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        tracing::warn!(
            wrapped_lines = total_wrapped,
            field,
            "Most input lines are an event wrapped as a JSON string in the field `{field}` (like \
             {{\"{field}\":\"{{\\\"{ts}\\\":...}}\"}}): they have no `{ts}`, are passed through as \
             invalid, and no rule can match them. Make the shipper send the event itself: Fluent \
             Bit: add `Parser json` to the input (and `json_date_key false` to the output); \
             Vector: `. = parse_json!(.{field})` in a remap transform; Filebeat: the `decode_json_fields` \
             processor with `target: \"\"`. See docs/integrations.md.",
            ts = self.timestamp_field,
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_are_recognised_by_their_field() {
        assert_eq!(wrapper_field(br#"{"log":"{\"@timestamp\":\"2024\"}"}"#), Some("log"));
        assert_eq!(wrapper_field(br#"{"date":1.5,"log":"{\"a\":1}"}"#), Some("log"), "Fluent Bit's date key");
        assert_eq!(wrapper_field(br#"{"message": "{\"a\":1}", "host":"x"}"#), Some("message"));
        assert_eq!(wrapper_field(br#"{"log":"plain text"}"#), None);
        assert_eq!(wrapper_field(br#"{"process":{"name":"sh"}}"#), None);
    }

    #[test]
    fn it_warns_once_most_lines_are_wrapped_then_rate_limits() {
        let w = WrapperWatch::new("@timestamp");
        assert!(!w.observe(1000, 10, "log"), "a few wrapped lines among many: no warning");
        assert!(!w.observe(60, 60, "log"), "70 wrapped: under the minimum");
        // 170 wrapped of 1,120 lines: not most of them.
        assert!(!w.observe(60, 60, "log"));
        let w = WrapperWatch::new("@timestamp");
        assert!(w.observe(128, 128, "log"), "128 of 128");
        assert!(!w.observe(128, 128, "log"), "then not again within REPEAT_EVERY");
    }
}
