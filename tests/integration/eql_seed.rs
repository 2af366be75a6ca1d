//! The seed rule (defense_evasion_file_creation_execution_deletion_cradle) end to end through the
//! EQL front end: every event of the synthetic cases is decoded and matched against the three
//! compiled stages, and a minimal reference of ES's sequence state machine
//! (eql-semantics.md section 0/1: one pending sequence per (stage, key), newest wins, inclusive
//! maxspan) must reproduce exactly the 6 sequences of `seed_rule_cases.expected_es.jsonl`.

use std::collections::HashMap;

use eqlstream::eql;
use eqlstream::event::{Decoder, FieldTable, Scalar};
use eqlstream::sequence::key::Key;

const RULE: &str = include_str!("../../config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml");
const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cloud_defend/seed_rule_cases.ndjson");
const EXPECTED: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cloud_defend/seed_rule_cases.expected_es.jsonl");

fn seed_query() -> String {
    let v: toml::Value = toml::from_str(RULE).expect("seed rule is valid TOML");
    v["rule"]["query"].as_str().expect("seed rule has a query").to_string()
}

struct Matched {
    /// stage index -> keys, for stages the event matches
    stages: Vec<(usize, Vec<Key>)>,
    ts_ms: i64,
    case: String,
}

fn run_stages() -> (eql::Compiled, Vec<Matched>) {
    let mut fields = FieldTable::new();
    let compiled = eql::compile(&seed_query(), &mut fields).expect("seed rule compiles");
    let ts = fields.intern("event.ingested");
    let case = fields.intern("labels.case");
    let mut dec = Decoder::new(&fields);
    let text = std::fs::read_to_string(EVENTS).expect("seed events present");
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        let ev = dec.decode(line.as_bytes()).expect("seed events are valid JSON objects");
        let mut m = Matched { stages: Vec::new(), ts_ms: 0, case: String::new() };
        if let Some(Scalar::Str(t)) = ev.first(ts) {
            let st = humantime::parse_rfc3339(t).expect("valid timestamp");
            m.ts_ms = st.duration_since(std::time::UNIX_EPOCH).expect("after epoch").as_millis() as i64;
        }
        if let Some(Scalar::Str(c)) = ev.first(case) {
            m.case = c.to_string();
        }
        for (i, s) in compiled.query.stages.iter().enumerate() {
            if s.matches(&ev) {
                s.keys(&ev, &mut keys);
                m.stages.push((i, keys.clone()));
            }
        }
        out.push(m);
    }
    (compiled, out)
}

#[test]
fn seed_rule_compiles_to_three_keyed_stages() {
    let (c, _) = run_stages();
    let spec = c.query.sequence.as_ref().expect("a sequence");
    assert_eq!(spec.stages.len(), 3);
    assert_eq!(spec.key_arity, 3);
    assert_eq!(spec.maxspan_ns, Some(10_000_000_000));
    assert!(!spec.has_until);
    assert!(c.warnings.is_empty());
}

#[test]
fn stage_membership_follows_es_semantics() {
    let (_, evs) = run_stages();
    let stages_of = |case: &str| -> Vec<usize> {
        let m = evs.iter().find(|m| m.case == case).unwrap_or_else(|| panic!("case {case} present"));
        m.stages.iter().map(|s| s.0).collect()
    };
    // 6.3: `not process.name in (...)` is true when process.name is missing.
    assert_eq!(stages_of("P6_es_only_missing_deleter_name:delete"), [2]);
    assert_eq!(stages_of("N1_deleted_by_rm:delete"), Vec::<usize>::new());
    // 6.4: any arg in the exclusion list excludes.
    assert_eq!(stages_of("N7_args_contains_which:create"), Vec::<usize>::new());
    // 6.2: `in` and `like` are case-sensitive.
    assert_eq!(stages_of("N8_case_CURL:create"), Vec::<usize>::new());
    assert_eq!(stages_of("N14_path_case_TMP:create"), Vec::<usize>::new());
    // 4.2: a mandatory key without value excludes the event from the stage.
    assert_eq!(stages_of("N12_null_user_id:create"), Vec::<usize>::new());
    assert_eq!(stages_of("N6_sh_dash_c_string:create"), Vec::<usize>::new());
    assert_eq!(stages_of("N13_fork_not_exec:fork"), Vec::<usize>::new());
    assert_eq!(stages_of("P1_curl_tmp:create"), [0]);
    assert_eq!(stages_of("P1_curl_tmp:exec"), [1]);
    assert_eq!(stages_of("P2_busybox_wget_devshm:create"), [0]);
}

/// eql-semantics.md section 0, for one sequence without until/missing stages.
fn reference_sequences(evs: &[Matched], n: usize, maxspan_ms: i64) -> Vec<(Key, Vec<usize>)> {
    let mut pending: Vec<HashMap<Key, (i64, Vec<usize>)>> = vec![HashMap::new(); n];
    let mut done = Vec::new();
    for (idx, e) in evs.iter().enumerate() {
        for i in (0..n).rev() {
            for (stage, keys) in &e.stages {
                if *stage != i {
                    continue;
                }
                for key in keys {
                    if i == 0 {
                        pending[0].insert(key.clone(), (e.ts_ms, vec![idx]));
                        continue;
                    }
                    let Some((start, mut seq)) = pending[i - 1].remove(key) else {
                        continue;
                    };
                    if e.ts_ms - start > maxspan_ms {
                        continue;
                    }
                    seq.push(idx);
                    if i == n - 1 {
                        done.push((key.clone(), seq));
                    } else {
                        pending[i].insert(key.clone(), (start, seq));
                    }
                }
            }
        }
    }
    done
}

#[test]
fn seed_cases_give_the_expected_es_sequences() {
    let (c, evs) = run_stages();
    let spec = c.query.sequence.as_ref().expect("a sequence");
    let got = reference_sequences(&evs, 3, (spec.maxspan_ns.unwrap_or(0) / 1_000_000) as i64);
    let expected: Vec<(Vec<serde_json::Value>, Vec<usize>)> = std::fs::read_to_string(EXPECTED)
        .expect("expected file present")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("valid json");
            let keys = v["join_keys"].as_array().expect("join_keys").clone();
            let idx = v["idx"].as_array().expect("idx").iter().map(|i| i.as_u64().expect("index") as usize).collect();
            (keys, idx)
        })
        .collect();
    let got: Vec<(Vec<serde_json::Value>, Vec<usize>)> =
        got.into_iter().map(|(k, idx)| (k.iter().map(|v| v.to_json()).collect(), idx)).collect();
    assert_eq!(got, expected);
}
