//! Event time: turning an event's timestamp value into i64 nanoseconds since the Unix epoch
//! (eql-semantics.md section 3).
//!
//! Accepted forms, as Elasticsearch's default `date` format (`strict_date_optional_time ||
//! epoch_millis`) accepts them:
//! * RFC 3339 / ISO 8601 strings: `2026-03-05T10:00:00Z`, any number of fraction digits
//!   (`.5`, `.123456789123`), `.` or `,` as the decimal mark, an offset `Z`, `+HH:MM`, `+HHMM`,
//!   `+HH` or none (UTC), a `T`, `t` or space between date and time, and the shorter
//!   `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDTHH` and `YYYY-MM-DDTHH:MM` forms (a time
//!   needs a full date);
//! * epoch milliseconds, as a JSON number or as a string of digits (optionally negative,
//!   optionally with a fraction: `1600000000000.5`).
//!
//! With [`Precision::Millis`] (the default, as ES's `date` type stores milliseconds) the result is
//! truncated towards negative infinity to a whole millisecond, so sub-millisecond digits never
//! change which sequences match (section 2). [`Precision::Nanos`] keeps nanoseconds, as the
//! `date_nanos` type does.
//!
//! This module never allocates and never panics on input.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::event::Scalar;

/// The process's reference instant for [`monotonic_ns`].
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Fixes the reference instant of [`monotonic_ns`] (call once at start-up, before any instant
/// to be encoded is taken; later calls do nothing).
pub fn init_monotonic_epoch() {
    epoch();
}

/// `t` as ns since the process's reference instant (0 for an earlier instant): a monotonic
/// wall-clock time in 8 bytes, e.g. for the event store's headers.
pub fn monotonic_ns(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// The instant [`monotonic_ns`] encoded.
pub fn from_monotonic_ns(ns: u64) -> Instant {
    epoch() + Duration::from_nanos(ns)
}

/// Nanoseconds in one millisecond.
pub const NANOS_PER_MILLI: i64 = 1_000_000;
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// How much of a timestamp is kept (section 2: `date` stores ms, `date_nanos` stores ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Truncate to whole milliseconds, as Elasticsearch's `date` field type does.
    #[default]
    Millis,
    /// Keep nanoseconds, as Elasticsearch's `date_nanos` field type does.
    Nanos,
}

impl Precision {
    /// Apply this precision to a nanosecond timestamp (floor to a whole ms for `Millis`).
    pub fn apply(self, ns: i64) -> i64 {
        match self {
            Precision::Millis => truncate_to_millis(ns),
            Precision::Nanos => ns,
        }
    }
}

/// `ns` floored to a whole millisecond (as `Instant::toEpochMilli` does for positive values).
pub fn truncate_to_millis(ns: i64) -> i64 {
    ns.div_euclid(NANOS_PER_MILLI) * NANOS_PER_MILLI
}

/// Why an event has no usable timestamp. The event is passed through and counted by
/// [`TimeError::reason`] (section 3: ES fails the whole query instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The timestamp field is absent or null.
    #[error("the event has no timestamp")]
    Missing,
    /// The value is neither an ISO 8601 / RFC 3339 string nor epoch milliseconds.
    #[error("the timestamp is not an ISO 8601 date-time or epoch milliseconds")]
    Malformed,
    /// The value is a date, but outside what i64 nanoseconds can hold (years 1678-2261).
    #[error("the timestamp is out of range (years 1678 to 2261)")]
    OutOfRange,
    /// The field holds several values (ES: "a multi-valued timestamp" is an error).
    #[error("the timestamp field holds several values")]
    MultiValued,
}

/// The timestamp of a field value, in ns since the epoch at `precision`.
///
/// `values` are the field's non-null leaf values (empty = missing). Strings are parsed with
/// [`parse_timestamp`]; numbers are epoch milliseconds.
pub fn timestamp_of(values: &[Scalar<'_>], precision: Precision) -> Result<i64, TimeError> {
    match values {
        [] => Err(TimeError::Missing),
        [v] => scalar_timestamp(*v, precision),
        _ => Err(TimeError::MultiValued),
    }
}

/// The timestamp of one scalar value, in ns since the epoch at `precision`.
pub fn scalar_timestamp(value: Scalar<'_>, precision: Precision) -> Result<i64, TimeError> {
    match value {
        Scalar::Str(s) => parse_timestamp(s, precision),
        Scalar::I64(ms) => millis_to_nanos(ms, 0),
        Scalar::U64(ms) => i64::try_from(ms).map_err(|_| TimeError::OutOfRange).and_then(|ms| millis_to_nanos(ms, 0)),
        Scalar::F64(f) => float_millis(f).map(|ns| precision.apply(ns)),
        Scalar::Bool(_) => Err(TimeError::Malformed),
    }
}

/// Parse an RFC 3339 / ISO 8601 date-time or an epoch-millisecond string into ns since the epoch
/// at `precision`.
pub fn parse_timestamp(s: &str, precision: Precision) -> Result<i64, TimeError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(TimeError::Malformed);
    }
    // ES tries `strict_date_optional_time` before `epoch_millis`: four digits are a year.
    let is_year = b.len() == 4 && b.iter().all(u8::is_ascii_digit);
    let ns = if is_epoch_millis(b) && !is_year { parse_epoch_millis(b)? } else { parse_iso(b)? };
    Ok(precision.apply(ns))
}

fn is_epoch_millis(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    // A date has a '-' after the year; epoch millis are digits with at most one '.'.
    !digits.is_empty()
        && digits[0].is_ascii_digit()
        && digits.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && digits.iter().filter(|c| **c == b'.').count() <= 1
}

fn parse_epoch_millis(b: &[u8]) -> Result<i64, TimeError> {
    let (neg, rest) = match b.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, b),
    };
    let (int, frac) = match rest.iter().position(|c| *c == b'.') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if int.is_empty() {
        return Err(TimeError::Malformed);
    }
    let mut ms: i64 = 0;
    for c in int {
        ms = ms.checked_mul(10).and_then(|v| v.checked_add(i64::from(c - b'0'))).ok_or(TimeError::OutOfRange)?;
    }
    let sub = fraction_nanos(frac, NANOS_PER_MILLI);
    if neg {
        // -1.5 ms = -1 ms - 0.5 ms.
        millis_to_nanos(-ms, -sub)
    } else {
        millis_to_nanos(ms, sub)
    }
}

fn millis_to_nanos(ms: i64, sub_ns: i64) -> Result<i64, TimeError> {
    ms.checked_mul(NANOS_PER_MILLI).and_then(|v| v.checked_add(sub_ns)).ok_or(TimeError::OutOfRange)
}

fn float_millis(f: f64) -> Result<i64, TimeError> {
    if !f.is_finite() {
        return Err(TimeError::Malformed);
    }
    let ns = (f * NANOS_PER_MILLI as f64).floor();
    if ns < i64::MIN as f64 || ns >= i64::MAX as f64 {
        return Err(TimeError::OutOfRange);
    }
    Ok(ns as i64)
}

/// The value of the fraction digits `frac` in units where 1.0 = `unit` nanoseconds; digits beyond
/// nanosecond resolution are dropped (truncation).
fn fraction_nanos(frac: &[u8], unit: i64) -> i64 {
    let mut value = 0i64;
    let mut scale = unit;
    for c in frac {
        scale /= 10;
        if scale == 0 {
            break;
        }
        value += i64::from(c - b'0') * scale;
    }
    value
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, n: usize) -> Result<i64, TimeError> {
        let end = self.i + n;
        let s = self.b.get(self.i..end).ok_or(TimeError::Malformed)?;
        let mut v = 0i64;
        for c in s {
            if !c.is_ascii_digit() {
                return Err(TimeError::Malformed);
            }
            v = v * 10 + i64::from(c - b'0');
        }
        self.i = end;
        Ok(v)
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn parse_iso(b: &[u8]) -> Result<i64, TimeError> {
    let mut c = Cursor { b, i: 0 };
    let year = c.digits(4)?;
    let (mut month, mut day) = (1, 1);
    if c.eat(b'-') {
        month = c.digits(2)?;
        if c.eat(b'-') {
            day = c.digits(2)?;
        } else if !c.done() {
            return Err(TimeError::Malformed);
        }
    } else if !c.done() {
        return Err(TimeError::Malformed);
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(TimeError::Malformed);
    }
    let (mut hour, mut minute, mut second, mut frac_ns) = (0, 0, 0, 0);
    let mut offset_s = 0i64;
    if !c.done() {
        match c.peek() {
            Some(b'T' | b't' | b' ') => c.i += 1,
            _ => return Err(TimeError::Malformed),
        }
        hour = c.digits(2)?;
        if c.eat(b':') {
            minute = c.digits(2)?;
            if c.eat(b':') {
                second = c.digits(2)?;
                if c.eat(b'.') || c.eat(b',') {
                    let start = c.i;
                    while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                        c.i += 1;
                    }
                    if c.i == start {
                        return Err(TimeError::Malformed);
                    }
                    frac_ns = fraction_nanos(&b[start..c.i], NANOS_PER_SEC);
                }
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimeError::Malformed);
        }
        offset_s = parse_offset(&mut c)?;
    }
    if !c.done() {
        return Err(TimeError::Malformed);
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_s;
    secs.checked_mul(NANOS_PER_SEC).and_then(|v| v.checked_add(frac_ns)).ok_or(TimeError::OutOfRange)
}

/// The zone designator, as seconds east of UTC. No designator means UTC (ES's default zone).
fn parse_offset(c: &mut Cursor<'_>) -> Result<i64, TimeError> {
    let sign = match c.peek() {
        None => return Ok(0),
        Some(b'Z' | b'z') => {
            c.i += 1;
            return Ok(0);
        }
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err(TimeError::Malformed),
    };
    c.i += 1;
    let h = c.digits(2)?;
    let m = if c.done() {
        0
    } else {
        c.eat(b':');
        c.digits(2)?
    };
    if h > 23 || m > 59 {
        return Err(TimeError::Malformed);
    }
    Ok(sign * (h * 3_600 + m * 60))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Precision = Precision::Millis;
    const NS: Precision = Precision::Nanos;
    // 2026-03-05T10:00:00Z
    const BASE: i64 = 1_772_704_800 * NANOS_PER_SEC;

    #[test]
    fn rfc3339_utc_parses_to_epoch_nanos() {
        assert_eq!(parse_timestamp("2026-03-05T10:00:00Z", MS), Ok(BASE));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z", MS), Ok(0));
        assert_eq!(parse_timestamp("2026-03-05t10:00:00z", MS), Ok(BASE));
        assert_eq!(parse_timestamp("2026-03-05 10:00:00Z", MS), Ok(BASE));
    }

    #[test]
    fn any_number_of_fraction_digits_is_accepted() {
        assert_eq!(parse_timestamp("2026-03-05T10:00:00.5Z", NS), Ok(BASE + 500_000_000));
        assert_eq!(parse_timestamp("2026-03-05T10:00:00,25Z", NS), Ok(BASE + 250_000_000));
        assert_eq!(parse_timestamp("2026-03-05T10:00:00.123456789987Z", NS), Ok(BASE + 123_456_789));
    }

    #[test]
    fn millis_precision_drops_sub_millisecond_digits() {
        // Section 2: `date` stores ms, so 10.0009 s after the start is 10.000 s.
        assert_eq!(parse_timestamp("2026-03-05T10:00:00.1239999Z", MS), Ok(BASE + 123 * NANOS_PER_MILLI));
        assert_eq!(parse_timestamp("2026-03-05T10:00:00.1239999Z", NS), Ok(BASE + 123_999_900));
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(parse_timestamp("2026-03-05T12:00:00+02:00", MS), Ok(BASE));
        assert_eq!(parse_timestamp("2026-03-05T12:00:00+0200", MS), Ok(BASE));
        assert_eq!(parse_timestamp("2026-03-05T12:00:00+02", MS), Ok(BASE));
        assert_eq!(parse_timestamp("2026-03-05T04:30:00-05:30", MS), Ok(BASE));
        assert_eq!(parse_timestamp("2026-03-05T10:00:00", MS), Ok(BASE));
    }

    #[test]
    fn short_iso_forms_parse() {
        assert_eq!(parse_timestamp("2026-03-05", MS), Ok(BASE - 10 * 3_600 * NANOS_PER_SEC));
        assert_eq!(parse_timestamp("2026-03-05T10", MS), Ok(BASE));
        assert_eq!(parse_timestamp("2026-03-05T10:00Z", MS), Ok(BASE));
        let jan1 = parse_timestamp("2026-01-01T00:00:00Z", MS);
        assert_eq!(parse_timestamp("2026", MS), jan1);
        assert_eq!(parse_timestamp("2026-01", MS), jan1);
    }

    #[test]
    fn epoch_millis_numbers_and_strings_parse() {
        let ms = 1_772_704_800_123i64;
        let want = ms * NANOS_PER_MILLI;
        assert_eq!(scalar_timestamp(Scalar::I64(ms), MS), Ok(want));
        assert_eq!(scalar_timestamp(Scalar::U64(ms as u64), MS), Ok(want));
        assert_eq!(parse_timestamp("1772704800123", MS), Ok(want));
        assert_eq!(parse_timestamp("1772704800123.75", NS), Ok(want + 750_000));
        assert_eq!(parse_timestamp("1772704800123.75", MS), Ok(want));
        assert_eq!(scalar_timestamp(Scalar::F64(1.5), NS), Ok(1_500_000));
        assert_eq!(parse_timestamp("-1.5", NS), Ok(-1_500_000));
        assert_eq!(parse_timestamp("-1.5", MS), Ok(-2_000_000));
    }

    #[test]
    fn pre_epoch_dates_floor_to_millis() {
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.9995Z", MS), Ok(-NANOS_PER_MILLI));
    }

    #[test]
    fn malformed_values_are_rejected_with_bounded_reasons() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-03-05T24:00:00Z",
            "2026-03-05T10:00:00.Z",
            "2026-03-05T10:00:00Zjunk",
            "2026-03-05T10:00:00+2",
            "1.2.3",
            "2026-03T10:00:00Z",
            "2026-",
        ] {
            let err = parse_timestamp(bad, MS).expect_err(bad);
            assert_eq!(err, TimeError::Malformed, "{bad}");
        }
        assert_eq!(timestamp_of(&[], MS), Err(TimeError::Missing));
        assert_eq!(scalar_timestamp(Scalar::Bool(true), MS), Err(TimeError::Malformed));
        assert_eq!(parse_timestamp("9999-01-01T00:00:00Z", MS), Err(TimeError::OutOfRange));
        assert_eq!(timestamp_of(&[Scalar::I64(1), Scalar::I64(2)], MS), Err(TimeError::MultiValued));
    }

    #[test]
    fn leap_days_are_valid_dates() {
        assert!(parse_timestamp("2024-02-29T00:00:00Z", MS).is_ok());
        assert!(parse_timestamp("2000-02-29T00:00:00Z", MS).is_ok());
        assert!(parse_timestamp("1900-02-29T00:00:00Z", MS).is_err());
    }
}
