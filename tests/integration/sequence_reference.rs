//! The streaming engine against an independent reference model of Elasticsearch's batch
//! algorithm, on random streams with `until`, maxspan and missing-event stages.
//!
//! The reference follows ES's code, not the streaming design (eql-semantics.md sections 1.2,
//! 1.5, 2, 7.1, 7.3): all events are known up front; stages are matched one after the other
//! over the whole (single-window) input, in ascending ordinal; each (stage, key) group is a list
//! of sequences, and a stage-k hit takes the newest stage-(k-1) sequence with a smaller ordinal
//! and removes it and everything older (`OrdinalGroup.trimBefore`), then checks maxspan
//! (`exceedsMaxSpan`) and the nearest `until` marker (`Ordinal.between`, inclusive); completed
//! candidates with missing stages are checked with whole-input searches exactly as
//! `TumblingWindow.doCheckMissingEvents` does. There are no partial-per-slot replacement, no
//! garbage collection, no watermark and no deferral here, so agreement is evidence that the
//! streaming versions of those are equivalent (section 1.5).

use std::collections::HashMap;

use eqlstream::sequence::key::{Key, KeyValue};
use eqlstream::sequence::spec::{SequenceSpec, StageKind};
use eqlstream::sequence::{Completed, HitKind, RuleStream, StreamConfig};
use proptest::prelude::*;

const MS: i64 = 1_000_000;

#[derive(Clone, Debug)]
struct Ev {
    ts: i64,
    hits: Vec<(HitKind, Key)>,
}

/// A reference sequence: event indices per positive stage so far; ordinals are indices.
#[derive(Clone, Debug)]
struct Seq {
    events: Vec<usize>,
}

fn exceeds(span: Option<i64>, from: i64, to: i64) -> bool {
    span.is_some_and(|s| to - from > s)
}

fn has_hit(ev: &Ev, kind: HitKind, key: &Key) -> bool {
    ev.hits.iter().any(|(k, h)| *k == kind && h == key)
}

/// ES's result for `events` (already in ordinal order = index order), in completion order,
/// ties by key.
fn reference(spec: &SequenceSpec, events: &[Ev]) -> Vec<(usize, Key, Vec<Option<usize>>)> {
    let n = spec.stages.len();
    let span = spec.maxspan_ns.map(|s| s as i64);
    let pos: Vec<usize> = (0..n).filter(|&i| spec.stages[i] == StageKind::Positive).collect();
    let (first, last) = (pos[0], pos[pos.len() - 1]);
    let mut groups: HashMap<(usize, Key), Vec<Seq>> = HashMap::new();
    let mut candidates: Vec<(Key, Seq)> = Vec::new();
    for (rank, &stage) in pos.iter().enumerate() {
        for (i, ev) in events.iter().enumerate() {
            for (kind, key) in &ev.hits {
                if *kind != HitKind::Stage(stage as u16) {
                    continue;
                }
                let seq = if stage == first {
                    Seq { events: vec![i] }
                } else {
                    let group = groups.entry((pos[rank - 1], key.clone())).or_default();
                    // trimBefore: newest with ordinal < i, removed with everything older.
                    let Some(j) = group.iter().rposition(|s| *s.events.last().unwrap() < i) else {
                        continue;
                    };
                    let mut seq = group[j].clone();
                    group.drain(..=j);
                    if exceeds(span, events[seq.events[0]].ts, ev.ts) {
                        continue;
                    }
                    let seq_last = *seq.events.last().unwrap();
                    let nearest_until = (0..i).rev().find(|&u| has_hit(&events[u], HitKind::Until, key));
                    if nearest_until.is_some_and(|u| u >= seq_last) {
                        continue;
                    }
                    seq.events.push(i);
                    seq
                };
                if stage == last {
                    candidates.push((key.clone(), seq));
                } else {
                    groups.entry((stage, key.clone())).or_default().push(seq);
                }
            }
        }
    }
    let ms = |t: i64| t.div_euclid(MS) * MS;
    let mut done = Vec::new();
    for (key, seq) in candidates {
        let ts_of = |p: usize| events[seq.events[pos.iter().position(|&x| x == p).unwrap()]].ts;
        let start = events[seq.events[0]].ts;
        let end = events[*seq.events.last().unwrap()].ts;
        let (mut last_leading, mut first_trailing, mut discarded) = (None::<i64>, None::<i64>, false);
        for (i, kind) in spec.stages.iter().enumerate() {
            if *kind != StageKind::Missing {
                continue;
            }
            let hits = events.iter().filter(|e| has_hit(e, HitKind::Stage(i as u16), &key)).map(|e| e.ts);
            if i < first {
                let found = hits.filter(|&t| t < ms(start)).max();
                last_leading = last_leading.max(found);
            } else if i > last {
                let found = hits.filter(|&t| t > ms(end)).min();
                first_trailing = match (first_trailing, found) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            } else {
                let prev = *pos.iter().rev().find(|&&p| p < i).unwrap();
                let next = *pos.iter().find(|&&p| p > i).unwrap();
                let (lo, hi) = (ms(ts_of(prev)), ms(ts_of(next)));
                discarded |= hits.into_iter().any(|t| t > lo && t < hi);
            }
        }
        let bigger = |from: Option<i64>, to: Option<i64>| match (from, to) {
            (Some(f), Some(t)) => exceeds(span, f, t),
            _ => true,
        };
        let (m0, ml) = (first > 0, last < n - 1);
        let keep = !discarded
            && ((first_trailing.is_none() && last_leading.is_none())
                || (last_leading.is_none() && m0)
                || (first_trailing.is_none() && ml)
                || (m0 && ml && bigger(last_leading, first_trailing))
                || (m0 && !ml && bigger(last_leading, Some(end)))
                || (!m0 && ml && bigger(Some(start), first_trailing)));
        if keep {
            let mut full = Vec::new();
            let mut it = seq.events.iter();
            for kind in &spec.stages {
                full.push(match kind {
                    StageKind::Positive => it.next().copied(),
                    StageKind::Missing => None,
                });
            }
            done.push((*seq.events.last().unwrap(), key, full));
        }
    }
    done.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    done
}

fn streamed(spec: &SequenceSpec, events: &[Ev], partitions: usize) -> Vec<(usize, Key, Vec<Option<usize>>)> {
    let mut s = RuleStream::new(spec, StreamConfig { max_out_of_orderness_ns: 0, partitions, max_partials: 1_000_000 });
    let mut out: Vec<Completed<usize>> = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        s.line(Some(ev.ts), None, i, ev.hits.clone(), &mut out);
    }
    s.finish(&mut out);
    let mut done: Vec<_> = out.into_iter().map(|c| (c.ordinal.arrival as usize, c.key, c.events)).collect();
    done.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    done
}

fn stream_of(raw: &[(i64, u8, u8, bool)], stages: usize) -> Vec<Ev> {
    let mut ts = 0;
    raw.iter()
        .map(|&(gap, key, mask, until)| {
            ts += gap * 250 * MS;
            let key: Key = [KeyValue::I64(i64::from(key))].into_iter().collect();
            let mut hits: Vec<(HitKind, Key)> =
                (0..stages as u16).filter(|s| mask & (1 << s) != 0).map(|s| (HitKind::Stage(s), key.clone())).collect();
            if until {
                hits.push((HitKind::Until, key));
            }
            Ev { ts, hits }
        })
        .collect()
}

fn shape(code: u8) -> Vec<StageKind> {
    use StageKind::{Missing as M, Positive as P};
    match code {
        0 => vec![P, P],
        1 => vec![P, P, P],
        2 => vec![P, M, P],
        3 => vec![P, P, M],
        4 => vec![M, P, P],
        5 => vec![M, P, M],
        6 => vec![P, M, M, P],
        _ => vec![M, P],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn streaming_engine_equals_the_es_batch_algorithm(
        raw in prop::collection::vec((0i64..5, 0u8..3, 0u8..16, prop::bool::weighted(0.07)), 1..60),
        code in 0u8..8,
        maxspan_q in prop::option::of(1i64..12),
        partitions in prop::sample::select(vec![1usize, 2, 4]),
    ) {
        let stages = shape(code);
        let has_missing = stages.contains(&StageKind::Missing);
        // ES requires maxspan with missing events (section 7.3).
        let maxspan_q = if has_missing { maxspan_q.or(Some(4)) } else { maxspan_q };
        let spec = SequenceSpec {
            maxspan_ns: maxspan_q.map(|q| (q * 250 * MS) as u64),
            key_arity: 1,
            has_until: true,
            stages,
        };
        let events = stream_of(&raw, spec.stages.len());
        prop_assert_eq!(streamed(&spec, &events, partitions), reference(&spec, &events));
    }
}

#[test]
fn reference_model_finds_the_docs_example() {
    // Section 1.3 / 1.4: a 3-stage case with overlap, so the comparison is not vacuous.
    let spec = SequenceSpec { stages: vec![StageKind::Positive; 3], maxspan_ns: None, has_until: false, key_arity: 1 };
    // threeStageWithOverlap: A1 A3 / B2 B5 / C4 B6 => A1 B2 C4 ; A3 B5 B6
    let raw = [
        (1, 0, 0b001, false),
        (1, 0, 0b010, false),
        (1, 0, 0b001, false),
        (1, 0, 0b100, false),
        (1, 0, 0b010, false),
        (1, 0, 0b100, false),
    ];
    let events = stream_of(&raw, 3);
    let want = reference(&spec, &events);
    assert_eq!(want.len(), 2);
    assert_eq!(want[0].2, vec![Some(0), Some(1), Some(3)]);
    assert_eq!(want[1].2, vec![Some(2), Some(4), Some(5)]);
    assert_eq!(streamed(&spec, &events, 1), want);
}
