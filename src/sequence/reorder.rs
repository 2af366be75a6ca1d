//! The event-time reorder buffer (eql-semantics.md section 3, "Out-of-order arrival": ES sorts
//! the whole time range, so a streaming engine must re-order inside a watermark).
//!
//! The watermark itself is computed elsewhere ([`super::watermark::Watermarks`]: one clock per
//! input source, outliers held back) and handed in with [`ReorderBuffer::set_watermark`]; it
//! never goes back.
//! * **Release rule: an item is released once `ts < watermark`** (strictly). Every item still
//!   buffered, and every item that can still be pushed without being late, then has
//!   `ts >= watermark`, so releases are in [`Ordinal`] order even for equal timestamps with a
//!   tiebreaker: an event with `ts == watermark` is held back, because another event with the
//!   same timestamp but a smaller tiebreaker (or, without one, a later arrival that must come
//!   after it) may still arrive.
//! * **Late rule: an item is late when `ts < watermark`**, or when its ordinal is below the last
//!   released one (only possible after [`ReorderBuffer::release_through_step`] or
//!   [`ReorderBuffer::release_all_step`]). An item exactly at the watermark is not late. A late
//!   item is handed back to the caller, who passes the line through, leaves it out of detection
//!   and counts it.
//! * Items whose timestamps do not (yet) move the watermark (a source's first events, outliers
//!   far ahead of their source's confirmed time) are [held](ReorderBuffer::hold) in a heap of
//!   their own, so that one event dated years ahead does not push every later in-order event
//!   into the straggler heap. Releases take the smallest of the three fronts, so the output is
//!   the same as with one heap.
//! * [`ReorderBuffer::release_through_step`] (idle release) releases everything up to a time and
//!   lifts the watermark to it, so that an older event arriving afterwards is late instead of
//!   breaking the order; [`ReorderBuffer::release_all_step`] (end of input) releases everything.
//!
//! Because the watermark is advanced per input line, which items are late and in which order
//! items are released depend only on the input, never on batch boundaries. Only idle release
//! depends on wall-clock time. This module never reads a clock: [`IdleTimer`] is fed `Instant`s
//! by its caller.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use super::ordinal::{Ordinal, TieBreaker};

/// Default `max_out_of_orderness`: 2 s of event time.
pub const DEFAULT_MAX_OUT_OF_ORDERNESS: Duration = Duration::from_secs(2);

impl<T> Default for ReorderBuffer<T> {
    fn default() -> Self {
        Self::new()
    }
}

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

/// A buffered item with its ordinal in 24 bytes (an [`Ordinal`] takes 40: its tiebreaker is
/// rarely present, so it is boxed here). Ordered exactly as the [`Ordinal`] it came from.
struct Held<T> {
    ts: i64,
    arrival: u64,
    tiebreaker: Option<Box<TieBreaker>>,
    item: T,
}

impl<T> Held<T> {
    fn new(ordinal: Ordinal, item: T) -> Self {
        Held { ts: ordinal.ts, arrival: ordinal.arrival, tiebreaker: ordinal.tiebreaker.map(Box::new), item }
    }

    fn into_parts(self) -> (Ordinal, T) {
        (Ordinal { ts: self.ts, tiebreaker: self.tiebreaker.map(|t| *t), arrival: self.arrival }, self.item)
    }
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Held<T> {}

impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Held<T> {
    /// `Ordinal::cmp` on the packed form.
    fn cmp(&self, other: &Self) -> Ordering {
        super::ordinal::compare_parts(
            (self.ts, self.tiebreaker.as_deref(), self.arrival),
            (other.ts, other.tiebreaker.as_deref(), other.arrival),
        )
    }
}

/// Entries per chunk of a [`Run`].
const RUN_CHUNK: usize = 4096;

/// Items that arrived in increasing ordinal, as a FIFO in fixed chunks of [`RUN_CHUNK`]
/// entries: it grows without ever copying or holding two copies of itself (a heap's array
/// doubles), and a chunk is freed as soon as its last item is released, so the memory it takes
/// follows its length both ways.
struct Run<T> {
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Run<T> {
    fn new() -> Self {
        Run { chunks: VecDeque::new(), len: 0 }
    }

    fn back(&self) -> Option<&T> {
        self.chunks.back().and_then(VecDeque::back)
    }

    fn front(&self) -> Option<&T> {
        self.chunks.front().and_then(VecDeque::front)
    }

    fn push_back(&mut self, v: T) {
        match self.chunks.back_mut() {
            Some(c) if c.len() < RUN_CHUNK => c.push_back(v),
            _ => {
                let mut c = VecDeque::with_capacity(RUN_CHUNK);
                c.push_back(v);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<T> {
        let c = self.chunks.front_mut()?;
        let v = c.pop_front();
        if c.is_empty() {
            self.chunks.pop_front();
        }
        if v.is_some() {
            self.len -= 1;
        }
        v
    }
}

/// Holds events until the watermark passes them and releases them in [`Ordinal`] order.
///
/// Storage: an item whose ordinal is above every item of the in-order [`Run`] is appended to it
/// (the usual case: most events arrive in order); any other goes to a binary heap, and
/// [held](Self::hold) items to a third one. Releases take the smallest of the fronts, so the
/// output is the same as with one heap. Each item takes 24 bytes plus `T`.
pub struct ReorderBuffer<T> {
    watermark: Option<i64>,
    run: Run<Held<T>>,
    heap: BinaryHeap<Reverse<Held<T>>>,
    /// Items that do not move the watermark (see the module docs).
    held: BinaryHeap<Reverse<Held<T>>>,
    last_released: Option<Ordinal>,
}

impl<T> ReorderBuffer<T> {
    /// An empty buffer without a watermark (nothing is released or late until one is set).
    pub fn new() -> Self {
        ReorderBuffer {
            watermark: None,
            run: Run::new(),
            heap: BinaryHeap::new(),
            held: BinaryHeap::new(),
            last_released: None,
        }
    }

    /// Raises the watermark to `w` (a lower value is ignored: the watermark never goes back).
    /// Call [`Self::release_step`] afterwards to release what it passed.
    pub fn set_watermark(&mut self, w: i64) {
        self.watermark = Some(self.watermark.map_or(w, |old| old.max(w)));
    }

    /// Buffer an item for release in ordinal order, or hand it back as [`Late`] if it is behind
    /// the watermark (or the last release).
    pub fn push(&mut self, ordinal: Ordinal, item: T) -> Result<(), Late<T>> {
        self.check_late(ordinal, item).map(|(ordinal, item)| {
            let held = Held::new(ordinal, item);
            if self.run.back().is_none_or(|b| *b < held) {
                self.run.push_back(held);
            } else {
                self.heap.push(Reverse(held));
            }
        })
    }

    /// Like [`Self::push`], for an item whose timestamp does not move the watermark (a source's
    /// first events, an outlier dated far ahead): it waits apart from the in-order run.
    pub fn hold(&mut self, ordinal: Ordinal, item: T) -> Result<(), Late<T>> {
        self.check_late(ordinal, item).map(|(ordinal, item)| self.held.push(Reverse(Held::new(ordinal, item))))
    }

    fn check_late(&self, ordinal: Ordinal, item: T) -> Result<(Ordinal, T), Late<T>> {
        let watermark = self.watermark;
        let behind =
            watermark.is_some_and(|w| ordinal.ts < w) || self.last_released.as_ref().is_some_and(|r| ordinal < *r);
        if behind {
            Err(Late { ordinal, item, watermark })
        } else {
            Ok((ordinal, item))
        }
    }

    /// Release, in ordinal order, every buffered item with `ts < watermark`.
    pub fn release(&mut self, out: &mut Vec<(Ordinal, T)>) {
        while self.release_step(usize::MAX, out) {}
    }

    /// [`Self::release`] in steps: releases at most `max` items (the smallest with
    /// `ts < watermark`) and returns true when more such items remain; call again, without
    /// pushing in between, until it returns false. A watermark that jumps far ahead (a burst of
    /// newer events) then never hands over the whole buffer at once.
    pub fn release_step(&mut self, max: usize, out: &mut Vec<(Ordinal, T)>) -> bool {
        let Some(w) = self.watermark else {
            return false;
        };
        let mut n = 0;
        while n < max && self.front_ts().is_some_and(|ts| ts < w) {
            self.pop_into(out);
            n += 1;
        }
        self.shrink_heaps();
        self.front_ts().is_some_and(|ts| ts < w)
    }

    /// Idle release in steps: lifts the watermark to `limit` (if higher) and releases at most
    /// `max` items with `ts <= limit`, the smallest first; returns true when more such items
    /// remain (call again, without pushing in between). Items after `limit` (outliers held far
    /// ahead) stay. An event that arrives afterwards with `ts < limit` is late.
    pub fn release_through_step(&mut self, limit: i64, max: usize, out: &mut Vec<(Ordinal, T)>) -> bool {
        self.set_watermark(limit);
        let mut n = 0;
        while n < max && self.front_ts().is_some_and(|ts| ts <= limit) {
            self.pop_into(out);
            n += 1;
        }
        self.shrink_heaps();
        self.front_ts().is_some_and(|ts| ts <= limit)
    }

    /// Bounds the buffer: while it holds more than `max` items, releases the smallest one before
    /// the watermark passes it and lifts the watermark to it (so that an older event arriving
    /// later is late rather than out of order). Returns the number released early.
    pub fn release_overflow(&mut self, max: usize, out: &mut Vec<(Ordinal, T)>) -> usize {
        let mut n = 0;
        while self.len() > max && self.pop_into(out) {
            n += 1;
        }
        if let Some((o, _)) = out.last().filter(|_| n > 0) {
            self.set_watermark(o.ts);
        }
        self.shrink_heaps();
        n
    }

    /// Release everything (end of input).
    pub fn release_all(&mut self, out: &mut Vec<(Ordinal, T)>) {
        while self.release_all_step(usize::MAX, out) > 0 {}
    }

    /// [`Self::release_all`] in steps: releases at most `max` items (the smallest) and returns
    /// how many remain buffered; call again, without pushing in between, until it returns 0. The
    /// watermark rises to each released item. Memory is given back as the buffer empties, so a
    /// full buffer is never held twice.
    pub fn release_all_step(&mut self, max: usize, out: &mut Vec<(Ordinal, T)>) -> usize {
        let mut n = 0;
        while n < max && self.pop_into(out) {
            n += 1;
        }
        if let Some((o, _)) = out.last() {
            self.set_watermark(o.ts);
        }
        self.shrink_heaps();
        self.len()
    }

    /// Calls `f` on every buffered item, in no particular order. Ordinals are not touched, so
    /// what is released when, and in which order, stays the same. For rare updates of the whole
    /// buffer (a rule reload renumbers the rules of buffered hits); O(n).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        for chunk in self.run.chunks.iter_mut() {
            for h in chunk.iter_mut() {
                f(&mut h.item);
            }
        }
        for heap in [&mut self.heap, &mut self.held] {
            let mut items = std::mem::take(heap).into_vec();
            for Reverse(h) in items.iter_mut() {
                f(&mut h.item);
            }
            // Still in heap order (the keys did not change): rebuilding it is one pass.
            *heap = BinaryHeap::from(items);
        }
    }

    /// The current watermark (ns), `None` before one is set.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Number of buffered items.
    pub fn len(&self) -> usize {
        self.run.len + self.heap.len() + self.held.len()
    }

    /// Number of [held](Self::hold) items still buffered.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The smallest buffered timestamp.
    fn front_ts(&self) -> Option<i64> {
        let fronts = [self.run.front(), self.heap.peek().map(|r| &r.0), self.held.peek().map(|r| &r.0)];
        fronts.into_iter().flatten().map(|h| h.ts).min()
    }

    /// Moves the smallest item to `out`; false when empty.
    fn pop_into(&mut self, out: &mut Vec<(Ordinal, T)>) -> bool {
        #[derive(Clone, Copy)]
        enum From {
            Run,
            Heap,
            Held,
        }
        let mut best: Option<(From, &Held<T>)> = None;
        for (from, h) in [
            (From::Run, self.run.front()),
            (From::Heap, self.heap.peek().map(|r| &r.0)),
            (From::Held, self.held.peek().map(|r| &r.0)),
        ] {
            if let Some(h) = h {
                if best.is_none_or(|(_, b)| h < b) {
                    best = Some((from, h));
                }
            }
        }
        let held = match best.map(|(f, _)| f) {
            None => return false,
            Some(From::Run) => self.run.pop_front(),
            Some(From::Heap) => self.heap.pop().map(|Reverse(h)| h),
            Some(From::Held) => self.held.pop().map(|Reverse(h)| h),
        };
        let Some(held) = held else {
            return false;
        };
        let (ordinal, item) = held.into_parts();
        debug_assert!(self.last_released.as_ref().is_none_or(|r| *r < ordinal));
        self.last_released = Some(ordinal.clone());
        out.push((ordinal, item));
        true
    }

    /// A jump of the watermark can empty a large heap at once: give the space back before the
    /// caller builds its work from the released items, instead of holding both.
    fn shrink_heaps(&mut self) {
        for heap in [&mut self.heap, &mut self.held] {
            if heap.capacity() > 4 * heap.len() + 4096 {
                heap.shrink_to(2 * heap.len());
            }
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

    /// The single-source watermark of these tests: the largest timestamp observed minus
    /// `allowance` (the pipeline's comes from `watermark::Watermarks`).
    struct Fed {
        b: ReorderBuffer<u32>,
        allowance: i64,
        max_seen: Option<i64>,
    }

    impl Fed {
        fn new(allowance: i64) -> Self {
            Fed { b: ReorderBuffer::new(), allowance, max_seen: None }
        }
        fn observe(&mut self, ts: i64) {
            let m = self.max_seen.map_or(ts, |m| m.max(ts));
            self.max_seen = Some(m);
            self.b.set_watermark(m - self.allowance);
        }
        /// As the pipeline does: a line that is not late moves time, then is buffered.
        fn push(&mut self, o: Ordinal, x: u32) -> Result<(), Late<u32>> {
            if self.b.watermark().is_none_or(|w| o.ts >= w) {
                self.observe(o.ts);
            }
            self.b.push(o, x)
        }
        fn drain(&mut self) -> Vec<u32> {
            let mut out = Vec::new();
            self.b.release(&mut out);
            out.into_iter().map(|(_, x)| x).collect()
        }
    }

    #[test]
    fn releases_in_timestamp_order_once_watermark_passes() {
        let mut f = Fed::new(2 * S);
        f.push(ord(10 * S, 0), 0).unwrap();
        f.push(ord(9 * S, 1), 1).unwrap();
        assert_eq!(f.drain(), Vec::<u32>::new());
        f.push(ord(12 * S, 2), 2).unwrap(); // watermark 10 s: ts < 10 s released
        assert_eq!(f.drain(), vec![1]);
        f.observe(13 * S); // a non-matching line moves the watermark too
        assert_eq!(f.drain(), vec![0]);
        assert_eq!(f.b.len(), 1);
    }

    #[test]
    fn for_each_mut_reaches_every_item_and_keeps_the_release_order() {
        let mut f = Fed::new(10 * S);
        for (i, ts) in [5, 3, 4, 1, 2, 6, 0, 7].into_iter().enumerate() {
            f.push(ord(ts * S, i as u64), ts as u32).unwrap();
        }
        f.b.hold(ord(30 * S, 9), 30).unwrap();
        let mut seen = 0;
        f.b.for_each_mut(|x| {
            *x += 100;
            seen += 1;
        });
        assert_eq!(seen, 9, "the run, the heap and the held items");
        let mut out = Vec::new();
        f.b.release_all(&mut out);
        let got: Vec<u32> = out.into_iter().map(|(_, x)| x).collect();
        assert_eq!(got, [100, 101, 102, 103, 104, 105, 106, 107, 130]);
    }

    #[test]
    fn the_watermark_never_goes_back() {
        let mut b: ReorderBuffer<u32> = ReorderBuffer::new();
        assert_eq!(b.watermark(), None);
        b.set_watermark(10);
        b.set_watermark(5);
        assert_eq!(b.watermark(), Some(10));
    }

    #[test]
    fn release_in_steps_gives_the_same_order_and_keeps_the_rest() {
        let mut f = Fed::new(10 * S);
        // Out of order, so both the in-order run and the heap hold items.
        for (i, ts) in [5, 3, 4, 1, 2, 6, 0, 7, 9].into_iter().enumerate() {
            f.push(ord(ts * S, i as u64), ts as u32).unwrap();
        }
        f.observe(17 * S); // watermark 7 s: 0..=6 are due, 7 and 9 stay
        let mut out = Vec::new();
        let mut steps = 0;
        while f.b.release_step(3, &mut out) {
            steps += 1;
            assert_eq!(out.len(), 3 * steps, "at most 3 per step");
        }
        assert_eq!(steps, 2);
        assert_eq!(out.into_iter().map(|(_, x)| x).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(f.b.len(), 2);
        assert!(!f.b.release_step(3, &mut Vec::new()), "nothing more is due");
    }

    #[test]
    fn event_at_watermark_is_not_late_but_below_is() {
        let mut f = Fed::new(2 * S);
        f.push(ord(10 * S, 0), 0).unwrap();
        assert!(f.push(ord(8 * S, 1), 1).is_ok());
        let late = f.push(ord(8 * S - 1, 2), 2).unwrap_err();
        assert_eq!(late.item, 2);
        assert_eq!(late.watermark, Some(8 * S));
    }

    #[test]
    fn equal_timestamps_release_in_arrival_order_after_the_watermark_passes() {
        let mut f = Fed::new(0);
        f.push(ord(5, 0), 0).unwrap();
        f.push(ord(5, 1), 1).unwrap();
        assert_eq!(f.drain(), Vec::<u32>::new(), "ts == watermark is held");
        f.push(ord(5, 2), 2).unwrap();
        f.push(ord(6, 3), 3).unwrap();
        assert_eq!(f.drain(), vec![0, 1, 2]);
    }

    #[test]
    fn release_all_lifts_watermark_so_older_events_become_late() {
        let mut f = Fed::new(2 * S);
        f.push(ord(10 * S, 0), 0).unwrap();
        let mut out = Vec::new();
        f.b.release_all(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(f.b.watermark(), Some(10 * S));
        assert!(f.b.push(ord(9 * S, 1), 1).is_err());
        assert!(f.b.push(ord(10 * S, 2), 2).is_ok(), "same ts, later arrival: still ordered");
    }

    #[test]
    fn release_through_keeps_what_lies_beyond_and_makes_older_events_late() {
        let mut f = Fed::new(2 * S);
        f.push(ord(10 * S, 0), 0).unwrap();
        f.push(ord(11 * S, 1), 1).unwrap();
        // An outlier dated far ahead, held apart: it does not move the watermark.
        f.b.hold(ord(1_000 * S, 2), 2).unwrap();
        let mut out = Vec::new();
        assert!(!f.b.release_through_step(11 * S, 10, &mut out));
        assert_eq!(out.iter().map(|(_, x)| *x).collect::<Vec<_>>(), vec![0, 1], "ts <= limit, in order");
        assert_eq!(f.b.watermark(), Some(11 * S));
        assert_eq!((f.b.len(), f.b.held()), (1, 1));
        assert!(f.b.push(ord(11 * S - 1, 3), 3).is_err(), "behind the lifted watermark");
        assert!(f.b.push(ord(11 * S, 4), 4).is_ok());
    }

    #[test]
    fn held_items_are_released_in_ordinal_order_with_the_rest() {
        let mut f = Fed::new(S);
        f.b.hold(ord(50 * S, 0), 100).unwrap();
        for i in 1..=60 {
            f.push(ord(i * S, i as u64), i as u32).unwrap();
        }
        // The held item did not send every later in-order event to the straggler heap.
        assert!(f.b.heap.is_empty());
        let released = f.drain();
        let pos = released.iter().position(|x| *x == 100).unwrap();
        // (50 s, arrival 0) sorts before (50 s, arrival 50).
        assert_eq!((released[pos - 1], released[pos + 1]), (49, 50));
    }

    #[test]
    fn overflow_releases_the_oldest_and_lifts_the_watermark_to_them() {
        let mut f = Fed::new(10 * S);
        for (i, ts) in [5, 3, 4, 1, 2].into_iter().enumerate() {
            f.push(ord(ts * S, i as u64), ts as u32).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(f.b.release_overflow(3, &mut out), 2);
        assert_eq!(out.iter().map(|(_, x)| *x).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(f.b.len(), 3);
        assert_eq!(f.b.watermark(), Some(2 * S));
        assert!(f.b.push(ord(2 * S - 1, 9), 9).is_err(), "older than what went early: late");
        assert_eq!(f.b.release_overflow(3, &mut out), 0);
    }

    #[test]
    fn buffered_ordinal_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<Held<()>>(), 24);
        assert_eq!(std::mem::size_of::<Held<[u64; 5]>>(), 64);
    }

    #[test]
    fn in_order_run_heap_and_held_release_in_ordinal_order() {
        // Arrivals mostly in order with stragglers, items held apart, equal timestamps and
        // tiebreakers: the releases must be the ordinals sorted, whichever side holds them.
        let mut f = Fed::new(5 * S);
        let mut pushed = Vec::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for arrival in 0..20_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let jitter = if rng % 4 == 0 { (rng >> 8) as i64 % (3 * S) } else { 0 };
            let ts = (arrival as i64 / 3) * 1_000_000 - jitter;
            let tiebreaker = (rng % 5 == 0).then_some(TieBreaker::I64((rng >> 20) as i64 % 7));
            let o = Ordinal { ts, tiebreaker, arrival };
            let ok =
                if rng % 97 == 0 { f.b.hold(o.clone(), arrival as u32) } else { f.push(o.clone(), arrival as u32) };
            if ok.is_ok() {
                pushed.push(o);
            }
        }
        assert!(f.b.run.len > 0 && !f.b.heap.is_empty() && !f.b.held.is_empty(), "every side is exercised");
        let mut out = Vec::new();
        f.b.release(&mut out);
        let released = out.len();
        assert!(released > 0);
        while f.b.release_all_step(1000, &mut out) > 0 {}
        assert!(f.b.is_empty());
        pushed.sort();
        let got: Vec<Ordinal> = out.into_iter().map(|(o, _)| o).collect();
        assert_eq!(got, pushed);
    }

    #[test]
    fn release_all_in_steps_raises_the_watermark_as_it_goes() {
        let mut f = Fed::new(2 * S);
        for i in 0..10 {
            f.push(ord(10 * S + i, i as u64), i as u32).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(f.b.release_all_step(4, &mut out), 6);
        assert_eq!(f.b.watermark(), Some(10 * S + 3));
        assert_eq!(f.b.release_all_step(4, &mut out), 2);
        assert_eq!(f.b.release_all_step(4, &mut out), 0);
        assert_eq!(out.iter().map(|(_, x)| *x).collect::<Vec<_>>(), (0..10).collect::<Vec<u32>>());
        // Chunks are freed as they empty.
        assert!(f.b.run.chunks.is_empty());
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
