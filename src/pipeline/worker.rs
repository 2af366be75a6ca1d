//! Partition workers: each owns the sequence machines for the join keys hashed to it, feeds them
//! the released events in ordinal order, and renders the alerts of completed sequences (and of
//! event-rule matches). Alerts carry their release line and sort key so the writer can place them
//! deterministically, whatever the number of partitions.
//!
//! The machines store join keys as fingerprints and events as event-store handles. Rendering an
//! alert reads its events back from the store and recovers the join key from the first present
//! event: it is decoded again and the stage's key tuples are recomputed (the same code the
//! decode workers ran), and the tuple with the completed sequence's fingerprint is the key.
//!
//! A `Switch` work item (a rule reload, see [`super::live`]) moves the machines of the rules
//! that carry over to their new positions, with their partial sequences, drops the others and
//! starts empty machines for new rules; alerts are counted per rule (in the series of the
//! version they were rendered with) as they are rendered.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::live::RuleVersion;
use super::sequencer::{KeyedHits, PartitionWork, WorkItem};
use crate::alert::{self, AlertFormat, Detection, MatchedEvent};
use crate::event::Decoder;
use crate::metrics::{Handles, PipelineStage, Stats};
use crate::ruleset::RuleSet;
use crate::sequence::key::{Fingerprint, Fingerprinter, Key};
use crate::sequence::machine::{Completed, HitKind, SequenceMachine};
use crate::sequence::ordinal::Ordinal;
use crate::store::{StoreError, StoredEvent};

type Machine = SequenceMachine<StoredEvent, Fingerprint>;
type Done = Completed<StoredEvent, Fingerprint>;

/// What a worker needs to turn a detection into alert lines (for the rule-set version in
/// effect).
struct Renderer<'a> {
    rules: Arc<RuleSet>,
    format: AlertFormat,
    /// The Kibana space of Kibana-format alerts.
    space: Arc<str>,
    fingerprints: &'a Fingerprinter,
    decoder: Decoder,
    keys: Vec<Key>,
    handles: Handles,
}

/// Why a completed sequence could not be turned into an alert (logged and counted in
/// `eqlstream_alert_render_errors_total`; the alert is lost). Not caused by the events' content:
/// an event that cannot be parsed still gives an alert (see `alert::render`).
#[derive(Debug, thiserror::Error)]
enum RenderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the join key of the sequence cannot be recovered from its first event")]
    KeyNotFound,
    #[error(transparent)]
    Alert(#[from] alert::AlertError),
}

/// One rendered alert and where it goes in the output.
#[derive(Debug)]
pub struct AlertOut {
    /// Written after this global line.
    pub release_line: u64,
    /// Order among alerts of the same line: completing event's ordinal, rule index, join key.
    pub order: (Ordinal, u32, Key),
    /// Rule index (for per-rule counters).
    pub rule: u32,
    /// The alert line(s), each ending in `\n`.
    pub bytes: Vec<u8>,
    /// When the line of the detection's last event was read (alert latency is measured from it).
    pub arrived_at: Option<Instant>,
}

/// A partition's output for one step.
#[derive(Debug, Default)]
pub struct PartitionOutput {
    /// Step number.
    pub step: u64,
    /// Alerts produced in this step.
    pub alerts: Vec<AlertOut>,
    /// The answer to a checkpoint: the lines of the events the machines hold.
    pub held: Option<super::checkpoint::Needed>,
}

/// Runs one partition worker until its input closes, starting with the rules of `version`.
pub fn run(
    version: Arc<RuleVersion>,
    (format, space, fingerprints): (AlertFormat, Arc<str>, Fingerprinter),
    max_partials: usize,
    rx: Receiver<PartitionWork>,
    tx: Sender<PartitionOutput>,
) {
    let mut machines: Vec<Option<Machine>> =
        version.rules.rules.iter().map(|r| new_machine(&r.query, max_partials)).collect();
    let mut r = Renderer {
        rules: version.rules.clone(),
        format,
        space,
        fingerprints: &fingerprints,
        decoder: Decoder::new(&version.rules.fields),
        keys: Vec::new(),
        handles: version.handles.clone(),
    };
    let mut stats = Stats::new(&r.handles);
    let mut completed: Vec<Done> = Vec::new();
    let mut rule_hits: Vec<(HitKind, Fingerprint)> = Vec::new();
    // The gauge is shared by all partitions: each adds the change of its own count.
    let mut partials_reported = vec![0i64; machines.len()];
    // The rules (ascending) whose machine may hold state: advancing an idle machine does
    // nothing, so an Advance visits only these (with many rules, most machines are idle).
    let mut live: Vec<u32> = Vec::new();
    for (n, work) in rx.into_iter().enumerate() {
        super::debug_panic("partition", n as u64);
        let started = Instant::now();
        let mut out = PartitionOutput { step: work.step, alerts: Vec::new(), held: None };
        // Alerts of `out` already counted (alerts are counted by the rule set they were
        // rendered with, before a switch).
        let mut counted = 0;
        for item in work.items {
            match item {
                WorkItem::Event { release_line, ordinal, event, hits } => {
                    for h in hits.iter() {
                        if machines.get(h.rule as usize).is_some_and(Option::is_some) {
                            if let Err(at) = live.binary_search(&h.rule) {
                                live.insert(at, h.rule);
                            }
                        }
                    }
                    process_event(
                        &mut r,
                        &mut machines,
                        &mut completed,
                        &mut rule_hits,
                        (release_line, &ordinal, &event),
                        hits,
                        &mut out.alerts,
                    );
                }
                WorkItem::Advance { release_line, watermark } => {
                    for &rule in &live {
                        if let Some(Some(m)) = machines.get_mut(rule as usize) {
                            m.advance(watermark, &mut completed);
                            r.emit(rule, release_line, &mut completed, &mut out.alerts);
                        }
                    }
                    live.retain(|&rule| {
                        machines.get(rule as usize).is_some_and(|m| m.as_ref().is_some_and(|m| !m.is_idle()))
                    });
                }
                WorkItem::Finish { release_line } => {
                    for (rule, m) in machines.iter_mut().enumerate() {
                        if let Some(m) = m {
                            m.finish(&mut completed);
                            r.emit(rule as u32, release_line, &mut completed, &mut out.alerts);
                        }
                    }
                }
                WorkItem::Checkpoint => {
                    let held = out.held.get_or_insert_with(Default::default);
                    for m in machines.iter().flatten() {
                        m.for_each_held(|e| held.note_event(e));
                    }
                }
                WorkItem::Switch { version, carried } => {
                    count_alerts(&out.alerts[counted..], &mut stats);
                    counted = out.alerts.len();
                    report(&mut machines, &mut partials_reported, &mut stats, &r.handles);
                    switch(&mut r, &mut machines, &mut partials_reported, (&version, &carried), max_partials);
                    stats = Stats::new(&r.handles);
                }
            }
        }
        count_alerts(&out.alerts[counted..], &mut stats);
        report(&mut machines, &mut partials_reported, &mut stats, &r.handles);
        r.handles.observe_batch(PipelineStage::Partition, started.elapsed().as_secs_f64());
        if tx.send(out).is_err() {
            break;
        }
    }
}

/// The machine of a rule: a sequence machine, or `None` for an event rule.
fn new_machine(query: &crate::eql::Query, max_partials: usize) -> Option<Machine> {
    query.sequence.as_ref().map(|spec| SequenceMachine::new(spec, max_partials))
}

fn count_alerts(alerts: &[AlertOut], stats: &mut Stats) {
    for a in alerts {
        if let Some(n) = stats.alerts.get_mut(a.rule as usize) {
            *n += 1;
        }
    }
}

/// Adds the machines' counters and the change of their partials to the metrics, and flushes.
fn report(machines: &mut [Option<Machine>], reported: &mut [i64], stats: &mut Stats, handles: &Handles) {
    for (rule, m) in machines.iter_mut().enumerate() {
        if let Some(m) = m {
            let c = m.take_counters();
            stats.expired[rule] += c.expired;
            stats.evicted[rule] += c.evicted;
            let now = m.partials() as i64;
            handles.add_partials(rule, now - reported[rule]);
            reported[rule] = now;
        }
    }
    stats.flush(handles);
}

/// Moves to the rules of `version` (after [`report`] on the old ones): the machine of a rule
/// that carries over moves to its new index with its partial sequences; the others are dropped
/// (their partials leave the gauge); a new rule starts with an empty machine.
fn switch(
    r: &mut Renderer<'_>,
    machines: &mut Vec<Option<Machine>>,
    reported: &mut Vec<i64>,
    (version, carried): (&RuleVersion, &[Option<u32>]),
    max_partials: usize,
) {
    let mut old = std::mem::take(machines);
    let mut old_reported = std::mem::take(reported);
    for (i, rule) in version.rules.rules.iter().enumerate() {
        let from = carried.get(i).copied().flatten().map(|o| o as usize).filter(|o| *o < old.len());
        let m = from.and_then(|o| old[o].take()).or_else(|| new_machine(&rule.query, max_partials));
        machines.push(m);
        reported.push(from.map_or(0, |o| std::mem::take(&mut old_reported[o])));
    }
    for (rule, n) in old_reported.into_iter().enumerate() {
        if n != 0 {
            r.handles.add_partials(rule, -n);
        }
    }
    drop(old);
    r.rules = version.rules.clone();
    r.decoder = Decoder::new(&r.rules.fields);
    r.handles = version.handles.clone();
}

fn process_event(
    r: &mut Renderer<'_>,
    machines: &mut [Option<Machine>],
    completed: &mut Vec<Done>,
    rule_hits: &mut Vec<(HitKind, Fingerprint)>,
    (release_line, ordinal, event): (u64, &Ordinal, &StoredEvent),
    mut hits: KeyedHits,
    alerts: &mut Vec<AlertOut>,
) {
    // Hits arrive grouped by rule (the decoder emits them rule by rule); keep that grouping.
    hits.sort_by_key(|h| h.rule);
    let mut i = 0;
    while i < hits.len() {
        let rule = hits[i].rule;
        let mut j = i;
        rule_hits.clear();
        while j < hits.len() && hits[j].rule == rule {
            rule_hits.push((hits[j].kind, hits[j].key));
            j += 1;
        }
        i = j;
        match machines.get_mut(rule as usize).and_then(Option::as_mut) {
            Some(m) => {
                // Events are fed in ordinal order, so every later event has ts >= this one's:
                // its own timestamp is the safe expiry point (the sequencer's watermark may be
                // far ahead after an idle or final release-all).
                m.advance(ordinal.ts, completed);
                r.emit(rule, release_line, completed, alerts);
                m.on_event(ordinal, event, rule_hits, completed);
                r.emit(rule, release_line, completed, alerts);
            }
            None => {
                // Event rule: one alert per matching event.
                let result = event.read().map_err(RenderError::from).and_then(|ev| {
                    let events = [Some(&ev)];
                    let d = Detection { rule: &r.rules.rules[rule as usize].spec, join_keys: &[], events: &events };
                    r.render(&d)
                });
                let arrived_at = r.arrival(Some(event));
                r.push(rule, result, release_line, (ordinal.clone(), rule, Key::new()), alerts, arrived_at);
            }
        }
    }
}

impl Renderer<'_> {
    fn emit(&mut self, rule: u32, release_line: u64, completed: &mut Vec<Done>, alerts: &mut Vec<AlertOut>) {
        if completed.is_empty() {
            return;
        }
        for c in completed.drain(..) {
            let (key, result) = match self.sequence_alert(rule, &c) {
                Ok((key, bytes)) => (key, Ok(bytes)),
                Err(e) => (Key::new(), Err(e)),
            };
            let arrived_at = self.arrival(c.events.iter().rev().flatten().next());
            self.push(rule, result, release_line, (c.ordinal, rule, key), alerts, arrived_at);
        }
    }

    /// When the line of `event` (a detection's last event) was read; records how long it
    /// waited for the watermark (it is being decided now).
    fn arrival(&self, event: Option<&StoredEvent>) -> Option<Instant> {
        let t = event?.arrived_at().ok()?;
        self.handles.observe_alert_buffering(t.elapsed().as_secs_f64());
        Some(t)
    }

    /// The join key and alert lines of a completed sequence.
    fn sequence_alert(&mut self, rule: u32, c: &Done) -> Result<(Key, Vec<u8>), RenderError> {
        let events: Vec<Option<MatchedEvent>> =
            c.events.iter().map(|e| e.as_ref().map(StoredEvent::read).transpose()).collect::<Result<_, _>>()?;
        let key = self.recover_key(rule, c.key, &events)?;
        let slots: Vec<Option<&MatchedEvent>> = events.iter().map(Option::as_ref).collect();
        let d = Detection { rule: &self.rules.rules[rule as usize].spec, join_keys: &key, events: &slots };
        let bytes = self.render(&d)?;
        Ok((key, bytes))
    }

    /// The join key with fingerprint `fp`, from the first present event of the sequence.
    fn recover_key(&mut self, rule: u32, fp: Fingerprint, events: &[Option<MatchedEvent>]) -> Result<Key, RenderError> {
        let Some((stage, first)) = events.iter().enumerate().find_map(|(s, e)| e.as_ref().map(|e| (s, e))) else {
            return Err(RenderError::KeyNotFound);
        };
        let Some(stage) = self.rules.rules.get(rule as usize).and_then(|r| r.query.stages.get(stage)) else {
            return Err(RenderError::KeyNotFound);
        };
        let ev = self.decoder.decode(first.raw.as_bytes()).map_err(|_| RenderError::KeyNotFound)?;
        stage.keys(&ev, &mut self.keys);
        let found = self.keys.iter().position(|k| self.fingerprints.of(k) == fp);
        found.map(|i| self.keys.swap_remove(i)).ok_or(RenderError::KeyNotFound)
    }

    /// The alert lines of `d`. An alert with parts missing (an event that cannot be parsed; see
    /// `alert::Rendered`) is still written, and counted.
    fn render(&self, d: &Detection<'_>) -> Result<Vec<u8>, RenderError> {
        let mut bytes = Vec::new();
        let rendered = alert::render_in_space(d, self.format, &self.space, SystemTime::now(), &mut bytes)?;
        if !rendered.missing.is_empty() {
            if let Some(rule) = self.rules.rules.iter().find(|r| std::ptr::eq(&r.spec, d.rule)) {
                rule.alert_render_errors.inc();
            }
            tracing::warn!(rule_id = %d.rule.rule_id, missing = ?rendered.missing, "Alert written with parts missing.");
        }
        Ok(bytes)
    }

    fn push(
        &self,
        rule: u32,
        result: Result<Vec<u8>, RenderError>,
        release_line: u64,
        order: (Ordinal, u32, Key),
        alerts: &mut Vec<AlertOut>,
        arrived_at: Option<Instant>,
    ) {
        match result {
            Ok(bytes) => alerts.push(AlertOut { release_line, order, rule, bytes, arrived_at }),
            Err(e) => {
                let rule = self.rules.rules.get(rule as usize);
                if let Some(r) = rule {
                    r.alert_render_errors.inc();
                }
                let rule_id = rule.map_or("?", |r| r.spec.rule_id.as_str());
                tracing::error!(rule_id, error = %e, "Alert could not be rendered; it is lost.");
            }
        }
    }
}
