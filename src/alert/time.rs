//! RFC 3339 UTC timestamps from nanoseconds since the Unix epoch, without a date library.
//!
//! Millisecond precision (`2026-03-05T10:00:00.000Z`, as Kibana's `toISOString` writes) unless
//! the value has sub-millisecond digits, which are then kept (9 fractional digits).

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats `ns` (nanoseconds since the epoch, may be negative) as an RFC 3339 UTC timestamp.
pub fn format_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sub = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    if sub % 1_000_000 == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", sub / 1_000_000)
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{sub:09}Z")
    }
}

/// Formats a wall-clock time with millisecond precision (times before 1970 or after 2262 are
/// clamped to the representable range).
pub fn format_system_time(t: SystemTime) -> String {
    let ms: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 1_000_000),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX / 1_000_000),
    };
    let ms = ms.clamp(i64::MIN / 1_000_000, i64::MAX / 1_000_000);
    format_ns(ms * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_millisecond_timestamps_like_to_iso_string() {
        assert_eq!(format_ns(1_772_704_800_000_000_000), "2026-03-05T10:00:00.000Z");
        assert_eq!(format_ns(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ns(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn keeps_sub_millisecond_digits_and_handles_negative_times() {
        assert_eq!(format_ns(1_500), "1970-01-01T00:00:00.000001500Z");
        assert_eq!(format_ns(-1_000_000), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn system_time_has_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_772_704_800_123_456_789);
        assert_eq!(format_system_time(t), "2026-03-05T10:00:00.123Z");
    }
}
