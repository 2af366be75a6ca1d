//! The total order of events (eql-semantics.md section 3): timestamp, then the optional
//! tiebreaker field (events without one sort after events with one), then arrival order, which
//! stands in for Elasticsearch's implicit `_shard_doc` tiebreaker.
//!
//! Mirrors ES `Ordinal.compareTo` (x-pack/plugin/eql/.../execution/search/Ordinal.java, newest
//! version, quoted in section 3). Plain data; no parsing here.

use std::cmp::Ordering;

use crate::event::Scalar;

/// The value of the configured `tiebreaker_field` (section 3).
///
/// ES sorts on the field's doc values: numbers numerically, keywords by bytes. Mixed types do
/// not occur in one mapped field; here numbers sort before strings, and integers and floats are
/// compared numerically.
#[derive(Clone, Debug)]
pub enum TieBreaker {
    /// An integer value.
    I64(i64),
    /// A floating-point value (compared with `f64::total_cmp`).
    F64(f64),
    /// A string value (compared bytewise, as keyword doc values are).
    Str(Box<str>),
}

impl TieBreaker {
    /// The tiebreaker for a field value; `None` for values that cannot be sorted on (booleans,
    /// integers above i64::MAX are treated as floats).
    pub fn from_scalar(s: Scalar<'_>) -> Option<Self> {
        match s {
            Scalar::I64(i) => Some(TieBreaker::I64(i)),
            Scalar::U64(u) => Some(TieBreaker::F64(u as f64)),
            Scalar::F64(f) => Some(TieBreaker::F64(f)),
            Scalar::Str(s) => Some(TieBreaker::Str(s.into())),
            Scalar::Bool(_) => None,
        }
    }
}

impl Ord for TieBreaker {
    fn cmp(&self, other: &Self) -> Ordering {
        use TieBreaker::*;
        match (self, other) {
            (I64(a), I64(b)) => a.cmp(b),
            (F64(a), F64(b)) => a.total_cmp(b),
            (I64(a), F64(b)) => (*a as f64).total_cmp(b).then(Ordering::Less),
            (F64(a), I64(b)) => a.total_cmp(&(*b as f64)).then(Ordering::Greater),
            (Str(a), Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Str(_), _) => Ordering::Greater,
            (_, Str(_)) => Ordering::Less,
        }
    }
}

impl PartialOrd for TieBreaker {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for TieBreaker {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for TieBreaker {}

/// Where an event stands in event time. `Ord` is ES's `Ordinal.compareTo`: `ts`, then
/// `tiebreaker` with `None` last, then `arrival`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ordinal {
    /// Timestamp in ns since the epoch, already at the configured precision (section 2).
    pub ts: i64,
    /// The `tiebreaker_field` value, if one is configured and present.
    pub tiebreaker: Option<TieBreaker>,
    /// The input line number: unique, increasing with arrival.
    pub arrival: u64,
}

impl Ordinal {
    /// An ordinal without a tiebreaker.
    pub fn new(ts: i64, arrival: u64) -> Self {
        Ordinal { ts, tiebreaker: None, arrival }
    }
}

/// The order of [`Ordinal`] on its parts (also used by the reorder buffer's packed form):
/// `ts`, then the tiebreaker with `None` last, then `arrival`.
pub(crate) fn compare_parts(
    (ts_a, tb_a, arrival_a): (i64, Option<&TieBreaker>, u64),
    (ts_b, tb_b, arrival_b): (i64, Option<&TieBreaker>, u64),
) -> Ordering {
    ts_a.cmp(&ts_b)
        .then_with(|| match (tb_a, tb_b) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| arrival_a.cmp(&arrival_b))
}

impl Ord for Ordinal {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_parts(
            (self.ts, self.tiebreaker.as_ref(), self.arrival),
            (other.ts, other.tiebreaker.as_ref(), other.arrival),
        )
    }
}

impl PartialOrd for Ordinal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ord(ts: i64, tb: Option<TieBreaker>, arrival: u64) -> Ordinal {
        Ordinal { ts, tiebreaker: tb, arrival }
    }

    #[test]
    fn timestamp_decides_first() {
        assert!(ord(1, None, 9) < ord(2, Some(TieBreaker::I64(0)), 0));
    }

    #[test]
    fn tiebreaker_decides_equal_timestamps_and_missing_sorts_last() {
        // Section 3: "{es} orders events with no tiebreaker value after events with a value".
        assert!(ord(5, Some(TieBreaker::I64(2)), 1) < ord(5, Some(TieBreaker::I64(3)), 0));
        assert!(ord(5, Some(TieBreaker::I64(99)), 7) < ord(5, None, 0));
    }

    #[test]
    fn arrival_decides_full_ties() {
        assert!(ord(5, None, 1) < ord(5, None, 2));
        assert!(ord(5, Some(TieBreaker::Str("a".into())), 1) < ord(5, Some(TieBreaker::Str("a".into())), 2));
    }
}
