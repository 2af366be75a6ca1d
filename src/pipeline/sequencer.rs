//! The sequencer: puts decoded batches back in stream order, keeps the event-time watermark
//! (defined per input line, so release points depend only on the input bytes), holds matched
//! events in the reorder buffer, and releases them in ordinal order to the partition that owns
//! each join key. It is the only stage that sees every line in order, so it also decides what is
//! late. It never touches event bytes.
//!
//! For every batch it sends one [`PartitionWork`] to each partition (in partition order) and then
//! one [`WriterBatch`] to the writer; the writer consumes in the same order, which rules out
//! deadlock with bounded channels.

use std::collections::BTreeMap;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use smallvec::SmallVec;

use super::decode::{Decoded, RuleHit};
use super::frame::Batch;
use super::Totals;
use crate::metrics::{Handles, PipelineStage, Stats};
use crate::sequence::key::{Fingerprint, Fingerprinter};
use crate::sequence::machine::HitKind;
use crate::sequence::ordinal::Ordinal;
use crate::sequence::partition::partition_of;
use crate::sequence::reorder::ReorderBuffer;
use crate::store::StoredEvent;

/// A [`RuleHit`] as the partitions get it: the join key is replaced by its [`Fingerprint`]
/// (24 bytes instead of ~200 with the key's strings). The worker recovers the key from the
/// event when an alert is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedHit {
    /// The join key's fingerprint (of the empty key for event rules).
    pub key: Fingerprint,
    /// Index of the rule in the rule set.
    pub rule: u32,
    /// The stage (or until clause) matched.
    pub kind: HitKind,
}

/// A sequence-rule hit with the partition owning its key, computed once, from the key itself,
/// so routing does not depend on the run's random fingerprint keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RoutedHit {
    hit: KeyedHit,
    /// `partition_of` the key.
    partition: u32,
}

/// The sequence-rule hits of one event, as decoded.
type RoutedHits = SmallVec<[RoutedHit; 1]>;

/// The hits of one event; one inline, as most events have.
pub type KeyedHits = SmallVec<[KeyedHit; 1]>;

/// Largest number of events released to the partitions in one step by an idle or final release.
const RELEASE_STEP: usize = 4096;

/// One unit of work for a partition worker, tagged with the global line after which its alerts
/// are written.
#[derive(Debug)]
pub enum WorkItem {
    /// An event released by the watermark, with the hits routed to this partition.
    Event {
        /// Alerts go after this global line.
        release_line: u64,
        /// The event's ordinal.
        ordinal: Ordinal,
        /// The event.
        event: StoredEvent,
        /// Its hits for keys owned by this partition (sequence rules) or event-rule hits.
        hits: KeyedHits,
    },
    /// The watermark moved: expire partials, close trailing missing-event windows.
    Advance {
        /// Alerts go after this global line.
        release_line: u64,
        /// The new watermark (ns).
        watermark: i64,
    },
    /// End of input: decide everything still pending.
    Finish {
        /// Alerts go after this global line.
        release_line: u64,
    },
}

/// The work of one output step for one partition.
#[derive(Debug, Default)]
pub struct PartitionWork {
    /// Output step number (shared with the matching [`WriterBatch`]).
    pub step: u64,
    /// Items in processing order.
    pub items: Vec<WorkItem>,
}

/// The lines of one output step, for the writer.
#[derive(Debug)]
pub struct WriterBatch {
    /// Output step number.
    pub step: u64,
    /// The raw lines (empty for idle releases and the final flush).
    pub batch: Batch,
    /// When the lines were decoded (alert latency is measured from here).
    pub received_at: Instant,
}

/// Sequencer settings.
pub struct SequencerConfig {
    /// Reorder allowance (ns).
    pub max_out_of_orderness_ns: i64,
    /// Wall-clock idle time before buffered events are released.
    pub idle_release: Duration,
    /// Number of partitions.
    pub partitions: usize,
    /// For each rule: true when it is an event (non-sequence) query.
    pub event_rule: Vec<bool>,
    /// Send an `Advance` after every line that moves the watermark (needed only by rules with
    /// missing-event stages, whose alerts are decided by the watermark); else once per batch.
    pub advance_per_line: bool,
    /// Join-key fingerprints (the same keys as the partition workers').
    pub fingerprints: Fingerprinter,
}

/// A matched event waiting in the reorder buffer: 8-byte handle plus its hits in 24 bytes
/// (32 bytes, plus the buffer's 24-byte ordinal: 56 bytes per buffered event).
struct Pending {
    event: StoredEvent,
    hits: PendingHits,
}

/// A [`RoutedHit`] in 24 bytes instead of 32: the stage or until clause and the partition in
/// 16 bits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PackedHit {
    key: Fingerprint,
    rule: u32,
    partition: u16,
    /// `Stage(s)` is `s + 1`, `Until` is `u16::MAX` (non-zero, so [`PendingHits`] needs no tag).
    kind: NonZeroU16,
}

impl PackedHit {
    /// The packed form, if the partition and stage fit in 16 bits (always, in practice).
    fn pack(h: &RoutedHit) -> Option<Self> {
        let kind = match h.hit.kind {
            HitKind::Stage(s) if s < u16::MAX - 1 => NonZeroU16::new(s + 1)?,
            HitKind::Stage(_) => return None,
            HitKind::Until => NonZeroU16::MAX,
        };
        Some(PackedHit { key: h.hit.key, rule: h.hit.rule, partition: u16::try_from(h.partition).ok()?, kind })
    }

    fn unpack(self) -> RoutedHit {
        let kind = match self.kind.get() {
            u16::MAX => HitKind::Until,
            s => HitKind::Stage(s - 1),
        };
        RoutedHit { hit: KeyedHit { key: self.key, rule: self.rule, kind }, partition: u32::from(self.partition) }
    }
}

/// The hits of a buffered event: one packed inline (most events), or any number boxed.
#[derive(Debug)]
enum PendingHits {
    One(PackedHit),
    Many(Box<[RoutedHit]>),
}

impl PendingHits {
    fn new(hits: RoutedHits) -> Self {
        match hits.as_slice() {
            [h] => match PackedHit::pack(h) {
                Some(p) => PendingHits::One(p),
                None => PendingHits::Many(hits.into_iter().collect()),
            },
            _ => PendingHits::Many(hits.into_iter().collect()),
        }
    }

    fn into_hits(self) -> RoutedHits {
        match self {
            PendingHits::One(h) => smallvec::smallvec![h.unpack()],
            PendingHits::Many(hits) => hits.into_vec().into_iter().collect(),
        }
    }
}

/// Runs the sequencer until the decode workers are done, then flushes everything.
pub fn run(
    cfg: SequencerConfig,
    rx: Receiver<Decoded>,
    parts: Vec<Sender<PartitionWork>>,
    writer: Sender<WriterBatch>,
    handles: Handles,
    totals: Arc<Totals>,
) {
    let stats = Stats::new(&handles);
    let partitions = cfg.partitions;
    let mut s = Sequencer {
        stats,
        reorder: ReorderBuffer::new(cfg.max_out_of_orderness_ns),
        cfg,
        parts,
        writer,
        handles,
        totals,
        work: (0..partitions).map(|_| PartitionWork::default()).collect(),
        released: Vec::new(),
        step: 0,
        last_line: None,
        next_seq: 0,
        waiting: BTreeMap::new(),
    };
    loop {
        match rx.recv_timeout(s.cfg.idle_release) {
            Ok(d) => {
                s.handles.queue_popped(PipelineStage::Sequence, d.batch.len() as u64);
                s.waiting.insert(d.batch.seq, d);
                while let Some(d) = s.waiting.remove(&s.next_seq) {
                    s.next_seq += 1;
                    if s.process(d).is_err() {
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if !s.reorder.is_empty() && s.idle_flush().is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Decode workers are done; anything still waiting is in order now (no gaps can remain
    // because every batch sent was decoded), but stay robust and process in seq order.
    let rest: Vec<Decoded> = std::mem::take(&mut s.waiting).into_values().collect();
    for d in rest {
        if s.process(d).is_err() {
            return;
        }
    }
    let _ = s.finish();
}

struct Disconnected;

/// Capacity of the release vector kept between releases (a release-all may need far more, once).
const RELEASED_KEEP: usize = 4096;

struct Sequencer {
    stats: Stats,
    cfg: SequencerConfig,
    reorder: ReorderBuffer<Pending>,
    parts: Vec<Sender<PartitionWork>>,
    writer: Sender<WriterBatch>,
    handles: Handles,
    totals: Arc<Totals>,
    work: Vec<PartitionWork>,
    released: Vec<(Ordinal, Pending)>,
    step: u64,
    last_line: Option<u64>,
    next_seq: u64,
    waiting: BTreeMap<u64, Decoded>,
}

impl Sequencer {
    fn process(&mut self, d: Decoded) -> Result<(), Disconnected> {
        let started = Instant::now();
        let Decoded { batch, times, matches, received_at } = d;
        let first = batch.first_line;
        let mut matches = matches.into_iter().peekable();
        let mut late = 0u64;
        let wm_at_start = self.reorder.watermark();
        for (i, t) in times.iter().enumerate() {
            let line = first + i as u64;
            let matched = if matches.peek().is_some_and(|m| m.line as usize == i) { matches.next() } else { None };
            let Some(ts) = t.watermark_time() else { continue };
            if self.reorder.watermark().is_some_and(|w| ts < w) {
                late += 1;
                continue;
            }
            let wm_before = self.reorder.watermark();
            self.reorder.observe(ts);
            if let Some(m) = matched {
                let ordinal = Ordinal { ts, tiebreaker: m.tiebreaker, arrival: line };
                let (event_hits, seq_hits): (Vec<RuleHit>, Vec<RuleHit>) =
                    m.hits.into_iter().partition(|h| self.cfg.event_rule[h.rule as usize]);
                let (event_hits, seq_hits) = (self.compact(event_hits), self.route(seq_hits));
                if !event_hits.is_empty() {
                    // Event rules need no ordering: the alert follows its own line.
                    let p = (line % self.cfg.partitions as u64) as usize;
                    self.work[p].items.push(WorkItem::Event {
                        release_line: line,
                        ordinal: ordinal.clone(),
                        event: m.event.clone(),
                        hits: event_hits,
                    });
                }
                if !seq_hits.is_empty() {
                    let pending = Pending { event: m.event, hits: PendingHits::new(seq_hits) };
                    if let Err(_late) = self.reorder.push(ordinal, pending) {
                        // Cannot happen: ts >= watermark was checked above; count it all the same.
                        late += 1;
                    }
                }
            }
            self.release(line, received_at)?;
            if self.cfg.advance_per_line && self.reorder.watermark() != wm_before {
                self.advance_all(line);
            }
        }
        if !batch.is_empty() {
            self.last_line = Some(first + batch.len() as u64 - 1);
        }
        if !self.cfg.advance_per_line && self.reorder.watermark() != wm_at_start {
            if let Some(line) = self.last_line {
                self.advance_all(line);
            }
        }
        self.totals.add_late(late);
        self.stats.late += late;
        self.stats.flush(&self.handles);
        if let Some(w) = self.reorder.watermark() {
            self.handles.set_watermark(w as f64 / 1e9);
        }
        self.handles.observe_batch(PipelineStage::Sequence, started.elapsed().as_secs_f64());
        self.send_step(batch, received_at)
    }

    /// The hits with their keys replaced by fingerprints.
    fn compact(&self, hits: Vec<RuleHit>) -> KeyedHits {
        hits.into_iter()
            .map(|h| KeyedHit { key: self.cfg.fingerprints.of(&h.key), rule: h.rule, kind: h.kind })
            .collect()
    }

    /// The hits with their keys replaced by fingerprints and owning partitions.
    fn route(&self, hits: Vec<RuleHit>) -> RoutedHits {
        let n = self.cfg.partitions;
        hits.into_iter()
            .map(|h| RoutedHit {
                hit: KeyedHit { key: self.cfg.fingerprints.of(&h.key), rule: h.rule, kind: h.kind },
                partition: partition_of(&h.key, n) as u32,
            })
            .collect()
    }

    /// Tells every partition the current watermark (alerts it decides go after `line`).
    fn advance_all(&mut self, line: u64) {
        if let Some(w) = self.reorder.watermark() {
            for p in self.work.iter_mut() {
                p.items.push(WorkItem::Advance { release_line: line, watermark: w });
            }
        }
    }

    /// Routes the events the watermark released to the partitions owning their keys. Once more
    /// than [`RELEASE_STEP`] work items are waiting (a watermark that jumped over many buffered
    /// events, or a batch whose lines release many), they are sent in a step without lines, so
    /// that the partitions' bounded channels pace them; the writer holds the alerts of such
    /// steps until it has written their release line.
    fn release(&mut self, line: u64, received_at: Instant) -> Result<(), Disconnected> {
        loop {
            let more = self.reorder.release_step(RELEASE_STEP, &mut self.released);
            self.route_released(line);
            if self.work.iter().map(|w| w.items.len()).sum::<usize>() >= RELEASE_STEP {
                self.send_step(Batch::default(), received_at)?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    fn route_released(&mut self, line: u64) {
        let n = self.cfg.partitions;
        let mut released = std::mem::take(&mut self.released);
        for (ordinal, pending) in released.drain(..) {
            let hits = pending.hits.into_hits();
            let first = hits.first().map_or(0, |h| h.partition as usize % n);
            if n == 1 || hits.iter().all(|h| h.partition as usize % n == first) {
                self.work[first].items.push(WorkItem::Event {
                    release_line: line,
                    ordinal,
                    event: pending.event,
                    hits: hits.into_iter().map(|h| h.hit).collect(),
                });
                continue;
            }
            let mut per_part: Vec<KeyedHits> = vec![KeyedHits::new(); n];
            for h in hits {
                per_part[h.partition as usize % n].push(h.hit);
            }
            for (p, hits) in per_part.into_iter().enumerate() {
                if !hits.is_empty() {
                    self.work[p].items.push(WorkItem::Event {
                        release_line: line,
                        ordinal: ordinal.clone(),
                        event: pending.event.clone(),
                        hits,
                    });
                }
            }
        }
        // After a release-all it held the whole reorder buffer: keep only a small one.
        if released.capacity() <= RELEASED_KEEP {
            self.released = released;
        }
    }

    /// No input for `idle_release`: release everything buffered (the watermark jumps to the
    /// largest timestamp seen, so older events arriving later are late).
    fn idle_flush(&mut self) -> Result<(), Disconnected> {
        let Some(line) = self.last_line else { return Ok(()) };
        self.release_all_in_steps(line)?;
        self.advance_all(line);
        self.send_step(Batch::default(), Instant::now())
    }

    /// Releases the whole reorder buffer (in ordinal order) to the partitions in steps of at
    /// most [`RELEASE_STEP`] events, so that the work of a large release is never built all at
    /// once (bounded channels then pace it); the last chunk stays in `work` for the caller's step.
    fn release_all_in_steps(&mut self, line: u64) -> Result<(), Disconnected> {
        loop {
            let left = self.reorder.release_all_step(RELEASE_STEP, &mut self.released);
            self.route_released(line);
            if left == 0 {
                return Ok(());
            }
            self.send_step(Batch::default(), Instant::now())?;
        }
    }

    fn finish(&mut self) -> Result<(), Disconnected> {
        let line = self.last_line.unwrap_or(0);
        self.release_all_in_steps(line)?;
        for p in self.work.iter_mut() {
            p.items.push(WorkItem::Finish { release_line: line });
        }
        self.send_step(Batch::default(), Instant::now())
    }

    fn send_step(&mut self, batch: Batch, received_at: Instant) -> Result<(), Disconnected> {
        let step = self.step;
        self.step += 1;
        for (p, tx) in self.parts.iter().enumerate() {
            let items = std::mem::take(&mut self.work[p].items);
            tx.send(PartitionWork { step, items }).map_err(|_| Disconnected)?;
        }
        let n = batch.len() as u64;
        self.writer.send(WriterBatch { step, batch, received_at }).map_err(|_| Disconnected)?;
        self.handles.queue_pushed(PipelineStage::Write, n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(kind: HitKind, partition: u32) -> RoutedHit {
        RoutedHit { hit: KeyedHit { key: Fingerprint([7, 9]), rule: 3, kind }, partition }
    }

    #[test]
    fn a_buffered_event_takes_32_bytes_and_its_hits_24() {
        assert_eq!(std::mem::size_of::<KeyedHit>(), 24);
        assert_eq!(std::mem::size_of::<KeyedHits>(), 32);
        assert_eq!(std::mem::size_of::<PackedHit>(), 24);
        assert_eq!(std::mem::size_of::<PendingHits>(), 24);
        assert_eq!(std::mem::size_of::<Pending>(), 32);
        // What the partitions are sent: a burst of releases is queued as these.
        assert_eq!(std::mem::size_of::<WorkItem>(), 88);
    }

    #[test]
    fn hits_come_back_unchanged() {
        let cases: Vec<RoutedHits> = vec![
            smallvec::smallvec![hit(HitKind::Stage(0), 0)],
            smallvec::smallvec![hit(HitKind::Stage(2), 65_535)],
            smallvec::smallvec![hit(HitKind::Until, 1)],
            // Do not fit 16 bits: kept whole.
            smallvec::smallvec![hit(HitKind::Stage(u16::MAX), 1)],
            smallvec::smallvec![hit(HitKind::Stage(u16::MAX - 1), 1)],
            smallvec::smallvec![hit(HitKind::Stage(1), 70_000)],
            smallvec::smallvec![hit(HitKind::Stage(0), 0), hit(HitKind::Until, 1)],
            RoutedHits::new(),
        ];
        for hits in cases {
            assert_eq!(PendingHits::new(hits.clone()).into_hits(), hits);
        }
        assert!(matches!(PendingHits::new(smallvec::smallvec![hit(HitKind::Stage(4), 2)]), PendingHits::One(_)));
    }
}
