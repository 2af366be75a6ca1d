//! Join-key expansion benches (issue 13, row 1): what one matching line costs, decode, stage
//! match and key tuples included, when its two join keys are arrays of 300 distinct values each
//! (`keys/arrays_300x300`; before the cap this line cost 108 s of CPU in a release build), next to
//! the same event with single-valued keys (`keys/single_values`) as the baseline. The hostile line
//! must stay well under a millisecond: expansion is linear in the number of key values and stops
//! at `max_key_combinations` (64 by default).
//!
//! `keys/fingerprint`: the 128-bit fingerprint of a seed-rule join key (what the sequencer computes
//! for every key of every matched event), now SipHash-1-3 under two independent keys, against the
//! two std `RandomState` hashes it replaced (`keys/fingerprint_std_baseline`).

use criterion::{Criterion, Throughput};
use eqlstream::eql;
use eqlstream::event::{Decoder, FieldTable};
use eqlstream::sequence::key::{Fingerprinter, Key, KeyValue};

const RULE: &str = include_str!("../../config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml");
const TEMPLATES: &str = include_str!("data/seed_events.ndjson");

/// The seed template's creation event, with `container.id` and `user.id` arrays of `n` values.
fn creation(n: usize) -> String {
    let line = TEMPLATES.lines().find(|l| l.contains("\"creation\"")).expect("a creation template");
    let mut ev: serde_json::Value = serde_json::from_str(line).expect("template is JSON");
    if n > 1 {
        ev["container"]["id"] = (0..n).map(|i| format!("c{i:03}")).collect();
        ev["user"]["id"] = (0..n).map(|i| format!("u{i:03}")).collect();
    }
    ev.to_string()
}

/// Runs the benches of this module.
pub fn benches(c: &mut Criterion) {
    let v: toml::Value = toml::from_str(RULE).expect("seed rule is valid TOML");
    let query = v["rule"]["query"].as_str().expect("seed rule has a query");
    let mut fields = FieldTable::new();
    let compiled = eql::compile(query, &mut fields).expect("seed rule compiles");
    let stage = &compiled.query.stages[0];
    let mut dec = Decoder::new(&fields);
    let mut keys = Vec::new();

    let mut group = c.benchmark_group("keys");
    group.throughput(Throughput::Elements(1));
    for (name, n, tuples) in [("single_values", 1, 1), ("arrays_300x300", 300, 64)] {
        let line = creation(n);
        {
            let ev = dec.decode(line.as_bytes()).expect("bench event is valid");
            assert!(stage.matches(&ev), "the creation event matches stage 0");
            stage.keys(&ev, &mut keys);
            assert_eq!(keys.len(), tuples);
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                let ev = dec.decode(std::hint::black_box(line.as_bytes())).expect("valid");
                if stage.matches(&ev) {
                    stage.keys(&ev, &mut keys);
                }
                keys.len()
            })
        });
    }

    let key: Key = [
        KeyValue::Str("1d556f67a5106665bcde819619d16bee798378befd4248c8ebcf111b69e63732".into()),
        KeyValue::Str("0".into()),
    ]
    .into_iter()
    .collect();
    let fp = Fingerprinter::new();
    group.bench_function("fingerprint", |b| b.iter(|| fp.of(std::hint::black_box(&key))));
    let std_states = [std::hash::RandomState::new(), std::hash::RandomState::new()];
    group.bench_function("fingerprint_std_baseline", |b| {
        use std::hash::BuildHasher;
        b.iter(|| {
            let k = std::hint::black_box(&key[..]);
            [std_states[0].hash_one(k), std_states[1].hash_one(k)]
        })
    });
    group.finish();
}
