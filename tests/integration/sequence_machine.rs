//! Behaviour of the sequence machine and its event-time driver, one test per rule of
//! /work/shared/docs/eql-semantics.md (the section is cited in each test).

use std::time::{Duration, Instant};

use eqlstream::sequence::key::{Key, KeyValue};
use eqlstream::sequence::spec::{SequenceSpec, StageKind};
use eqlstream::sequence::{
    Completed, HitKind, IdleTimer, LineOutcome, Ordinal, RuleStream, SequenceMachine, StreamConfig, TieBreaker,
};
use eqlstream::time::{parse_timestamp, Precision};

const MS: i64 = 1_000_000;
const S: i64 = 1_000 * MS;

fn key(parts: &[&str]) -> Key {
    parts.iter().map(|s| KeyValue::Str((*s).into())).collect()
}

fn st(stage: u16, k: &Key) -> (HitKind, Key) {
    (HitKind::Stage(stage), k.clone())
}

/// `kinds`: one char per stage, `P` positive, `M` missing.
fn spec(kinds: &str, maxspan_ns: Option<i64>) -> SequenceSpec {
    SequenceSpec {
        stages: kinds
            .chars()
            .map(|c| match c {
                'P' => StageKind::Positive,
                'M' => StageKind::Missing,
                other => panic!("bad stage kind {other}"),
            })
            .collect(),
        maxspan_ns: maxspan_ns.map(|n| n as u64),
        has_until: true,
        key_arity: 1,
    }
}

struct Harness {
    m: SequenceMachine<u32>,
    out: Vec<Completed<u32>>,
    arrival: u64,
}

impl Harness {
    fn new(spec: &SequenceSpec) -> Self {
        Harness::with_cap(spec, 1_000_000)
    }

    fn with_cap(spec: &SequenceSpec, cap: usize) -> Self {
        Harness { m: SequenceMachine::new(spec, cap), out: Vec::new(), arrival: 0 }
    }

    /// Feed event `id` at `ts` (ns) with `hits`; returns how many sequences it emitted.
    fn ev(&mut self, ts: i64, id: u32, hits: &[(HitKind, Key)]) -> usize {
        let before = self.out.len();
        self.arrival += 1;
        let ord = Ordinal::new(ts, self.arrival);
        self.m.on_event(&ord, &id, hits, &mut self.out);
        self.out.len() - before
    }

    fn advance(&mut self, w: i64) -> usize {
        let before = self.out.len();
        self.m.advance(w, &mut self.out);
        self.out.len() - before
    }

    fn finish(&mut self) {
        self.m.finish(&mut self.out);
    }

    fn ids(&self) -> Vec<Vec<Option<u32>>> {
        self.out.iter().map(|c| c.events.clone()).collect()
    }

    fn full(&self) -> Vec<Vec<u32>> {
        self.out.iter().map(|c| c.events.iter().map(|e| e.expect("no missing stage")).collect()).collect()
    }
}

// ---------------------------------------------------------------- maxspan (section 2)

fn seed_like_run(times: [&str; 3], precision: Precision) -> usize {
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPP", Some(10 * S)));
    for (i, t) in times.iter().enumerate() {
        let t = parse_timestamp(t, precision).expect("valid test timestamp");
        h.ev(t, i as u32, &[st(i as u16, &k)]);
    }
    h.out.len()
}

#[test]
fn maxspan_is_inclusive_at_exactly_ten_seconds() {
    // Section 2: "deletion at t0+10.000s -> match; deletion at t0+10.001s -> no match".
    let ok = ["2026-03-05T10:00:00Z", "2026-03-05T10:00:05Z", "2026-03-05T10:00:10.000Z"];
    assert_eq!(seed_like_run(ok, Precision::Millis), 1);
    let late = ["2026-03-05T10:00:00Z", "2026-03-05T10:00:05Z", "2026-03-05T10:00:10.001Z"];
    assert_eq!(seed_like_run(late, Precision::Millis), 0);
}

#[test]
fn maxspan_ignores_sub_millisecond_digits_by_default() {
    // Section 2: `date` fields give ms precision, so 10.0009999 s counts as 10.000 s.
    let t = ["2026-03-05T10:00:00Z", "2026-03-05T10:00:05Z", "2026-03-05T10:00:10.0009999Z"];
    assert_eq!(seed_like_run(t, Precision::Millis), 1);
    assert_eq!(seed_like_run(t, Precision::Nanos), 0, "date_nanos keeps them");
}

#[test]
fn maxspan_is_checked_at_every_extension() {
    // Section 2: checked on every extension, from the first event.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPP", Some(10 * S)));
    h.ev(0, 1, &[st(0, &k)]);
    h.ev(10 * S + MS, 2, &[st(1, &k)]);
    h.ev(10 * S + 2 * MS, 3, &[st(2, &k)]);
    assert!(h.out.is_empty());
    // The event first lets time pass (the partial expires), so the extension check itself is a
    // second line of defence; either way exactly one partial is gone.
    let c = h.m.take_counters();
    assert_eq!(c.expired + c.rejected_maxspan, 1);
}

#[test]
fn expired_partials_are_dropped_once_watermark_passes_first_plus_maxspan() {
    // Section 2, "A streaming engine may garbage-collect s once watermark_ts - ts(s.first) > M".
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPP", Some(10 * S)));
    h.ev(0, 1, &[st(0, &k)]);
    h.ev(S, 2, &[st(1, &k)]);
    h.advance(10 * S);
    assert_eq!(h.m.partials(), 1, "first + maxspan == watermark: may still complete");
    h.advance(10 * S + 1);
    assert_eq!(h.m.partials(), 0);
    assert_eq!(h.m.keys(), 0, "the key's slot is freed too");
    assert_eq!(h.m.take_counters().expired, 1);
}

// ---------------------------------------------------------------- state machine (sections 0, 1.3)

#[test]
fn newest_partial_overwrites_at_every_stage() {
    // Section 1.3: "the most recent sequence overwrites the older one", at each stage.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPPP", None));
    h.ev(1, 1, &[st(0, &k)]);
    h.ev(2, 2, &[st(0, &k)]); // stage 0: [2] replaces [1]
    h.ev(3, 3, &[st(1, &k)]); // stage 1: [2,3]
    h.ev(4, 4, &[st(0, &k)]);
    h.ev(5, 5, &[st(1, &k)]); // stage 1: [4,5] replaces [2,3]
    h.ev(6, 6, &[st(2, &k)]); // stage 2: [4,5,6]
    h.ev(7, 7, &[st(0, &k)]);
    h.ev(8, 8, &[st(1, &k)]);
    h.ev(9, 9, &[st(2, &k)]); // stage 2: [7,8,9] replaces [4,5,6]
    h.ev(10, 10, &[st(3, &k)]);
    h.ev(11, 11, &[st(3, &k)]); // nothing left to extend
    assert_eq!(h.full(), vec![vec![7, 8, 9, 10]]);
    assert_eq!(h.m.take_counters().superseded, 3);
}

#[test]
fn completion_leaves_pending_partials_of_other_stages() {
    // Section 1.3 (docs): after [2,4,9] completes, "Sequence [7] remains in state A".
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPP", None));
    h.ev(1, 1, &[st(0, &k)]);
    h.ev(2, 2, &[st(1, &k)]);
    h.ev(3, 3, &[st(0, &k)]);
    h.ev(4, 4, &[st(2, &k)]);
    h.ev(5, 5, &[st(1, &k)]);
    h.ev(6, 6, &[st(2, &k)]);
    assert_eq!(h.full(), vec![vec![1, 2, 4], vec![3, 5, 6]]);
}

#[test]
fn one_event_matching_several_stages_never_extends_what_it_advanced() {
    // Section 0: stages are tried from the last down; section 1.3 `twoSequencesAdditional3`.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &k)]);
    h.ev(2, 2, &[st(0, &k), st(1, &k)]);
    h.ev(3, 3, &[st(0, &k), st(1, &k)]);
    assert_eq!(h.full(), vec![vec![1, 2], vec![2, 3]]);
}

#[test]
fn runs_three_expands_to_overlapping_triples() {
    // Section 7.2: `[any] with runs=3` is three identical stages; section 1.3
    // `sequenceWithMoreThan10Results` expects overlapping triples.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPP", None));
    for i in 1..=5 {
        h.ev(i, i as u32, &[st(0, &k), st(1, &k), st(2, &k)]);
    }
    assert_eq!(h.full(), vec![vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 5]]);
}

#[test]
fn equal_timestamps_chain_in_arrival_order() {
    // Section 3: timestamps need only be non-decreasing; the implicit tiebreaker orders them.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPP", Some(10 * S)));
    h.ev(5 * S, 1, &[st(0, &k)]);
    h.ev(5 * S, 2, &[st(1, &k)]);
    h.ev(5 * S, 3, &[st(2, &k)]);
    assert_eq!(h.full(), vec![vec![1, 2, 3]]);
}

// ---------------------------------------------------------------- until (section 7.1)

#[test]
fn until_between_matches_kills_the_partial() {
    // Section 7.1: an until event between matches expires the sequence.
    let k = key(&["c"]);
    let other = key(&["d"]);
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &k), st(0, &other)]);
    h.ev(2, 2, &[(HitKind::Until, k.clone())]);
    h.ev(3, 3, &[st(1, &k), st(1, &other)]);
    assert_eq!(h.out.len(), 1);
    assert_eq!(h.out[0].key, other, "until only affects its own key");
    assert_eq!(h.m.take_counters().rejected_until, 1);
}

#[test]
fn until_on_the_matching_event_kills_what_that_event_started() {
    // Section 7.1: `Ordinal.between` is inclusive, so a marker at the last match kills it;
    // stage hits are processed before the event's until effect.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &k), (HitKind::Until, k.clone())]);
    h.ev(2, 2, &[st(1, &k)]);
    assert!(h.out.is_empty());
}

#[test]
fn until_after_completion_does_not_retract_the_sequence() {
    // Section 7.1: an expiration event after the matching events still gives a match; the
    // completing event's own until hit comes after its stage hits.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &k)]);
    h.ev(2, 2, &[st(1, &k), (HitKind::Until, k.clone())]);
    assert_eq!(h.full(), vec![vec![1, 2]]);
}

// ---------------------------------------------------------------- missing events (section 7.3)

#[test]
fn missing_middle_stage_rejects_only_events_strictly_between() {
    // Section 7.3: middle stages look strictly between the neighbouring positive timestamps.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PMP", Some(10 * S)));
    h.ev(0, 1, &[st(0, &k)]);
    h.ev(S, 2, &[st(1, &k)]);
    h.ev(2 * S, 3, &[st(2, &k)]);
    assert!(h.out.is_empty(), "B between A and C");
    h.ev(20 * S, 4, &[st(0, &k)]);
    h.ev(20 * S, 5, &[st(1, &k)]); // same ms as A: not strictly between
    h.ev(22 * S, 6, &[st(1, &k)]); // same ms as C: not strictly between
    h.ev(22 * S, 7, &[st(2, &k)]);
    assert_eq!(h.ids(), vec![vec![Some(4), None, Some(7)]]);
    assert_eq!(h.m.take_counters().rejected_missing, 1);
}

#[test]
fn missing_leading_stage_within_maxspan_of_the_last_event_rejects() {
    // Section 7.3 / TumblingWindow.doCheckMissingEvents: leading only ->
    // rejected unless last - lastLeading > maxspan.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("MPP", Some(5 * S)));
    h.ev(0, 1, &[st(0, &k)]);
    h.ev(3 * S, 2, &[st(1, &k)]);
    h.ev(5 * S, 3, &[st(2, &k)]);
    assert!(h.out.is_empty(), "5 - 0 <= 5");
    h.ev(10 * S, 4, &[st(0, &k)]);
    h.ev(14 * S, 5, &[st(1, &k)]);
    h.ev(15 * S + MS, 6, &[st(2, &k)]);
    assert_eq!(h.ids(), vec![vec![None, Some(5), Some(6)]], "15.001 - 10 > 5");
}

#[test]
fn missing_trailing_stage_defers_until_its_window_closes() {
    // Section 7.3: trailing only -> rejected if firstTrailing - first <= maxspan; the streaming
    // engine can only decide once no such event can still come.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPM", Some(5 * S)));
    h.ev(0, 1, &[st(0, &k)]);
    h.ev(S, 2, &[st(1, &k)]);
    assert_eq!(h.m.deferred(), 1);
    h.ev(5 * S, 3, &[st(2, &k)]); // 5 - 0 <= 5: rejects
    assert_eq!(h.m.deferred(), 0);
    h.ev(10 * S, 4, &[st(0, &k)]);
    h.ev(11 * S, 5, &[st(1, &k)]);
    assert_eq!(h.advance(15 * S), 0, "an event at exactly 15 s could still reject");
    assert_eq!(h.ev(15 * S + MS, 6, &[st(2, &k)]), 1, "window closed before this event");
    assert_eq!(h.ids(), vec![vec![Some(4), Some(5), None]]);
    assert_eq!(h.out[0].ordinal.ts, 11 * S, "ordinal of the completing event");
}

#[test]
fn missing_trailing_stage_is_settled_by_watermark_or_end_of_input() {
    // Section 7.3, streaming form: the watermark passing first + maxspan, or the end of input.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PPM", Some(5 * S)));
    h.ev(0, 1, &[st(0, &k)]);
    h.ev(S, 2, &[st(1, &k)]);
    assert_eq!(h.advance(5 * S + 1), 1);
    h.ev(10 * S, 3, &[st(0, &k)]);
    h.ev(11 * S, 4, &[st(1, &k)]);
    h.finish();
    assert_eq!(h.ids(), vec![vec![Some(1), Some(2), None], vec![Some(3), Some(4), None]]);
}

#[test]
fn leading_and_trailing_missing_stages_follow_es() {
    // Section 7.3 / doCheckMissingEvents: with both, accept when there is no leading event,
    // else reject if firstTrailing - lastLeading <= maxspan.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("MPM", Some(5 * S)));
    h.ev(S, 1, &[st(1, &k)]);
    assert_eq!(h.out.len(), 1, "no leading event: accepted at once");
    h.ev(2 * S, 2, &[st(0, &k), st(2, &k)]);
    h.ev(20 * S, 3, &[st(0, &k), st(2, &k)]);
    h.ev(22 * S, 4, &[st(1, &k)]); // lastLeading 20
    h.ev(24 * S, 5, &[st(0, &k), st(2, &k)]); // 24 - 20 <= 5: reject
    h.ev(30 * S, 6, &[st(0, &k), st(2, &k)]);
    h.ev(31 * S, 7, &[st(1, &k)]); // lastLeading 30
    h.ev(35 * S + MS, 8, &[st(0, &k), st(2, &k)]); // 35.001 - 30 > 5
    h.finish();
    assert_eq!(h.ids(), vec![vec![None, Some(1), None], vec![None, Some(7), None]]);
}

// ---------------------------------------------------------------- join keys (section 4)

#[test]
fn optional_null_keys_join_null_and_nothing_else() {
    // Section 4.2: `?field` keys may be null, and null joins null.
    let null: Key = [KeyValue::Str("c".into()), KeyValue::Null].into_iter().collect();
    let empty: Key = [KeyValue::Str("c".into()), KeyValue::Str("".into())].into_iter().collect();
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &null)]);
    h.ev(2, 2, &[st(1, &empty)]);
    h.ev(3, 3, &[st(1, &null)]);
    assert_eq!(h.full(), vec![vec![1, 3]]);
    assert_eq!(h.out[0].key, null);
}

#[test]
fn an_event_without_its_mandatory_key_matches_no_stage() {
    // Section 4.2: a missing or null non-optional key means the event fails that stage; the
    // compiler then reports no hit for it, and the pending partial is left untouched.
    let k = key(&["c"]);
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &k)]);
    h.ev(2, 2, &[]); // stage 1 predicate true, but its key is null
    h.ev(3, 3, &[st(1, &k)]);
    assert_eq!(h.full(), vec![vec![1, 3]]);
}

#[test]
fn keys_are_compared_exactly_and_type_sensitively() {
    // Section 4.1: `Arrays.deepEquals`: case- and type-sensitive.
    let s: Key = [KeyValue::Str("1".into())].into_iter().collect();
    let i: Key = [KeyValue::I64(1)].into_iter().collect();
    let upper = key(&["C"]);
    let lower = key(&["c"]);
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &s), st(0, &lower)]);
    h.ev(2, 2, &[st(1, &i), st(1, &upper)]);
    assert!(h.out.is_empty());
}

#[test]
fn array_keys_run_one_machine_per_key_tuple() {
    // Section 4.3: multi-valued keys expand to the cartesian product, each its own machine.
    let a = key(&["c", "a"]);
    let b = key(&["c", "b"]);
    let mut h = Harness::new(&spec("PP", None));
    h.ev(1, 1, &[st(0, &a), st(0, &b)]);
    h.ev(2, 2, &[st(1, &b)]);
    h.ev(3, 3, &[st(0, &b)]);
    h.ev(4, 4, &[st(1, &a), st(1, &b)]);
    assert_eq!(h.full(), vec![vec![1, 2], vec![1, 4], vec![3, 4]]);
    assert_eq!(h.out.iter().map(|c| c.key.clone()).collect::<Vec<_>>(), vec![b.clone(), a, b]);
}

// ---------------------------------------------------------------- bounded state (issue item 5)

#[test]
fn global_cap_evicts_oldest_partials_first_and_counts_them() {
    let (k1, k2, k3) = (key(&["1"]), key(&["2"]), key(&["3"]));
    let mut h = Harness::with_cap(&spec("PP", None), 2);
    h.ev(1, 1, &[st(0, &k1)]);
    h.ev(2, 2, &[st(0, &k2)]);
    h.ev(3, 3, &[st(0, &k3)]);
    assert_eq!(h.m.partials(), 2);
    h.ev(4, 4, &[st(1, &k1), st(1, &k2)]);
    assert_eq!(h.full(), vec![vec![2, 4]]);
    assert_eq!(h.m.take_counters().evicted, 1);
}

// ---------------------------------------------------------------- event time (section 3)

fn stream(allowance: i64) -> RuleStream<u32> {
    RuleStream::new(
        &spec("PP", Some(10 * S)),
        StreamConfig { max_out_of_orderness_ns: allowance, ..StreamConfig::default() },
    )
}

#[test]
fn out_of_order_events_within_the_allowance_are_reordered() {
    // Section 3: ES sorts the whole range, so late-arriving events are placed by timestamp.
    let k = key(&["c"]);
    let mut s = stream(2 * S);
    let mut out = Vec::new();
    s.line(Some(11 * S), None, 2, vec![st(1, &k)], &mut out);
    s.line(Some(10 * S), None, 1, vec![st(0, &k)], &mut out);
    s.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].events, vec![Some(1), Some(2)]);
}

#[test]
fn late_events_are_passed_over_and_counted() {
    // Section 3 / issue item 4: an event behind the watermark is left out of detection.
    let k = key(&["c"]);
    let mut s = stream(2 * S);
    let mut out = Vec::new();
    assert_eq!(s.line(Some(10 * S), None, 1, vec![st(0, &k)], &mut out), LineOutcome::Buffered);
    assert_eq!(s.line(Some(13 * S), None, 2, vec![], &mut out), LineOutcome::Unmatched);
    // watermark = 11 s
    assert_eq!(s.line(Some(11 * S - MS), None, 3, vec![st(1, &k)], &mut out), LineOutcome::Late);
    assert_eq!(s.line(Some(11 * S), None, 4, vec![st(1, &k)], &mut out), LineOutcome::Buffered);
    assert_eq!(s.line(None, None, 5, vec![st(1, &k)], &mut out), LineOutcome::NoTimestamp);
    s.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].events, vec![Some(1), Some(4)]);
}

#[test]
fn equal_timestamps_with_tiebreaker_are_ordered_by_it_not_by_arrival() {
    // Section 3: ts, then tiebreaker (nulls last), then arrival.
    let k = key(&["c"]);
    let mut s = stream(0);
    let mut out = Vec::new();
    s.line(Some(5 * S), Some(TieBreaker::I64(2)), 2, vec![st(1, &k)], &mut out);
    s.line(Some(5 * S), Some(TieBreaker::I64(1)), 1, vec![st(0, &k)], &mut out);
    assert!(out.is_empty(), "ts == watermark is held back");
    s.line(Some(6 * S), None, 3, vec![], &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].events, vec![Some(1), Some(2)]);
}

#[test]
fn idle_release_emits_without_waiting_for_the_next_event() {
    // Issue item 4: after `idle_release` of wall-clock time without input, buffered events go.
    let k = key(&["c"]);
    let mut s = stream(2 * S);
    let mut out = Vec::new();
    let mut idle = IdleTimer::new(Duration::from_secs(1));
    let t0 = Instant::now();
    s.line(Some(10 * S), None, 1, vec![st(0, &k)], &mut out);
    idle.input(t0);
    s.line(Some(11 * S), None, 2, vec![st(1, &k)], &mut out);
    idle.input(t0);
    assert!(out.is_empty());
    assert!(!idle.due(t0 + Duration::from_millis(500), s.buffered()));
    assert!(idle.due(t0 + Duration::from_secs(1), s.buffered()));
    s.idle_release(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(s.buffered(), 0);
    // After the release, an older event is late rather than out of order.
    assert_eq!(s.line(Some(10 * S + MS), None, 3, vec![st(1, &k)], &mut out), LineOutcome::Late);
}

#[test]
fn superseded_partials_do_not_count_against_the_cap() {
    // Issue item 5: the cap counts live partials; replaced ones (section 1.3) are gone.
    let (k1, k2, k3) = (key(&["1"]), key(&["2"]), key(&["3"]));
    let mut h = Harness::with_cap(&spec("PP", None), 2);
    for t in 1..=5 {
        h.ev(t, t as u32, &[st(0, &k1)]);
    }
    h.ev(6, 6, &[st(0, &k2)]);
    assert_eq!(h.m.partials(), 2);
    assert_eq!(h.m.take_counters().evicted, 0);
    h.ev(7, 7, &[st(0, &k3)]);
    assert_eq!(h.m.take_counters().evicted, 1, "k1's newest partial, the oldest live one");
    h.ev(8, 8, &[st(1, &k1), st(1, &k2), st(1, &k3)]);
    assert_eq!(h.full(), vec![vec![6, 8], vec![7, 8]]);
}

#[test]
fn completed_partials_leave_no_state_behind() {
    // Issue item 5: partials that complete or are superseded leave no state behind.
    let mut h = Harness::new(&spec("PP", Some(10 * S)));
    for i in 0..10_000u32 {
        let k = key(&[&format!("k{}", (i / 2) % 100)]);
        h.ev(i64::from(i) * MS, i, &[st((i % 2) as u16, &k)]);
    }
    assert_eq!(h.m.partials(), 0, "every stage-0 partial was completed by the next event");
    assert_eq!(h.m.keys(), 0);
    assert_eq!(h.out.len(), 5_000);
}

// ---------------------------------------------------------------- what a checkpoint sees

fn held(h: &Harness) -> Vec<u32> {
    let mut v = Vec::new();
    h.m.for_each_held(|e| v.push(*e));
    v.sort_unstable();
    v
}

#[test]
fn the_machine_reports_every_event_it_still_holds_and_none_it_let_go() {
    let (a, b) = (key(&["a"]), key(&["b"]));
    let mut h = Harness::new(&spec("PPP", Some(10 * S)));
    h.ev(S, 1, &[st(0, &a)]);
    h.ev(2 * S, 2, &[st(0, &b)]);
    h.ev(3 * S, 3, &[st(1, &a)]);
    assert_eq!(held(&h), vec![1, 2, 3], "partials at two stages of two keys");
    assert_eq!(h.ev(4 * S, 4, &[st(2, &a)]), 1);
    assert_eq!(held(&h), vec![2], "a's sequence completed: its events are let go");
    h.advance(20 * S);
    assert_eq!(held(&h), Vec::<u32>::new(), "b's partial expired");

    // A candidate waiting for its trailing missing-event window is held too.
    let mut h = Harness::new(&spec("PPM", Some(10 * S)));
    h.ev(S, 7, &[st(0, &a)]);
    h.ev(2 * S, 8, &[st(1, &a)]);
    assert_eq!(held(&h), vec![7, 8]);
    h.advance(30 * S);
    assert_eq!(h.out.len(), 1);
    assert_eq!(held(&h), Vec::<u32>::new());
}
