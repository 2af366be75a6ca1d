//! Property tests of the event-time engine (eql-semantics.md section 3, issue items 4 and 6):
//! * shuffling arrival order by less than `max_out_of_orderness` gives the same sequences as the
//!   sorted stream;
//! * the output, order included, is the same with 1, 2 and 4 partitions.

use eqlstream::sequence::key::{Key, KeyValue};
use eqlstream::sequence::spec::{SequenceSpec, StageKind};
use eqlstream::sequence::{Completed, HitKind, LineOutcome, RuleStream, StreamConfig, TieBreaker};
use proptest::prelude::*;

const MS: i64 = 1_000_000;
const ALLOWANCE: i64 = 2_000 * MS;

/// One generated input line.
#[derive(Clone, Debug)]
struct Line {
    gap_ms: i64,
    key: u8,
    stages: u8,
    until: bool,
    jitter: i64,
}

fn line() -> impl Strategy<Value = Line> {
    // Coarse steps (500 ms, a quarter of the allowance) make timestamps collide, and land
    // exactly on the watermark, often.
    (
        0i64..4,
        0u8..3,
        0u8..8,
        prop::bool::weighted(0.08),
        // Up to and including the allowance: an event exactly at the watermark is not late.
        0i64..=4,
    )
        .prop_map(|(gap, key, stages, until, jitter)| Line {
            gap_ms: gap * 500,
            key,
            stages,
            until,
            jitter: jitter * 500 * MS,
        })
}

fn spec(shape: u8, maxspan_ms: Option<i64>) -> SequenceSpec {
    use StageKind::{Missing as M, Positive as P};
    let stages = match shape {
        0 => vec![P, P, P],
        1 => vec![P, M, P],
        2 => vec![P, P, M],
        _ => vec![M, P, P],
    };
    let maxspan = if shape == 0 { maxspan_ms } else { maxspan_ms.or(Some(3_000)) };
    SequenceSpec { stages, maxspan_ns: maxspan.map(|m| (m * MS) as u64), has_until: true, key_arity: 1 }
}

/// Timestamps (ns) of the lines: non-decreasing; unique when `unique`.
fn timestamps(lines: &[Line], unique: bool) -> Vec<i64> {
    let mut t = 1_772_704_800_000 * MS;
    lines
        .iter()
        .map(|l| {
            t += l.gap_ms * MS + if unique { MS } else { 0 };
            t
        })
        .collect()
}

fn hits(l: &Line) -> Vec<(HitKind, Key)> {
    let key: Key = [KeyValue::Str(format!("k{}", l.key).into())].into_iter().collect();
    let mut hits: Vec<(HitKind, Key)> =
        (0..3u16).filter(|s| l.stages & (1 << s) != 0).map(|s| (HitKind::Stage(s), key.clone())).collect();
    if l.until {
        hits.push((HitKind::Until, key));
    }
    hits
}

/// Run the lines in the given arrival order; the event handle is the line's index in time order.
fn run(
    spec: &SequenceSpec,
    lines: &[Line],
    ts: &[i64],
    arrival: &[usize],
    partitions: usize,
    tiebreak: bool,
) -> Vec<Completed<u32>> {
    let mut s =
        RuleStream::new(spec, StreamConfig { max_out_of_orderness_ns: ALLOWANCE, partitions, max_partials: 1_000_000 });
    let mut out = Vec::new();
    for &i in arrival {
        let tb = tiebreak.then_some(TieBreaker::I64(i as i64));
        let outcome = s.line(Some(ts[i]), tb, i as u32, hits(&lines[i]), &mut out);
        assert_ne!(outcome, LineOutcome::Late, "shuffle stayed within the allowance");
    }
    s.finish(&mut out);
    out
}

/// A sequence without its arrival number: (completing ts, tiebreaker, key, events).
type Canonical = (i64, Option<TieBreaker>, Key, Vec<Option<u32>>);

/// The sequences, in ES order (completing ordinal, then key), without arrival numbers.
fn canonical(mut done: Vec<Completed<u32>>) -> Vec<Canonical> {
    done.sort_by(|a, b| {
        (a.ordinal.ts, &a.ordinal.tiebreaker, &a.key).cmp(&(b.ordinal.ts, &b.ordinal.tiebreaker, &b.key))
    });
    done.into_iter().map(|c| (c.ordinal.ts, c.ordinal.tiebreaker, c.key, c.events)).collect()
}

/// Arrival order: by timestamp plus a jitter of at most the allowance (the later line
/// first on ties, to put lines exactly on the watermark), so that no line arrives behind it.
fn shuffled(lines: &[Line], ts: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| (ts[i] + lines[i].jitter, std::cmp::Reverse(i)));
    order
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Section 3: reordering within the allowance is invisible to detection.
    #[test]
    fn shuffle_within_allowance_gives_the_sorted_streams_sequences(
        lines in prop::collection::vec(line(), 1..80),
        shape in 0u8..4,
        maxspan in prop::option::of(prop::sample::select(vec![1_000i64, 2_000, 5_000])),
    ) {
        let spec = spec(shape, maxspan);
        let ts = timestamps(&lines, true);
        let sorted: Vec<usize> = (0..lines.len()).collect();
        let want = canonical(run(&spec, &lines, &ts, &sorted, 1, false));
        let got = canonical(run(&spec, &lines, &ts, &shuffled(&lines, &ts), 1, false));
        prop_assert_eq!(got, want);
    }

    /// Section 3: with a tiebreaker, equal timestamps are ordered by it whatever the arrival.
    #[test]
    fn shuffle_with_equal_timestamps_and_tiebreaker_gives_the_same_sequences(
        lines in prop::collection::vec(line(), 1..80),
        shape in 0u8..4,
    ) {
        let spec = spec(shape, Some(2_000));
        let ts = timestamps(&lines, false);
        let sorted: Vec<usize> = (0..lines.len()).collect();
        let want = canonical(run(&spec, &lines, &ts, &sorted, 1, true));
        let got = canonical(run(&spec, &lines, &ts, &shuffled(&lines, &ts), 1, true));
        prop_assert_eq!(got, want);
    }

    /// Issue item 6: the output, and its order, do not depend on the number of partitions.
    #[test]
    fn output_is_identical_with_1_2_and_4_partitions(
        lines in prop::collection::vec(line(), 1..80),
        shape in 0u8..4,
        maxspan in prop::option::of(prop::sample::select(vec![1_000i64, 2_000, 5_000])),
    ) {
        let spec = spec(shape, maxspan);
        let ts = timestamps(&lines, false);
        let order = shuffled(&lines, &ts);
        let one = run(&spec, &lines, &ts, &order, 1, false);
        for partitions in [2, 4] {
            prop_assert_eq!(&run(&spec, &lines, &ts, &order, partitions, false), &one);
        }
    }
}

#[test]
fn generated_streams_do_produce_sequences() {
    // Guards the properties above against vacuity: a dense stream must complete sequences.
    let lines: Vec<Line> = (0..30)
        .map(|i| Line {
            gap_ms: 100,
            key: 0,
            stages: 1 << (i % 3),
            until: false,
            jitter: (i as i64 * 700 * MS) % (ALLOWANCE + MS),
        })
        .collect();
    let ts = timestamps(&lines, true);
    let out = run(&spec(0, Some(5_000)), &lines, &ts, &shuffled(&lines, &ts), 1, false);
    assert_eq!(out.len(), 10);
}
