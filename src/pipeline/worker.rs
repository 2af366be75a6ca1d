//! Partition workers: each owns the sequence machines for the join keys hashed to it, feeds them
//! the released events in ordinal order, and renders the alerts of completed sequences (and of
//! event-rule matches). Alerts carry their release line and sort key so the writer can place them
//! deterministically, whatever the number of partitions.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::decode::RuleHit;
use super::sequencer::{PartitionWork, WorkItem};
use crate::alert::{self, AlertFormat, Detection, MatchedEvent};
use crate::metrics::{Handles, PipelineStage, Stats};
use crate::ruleset::RuleSet;
use crate::sequence::key::Key;
use crate::sequence::machine::{Completed, HitKind, SequenceMachine};
use crate::sequence::ordinal::Ordinal;

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
}

/// A partition's output for one step.
#[derive(Debug, Default)]
pub struct PartitionOutput {
    /// Step number.
    pub step: u64,
    /// Alerts produced in this step.
    pub alerts: Vec<AlertOut>,
}

/// Runs one partition worker until its input closes.
pub fn run(
    rules: Arc<RuleSet>,
    format: AlertFormat,
    max_partials: usize,
    rx: Receiver<PartitionWork>,
    tx: Sender<PartitionOutput>,
    handles: Handles,
) {
    let mut machines: Vec<Option<SequenceMachine<Arc<MatchedEvent>>>> = rules
        .rules
        .iter()
        .map(|r| r.query.sequence.as_ref().map(|spec| SequenceMachine::new(spec, max_partials)))
        .collect();
    let mut stats = Stats::new(&handles);
    let mut completed: Vec<Completed<Arc<MatchedEvent>>> = Vec::new();
    let mut rule_hits: Vec<(HitKind, Key)> = Vec::new();
    // The gauge is shared by all partitions: each adds the change of its own count.
    let mut partials_reported = vec![0i64; machines.len()];
    for work in rx {
        let started = Instant::now();
        let mut out = PartitionOutput { step: work.step, alerts: Vec::new() };
        for item in work.items {
            match item {
                WorkItem::Event { release_line, ordinal, event, hits } => {
                    process_event(
                        &rules,
                        format,
                        &mut machines,
                        &mut completed,
                        &mut rule_hits,
                        (release_line, &ordinal, &event),
                        hits,
                        &mut out.alerts,
                    );
                }
                WorkItem::Advance { release_line, watermark } => {
                    for (r, m) in machines.iter_mut().enumerate() {
                        if let Some(m) = m {
                            m.advance(watermark, &mut completed);
                            emit(&rules, format, r as u32, release_line, &mut completed, &mut out.alerts);
                        }
                    }
                }
                WorkItem::Finish { release_line } => {
                    for (r, m) in machines.iter_mut().enumerate() {
                        if let Some(m) = m {
                            m.finish(&mut completed);
                            emit(&rules, format, r as u32, release_line, &mut completed, &mut out.alerts);
                        }
                    }
                }
            }
        }
        for (r, m) in machines.iter_mut().enumerate() {
            if let Some(m) = m {
                let c = m.take_counters();
                stats.expired[r] += c.expired;
                stats.evicted[r] += c.evicted;
                let now = m.partials() as i64;
                handles.add_partials(r, now - partials_reported[r]);
                partials_reported[r] = now;
            }
        }
        stats.flush(&handles);
        handles.observe_batch(PipelineStage::Sequence, started.elapsed().as_secs_f64());
        if tx.send(out).is_err() {
            break;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn process_event(
    rules: &RuleSet,
    format: AlertFormat,
    machines: &mut [Option<SequenceMachine<Arc<MatchedEvent>>>],
    completed: &mut Vec<Completed<Arc<MatchedEvent>>>,
    rule_hits: &mut Vec<(HitKind, Key)>,
    (release_line, ordinal, event): (u64, &Ordinal, &Arc<MatchedEvent>),
    mut hits: Vec<RuleHit>,
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
            rule_hits.push((hits[j].kind, std::mem::take(&mut hits[j].key)));
            j += 1;
        }
        i = j;
        match machines.get_mut(rule as usize).and_then(Option::as_mut) {
            Some(m) => {
                // Events are fed in ordinal order, so every later event has ts >= this one's:
                // its own timestamp is the safe expiry point (the sequencer's watermark may be
                // far ahead after an idle or final release-all).
                m.advance(ordinal.ts, completed);
                emit(rules, format, rule, release_line, completed, alerts);
                m.on_event(ordinal, event, rule_hits, completed);
                emit(rules, format, rule, release_line, completed, alerts);
            }
            None => {
                // Event rule: one alert per matching event.
                let events = [Some(&**event)];
                let d = Detection { rule: &rules.rules[rule as usize].spec, join_keys: &[], events: &events };
                push_alert(&d, format, release_line, (ordinal.clone(), rule, Key::new()), rule, alerts);
            }
        }
    }
}

fn emit(
    rules: &RuleSet,
    format: AlertFormat,
    rule: u32,
    release_line: u64,
    completed: &mut Vec<Completed<Arc<MatchedEvent>>>,
    alerts: &mut Vec<AlertOut>,
) {
    for c in completed.drain(..) {
        let events: Vec<Option<&MatchedEvent>> = c.events.iter().map(|e| e.as_deref()).collect();
        let d = Detection { rule: &rules.rules[rule as usize].spec, join_keys: &c.key, events: &events };
        push_alert(&d, format, release_line, (c.ordinal.clone(), rule, c.key.clone()), rule, alerts);
    }
}

fn push_alert(
    d: &Detection<'_>,
    format: AlertFormat,
    release_line: u64,
    order: (Ordinal, u32, Key),
    rule: u32,
    alerts: &mut Vec<AlertOut>,
) {
    let mut bytes = Vec::new();
    match alert::render(d, format, SystemTime::now(), &mut bytes) {
        Ok(()) => alerts.push(AlertOut { release_line, order, rule, bytes }),
        Err(e) => tracing::error!(rule_id = %d.rule.rule_id, error = %e, "Alert could not be rendered; it is lost."),
    }
}
