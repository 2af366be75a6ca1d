//! Decode workers: parse each line with simd-json, read its timestamp, evaluate the stage
//! conditions that rule dispatch ([`crate::dispatch`]) finds possible, and keep only what the
//! sequence stage needs (the matched events with their join
//! keys and ordinal parts). Every line's outcome is recorded, so the writer can pass it through.
//!
//! A bad line is an outcome, never an error: too long, not UTF-8, not JSON, not an object, no or
//! bad timestamp are counted by reason and the line still goes out unchanged. The hot loop touches
//! only the worker's own [`Stats`]; they are flushed once per batch.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::frame::{Batch, Piece};
use super::prefilter::{self, Prefilter};
use super::rawscan;
use super::Totals;
use crate::dispatch;
use crate::event::DecodeError;
use crate::event::{Decoder, Event, FieldId, Scalar};
use crate::metrics::{Handles, InvalidReason, PipelineStage, Stats};
use crate::ruleset::{RuleSet, StageRef};
use crate::sequence::key::Key;
use crate::sequence::machine::HitKind;
use crate::sequence::ordinal::TieBreaker;
use crate::store::{EventStore, StoredEvent};
use crate::time::{self, Precision};

/// What the sequencer needs to know about one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineTime {
    /// The line's event time in ns (precision already applied).
    At(i64),
    /// Not usable for detection (counted under this reason).
    Invalid(InvalidReason),
    /// Not usable for detection (counted under this reason), but its raw bytes carry an event
    /// time ([`rawscan::LeadingTime`]) that moves the watermark: the same time a prefilter
    /// that skips the line without validating it reads, so alerts do not depend on the
    /// prefilter.
    InvalidAt(InvalidReason, i64),
}

impl LineTime {
    /// The event time that moves the watermark, if any.
    pub fn watermark_time(self) -> Option<i64> {
        match self {
            LineTime::At(ts) | LineTime::InvalidAt(_, ts) => Some(ts),
            LineTime::Invalid(_) => None,
        }
    }
}

/// One stage (or until) hit of one rule, under one join key.
#[derive(Clone, Debug)]
pub struct RuleHit {
    /// Index of the rule in the rule set.
    pub rule: u32,
    /// The stage (or until clause) matched.
    pub kind: HitKind,
    /// The join-key tuple (empty for event rules and unkeyed sequences).
    pub key: Key,
}

/// An event that matched at least one stage of some rule.
#[derive(Clone, Debug)]
pub struct Matched {
    /// Index of the line within its batch.
    pub line: u32,
    /// Tiebreaker value, when a tiebreaker field is configured and present.
    pub tiebreaker: Option<TieBreaker>,
    /// The original line (in the event store), for alerts.
    pub event: StoredEvent,
    /// Every (rule, stage, key) it matched.
    pub hits: Vec<RuleHit>,
}

/// A decoded batch: the raw lines plus per-line outcomes and the matched events, in line order.
#[derive(Debug)]
pub struct Decoded {
    /// The raw batch (its `seq` and `first_line` give its place in the stream).
    pub batch: Batch,
    /// One entry per line.
    pub times: Vec<LineTime>,
    /// Matched events, in line order.
    pub matches: Vec<Matched>,
}

/// Per-run constants of the decode stage.
pub struct DecodeContext {
    /// The compiled rules (and the interned field table).
    pub rules: Arc<RuleSet>,
    /// The timestamp field.
    pub timestamp_field: FieldId,
    /// The tiebreaker field, if configured.
    pub tiebreaker_field: Option<FieldId>,
    /// Timestamp precision.
    pub precision: Precision,
    /// Longest line that is parsed.
    pub max_line_bytes: usize,
    /// The timestamp field when it is a top-level key (read from the raw bytes of lines that
    /// fail to parse).
    pub leading_time: Option<rawscan::LeadingTime>,
    /// Raw-byte prefilter; `None` parses every line.
    pub prefilter: Option<Arc<Prefilter>>,
    /// Counts lines a shipper wrapped in a string field, and warns ([`super::wrapped`]).
    pub wrappers: Arc<super::wrapped::WrapperWatch>,
    /// Where matched events are kept until their alerts are rendered.
    pub store: Arc<EventStore>,
}

/// Runs one decode worker until its input closes. `ctx` and `handles` are those of the run's
/// first rule-set version; a batch stamped with another version is evaluated with that one's
/// (see [`super::live`]).
pub fn run(
    mut ctx: Arc<DecodeContext>,
    rx: Receiver<Batch>,
    tx: Sender<Decoded>,
    mut handles: Handles,
    totals: Arc<Totals>,
) {
    let mut decoder = Decoder::new(&ctx.rules.fields);
    let mut stats = Stats::new(&handles);
    let mut keys: Vec<Key> = Vec::new();
    let mut scratch = Scratch::default();
    handles.set_prefilter_active(ctx.prefilter.as_ref().is_some_and(|p| p.adaptive().active()));
    for (n, batch) in rx.into_iter().enumerate() {
        super::debug_panic("decode", n as u64);
        if let Some(v) = batch.rules.as_ref().filter(|v| !Arc::ptr_eq(&v.decode, &ctx)) {
            // The first batch of another rule-set version: its rules, field table and counters.
            stats.flush(&handles);
            (ctx, handles) = (v.decode.clone(), v.handles.clone());
            decoder = Decoder::new(&ctx.rules.fields);
            stats = Stats::new(&handles);
        }
        handles.queue_popped(PipelineStage::Decode, batch.len() as u64);
        let started = Instant::now();
        if let Some(pf) = &ctx.prefilter {
            scratch.scan_all = pf.adaptive().active();
        }
        let decoded = decode_batch(&ctx, &mut decoder, &mut stats, (&mut keys, &mut scratch), batch);
        if let Some(pf) = &ctx.prefilter {
            if let Some(switch) = pf.adaptive().record(&mut scratch.tally) {
                report_switch(&handles, &switch);
            }
        }
        let invalid: u64 = stats.invalid.iter().sum();
        totals.add_received(
            decoded.batch.len() as u64,
            (decoded.batch.byte_len() + decoded.batch.middle_bytes().len()) as u64,
            invalid,
            stats.prefilter_skipped,
        );
        stats.flush(&handles);
        handles.observe_batch(PipelineStage::Decode, started.elapsed().as_secs_f64());
        let n = decoded.batch.len() as u64;
        if tx.send(decoded).is_err() {
            break;
        }
        handles.queue_pushed(PipelineStage::Sequencer, n);
    }
    stats.flush(&handles);
}

/// Logs a switch of the prefilter (rare: at most one per decision window) and sets its gauge.
fn report_switch(handles: &Handles, s: &prefilter::adaptive::Switch) {
    handles.set_prefilter_active(s.active);
    let skipped_percent = (s.skipped_share * 1000.0).round() / 10.0;
    let (scan_us, parse_us) = ((s.scan_us * 100.0).round() / 100.0, (s.parse_us * 100.0).round() / 100.0);
    if s.active {
        tracing::info!(
            skipped_percent,
            scan_us,
            parse_us,
            "Prefilter on again: the lines it skips now pay for its scans."
        );
    } else {
        tracing::info!(
            skipped_percent,
            scan_us,
            parse_us,
            probe_every = prefilter::adaptive::PROBE_EVERY,
            "Prefilter off: it skips too few lines to pay for its scans; it now scans one line in probe_every."
        );
    }
}

/// A decode worker's working memory, reused from line to line.
#[derive(Default)]
struct Scratch {
    prefilter: prefilter::Scratch,
    dispatch: dispatch::Scratch,
    /// What the prefilter's switch said at the start of the batch ([`prefilter::Adaptive`]).
    scan_all: bool,
    /// Lines seen by this worker, to pick the probed and timed ones.
    line_no: u64,
    tally: prefilter::Tally,
}

fn decode_batch(
    ctx: &DecodeContext,
    decoder: &mut Decoder,
    stats: &mut Stats,
    (keys, scratch): (&mut Vec<Key>, &mut Scratch),
    mut batch: Batch,
) -> Decoded {
    let arrived_at = *batch.origin.arrived_at.get_or_insert_with(Instant::now);
    let mut times = Vec::with_capacity(batch.len());
    let mut matches = Vec::new();
    // Lines without a timestamp that carry the event as a JSON string, and in which field.
    let mut wrapped: (u64, &str) = (0, "");
    // A part of a line longer than max_line_bytes: bytes only; the line is counted at its end.
    stats.received_bytes += batch.middle_bytes().len() as u64;
    for i in 0..batch.len() {
        stats.received_events += 1;
        stats.received_bytes += batch.line(i).len() as u64 + 1;
        if i == 0 && batch.piece == Piece::Tail {
            // The end of a line longer than max_line_bytes, whose parts went ahead unparsed.
            stats.invalid[InvalidReason::TooLong as usize] += 1;
            times.push(LineTime::Invalid(InvalidReason::TooLong));
            continue;
        }
        let t = decode_line(ctx, decoder, stats, (keys, scratch), (&mut batch, arrived_at), i, &mut matches);
        if let LineTime::Invalid(reason) | LineTime::InvalidAt(reason, _) = t {
            stats.invalid[reason as usize] += 1;
            if reason == InvalidReason::NoTimestamp {
                if let Some(field) = super::wrapped::wrapper_field(batch.line(i)) {
                    wrapped = (wrapped.0 + 1, field);
                }
            }
        }
        times.push(t);
    }
    if wrapped.0 > 0 {
        ctx.wrappers.observe(batch.len() as u64, wrapped.0, wrapped.1);
    }
    Decoded { batch, times, matches }
}

fn decode_line(
    ctx: &DecodeContext,
    decoder: &mut Decoder,
    stats: &mut Stats,
    (keys, scratch): (&mut Vec<Key>, &mut Scratch),
    (batch, arrived_at): (&mut Batch, Instant),
    i: usize,
    matches: &mut Vec<Matched>,
) -> LineTime {
    let line = batch.line(i);
    if line.len() > ctx.max_line_bytes {
        return LineTime::Invalid(InvalidReason::TooLong);
    }
    let mut timed = false;
    if let Some(pf) = &ctx.prefilter {
        scratch.line_no += 1;
        scratch.tally.lines += 1;
        if scratch.scan_all || scratch.line_no % prefilter::adaptive::PROBE_EVERY == 0 {
            timed = scratch.line_no % prefilter::adaptive::TIME_EVERY == 0;
            let started = timed.then(Instant::now);
            let skip = pf.skip(line, &mut scratch.prefilter);
            if let Some(t0) = started {
                scratch.tally.scan_ns.push(nanos(t0));
            }
            stats.prefilter_scanned += 1;
            scratch.tally.scanned += 1;
            if let Some(t) = skip {
                stats.prefilter_skipped += 1;
                scratch.tally.skipped += 1;
                return t;
            }
        }
    }
    let started = timed.then(Instant::now);
    let t = parse_and_match(ctx, decoder, stats, (keys, scratch), (batch, arrived_at), i, matches);
    if let Some(t0) = started {
        scratch.tally.parse_ns.push(nanos(t0));
    }
    t
}

/// Nanoseconds since `t0`, saturated.
fn nanos(t0: Instant) -> u32 {
    u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX)
}

/// Parses line `i`, evaluates the rules on it and keeps it when it matched.
fn parse_and_match(
    ctx: &DecodeContext,
    decoder: &mut Decoder,
    stats: &mut Stats,
    (keys, scratch): (&mut Vec<Key>, &mut Scratch),
    (batch, arrived_at): (&mut Batch, Instant),
    i: usize,
    matches: &mut Vec<Matched>,
) -> LineTime {
    let (ts, hits, tiebreaker) = match parse_line(ctx, decoder, stats, (keys, &mut scratch.dispatch), batch, i) {
        Parsed::Event { ts, hits, tiebreaker } => (ts, hits, tiebreaker),
        Parsed::NotJson(reason) => {
            return match ctx.leading_time.as_ref().and_then(|t| t.of(batch.line(i))) {
                Some(Ok(ts)) => LineTime::InvalidAt(reason, ts),
                _ => LineTime::Invalid(reason),
            }
        }
        Parsed::NoTime(reason) => return LineTime::Invalid(reason),
    };
    if !hits.is_empty() {
        matches.push(Matched {
            line: i as u32,
            tiebreaker,
            event: ctx.store.put_arrived(
                batch.line(i),
                ts,
                arrived_at,
                crate::store::Origin { source: batch.origin.source, line: batch.first_line + i as u64 },
            ),
            hits,
        });
    }
    LineTime::At(ts)
}

/// What parsing one line gave.
enum Parsed {
    /// A JSON object with a usable timestamp, and the rule hits it produced.
    Event { ts: i64, hits: Vec<RuleHit>, tiebreaker: Option<TieBreaker> },
    /// Not a JSON object.
    NotJson(InvalidReason),
    /// A JSON object without a usable timestamp.
    NoTime(InvalidReason),
}

/// Parses line `i` and evaluates the rules on it.
fn parse_line(
    ctx: &DecodeContext,
    decoder: &mut Decoder,
    stats: &mut Stats,
    (keys, dispatch): (&mut Vec<Key>, &mut dispatch::Scratch),
    batch: &mut Batch,
    i: usize,
) -> Parsed {
    // Parsed where it lies in the batch, unless it has a backslash: simd-json unescapes in
    // place, and the line must go out unchanged.
    let line = batch.line(i);
    let parsed = if memchr::memchr(b'\\', line).is_some() {
        decoder.decode(line)
    } else {
        let (buf, len) = batch.line_in_place(i);
        decoder.decode_in_place(buf, len)
    };
    let ev = match parsed {
        Ok(ev) => ev,
        Err(e) => return Parsed::NotJson(decode_reason(&e)),
    };
    // Elasticsearch refuses a hit whose timestamp is missing or multi-valued (section 3).
    let mut values = [Scalar::Bool(false); 2];
    let mut n = 0;
    ev.any(ctx.timestamp_field, |v| {
        values[n] = v;
        n += 1;
        n == 2
    });
    let ts = match time::timestamp_of(&values[..n], ctx.precision) {
        Ok(ts) => ts,
        Err(time::TimeError::Missing) => return Parsed::NoTime(InvalidReason::NoTimestamp),
        Err(_) => return Parsed::NoTime(InvalidReason::BadTimestamp),
    };
    let hits = match_rules(&ctx.rules, &ev, stats, (keys, dispatch));
    let tiebreaker = if hits.is_empty() {
        None
    } else {
        ctx.tiebreaker_field.and_then(|f| ev.first(f)).and_then(TieBreaker::from_scalar)
    };
    Parsed::Event { ts, hits, tiebreaker }
}

fn decode_reason(e: &DecodeError) -> InvalidReason {
    match e {
        DecodeError::InvalidUtf8 => InvalidReason::InvalidUtf8,
        DecodeError::InvalidJson => InvalidReason::InvalidJson,
        DecodeError::NotObject => InvalidReason::NotObject,
    }
}

/// Evaluates the stages (and until clauses) that dispatch finds possible for `ev`, in rule order
/// (stages, then until), exactly as evaluating every stage of every rule would; allocates only
/// for hits.
fn match_rules(
    rules: &RuleSet,
    ev: &Event<'_>,
    stats: &mut Stats,
    (keys, scratch): (&mut Vec<Key>, &mut dispatch::Scratch),
) -> Vec<RuleHit> {
    let mut hits = Vec::new();
    let dispatch = &rules.dispatch;
    let entries = dispatch.entries();
    let n = dispatch.candidates(ev, scratch).len();
    for i in 0..n {
        let Some(&e) = scratch.candidate(i) else { break };
        let Some(entry) = entries.get(e as usize) else { continue };
        let (r, s) = (entry.at.rule, entry.at.stage);
        let Some(rule) = rules.rules.get(r as usize) else { continue };
        let q = &rule.query;
        if s == StageRef::UNTIL {
            if let Some(until) = &q.until {
                if until.matches(ev) && dispatch.selects(e, ev, scratch) {
                    until.keys(ev, keys);
                    for k in keys.drain(..) {
                        hits.push(RuleHit { rule: r, kind: HitKind::Until, key: k });
                    }
                }
            }
            continue;
        }
        let Some(stage) = q.stages.get(s as usize) else { continue };
        if stage.matches(ev) && dispatch.selects(e, ev, scratch) {
            if let Some(n) = stats.stage_matches.get_mut(entry.slot as usize) {
                *n += 1;
            }
            if q.sequence.is_none() {
                hits.push(RuleHit { rule: r, kind: HitKind::Stage(s as u16), key: Key::new() });
            } else {
                stage.keys(ev, keys);
                for k in keys.drain(..) {
                    hits.push(RuleHit { rule: r, kind: HitKind::Stage(s as u16), key: k });
                }
            }
        }
    }
    hits
}
