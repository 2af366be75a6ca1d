//! The event-time reorder buffer (eql-semantics.md section 3, "Out-of-order arrival": ES sorts
//! the whole time range, so a streaming engine must re-order inside a watermark).
//!
//! * Every timestamped input line advances `max_seen`; the watermark is
//!   `max_seen - max_out_of_orderness`, and never goes back.
//! * **Release rule: an item is released once `ts < watermark`** (strictly). Every item still
//!   buffered, and every item that can still be pushed without being late, then has
//!   `ts >= watermark`, so releases are in [`Ordinal`] order even for equal timestamps with a
//!   tiebreaker: an event with `ts == watermark` is held back, because another event with the
//!   same timestamp but a smaller tiebreaker (or, without one, a later arrival that must come
//!   after it) may still arrive.
//! * **Late rule: an item is late when `ts < watermark`**, or when its ordinal is below the last
//!   released one (only possible after [`ReorderBuffer::release_all`]). An item exactly at the
//!   watermark is not late. A late item is handed back to the caller, who passes the line
//!   through, leaves it out of detection and counts it.
//! * [`ReorderBuffer::release_all`] (end of input, idle release) releases everything and lifts
//!   the watermark to `max_seen`, so that an older event arriving afterwards is late instead of
//!   breaking the order.
//!
//! Because the watermark is advanced per input line ([`ReorderBuffer::observe`]), which items
//! are late and in which order items are released depend only on the input, never on batch
//! boundaries. Only idle release depends on wall-clock time. This module never reads a clock:
//! [`IdleTimer`] is fed `Instant`s by its caller.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::ordinal::Ordinal;

/// Default `max_out_of_orderness`: 2 s of event time.
pub const DEFAULT_MAX_OUT_OF_ORDERNESS: Duration = Duration::from_secs(2);

/// Default `idle_release`: release buffered events after 1 s of wall-clock time without input.
pub const DEFAULT_IDLE_RELEASE: Duration = Duration::from_secs(1);

/// An item pushed behind the watermark: it must not take part in detection.
#[derive(Debug)]
pub struct Late<T> {
    /// The item's ordinal.
    pub ordinal: Ordinal,
    /// The item, handed back.
    pub item: T,
    /// The watermark it was behind (ns), if any.
    pub watermark: Option<i64>,
}

struct Held<T> {
    ordinal: Ordinal,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        self.ordinal == other.ordinal
    }
}

impl<T> Eq for Held<T> {}

impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ordinal.cmp(&other.ordinal)
    }
}

/// Holds events for up to `max_out_of_orderness` of event time and releases them in
/// [`Ordinal`] order as the watermark passes them.
pub struct ReorderBuffer<T> {
    allowance: i64,
    max_seen: Option<i64>,
    /// Lower bound on the watermark set by `release_all`.
    floor: Option<i64>,
    heap: BinaryHeap<Reverse<Held<T>>>,
    last_released: Option<Ordinal>,
}

impl<T> ReorderBuffer<T> {
    /// A buffer allowing events to arrive up to `max_out_of_orderness_ns` (event time) after
    /// newer ones (negative values count as 0).
    pub fn new(max_out_of_orderness_ns: i64) -> Self {
        ReorderBuffer {
            allowance: max_out_of_orderness_ns.max(0),
            max_seen: None,
            floor: None,
            heap: BinaryHeap::new(),
            last_released: None,
        }
    }

    /// Every timestamped line (matching or not) advances the max timestamp, hence the
    /// watermark. Call once per input line, in input order, before [`Self::push`].
    pub fn observe(&mut self, ts: i64) {
        self.max_seen = Some(self.max_seen.map_or(ts, |m| m.max(ts)));
    }

    /// Buffer an item for release in ordinal order, or hand it back as [`Late`] if its
    /// timestamp is already behind the watermark. Also observes `ord.ts`.
    pub fn push(&mut self, ordinal: Ordinal, item: T) -> Result<(), Late<T>> {
        self.observe(ordinal.ts);
        let watermark = self.watermark();
        let behind =
            watermark.is_some_and(|w| ordinal.ts < w) || self.last_released.as_ref().is_some_and(|r| ordinal < *r);
        if behind {
            return Err(Late { ordinal, item, watermark });
        }
        self.heap.push(Reverse(Held { ordinal, item }));
        Ok(())
    }

    /// Release, in ordinal order, every buffered item with `ts < watermark`.
    pub fn release(&mut self, out: &mut Vec<(Ordinal, T)>) {
        let Some(w) = self.watermark() else {
            return;
        };
        while self.heap.peek().is_some_and(|Reverse(h)| h.ordinal.ts < w) {
            self.pop_into(out);
        }
        // A jump of the watermark can empty a large buffer at once: give the space back before
        // the caller builds its work from `out`, instead of holding both.
        if self.heap.capacity() > 4 * self.heap.len() + 4096 {
            self.heap.shrink_to(2 * self.heap.len());
        }
    }

    /// Release everything (end of input, idle release); the watermark then rises to the largest
    /// timestamp seen, so that later, older events are late.
    pub fn release_all(&mut self, out: &mut Vec<(Ordinal, T)>) {
        // Sorted in place: the heap's buffer becomes the output (when `out` is empty), so a full
        // buffer is never held twice; ordinals are unique, so the order is the pop order.
        let mut sorted = std::mem::take(&mut self.heap).into_sorted_vec();
        sorted.reverse();
        debug_assert!(self
            .last_released
            .as_ref()
            .is_none_or(|r| sorted.first().is_none_or(|Reverse(h)| *r < h.ordinal)));
        if let Some(Reverse(h)) = sorted.last() {
            self.last_released = Some(h.ordinal.clone());
        }
        let sorted: Vec<(Ordinal, T)> = sorted.into_iter().map(|Reverse(h)| (h.ordinal, h.item)).collect();
        if out.is_empty() {
            *out = sorted;
        } else {
            out.extend(sorted);
        }
        self.floor = self.max_seen;
    }

    /// The current watermark (ns): `max_seen - max_out_of_orderness`, or higher after a
    /// `release_all`. `None` before the first timestamp.
    pub fn watermark(&self) -> Option<i64> {
        let w = self.max_seen.map(|m| m.saturating_sub(self.allowance));
        match (w, self.floor) {
            (Some(w), Some(f)) => Some(w.max(f)),
            (w, f) => w.or(f),
        }
    }

    /// Number of buffered items.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    fn pop_into(&mut self, out: &mut Vec<(Ordinal, T)>) {
        if let Some(Reverse(h)) = self.heap.pop() {
            debug_assert!(self.last_released.as_ref().is_none_or(|r| *r < h.ordinal));
            self.last_released = Some(h.ordinal.clone());
            out.push((h.ordinal, h.item));
        }
    }
}

/// Decides when the input has been idle long enough (`idle_release`, wall-clock) that buffered
/// events should be released with [`ReorderBuffer::release_all`], so that an alert never waits
/// for the next event.
#[derive(Clone, Debug)]
pub struct IdleTimer {
    idle: Duration,
    last_input: Option<Instant>,
}

impl IdleTimer {
    /// A timer firing after `idle` without input.
    pub fn new(idle: Duration) -> Self {
        IdleTimer { idle, last_input: None }
    }

    /// Input arrived at `now`.
    pub fn input(&mut self, now: Instant) {
        self.last_input = Some(now);
    }

    /// True when there was input, none for `idle` until `now`, and `buffered > 0`. Once it
    /// returns true it stays false until the next input.
    pub fn due(&mut self, now: Instant, buffered: usize) -> bool {
        match self.last_input {
            Some(t) if buffered > 0 && now.saturating_duration_since(t) >= self.idle => {
                self.last_input = None;
                true
            }
            _ => false,
        }
    }

    /// How long after `now` the timer would fire if no input arrives (for a receive timeout).
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.last_input.map(|t| self.idle.saturating_sub(now.saturating_duration_since(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ord(ts: i64, arrival: u64) -> Ordinal {
        Ordinal::new(ts, arrival)
    }

    fn drain(b: &mut ReorderBuffer<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        b.release(&mut out);
        out.into_iter().map(|(_, x)| x).collect()
    }

    #[test]
    fn releases_in_timestamp_order_once_watermark_passes() {
        let mut b = ReorderBuffer::new(2 * S);
        b.push(ord(10 * S, 0), 0).unwrap();
        b.push(ord(9 * S, 1), 1).unwrap();
        assert_eq!(drain(&mut b), Vec::<u32>::new());
        b.push(ord(12 * S, 2), 2).unwrap(); // watermark 10 s: ts < 10 s released
        assert_eq!(drain(&mut b), vec![1]);
        b.observe(13 * S); // a non-matching line moves the watermark too
        assert_eq!(drain(&mut b), vec![0]);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn event_at_watermark_is_not_late_but_below_is() {
        let mut b = ReorderBuffer::new(2 * S);
        b.push(ord(10 * S, 0), 0).unwrap();
        assert!(b.push(ord(8 * S, 1), 1).is_ok());
        let late = b.push(ord(8 * S - 1, 2), 2).unwrap_err();
        assert_eq!(late.item, 2);
        assert_eq!(late.watermark, Some(8 * S));
    }

    #[test]
    fn equal_timestamps_release_in_arrival_order_after_the_watermark_passes() {
        let mut b = ReorderBuffer::new(0);
        b.push(ord(5, 0), 0).unwrap();
        b.push(ord(5, 1), 1).unwrap();
        assert_eq!(drain(&mut b), Vec::<u32>::new(), "ts == watermark is held");
        b.push(ord(5, 2), 2).unwrap();
        b.push(ord(6, 3), 3).unwrap();
        assert_eq!(drain(&mut b), vec![0, 1, 2]);
    }

    #[test]
    fn release_all_lifts_watermark_so_older_events_become_late() {
        let mut b = ReorderBuffer::new(2 * S);
        b.push(ord(10 * S, 0), 0).unwrap();
        let mut out = Vec::new();
        b.release_all(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(b.watermark(), Some(10 * S));
        assert!(b.push(ord(9 * S, 1), 1).is_err());
        assert!(b.push(ord(10 * S, 2), 2).is_ok(), "same ts, later arrival: still ordered");
    }

    #[test]
    fn idle_timer_fires_once_after_quiet_period_with_buffered_events() {
        let t0 = Instant::now();
        let mut t = IdleTimer::new(Duration::from_secs(1));
        assert!(!t.due(t0 + Duration::from_secs(5), 3), "no input yet");
        t.input(t0);
        assert!(!t.due(t0 + Duration::from_millis(999), 3));
        assert!(!t.due(t0 + Duration::from_secs(1), 0), "nothing buffered");
        assert!(t.due(t0 + Duration::from_secs(1), 3));
        assert!(!t.due(t0 + Duration::from_secs(2), 3), "fires once");
        t.input(t0 + Duration::from_secs(3));
        assert_eq!(t.remaining(t0 + Duration::from_millis(3_400)), Some(Duration::from_millis(600)));
    }
}
