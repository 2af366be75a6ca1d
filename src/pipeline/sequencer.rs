//! The sequencer: puts decoded batches back in stream order, keeps the event clocks (one per
//! input source, [`Watermarks`]: the watermark moves per input line, so release points depend
//! only on the input and its interleaving), holds matched events in the reorder buffer, and
//! releases them in ordinal order to the partition that owns each join key. It is the only
//! stage that sees every line in order, so it also decides what is late, which events are
//! outliers, and when a silent source stops holding time back. It never touches event bytes.
//!
//! Per source it counts late events, outliers and time jumps, keeps a lag gauge, and warns on
//! stderr when lines start being late or held as outliers (at most once per
//! [`WARN_INTERVAL`] per source and kind).
//!
//! For every batch it sends one [`PartitionWork`] to each partition (in partition order) and then
//! one [`WriterBatch`] to the writer; the writer consumes in the same order, which rules out
//! deadlock with bounded channels.
//!
//! It is also where a reloaded rule set takes effect for the sequence stage: at the first batch
//! of a new version it renumbers the hits it holds and tells the partitions to switch, before
//! any line of that batch (see [`super::live`]).

use std::collections::BTreeMap;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use hashbrown::HashMap;
use smallvec::SmallVec;

use super::decode::{Decoded, RuleHit};
use super::frame::{Batch, SourceInfo, SourceMarker};
use super::live::RuleVersion;
use super::Totals;
use crate::metrics::{Handles, PipelineStage, SourceHandles, Stats};
use crate::sequence::key::{Fingerprint, Fingerprinter};
use crate::sequence::machine::HitKind;
use crate::sequence::ordinal::Ordinal;
use crate::sequence::partition::partition_of;
use crate::sequence::reorder::ReorderBuffer;
use crate::sequence::watermark::{ClockConfig, Jump, SourceId, Verdict, Watermarks};
use crate::store::StoredEvent;

/// At most one warning of each kind (late, outliers) per source in this interval.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Distinct `source` label values before further sources share the label `other`.
const MAX_SOURCE_LABELS: usize = 256;

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
    /// Report the lines of the events the machines still hold (see [`super::checkpoint`]).
    Checkpoint,
    /// From here on, rule indices are those of `version` (a reload, see [`super::live`]).
    Switch {
        /// The rule set that now applies.
        version: Arc<RuleVersion>,
        /// For each rule of `version`, its index in the previous version when its sequence
        /// state carries over ([`RuleVersion::carried_from`]).
        carried: Arc<[Option<u32>]>,
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
    /// A checkpoint taken after this step: its id and what the reorder buffer still needs.
    pub checkpoint: Option<(u64, super::checkpoint::Needed)>,
}

/// Sequencer settings.
pub struct SequencerConfig {
    /// The event clocks: reorder allowance, outliers, idle sources.
    pub clock: ClockConfig,
    /// Wall-clock time without any input before buffered events are released.
    pub idle_release: Duration,
    /// Events the reorder buffer holds at most.
    pub max_buffered_events: usize,
    /// Number of partitions.
    pub partitions: usize,
    /// The rule-set version in effect: which rules are event rules, and whether an `Advance`
    /// goes out after every line that moves the watermark (needed only by rules with
    /// missing-event stages, whose alerts are decided by the watermark) or once per batch.
    /// Replaced at the first batch of a new version.
    pub rules: Arc<RuleVersion>,
    /// Join-key fingerprints (the same keys as the partition workers').
    pub fingerprints: Fingerprinter,
    /// At the end of input, decide what is pending (true), or drop it (false: a Kafka consumer
    /// hands its partitions over, and their next owner replays what is still needed).
    pub finish_at_end: bool,
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

    /// Renumbers the rules after a reload: `new_index[old]` is the rule's new index, or `None`
    /// when its state does not carry over (its hits are dropped).
    fn remap(&mut self, new_index: &[Option<u32>]) {
        let map = |rule: u32| new_index.get(rule as usize).copied().flatten();
        match self {
            PendingHits::One(h) => match map(h.rule) {
                Some(r) => h.rule = r,
                None => *self = PendingHits::Many(Box::new([])),
            },
            PendingHits::Many(hits) => {
                if hits.iter().all(|h| map(h.hit.rule).is_some()) {
                    for h in hits.iter_mut() {
                        h.hit.rule = map(h.hit.rule).unwrap_or(h.hit.rule);
                    }
                } else {
                    let kept: Vec<RoutedHit> = hits
                        .iter()
                        .filter_map(|h| map(h.hit.rule).map(|rule| RoutedHit { hit: KeyedHit { rule, ..h.hit }, ..*h }))
                        .collect();
                    *hits = kept.into_boxed_slice();
                }
            }
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
        clock: Watermarks::new(cfg.clock),
        reorder: ReorderBuffer::new(),
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
        sources: HashMap::new(),
        labels: HashMap::new(),
        last_input: Instant::now(),
        idle_flushed: true,
        overflowed: 0,
        checkpoint: None,
    };
    loop {
        match rx.recv_deadline(s.next_wakeup()) {
            Ok(d) => {
                s.handles.queue_popped(PipelineStage::Sequencer, d.batch.len() as u64);
                // A checkpoint is not input: it must not hold back the idle release.
                if !matches!(d.batch.origin.marker, Some(SourceMarker::Checkpoint(_))) {
                    s.last_input = Instant::now();
                    s.idle_flushed = false;
                }
                s.waiting.insert(d.batch.seq, d);
                while let Some(d) = s.waiting.remove(&s.next_seq) {
                    s.next_seq += 1;
                    if s.process(d).is_err() {
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if s.on_timeout(Instant::now()).is_err() {
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

/// What the sequencer keeps per open source: its name and metrics, counts not yet flushed, and
/// the state of its rate-limited warnings.
struct SourceMeta {
    info: Arc<SourceInfo>,
    handles: SourceHandles,
    late: u64,
    outliers: u64,
    jumps: u64,
    late_warning: Warning,
    outlier_warning: Warning,
}

/// A rate-limited warning: what happened since it was last printed.
#[derive(Default)]
struct Warning {
    last: Option<Instant>,
    count: u64,
    /// Largest distance (ns) in this period: how late, or how far ahead.
    worst_ns: i64,
}

impl Warning {
    fn note(&mut self, ns: i64) {
        self.count += 1;
        self.worst_ns = self.worst_ns.max(ns);
    }

    /// The count and worst distance to print now, if any and if the last warning is old enough.
    fn due(&mut self, now: Instant) -> Option<(u64, i64)> {
        if self.count == 0 || self.last.is_some_and(|t| now.saturating_duration_since(t) < WARN_INTERVAL) {
            return None;
        }
        self.last = Some(now);
        let r = (self.count, self.worst_ns);
        (self.count, self.worst_ns) = (0, 0);
        Some(r)
    }
}

fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

struct Sequencer {
    stats: Stats,
    cfg: SequencerConfig,
    clock: Watermarks,
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
    sources: HashMap<SourceId, SourceMeta>,
    /// Open sources per `source` label (a label's lag gauge goes when its last source closes).
    labels: HashMap<String, usize>,
    /// When the last batch was received (idle release is measured from it).
    last_input: Instant,
    /// True once the idle release for the current quiet period is done.
    idle_flushed: bool,
    /// Events released early or refused because the reorder buffer was full, not yet counted.
    overflowed: u64,
    /// A checkpoint to hand the writer with the next step.
    checkpoint: Option<(u64, super::checkpoint::Needed)>,
}

impl Sequencer {
    /// When to wake up without input: for the idle release, or when a source turns idle.
    fn next_wakeup(&self) -> Instant {
        let now = Instant::now();
        let mut at = now + self.cfg.idle_release;
        if !self.idle_flushed && !self.reorder.is_empty() {
            at = at.min(self.last_input + self.cfg.idle_release);
        }
        if let Some(t) = self.clock.next_idle_at() {
            at = at.min(t.max(now));
        }
        at
    }

    /// No input for a while: sources may have turned idle, and after `idle_release` without
    /// any input buffered events are released.
    fn on_timeout(&mut self, now: Instant) -> Result<(), Disconnected> {
        if self.expire_idle(now) {
            if let Some(line) = self.last_line {
                self.sync_watermark(line)?;
                self.send_step(Batch::default())?;
            }
        }
        self.report_sources();
        if !self.idle_flushed && now.saturating_duration_since(self.last_input) >= self.cfg.idle_release {
            self.idle_flushed = true;
            if !self.reorder.is_empty() {
                self.idle_flush()?;
            }
        }
        self.handles.reorder_buffer(self.reorder.len(), 0);
        Ok(())
    }

    /// Marks the sources silent for `source_idle_timeout` as idle; true when the watermark rose.
    /// A source that turned idle no longer limits the idle release, so the idle release runs
    /// again, up to the new limit (else, with every source open and silent, the events ahead of
    /// the slowest source's time would wait for new input).
    fn expire_idle(&mut self, now: Instant) -> bool {
        let idle_before = self.clock.counts().1;
        let rose = self.clock.expire_idle(now);
        if self.clock.counts().1 > idle_before {
            self.idle_flushed = false;
        }
        rose
    }

    /// The first batch of another rule-set version: the buffered hits are renumbered (those of
    /// rules that did not carry over are dropped) and the partitions are told, after the work
    /// of the previous version.
    fn switch(&mut self, version: Arc<RuleVersion>) {
        let carried = version.carried_from(&self.cfg.rules);
        let mut new_index = vec![None; self.cfg.rules.rules.rules.len()];
        for (new, old) in carried.iter().enumerate() {
            if let Some(old) = old {
                new_index[*old as usize] = Some(new as u32);
            }
        }
        self.reorder.for_each_mut(|p| p.hits.remap(&new_index));
        let carried: Arc<[Option<u32>]> = carried.into();
        for p in self.work.iter_mut() {
            p.items.push(WorkItem::Switch { version: version.clone(), carried: carried.clone() });
        }
        let kept = carried.iter().flatten().count();
        tracing::info!(
            version = version.number,
            rules = version.rules.rules.len(),
            kept,
            started = version.rules.rules.len() - kept,
            dropped = self.cfg.rules.rules.rules.len() - kept,
            "Reloaded rules in effect from this point of the input: sequences of unchanged rules go on."
        );
        self.cfg.rules = version;
    }

    fn process(&mut self, d: Decoded) -> Result<(), Disconnected> {
        super::debug_panic("sequencer", d.batch.seq);
        if let Some(v) = d.batch.rules.as_ref().filter(|v| v.number != self.cfg.rules.number) {
            self.switch(v.clone());
        }
        let started = Instant::now();
        let Decoded { mut batch, times, matches } = d;
        let source = batch.origin.source;
        let now = batch.origin.arrived_at.unwrap_or(started);
        let marker = batch.origin.marker.take();
        // Sources silent since before this batch was read no longer hold time back: their
        // releases go after the last line written so far.
        if self.expire_idle(now) {
            if let Some(line) = self.last_line {
                self.sync_watermark(line)?;
            }
        }
        match marker {
            Some(SourceMarker::Opened(info)) => self.open_source(source, info, now),
            Some(SourceMarker::Closed) => {
                if self.clock.close(source) {
                    if let Some(line) = self.last_line {
                        self.sync_watermark(line)?;
                    }
                }
                self.close_source(source);
            }
            Some(SourceMarker::Checkpoint(id)) => {
                let mut needed = super::checkpoint::Needed::default();
                self.reorder.for_each_mut(|p| needed.note_event(&p.event));
                for p in self.work.iter_mut() {
                    p.items.push(WorkItem::Checkpoint);
                }
                self.checkpoint = Some((id, needed));
            }
            None => {}
        }
        if batch.has_input() {
            if !self.sources.contains_key(&source) {
                self.open_source(
                    source,
                    Arc::new(SourceInfo { name: format!("source {source}"), label: "other".into() }),
                    now,
                );
            }
            self.clock.arrive(source, now);
        }
        let first = batch.first_line;
        let mut matches = matches.into_iter().peekable();
        let wm_at_start = self.reorder.watermark();
        for (i, t) in times.iter().enumerate() {
            let line = first + i as u64;
            let matched = if matches.peek().is_some_and(|m| m.line as usize == i) { matches.next() } else { None };
            let Some(ts) = t.watermark_time() else { continue };
            let obs = self.clock.observe(source, ts, now);
            let held = match obs.verdict {
                Verdict::Late { behind_ns } => {
                    self.note_late(source, behind_ns);
                    continue;
                }
                Verdict::OnTime => false,
                Verdict::Held { outlier_ns } => {
                    if let Some(ahead) = outlier_ns {
                        self.note_outlier(source, ahead);
                    }
                    if matched.is_some() && self.reorder.len() >= self.cfg.max_buffered_events {
                        // The buffer is full: an event that would wait apart (an outlier, a
                        // source's first events) does not displace events in time; it is late.
                        self.overflowed += 1;
                        self.note_late(source, 0);
                        continue;
                    }
                    true
                }
            };
            if let Some(meta) = self.sources.get_mut(&source) {
                meta.outliers += u64::from(obs.outliers_found);
            }
            if let Some(j) = obs.jump {
                self.note_jump(source, j);
            }
            let wm_before = self.reorder.watermark();
            if let Some(w) = self.clock.watermark() {
                self.reorder.set_watermark(w);
            }
            if let Some(m) = matched {
                let ordinal = Ordinal { ts, tiebreaker: m.tiebreaker, arrival: line };
                let (event_hits, seq_hits): (Vec<RuleHit>, Vec<RuleHit>) =
                    m.hits.into_iter().partition(|h| self.cfg.rules.event_rule[h.rule as usize]);
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
                    let pushed =
                        if held { self.reorder.hold(ordinal, pending) } else { self.reorder.push(ordinal, pending) };
                    if let Err(late) = pushed {
                        // Cannot happen: the clock checked ts >= watermark; count it all the same.
                        let behind = late.watermark.map_or(0, |w| w - late.ordinal.ts);
                        self.note_late(source, behind);
                    }
                }
            }
            if self.reorder.len() > self.cfg.max_buffered_events {
                self.release_overflow(line)?;
            }
            self.release(line)?;
            if self.cfg.rules.advance_per_line && self.reorder.watermark() != wm_before {
                self.advance_all(line);
            }
        }
        if !batch.is_empty() {
            self.last_line = Some(first + batch.len() as u64 - 1);
        }
        if !self.cfg.rules.advance_per_line && self.reorder.watermark() != wm_at_start {
            if let Some(line) = self.last_line {
                self.advance_all(line);
            }
        }
        self.stats.flush(&self.handles);
        self.handles.reorder_buffer(self.reorder.len(), std::mem::take(&mut self.overflowed));
        self.flush_source(source, now);
        self.report_sources();
        if let Some(w) = self.reorder.watermark() {
            self.handles.set_watermark(w as f64 / 1e9);
        }
        self.handles.observe_batch(PipelineStage::Sequencer, started.elapsed().as_secs_f64());
        self.send_step(batch)
    }

    /// The reorder buffer is over `max_buffered_events`: its oldest events go to the partitions
    /// now (counted), and the watermark rises to them in the clocks too.
    fn release_overflow(&mut self, line: u64) -> Result<(), Disconnected> {
        let n = self.reorder.release_overflow(self.cfg.max_buffered_events, &mut self.released);
        self.overflowed += n as u64;
        if let Some(w) = self.reorder.watermark() {
            self.clock.lift(w);
        }
        self.route_released(line);
        if self.work.iter().map(|w| w.items.len()).sum::<usize>() >= RELEASE_STEP {
            self.send_step(Batch::default())?;
        }
        Ok(())
    }

    /// Moves the reorder buffer's watermark to the clocks' and releases what it passed; alerts
    /// go after `line`.
    fn sync_watermark(&mut self, line: u64) -> Result<(), Disconnected> {
        let before = self.reorder.watermark();
        if let Some(w) = self.clock.watermark() {
            self.reorder.set_watermark(w);
        }
        if self.reorder.watermark() != before {
            self.release(line)?;
            self.advance_all(line);
        }
        Ok(())
    }

    fn open_source(&mut self, id: SourceId, info: Arc<SourceInfo>, now: Instant) {
        self.clock.open(id, now);
        if self.sources.contains_key(&id) {
            return;
        }
        let label = if self.labels.contains_key(&info.label) || self.labels.len() < MAX_SOURCE_LABELS {
            info.label.clone()
        } else {
            "other".to_string()
        };
        *self.labels.entry(label.clone()).or_insert(0) += 1;
        tracing::debug!(source = %info.name, "Source opened.");
        let meta = SourceMeta {
            handles: self.handles.source(&label),
            info,
            late: 0,
            outliers: 0,
            jumps: 0,
            late_warning: Warning::default(),
            outlier_warning: Warning::default(),
        };
        self.sources.insert(id, meta);
    }

    fn close_source(&mut self, id: SourceId) {
        self.flush_source(id, Instant::now() + WARN_INTERVAL);
        let Some(meta) = self.sources.remove(&id) else { return };
        tracing::debug!(source = %meta.info.name, "Source closed.");
        let label = meta.handles.label().to_string();
        if let Some(n) = self.labels.get_mut(&label) {
            *n -= 1;
            if *n == 0 {
                self.labels.remove(&label);
                self.handles.forget_source(&label);
            }
        }
    }

    fn note_late(&mut self, source: SourceId, behind_ns: i64) {
        if let Some(m) = self.sources.get_mut(&source) {
            m.late += 1;
            m.late_warning.note(behind_ns);
        }
    }

    fn note_outlier(&mut self, source: SourceId, ahead_ns: i64) {
        if let Some(m) = self.sources.get_mut(&source) {
            m.outliers += 1;
            m.outlier_warning.note(ahead_ns);
        }
    }

    fn note_jump(&mut self, source: SourceId, j: Jump) {
        let Some(m) = self.sources.get_mut(&source) else { return };
        m.jumps += 1;
        tracing::warn!(
            source = %m.info.name,
            from_seconds = seconds(j.from),
            to_seconds = seconds(j.to),
            jump_seconds = seconds(j.to.saturating_sub(j.from)),
            events = j.events,
            after_seconds = j.after.as_secs_f64(),
            "Event time of the source jumped ahead, confirmed by outliers in a row; it now follows the new time."
        );
    }

    /// Adds a source's counts to its metrics and prints its warnings when due.
    fn flush_source(&mut self, source: SourceId, now: Instant) {
        let Some(m) = self.sources.get_mut(&source) else { return };
        self.totals.add_late(m.late, m.outliers);
        m.handles.add(std::mem::take(&mut m.late), std::mem::take(&mut m.outliers), std::mem::take(&mut m.jumps));
        if let Some((n, worst)) = m.late_warning.due(now) {
            tracing::warn!(
                source = %m.info.name,
                events = n,
                max_behind_seconds = seconds(worst),
                max_out_of_orderness_seconds = seconds(self.cfg.clock.max_out_of_orderness_ns),
                "Events arrive behind the watermark: they are passed through but not used for detection. \
                 Raise max_out_of_orderness if the sender reorders this much, or check its clock."
            );
        }
        if let Some((n, worst)) = m.outlier_warning.due(now) {
            tracing::warn!(
                source = %m.info.name,
                events = n,
                max_ahead_seconds = seconds(worst),
                max_future_seconds = seconds(self.cfg.clock.max_future_ns),
                "Events dated ahead of the source's event time: held back, they do not move the watermark. \
                 Check the sender's clock."
            );
        }
    }

    /// Lag gauges (per label, the largest lag of its sources) and the source counts.
    fn report_sources(&mut self) {
        let mut lag: HashMap<&str, i64> = HashMap::new();
        for (id, l) in self.clock.lags() {
            if let Some(m) = self.sources.get(&id) {
                let e = lag.entry(m.handles.label()).or_insert(l);
                *e = (*e).max(l);
            }
        }
        for m in self.sources.values() {
            if let Some(l) = lag.get(m.handles.label()) {
                m.handles.set_lag_seconds(seconds(*l));
            }
        }
        let (open, idle) = self.clock.counts();
        self.handles.set_sources(open - idle, idle);
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
    fn release(&mut self, line: u64) -> Result<(), Disconnected> {
        loop {
            let more = self.reorder.release_step(RELEASE_STEP, &mut self.released);
            self.route_released(line);
            if self.work.iter().map(|w| w.items.len()).sum::<usize>() >= RELEASE_STEP {
                self.send_step(Batch::default())?;
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
            if hits.is_empty() {
                // Every hit belonged to rules a reload removed.
                continue;
            }
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

    /// No input for `idle_release`: release everything buffered up to the time every active
    /// source has reached ([`Watermarks::idle_release_limit`]); the watermark rises to it, so
    /// older events arriving later are late. Outliers dated beyond it stay buffered.
    fn idle_flush(&mut self) -> Result<(), Disconnected> {
        let (Some(line), Some(limit)) = (self.last_line, self.clock.idle_release_limit()) else { return Ok(()) };
        self.clock.lift(limit);
        loop {
            let more = self.reorder.release_through_step(limit, RELEASE_STEP, &mut self.released);
            self.route_released(line);
            if !more {
                break;
            }
            self.send_step(Batch::default())?;
        }
        self.advance_all(line);
        if let Some(w) = self.reorder.watermark() {
            self.handles.set_watermark(w as f64 / 1e9);
        }
        self.send_step(Batch::default())
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
            self.send_step(Batch::default())?;
        }
    }

    fn finish(&mut self) -> Result<(), Disconnected> {
        let line = self.last_line.unwrap_or(0);
        if self.cfg.finish_at_end {
            self.release_all_in_steps(line)?;
            for p in self.work.iter_mut() {
                p.items.push(WorkItem::Finish { release_line: line });
            }
        }
        let ids: Vec<SourceId> = self.sources.keys().copied().collect();
        for id in ids {
            self.close_source(id);
        }
        self.send_step(Batch::default())
    }

    fn send_step(&mut self, batch: Batch) -> Result<(), Disconnected> {
        let step = self.step;
        self.step += 1;
        for (p, tx) in self.parts.iter().enumerate() {
            let items = std::mem::take(&mut self.work[p].items);
            tx.send(PartitionWork { step, items }).map_err(|_| Disconnected)?;
        }
        let n = batch.len() as u64;
        let checkpoint = self.checkpoint.take();
        self.writer.send(WriterBatch { step, batch, checkpoint }).map_err(|_| Disconnected)?;
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
    fn a_reload_renumbers_buffered_hits_and_drops_those_of_removed_rules() {
        let at = |rule: u32, kind| RoutedHit { hit: KeyedHit { key: Fingerprint([1, 2]), rule, kind }, partition: 1 };
        // Rule 0 is gone, rule 3 is now 0, rule 1 is now 2.
        let new_index = [None, Some(2), None, Some(0)];
        let mut one = PendingHits::new(smallvec::smallvec![at(3, HitKind::Stage(1))]);
        one.remap(&new_index);
        assert_eq!(one.into_hits().as_slice(), [at(0, HitKind::Stage(1))]);
        let mut gone = PendingHits::new(smallvec::smallvec![at(0, HitKind::Until)]);
        gone.remap(&new_index);
        assert!(gone.into_hits().is_empty());
        let mut many = PendingHits::new(smallvec::smallvec![
            at(1, HitKind::Stage(0)),
            at(0, HitKind::Stage(0)),
            at(3, HitKind::Until)
        ]);
        many.remap(&new_index);
        assert_eq!(many.into_hits().as_slice(), [at(2, HitKind::Stage(0)), at(0, HitKind::Until)]);
        let mut all_kept = PendingHits::new(smallvec::smallvec![at(1, HitKind::Stage(0)), at(3, HitKind::Stage(2))]);
        all_kept.remap(&new_index);
        assert_eq!(all_kept.into_hits().as_slice(), [at(2, HitKind::Stage(0)), at(0, HitKind::Stage(2))]);
        // A rule index past the old set (cannot happen) is dropped, not kept as it was.
        let mut past = PendingHits::new(smallvec::smallvec![at(9, HitKind::Stage(0))]);
        past.remap(&new_index);
        assert!(past.into_hits().is_empty());
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
