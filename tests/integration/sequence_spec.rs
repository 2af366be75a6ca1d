//! Elasticsearch's own sequence spec (`x-pack/plugin/eql/src/test/resources/sequences.series-spec`,
//! copied to /work/shared/data/es-spec/, quoted in eql-semantics.md section 1.4) run through the
//! sequence machine: every case is one test below.
//!
//! Format: a case name; one line per stage listing that stage's hits as `[key|]<letter><ordinal>`
//! (the number is both the timestamp and the order; the same number on two lines is one event
//! matching two stages); `;`; the expected sequences, one per line, the first token carrying the
//! key; `;`. `//` starts a comment line.

use std::collections::BTreeMap;

use eqlstream::sequence::key::{Key, KeyValue};
use eqlstream::sequence::spec::{SequenceSpec, StageKind};
use eqlstream::sequence::{Completed, HitKind, Ordinal, PartitionedMachine, SequenceMachine};

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/es-spec/sequences.series-spec");

struct Case {
    name: String,
    stages: Vec<Vec<String>>,
    expected: Vec<(Option<String>, Vec<String>)>,
}

fn split_key(token: &str) -> (Option<String>, String) {
    match token.split_once('|') {
        Some((k, rest)) => (Some(k.to_string()), rest.to_string()),
        None => (None, token.to_string()),
    }
}

fn ordinal_of(name: &str) -> u64 {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    digits.parse().unwrap_or_else(|_| panic!("spec token {name:?} has no ordinal"))
}

fn parse_spec(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//"));
    while let Some(name) = lines.next() {
        let mut stages = Vec::new();
        for line in lines.by_ref() {
            if line == ";" {
                break;
            }
            stages.push(line.split_whitespace().map(String::from).collect());
        }
        let mut expected = Vec::new();
        for line in lines.by_ref() {
            if line == ";" {
                break;
            }
            let mut tokens = line.split_whitespace();
            let first = tokens.next().expect("an expected line has tokens");
            let (key, first) = split_key(first);
            let mut names = vec![first];
            names.extend(tokens.map(String::from));
            expected.push((key, names));
        }
        cases.push(Case { name: name.to_string(), stages, expected });
    }
    cases
}

fn key_of(k: &Option<String>) -> Key {
    k.iter().map(|s| KeyValue::Str(s.as_str().into())).collect()
}

type Events = BTreeMap<u64, (String, Option<String>, Vec<u16>)>;

fn events_of(case: &Case) -> Events {
    let mut events: Events = BTreeMap::new();
    for (stage, tokens) in case.stages.iter().enumerate() {
        for token in tokens {
            let (key, name) = split_key(token);
            let e = events.entry(ordinal_of(&name)).or_insert_with(|| (name.clone(), key.clone(), Vec::new()));
            assert_eq!(e.1, key, "{}: event {name} with two keys", case.name);
            e.2.push(stage as u16);
        }
    }
    events
}

fn spec_of(case: &Case) -> SequenceSpec {
    SequenceSpec {
        stages: vec![StageKind::Positive; case.stages.len()],
        maxspan_ns: None,
        has_until: false,
        key_arity: 1,
    }
}

fn render(done: Vec<Completed<String>>) -> Vec<(Option<String>, Vec<String>)> {
    done.into_iter()
        .map(|c| {
            let key = c.key.first().map(|v| match v {
                KeyValue::Str(s) => s.to_string(),
                other => panic!("unexpected key {other:?}"),
            });
            let names = c.events.into_iter().map(|e| e.expect("no missing stages")).collect();
            (key, names)
        })
        .collect()
}

fn run_single(case: &Case) -> Vec<(Option<String>, Vec<String>)> {
    let mut machine = SequenceMachine::new(&spec_of(case), 1_000_000);
    let mut out = Vec::new();
    for (ordinal, (name, key, stages)) in events_of(case) {
        let hits: Vec<(HitKind, Key)> = stages.iter().map(|s| (HitKind::Stage(*s), key_of(&key))).collect();
        let ord = Ordinal::new(ordinal as i64, ordinal);
        machine.on_event(&ord, &name, &hits, &mut out);
        machine.advance(ordinal as i64, &mut out);
    }
    machine.finish(&mut out);
    render(out)
}

fn run_partitioned(case: &Case, partitions: usize) -> Vec<(Option<String>, Vec<String>)> {
    let mut machine = PartitionedMachine::new(&spec_of(case), partitions, 1_000_000);
    let mut out = Vec::new();
    for (ordinal, (name, key, stages)) in events_of(case) {
        let hits: Vec<(HitKind, Key)> = stages.iter().map(|s| (HitKind::Stage(*s), key_of(&key))).collect();
        let ord = Ordinal::new(ordinal as i64, ordinal);
        machine.on_event(&ord, &name, &hits);
        machine.end_step(Some(ordinal as i64), &mut out);
    }
    machine.finish(&mut out);
    render(out)
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(SPEC_PATH).unwrap_or_else(|e| panic!("cannot read {SPEC_PATH}: {e}"));
    parse_spec(&text)
}

fn run_case(name: &str) {
    let all = cases();
    let case = all.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name} in {SPEC_PATH}"));
    assert!(!case.stages.is_empty(), "{name}: no stages parsed");
    assert_eq!(run_single(case), case.expected, "{name} (single machine)");
    for partitions in [1, 2, 4] {
        assert_eq!(run_partitioned(case, partitions), case.expected, "{name} ({partitions} partitions)");
    }
}

macro_rules! spec_cases {
    ($($name:ident),* $(,)?) => {
        const LISTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            #[allow(non_snake_case)]
            fn $name() {
                // eql-semantics.md section 1.4 (and sections 0, 1.3 for the rules it checks).
                run_case(stringify!($name));
            }
        )*
    };
}

spec_cases!(
    trivialSequence,
    trivialSequenceWithLeftoverPrevStage,
    trivialSequenceWithLeftoverCurrentStage,
    basicSequenceOneAfterTheOther,
    basicSequenceMergingPreviousStage,
    basicSequenceMergingLastStage,
    basicSequenceWithDualMergingPreviousStage,
    basicSequenceWithMultipleLeftoverEvents,
    basicSequenceWithMultipleLeftoverEventsOnCurrentStage,
    basicSequenceMergingCurrentStage,
    basicSequenceWithMergingCurrentStageAndLeftOverInPreviousStage,
    basicSequenceWithMergingOnBothStagesAndLeftoverInPreviousStage,
    threeStageBasicSequence,
    threeStageWithOverridingSequence,
    threeStageWithOverridingSequenceOnSecondStage,
    threeStageWithNoise,
    threeStageWithIntermittentUpdates,
    threeStageWithMoreIntermittentUpdates,
    threeStageWithReverseMatch,
    threeStageWithLeftoversOnTheLastStage,
    threeStageWithOverlap,
    fourStageBasic,
    fourStageIncomplete,
    fourStageOverlapping,
    exampleWithTwoStagesAndKeyFromTheDocs,
);

#[test]
fn every_case_in_the_spec_file_is_listed_as_a_test() {
    let names: Vec<String> = cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names, LISTED, "the spec file and the test list differ");
}

#[test]
fn reader_parses_keys_shared_ordinals_and_expected_lines() {
    let text = "// c\nx\nk|A1 k|A3\n  k|B2 k|B3\n;\nk|A1 B2\n;\n";
    let case = &parse_spec(text)[0];
    assert_eq!(case.name, "x");
    let ev = events_of(case);
    assert_eq!(ev[&3].2, vec![0, 1], "ordinal 3 matches both stages");
    assert_eq!(case.expected, vec![(Some("k".to_string()), vec!["A1".to_string(), "B2".to_string()])]);
}
