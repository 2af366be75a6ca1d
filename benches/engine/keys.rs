//! Join-key expansion benches (issue 13, row 1): what one matching line costs, decode, stage
//! match and key tuples included, when its two join keys are arrays of 300 distinct values each
//! (`keys/arrays_300x300`; before the cap this line cost 108 s of CPU in a release build), next to
//! the same event with single-valued keys (`keys/single_values`) as the baseline. The hostile line
//! must stay well under a millisecond: expansion is linear in the number of key values and stops
//! at `max_key_combinations` (64 by default).

use criterion::{Criterion, Throughput};
use eqlstream::eql;
use eqlstream::event::{Decoder, FieldTable};

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
    group.finish();
}
