//! A reference per-line driver for one sequence rule: the reorder buffer in front of a
//! [`PartitionedMachine`], advanced once per input line (eql-semantics.md section 3).
//!
//! Tests, benches and the property tests use it; it also spells out the order of operations the
//! pipeline must follow for each input line so that results depend only on the input:
//! 1. a line without a usable timestamp is passed through and counted ([`LineOutcome::NoTimestamp`]);
//! 2. otherwise its timestamp goes to the event clock ([`Watermarks::observe`], one source),
//!    whether or not the line matches anything: it may move the watermark, or be late, or be
//!    held (a first line, an outlier dated far ahead) without moving it;
//! 3. a matching line is buffered (held apart if the clock says so), or reported
//!    [`LineOutcome::Late`] if it is behind the watermark;
//! 4. every buffered event now behind the watermark is released to the machine, in ordinal order;
//! 5. the machine is advanced to the watermark, and the step's sequences are emitted in
//!    (completing ordinal, key) order.
//!
//! It never reads a clock: idle release is triggered by the caller ([`RuleStream::idle_release`],
//! see [`super::IdleTimer`]).

use super::key::Key;
use super::machine::{Completed, HitKind, MachineCounters};
use super::ordinal::{Ordinal, TieBreaker};
use super::partition::PartitionedMachine;
use super::reorder::{ReorderBuffer, DEFAULT_MAX_OUT_OF_ORDERNESS};
use super::spec::SequenceSpec;
use super::watermark::{ClockConfig, Verdict, Watermarks};

/// Default global cap on live partial sequences (`max_partial_sequences`).
pub const DEFAULT_MAX_PARTIAL_SEQUENCES: usize = 1_000_000;

/// Settings of a [`RuleStream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// How far (ns of event time) an event may arrive behind the newest one and still be used.
    pub max_out_of_orderness_ns: i64,
    /// Number of key partitions.
    pub partitions: usize,
    /// Global cap on live partial sequences, split evenly between partitions.
    pub max_partials: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_out_of_orderness_ns: i64::try_from(DEFAULT_MAX_OUT_OF_ORDERNESS.as_nanos()).unwrap_or(i64::MAX),
            partitions: 1,
            max_partials: DEFAULT_MAX_PARTIAL_SEQUENCES,
        }
    }
}

/// What happened to one input line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineOutcome {
    /// Matched at least one stage and is buffered for detection.
    Buffered,
    /// Matched nothing (its timestamp still advanced the watermark).
    Unmatched,
    /// Behind the watermark: passed through, left out of detection, counted.
    Late,
    /// No usable timestamp: passed through, left out of detection, counted by reason.
    NoTimestamp,
}

type Pending<E> = (E, Vec<(HitKind, Key)>);

/// One rule's sequence detection over a stream of input lines.
pub struct RuleStream<E> {
    clock: Watermarks,
    /// The only `Instant` the clock is given: this driver never reads a clock, so the
    /// wall-clock parts of the event clock (idle sources, time-confirmed jumps) never apply.
    epoch: std::time::Instant,
    buffer: ReorderBuffer<Pending<E>>,
    machine: PartitionedMachine<E>,
    released: Vec<(Ordinal, Pending<E>)>,
    next_arrival: u64,
}

impl<E: Clone> RuleStream<E> {
    /// A stream for `spec` with `config`.
    pub fn new(spec: &SequenceSpec, config: StreamConfig) -> Self {
        RuleStream {
            clock: Watermarks::new(ClockConfig::with_allowance(config.max_out_of_orderness_ns)),
            epoch: std::time::Instant::now(),
            buffer: ReorderBuffer::new(),
            machine: PartitionedMachine::new(spec, config.partitions, config.max_partials),
            released: Vec::new(),
            next_arrival: 0,
        }
    }

    /// One input line, in input order: `ts` its timestamp (`None` if unusable), `hits` what it
    /// matched (empty if nothing). Sequences completed by this step are appended to `out`.
    pub fn line(
        &mut self,
        ts: Option<i64>,
        tiebreaker: Option<TieBreaker>,
        event: E,
        hits: Vec<(HitKind, Key)>,
        out: &mut Vec<Completed<E>>,
    ) -> LineOutcome {
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        let Some(ts) = ts else {
            return LineOutcome::NoTimestamp;
        };
        let verdict = self.clock.observe(0, ts, self.epoch).verdict;
        if let Some(w) = self.clock.watermark() {
            self.buffer.set_watermark(w);
        }
        let ordinal = Ordinal { ts, tiebreaker, arrival };
        let outcome = match verdict {
            Verdict::Late { .. } => LineOutcome::Late,
            _ if hits.is_empty() => LineOutcome::Unmatched,
            Verdict::OnTime => match self.buffer.push(ordinal, (event, hits)) {
                Ok(()) => LineOutcome::Buffered,
                Err(_) => LineOutcome::Late,
            },
            Verdict::Held { .. } => match self.buffer.hold(ordinal, (event, hits)) {
                Ok(()) => LineOutcome::Buffered,
                Err(_) => LineOutcome::Late,
            },
        };
        self.release(false, out);
        outcome
    }

    /// The input has been idle: release everything buffered up to the stream's confirmed time
    /// (outliers dated beyond it stay).
    pub fn idle_release(&mut self, out: &mut Vec<Completed<E>>) {
        if let Some(limit) = self.clock.idle_release_limit() {
            self.clock.lift(limit);
            while self.buffer.release_through_step(limit, usize::MAX, &mut self.released) {}
        }
        self.release(false, out);
    }

    /// End of input: release everything and emit all that can still be decided.
    pub fn finish(&mut self, out: &mut Vec<Completed<E>>) {
        self.release(true, out);
        self.machine.finish(out);
    }

    /// Events buffered in the reorder buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Live partial sequences.
    pub fn partials(&self) -> usize {
        self.machine.partials()
    }

    /// Machine counters since the last call.
    pub fn take_counters(&mut self) -> MachineCounters {
        self.machine.take_counters()
    }

    fn release(&mut self, all: bool, out: &mut Vec<Completed<E>>) {
        if all {
            self.buffer.release_all(&mut self.released);
        } else {
            self.buffer.release(&mut self.released);
        }
        for (ord, (event, hits)) in self.released.drain(..) {
            self.machine.on_event(&ord, &event, &hits);
        }
        self.machine.end_step(self.buffer.watermark(), out);
    }
}
