//! One sequence rule's state machine, for the join keys routed to one partition
//! (eql-semantics.md section 0, the algorithm; sections 1-4 and 7 its rules).
//!
//! * One pending partial per (stage, key); a newer partial replaces an older one in the same
//!   stage (section 1.3, "the most recent sequence overwrites the older one").
//! * An event's stage hits are processed from the last stage down, so an event never extends a
//!   partial it has just advanced (section 0); `until` hits are applied after the stage hits and
//!   drop every pending partial of their key (section 7.1).
//! * `maxspan` is inclusive and measured from the first positive event (section 2).
//! * Missing-event stages `![...]` (section 7.3) are decided as ES's `TumblingWindow.
//!   doCheckMissingEvents` decides them (elastic/elasticsearch x-pack/plugin/eql/src/main/java/
//!   org/elasticsearch/xpack/eql/execution/sequence/TumblingWindow.java, read via the search
//!   tool): middle stages reject a candidate that has a matching event strictly between the
//!   neighbouring positive stages' millisecond timestamps; leading stages give `lastLeading`, the
//!   newest matching event before the first positive event; trailing stages give
//!   `firstTrailing`, the oldest matching event after the last positive event. Without trailing
//!   stages the candidate is kept unless `last - lastLeading <= maxspan`. With trailing stages it
//!   is kept if `lastLeading` is absent (when there are leading stages), or else unless
//!   `firstTrailing - from <= maxspan`, with `from` = `lastLeading` if there are leading stages
//!   and the first positive event otherwise. Such a candidate waits (it is "deferred") until the
//!   machine knows no event at or before `from + maxspan` can still come.
//!
//! Time: events must be fed in increasing [`Ordinal`]; `advance(w)` promises that every later
//! event has `ts >= w` (the reorder buffer releases `ts < watermark` and drops later events
//! below it as late). Partials are garbage-collected once `first.ts + maxspan < w`.
//!
//! Output order: a sequence is emitted when it is decided, which is at its completing event
//! except for deferred candidates; [`Completed::ordinal`] is always the completing event's
//! ordinal, the order ES returns results in (section 1.2). Several sequences completed by one
//! event (multi-valued keys) come out in the order of the `hits` given.
//!
//! Memory: each key `K` is stored once (in the `state::KeyTable` slab) with its partials; the
//! pipeline uses a 16-byte [`Fingerprint`](super::key::Fingerprint) as `K`. A key holding one
//! single-event partial (the common case: a first stage waiting for the next) keeps it inline in
//! the slot, without any allocation; more partials or events per key move to one boxed array.
//! Missing-event state lives in a side table, only for the keys of rules that have such stages.
//! The expiry queue holds one 8-byte entry per partial. Measured for the pipeline's shapes
//! (`K = Fingerprint`, an 8-byte event handle): see tests/integration/sequence_memory.rs. Nothing here knows
//! EQL or JSON: events are opaque handles `E`. Processing a first-stage event allocates nothing
//! beyond the table's growth.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hash;

use smallvec::{smallvec, SmallVec};

use super::key::Key;
use super::ordinal::Ordinal;
use super::spec::{SequenceSpec, StageKind};
use super::state::{ExpiryEntry, ExpiryQueue, KeyTable, SlotId};
use crate::time::{truncate_to_millis, NANOS_PER_MILLI};

/// What an event matched, for one join key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HitKind {
    /// The stage with this index (positive or missing), in query order after `runs` expansion.
    Stage(u16),
    /// The `until` clause (section 7.1).
    Until,
}

/// A completed sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed<E, K = Key> {
    /// The join key tuple (the response's `join_keys`, section 8.1), as the machine stores it.
    pub key: K,
    /// One entry per stage, in stage order; `None` for a missing-event stage (`![...]`).
    pub events: Vec<Option<E>>,
    /// Ordinal of the event that completed the sequence (ES orders results by it, section 1.2).
    pub ordinal: Ordinal,
}

/// What happened to partial sequences since the last [`SequenceMachine::take_counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineCounters {
    /// Partials started by a first-stage event.
    pub created: u64,
    /// Sequences emitted.
    pub completed: u64,
    /// Partials dropped because the watermark passed `first.ts + maxspan`.
    pub expired: u64,
    /// Partials dropped by the global cap `max_partial_sequences` (oldest first).
    pub evicted: u64,
    /// Partials replaced by a newer one in the same (stage, key) (section 1.3).
    pub superseded: u64,
    /// Partials whose extension failed the maxspan check (section 2).
    pub rejected_maxspan: u64,
    /// Partials killed by an `until` event (section 7.1).
    pub rejected_until: u64,
    /// Candidates rejected because a missing-stage event exists in their window (section 7.3).
    pub rejected_missing: u64,
    /// Partials still pending at end of input.
    pub abandoned: u64,
}

impl std::ops::AddAssign for MachineCounters {
    fn add_assign(&mut self, o: Self) {
        self.created += o.created;
        self.completed += o.completed;
        self.expired += o.expired;
        self.evicted += o.evicted;
        self.superseded += o.superseded;
        self.rejected_maxspan += o.rejected_maxspan;
        self.rejected_until += o.rejected_until;
        self.rejected_missing += o.rejected_missing;
        self.abandoned += o.abandoned;
    }
}

/// A partial sequence: the positive events matched so far, with their timestamps.
struct Partial<E> {
    /// Low 32 bits of the creation serial (unique among a slot's live partials and its expiry
    /// entries, see `state::ExpiryEntry`).
    serial: u32,
    /// (timestamp, event) per matched positive stage; never empty.
    events: SmallVec<[(i64, E); 1]>,
}

impl<E> Partial<E> {
    /// The first positive event's timestamp: maxspan and expiry are measured from it.
    fn first_ts(&self) -> i64 {
        self.events.first().map_or(i64::MIN, |e| e.0)
    }
}

/// The partials of one join key: `pending[s]` is the partial whose last matched stage is `s`
/// (only `s < last positive`). One single-event partial is kept inline (24 bytes with an 8-byte
/// handle, no allocation); anything more moves to a boxed array with one entry per stage.
enum Pending<E> {
    /// No partial.
    Empty,
    /// Exactly one partial, at `stage`, with one event.
    One { stage: u16, serial: u32, ts: i64, event: E },
    /// Any number of partials, indexed by stage.
    Many(Box<[Option<Partial<E>>]>),
}

impl<E> Pending<E> {
    /// Remove and return the partial at stage `s`.
    fn take(&mut self, s: usize) -> Option<Partial<E>> {
        match self {
            Pending::Many(parts) => parts.get_mut(s).and_then(Option::take),
            Pending::One { stage, .. } if usize::from(*stage) == s => match std::mem::replace(self, Pending::Empty) {
                Pending::One { serial, ts, event, .. } => Some(Partial { serial, events: smallvec![(ts, event)] }),
                _ => None,
            },
            _ => None,
        }
    }

    /// Put `p` at stage `s < stages`; returns the partial it replaces.
    fn replace(&mut self, s: usize, mut p: Partial<E>, stages: usize) -> Option<Partial<E>> {
        if matches!(self, Pending::Empty) && p.events.len() == 1 {
            if let (Ok(stage), Some((ts, event))) = (u16::try_from(s), p.events.pop()) {
                *self = Pending::One { stage, serial: p.serial, ts, event };
                return None;
            }
        }
        if !matches!(self, Pending::Many(_)) {
            let mut parts: Box<[Option<Partial<E>>]> = (0..stages).map(|_| None).collect();
            if let Pending::One { stage, serial, ts, event } = std::mem::replace(self, Pending::Empty) {
                if let Some(slot) = parts.get_mut(usize::from(stage)) {
                    *slot = Some(Partial { serial, events: smallvec![(ts, event)] });
                }
            }
            *self = Pending::Many(parts);
        }
        match self {
            Pending::Many(parts) => parts.get_mut(s).and_then(|slot| slot.replace(p)),
            _ => None,
        }
    }

    /// The first timestamp of the partial with this serial, if it is here.
    fn first_ts_of(&self, serial: u32) -> Option<i64> {
        match self {
            Pending::Empty => None,
            Pending::One { serial: s, ts, .. } => (*s == serial).then_some(*ts),
            Pending::Many(parts) => parts.iter().flatten().find(|p| p.serial == serial).map(Partial::first_ts),
        }
    }

    /// Drop the partial with this serial; whether it was here.
    fn remove_serial(&mut self, serial: u32) -> bool {
        match self {
            Pending::Empty => false,
            Pending::One { serial: s, .. } => {
                let hit = *s == serial;
                if hit {
                    *self = Pending::Empty;
                }
                hit
            }
            Pending::Many(parts) => match parts.iter_mut().find(|p| p.as_ref().is_some_and(|p| p.serial == serial)) {
                Some(p) => {
                    *p = None;
                    true
                }
                None => false,
            },
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Pending::Empty => true,
            Pending::One { .. } => false,
            Pending::Many(parts) => parts.iter().all(Option::is_none),
        }
    }
}

/// A key's missing-event state (section 7.3).
struct MissState {
    /// Per missing stage: timestamps of recent matching events (non-decreasing, deduplicated).
    records: Box<[VecDeque<i64>]>,
    /// Newest timestamp in `records` (`i64::MIN` when empty): its entry in `missing_expiry`.
    latest: i64,
    /// (deadline, serial) of this key's deferred candidates.
    deferred: Vec<(i64, u64)>,
}

impl MissState {
    fn new(misses: usize) -> Self {
        MissState { records: (0..misses).map(|_| VecDeque::new()).collect(), latest: i64::MIN, deferred: Vec::new() }
    }

    fn is_idle(&self) -> bool {
        self.deferred.is_empty() && self.records.iter().all(VecDeque::is_empty)
    }
}

/// A candidate waiting for its trailing missing-event window to close.
struct Deferred<E> {
    slot: SlotId,
    /// The last positive event's timestamp floored to ms: trailing events must be after it.
    last_ms: i64,
    events: Vec<Option<E>>,
    ordinal: Ordinal,
}

/// One sequence rule's state, for the keys routed to this partition. `K` is how a join key is
/// stored and compared: the key itself, or its [`Fingerprint`](super::key::Fingerprint).
pub struct SequenceMachine<E, K = Key> {
    kinds: Box<[StageKind]>,
    /// For each positive stage after the first: the previous positive stage.
    prev_pos: Box<[usize]>,
    /// For each positive stage: its index among positive stages.
    pos_rank: Box<[usize]>,
    /// For each missing stage: its index in `MissState::records`.
    miss_index: Box<[usize]>,
    /// `None` when the spec has no positive stage (nothing can ever match).
    first_pos: Option<usize>,
    last_pos: usize,
    leading: Box<[usize]>,
    trailing: Box<[usize]>,
    /// (missing stage, previous positive stage, next positive stage).
    middle: Box<[(usize, usize, usize)]>,
    /// maxspan in ns; `i64::MAX` when unbounded.
    span: i64,
    bounded: bool,
    max_partials: usize,
    table: KeyTable<K, Pending<E>>,
    /// Missing-event state of the keys that have some (only rules with `![...]` stages).
    misses: hashbrown::HashMap<SlotId, MissState>,
    expiry: ExpiryQueue,
    missing_expiry: BTreeSet<(i64, SlotId)>,
    deferred: BTreeMap<(i64, u64), Deferred<E>>,
    serial: u64,
    order: Vec<(std::cmp::Reverse<i32>, u32)>,
    counters: MachineCounters,
}

impl<E: Clone, K: Clone + Eq + Hash + Ord> SequenceMachine<E, K> {
    /// A machine for `spec` holding at most `max_partials` partial sequences (oldest evicted
    /// first; at least 1).
    pub fn new(spec: &SequenceSpec, max_partials: usize) -> Self {
        let kinds: Box<[StageKind]> = spec.stages.clone().into_boxed_slice();
        let n = kinds.len();
        let positive: Vec<usize> = (0..n).filter(|&i| kinds[i] == StageKind::Positive).collect();
        let first_pos = positive.first().copied();
        let last_pos = positive.last().copied().unwrap_or(0);
        let mut prev_pos = vec![0; n];
        let mut pos_rank = vec![0; n];
        for (rank, w) in positive.iter().enumerate() {
            pos_rank[*w] = rank;
            if rank > 0 {
                prev_pos[*w] = positive[rank - 1];
            }
        }
        let mut miss_index = vec![0; n];
        let (mut leading, mut trailing, mut middle) = (Vec::new(), Vec::new(), Vec::new());
        let mut misses = 0;
        for i in 0..n {
            if kinds[i] != StageKind::Missing {
                continue;
            }
            miss_index[i] = misses;
            misses += 1;
            match (first_pos, positive.iter().rev().find(|&&p| p < i), positive.iter().find(|&&p| p > i)) {
                (Some(f), _, _) if i < f => leading.push(i),
                (_, Some(&a), Some(&b)) => middle.push((i, a, b)),
                _ => trailing.push(i),
            }
        }
        let span = spec.maxspan_ns.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
        SequenceMachine {
            kinds,
            prev_pos: prev_pos.into(),
            pos_rank: pos_rank.into(),
            miss_index: miss_index.into(),
            first_pos,
            last_pos,
            leading: leading.into(),
            trailing: trailing.into(),
            middle: middle.into(),
            span,
            bounded: spec.maxspan_ns.is_some(),
            max_partials: max_partials.max(1),
            table: KeyTable::new(),
            misses: hashbrown::HashMap::new(),
            expiry: ExpiryQueue::default(),
            missing_expiry: BTreeSet::new(),
            deferred: BTreeMap::new(),
            serial: 0,
            order: Vec::new(),
            counters: MachineCounters::default(),
        }
    }

    /// Feed one event; events must come in increasing [`Ordinal`]. `hits`: every (stage or
    /// until, key) this event matched (keys already expanded to the cartesian product and
    /// mandatory-null keys filtered out, section 4). Completed sequences are appended to `out`.
    pub fn on_event(&mut self, ord: &Ordinal, ev: &E, hits: &[(HitKind, K)], out: &mut Vec<Completed<E, K>>) {
        // Every later event has ts >= ord.ts.
        self.expire(ord.ts, out);
        if let [(kind, key)] = hits {
            match *kind {
                HitKind::Stage(s) => self.on_stage(usize::from(s), key, ord, ev, out),
                HitKind::Until => self.on_until(key),
            }
            self.after_event();
            return;
        }
        // Stages from the last down (section 0), `until` after all stages (section 7.1).
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(hits.iter().enumerate().map(|(i, (kind, _))| {
            let rank = match kind {
                HitKind::Stage(s) => i32::from(*s),
                HitKind::Until => -1,
            };
            (std::cmp::Reverse(rank), i as u32)
        }));
        order.sort_unstable();
        for &(_, i) in &order {
            let (kind, key) = &hits[i as usize];
            match *kind {
                HitKind::Stage(s) => self.on_stage(usize::from(s), key, ord, ev, out),
                HitKind::Until => self.on_until(key),
            }
        }
        self.order = order;
        self.after_event();
    }

    fn after_event(&mut self) {
        self.enforce_cap();
        let table = &self.table;
        self.expiry.compact_if_sparse(|e| first_ts_of(table, e).is_some());
    }

    /// The watermark moved to `watermark_ts` (ns): every later event has `ts >= watermark_ts`.
    /// Drops partials that can no longer complete (`first.ts + maxspan < watermark_ts`) and emits
    /// deferred candidates whose trailing missing-event window has closed.
    #[inline]
    pub fn advance(&mut self, watermark_ts: i64, out: &mut Vec<Completed<E, K>>) {
        if !self.is_idle() {
            self.expire(watermark_ts, out);
        }
    }

    /// Calls `f` with every event the machine still holds (in partial sequences and in
    /// candidates waiting for a missing-event window): a checkpoint's record of the input it
    /// cannot forget yet.
    pub fn for_each_held(&self, mut f: impl FnMut(&E)) {
        self.table.for_each_value(|p| match p {
            Pending::Empty => {}
            Pending::One { event, .. } => f(event),
            Pending::Many(parts) => parts.iter().flatten().flat_map(|p| p.events.iter()).for_each(|(_, e)| f(e)),
        });
        self.deferred.values().flat_map(|d| d.events.iter().flatten()).for_each(f);
    }

    /// True when nothing is deferred, live or recorded: [`SequenceMachine::advance`] then does
    /// nothing. Most machines of a large rule set are idle most of the time (and rules with
    /// `![...]` stages make the pipeline advance every machine on every line).
    #[inline]
    pub fn is_idle(&self) -> bool {
        // Stale expiry entries may remain; later pushes drop them.
        self.deferred.is_empty() && self.expiry.is_empty() && self.missing_expiry.is_empty()
    }

    /// End of input: emits every deferred candidate (no trailing event can come any more), in
    /// (completing ordinal, key) order, and forgets all state.
    pub fn finish(&mut self, out: &mut Vec<Completed<E, K>>) {
        let mut rest: Vec<Deferred<E>> = std::mem::take(&mut self.deferred).into_values().collect();
        rest.sort_by(|a, b| a.ordinal.cmp(&b.ordinal).then_with(|| self.table.key(a.slot).cmp(self.table.key(b.slot))));
        for d in rest {
            self.counters.completed += 1;
            out.push(Completed { key: self.table.key(d.slot).clone(), events: d.events, ordinal: d.ordinal });
        }
        self.counters.abandoned += self.expiry.len() as u64;
        self.expiry.clear();
        self.missing_expiry.clear();
        self.misses.clear();
        self.table.clear();
    }

    /// Number of live partial sequences.
    pub fn partials(&self) -> usize {
        self.expiry.len()
    }

    /// Number of join keys with live state (partials, missing-event records or deferred
    /// candidates).
    pub fn keys(&self) -> usize {
        self.table.len()
    }

    /// Number of candidates waiting for their trailing missing-event window (section 7.3).
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// The counters accumulated since the last call (for metrics), reset to zero.
    pub fn take_counters(&mut self) -> MachineCounters {
        std::mem::take(&mut self.counters)
    }

    fn exceeds(&self, from: i64, to: i64) -> bool {
        // Section 2: inclusive, `to.delta(from) > maxSpanInNanos`.
        self.bounded && to.saturating_sub(from) > self.span
    }

    fn on_stage(&mut self, s: usize, key: &K, ord: &Ordinal, ev: &E, out: &mut Vec<Completed<E, K>>) {
        let Some(first_pos) = self.first_pos else {
            return;
        };
        if s >= self.kinds.len() {
            return;
        }
        let now = ord.ts;
        if self.kinds[s] == StageKind::Missing {
            self.record_missing(s, key, now);
            return;
        }
        if s == first_pos {
            self.serial += 1;
            self.counters.created += 1;
            let partial = Partial { serial: self.serial as u32, events: smallvec![(now, ev.clone())] };
            let slot = self.slot_for(key);
            if s == self.last_pos {
                self.candidate(slot, partial, ord, out);
            } else {
                self.store(slot, s, partial);
            }
            self.maybe_free(slot);
            return;
        }
        let Some(slot) = self.table.find(key) else {
            return;
        };
        let prev = self.prev_pos[s];
        let Some(mut partial) = self.table.get_mut(slot).take(prev) else {
            return;
        };
        if self.exceeds(partial.first_ts(), now) {
            self.expiry.forget();
            self.counters.rejected_maxspan += 1;
        } else {
            partial.events.push((now, ev.clone()));
            if s == self.last_pos {
                self.expiry.forget();
                self.candidate(slot, partial, ord, out);
            } else {
                // Still tracked in the expiry queue under the same entry.
                if self.table.get_mut(slot).replace(s, partial, self.last_pos).is_some() {
                    self.expiry.forget();
                    self.counters.superseded += 1;
                }
            }
        }
        self.maybe_free(slot);
    }

    /// The slot of `key`, created empty if absent.
    fn slot_for(&mut self, key: &K) -> SlotId {
        self.table.find_or_insert(key, || Pending::Empty)
    }

    fn miss_count(&self) -> usize {
        self.leading.len() + self.middle.len() + self.trailing.len()
    }

    /// Put a new or advanced partial at stage `s`, replacing (and untracking) an older one.
    fn store(&mut self, slot: SlotId, s: usize, partial: Partial<E>) {
        self.expiry.push((slot, partial.serial));
        if self.table.get_mut(slot).replace(s, partial, self.last_pos).is_some() {
            self.expiry.forget();
            self.counters.superseded += 1;
        }
    }

    fn on_until(&mut self, key: &K) {
        let Some(slot) = self.table.find(key) else {
            return;
        };
        for s in 0..self.last_pos {
            if self.table.get_mut(slot).take(s).is_some() {
                self.expiry.forget();
                self.counters.rejected_until += 1;
            }
        }
        self.maybe_free(slot);
    }

    fn record_missing(&mut self, s: usize, key: &K, now: i64) {
        let slot = self.slot_for(key);
        let floor = self.record_floor(now);
        let idx = self.miss_index[s];
        let misses = self.miss_count();
        let st = self.misses.entry(slot).or_insert_with(|| MissState::new(misses));
        let q = &mut st.records[idx];
        if q.back() != Some(&now) {
            q.push_back(now);
        }
        while q.front().is_some_and(|&r| r < floor) {
            q.pop_front();
        }
        let old_latest = st.latest;
        let new_latest = now.max(old_latest);
        st.latest = new_latest;
        if old_latest != new_latest {
            if old_latest != i64::MIN {
                self.missing_expiry.remove(&(old_latest, slot));
            }
            self.missing_expiry.insert((new_latest, slot));
        }
        if self.trailing.contains(&s) {
            // A trailing event rejects every deferred candidate of its key whose window holds it.
            let Some(st) = self.misses.get_mut(&slot) else {
                return;
            };
            let mut waiting = std::mem::take(&mut st.deferred);
            waiting.retain(|entry| {
                let hit = self.deferred.get(entry).is_some_and(|d| now > d.last_ms && now <= entry.0);
                if hit {
                    self.deferred.remove(entry);
                    self.counters.rejected_missing += 1;
                }
                !hit
            });
            if let Some(st) = self.misses.get_mut(&slot) {
                st.deferred = waiting;
            }
        }
    }

    /// Missing-stage records older than this can no longer matter to a candidate completing at
    /// or after `now` (one extra ms covers the ms-floored window bounds).
    fn record_floor(&self, now: i64) -> i64 {
        if self.bounded {
            now.saturating_sub(self.span).saturating_sub(NANOS_PER_MILLI)
        } else {
            i64::MIN
        }
    }

    /// A positive-complete candidate: check its missing-event windows (section 7.3) and emit,
    /// reject or defer it.
    fn candidate(&mut self, slot: SlotId, partial: Partial<E>, ord: &Ordinal, out: &mut Vec<Completed<E, K>>) {
        if self.miss_count() == 0 {
            self.counters.completed += 1;
            out.push(Completed {
                key: self.table.key(slot).clone(),
                events: partial.events.into_iter().map(|(_, e)| Some(e)).collect(),
                ordinal: ord.clone(),
            });
            return;
        }
        let ts_of = |stage: usize| partial.events.get(self.pos_rank[stage]).map_or(i64::MIN, |e| e.0);
        let start = partial.first_ts();
        let last = partial.events.last().map_or(start, |e| e.0);
        let none: Box<[VecDeque<i64>]> = (0..self.miss_count()).map(|_| VecDeque::new()).collect();
        let records = self.misses.get(&slot).map_or(&none, |m| &m.records);
        // Middle stages: any event strictly between the neighbours' ms timestamps discards.
        for &(m, a, b) in self.middle.iter() {
            let (lo, hi) = (truncate_to_millis(ts_of(a)), truncate_to_millis(ts_of(b)));
            if records[self.miss_index[m]].iter().any(|&r| r > lo && r < hi) {
                self.counters.rejected_missing += 1;
                return;
            }
        }
        // Leading stages: the newest event before the first positive event's ms timestamp.
        let start_ms = truncate_to_millis(start);
        let last_leading = self
            .leading
            .iter()
            .filter_map(|&m| records[self.miss_index[m]].iter().rev().find(|&&r| r < start_ms).copied())
            .max();
        let last_ms = truncate_to_millis(last);
        let verdict = if self.trailing.is_empty() {
            match last_leading {
                Some(l) if !self.exceeds(l, last) => Verdict::Reject,
                _ => Verdict::Accept,
            }
        } else {
            let from = if self.leading.is_empty() { Some(start) } else { last_leading };
            match from {
                None => Verdict::Accept,
                Some(from) => {
                    let deadline = if self.bounded { from.saturating_add(self.span) } else { i64::MAX };
                    let seen = self
                        .trailing
                        .iter()
                        .any(|&m| records[self.miss_index[m]].iter().any(|&r| r > last_ms && r <= deadline));
                    if seen {
                        Verdict::Reject
                    } else if deadline < ord.ts {
                        Verdict::Accept
                    } else {
                        Verdict::Defer(deadline)
                    }
                }
            }
        };
        if verdict == Verdict::Reject {
            self.counters.rejected_missing += 1;
            return;
        }
        let mut events = Vec::with_capacity(self.kinds.len());
        let mut positive = partial.events.into_iter();
        for kind in self.kinds.iter() {
            events.push(match kind {
                StageKind::Positive => positive.next().map(|(_, e)| e),
                StageKind::Missing => None,
            });
        }
        match verdict {
            Verdict::Defer(deadline) => {
                self.serial += 1;
                let id = (deadline, self.serial);
                self.deferred.insert(id, Deferred { slot, last_ms, events, ordinal: ord.clone() });
                let misses = self.miss_count();
                self.misses.entry(slot).or_insert_with(|| MissState::new(misses)).deferred.push(id);
            }
            _ => {
                self.counters.completed += 1;
                out.push(Completed { key: self.table.key(slot).clone(), events, ordinal: ord.clone() });
            }
        }
    }

    /// Every later event has `ts >= bound`: settle what that decides.
    fn expire(&mut self, bound: i64, out: &mut Vec<Completed<E, K>>) {
        while let Some((&id, _)) = self.deferred.first_key_value() {
            if id.0 >= bound {
                break;
            }
            let Some(d) = self.deferred.remove(&id) else {
                break;
            };
            if let Some(st) = self.misses.get_mut(&d.slot) {
                st.deferred.retain(|x| *x != id);
            }
            self.counters.completed += 1;
            out.push(Completed { key: self.table.key(d.slot).clone(), events: d.events, ordinal: d.ordinal });
            self.maybe_free(d.slot);
        }
        if !self.bounded {
            return;
        }
        while let Some((first_ts, entry)) = self.oldest_live() {
            if first_ts.saturating_add(self.span) >= bound {
                break;
            }
            self.expiry.pop_front();
            self.drop_partial(entry);
            self.counters.expired += 1;
        }
        let floor = self.record_floor(bound);
        while let Some(&(latest, slot)) = self.missing_expiry.first() {
            if latest >= floor {
                break;
            }
            self.missing_expiry.pop_first();
            if let Some(st) = self.misses.get_mut(&slot) {
                st.records.iter_mut().for_each(VecDeque::clear);
                st.latest = i64::MIN;
            }
            self.maybe_free(slot);
        }
    }

    /// Remove the live partial of an expiry entry (already popped from the queue) from its slot.
    fn drop_partial(&mut self, (slot, serial): ExpiryEntry) {
        if self.table.get_mut(slot).remove_serial(serial) {
            self.expiry.forget();
        }
        self.maybe_free(slot);
    }

    /// The oldest live partial's first timestamp and expiry entry, discarding stale entries in
    /// front of it.
    fn oldest_live(&mut self) -> Option<(i64, ExpiryEntry)> {
        while let Some(entry) = self.expiry.front() {
            if let Some(first_ts) = first_ts_of(&self.table, &entry) {
                return Some((first_ts, entry));
            }
            self.expiry.pop_front();
        }
        None
    }

    fn enforce_cap(&mut self) {
        while self.expiry.len() > self.max_partials {
            let Some((_, entry)) = self.oldest_live() else {
                break;
            };
            self.expiry.pop_front();
            self.drop_partial(entry);
            self.counters.evicted += 1;
        }
    }

    fn maybe_free(&mut self, slot: SlotId) {
        if self.table.get(slot).is_empty() && self.misses.get(&slot).is_none_or(MissState::is_idle) {
            self.table.remove(slot);
            self.misses.remove(&slot);
        }
    }
}

/// The first timestamp of the partial an expiry entry names, if it still exists.
fn first_ts_of<K: Hash + Eq + Clone, E>(table: &KeyTable<K, Pending<E>>, &(slot, serial): &ExpiryEntry) -> Option<i64> {
    table.try_get(slot).and_then(|p| p.first_ts_of(serial))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
    Defer(i64),
}
