//! EQL evaluation benches: the seed rule's three stage conditions
//! (defense_evasion_file_creation_execution_deletion_cradle) over realistic parsed
//! Defend-for-Containers events (~1.3 KB each, variations of the seed cases: matching and
//! non-matching names, paths, parents and deleters).
//!
//! What it demonstrates: the cost of `Stage::matches` per event on an already parsed tape
//! (`seed_stages/matches`), the decode alone as the baseline (`seed_stages/decode`: simd-json
//! tape + one walk that indexes the referenced fields), and both together
//! (`seed_stages/decode_and_match`), as events/s (`Throughput::Elements`).

use criterion::{BatchSize, Criterion, Throughput};
use eqlstream::eql;
use eqlstream::event::{Decoder, FieldTable};

const RULE: &str =
    include_str!("../../config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml");
const TEMPLATES: &str = include_str!("data/seed_events.ndjson");
const EVENTS: usize = 1024;

fn seed_query() -> String {
    let v: toml::Value = toml::from_str(RULE).expect("seed rule is valid TOML");
    v["rule"]["query"]
        .as_str()
        .expect("seed rule has a query")
        .to_string()
}

/// `EVENTS` events: the create/exec/delete templates with varied names, paths, parents,
/// tools and containers, so that every branch of the conditions is exercised.
fn events() -> Vec<String> {
    let t: Vec<&str> = TEMPLATES.lines().collect();
    let names = ["xmrig", "kworker", "miner", "a.out", "payload"];
    let dirs = [
        "/tmp/",
        "/dev/shm/",
        "/usr/local/bin/",
        "/home/u/",
        "/opt/app/",
        "/var/lib/",
    ];
    let tools = ["\"curl\"", "\"wget\"", "\"python3\"", "\"scp\""];
    let parents = ["\"sh\"", "\"bash\"", "\"python\"", "\"busybox\""];
    let deleters = ["\"xmrig\"", "\"rm\"", "\"gcc\"", "\"miner\""];
    (0..EVENTS)
        .map(|i| {
            let name = names[i % names.len()];
            let dir = dirs[(i / 3) % dirs.len()];
            let mut e = t[i % t.len()]
                .replace("/tmp/xmrig", &format!("{dir}{name}"))
                .replace("\"xmrig\"", &format!("\"{name}\""))
                .replace("1d556f67a5106665", &format!("{:016x}", i / 3));
            match i % 3 {
                0 => e = e.replacen("\"curl\"", tools[(i / 3) % tools.len()], 1),
                1 => {
                    e = e.replacen(
                        "\"name\":\"sh\"",
                        &format!("\"name\":{}", parents[(i / 3) % parents.len()]),
                        1,
                    )
                }
                _ => {
                    e = e.replacen(
                        &format!("\"name\":\"{name}\""),
                        &format!("\"name\":{}", deleters[(i / 3) % deleters.len()]),
                        1,
                    )
                }
            }
            e
        })
        .collect()
}

/// Runs the benches of this module.
pub fn benches(c: &mut Criterion) {
    let mut fields = FieldTable::new();
    let compiled = eql::compile(&seed_query(), &mut fields).expect("seed rule compiles");
    let stages = &compiled.query.stages;
    let lines = events();

    let mut group = c.benchmark_group("eql/seed_stages");
    group.throughput(Throughput::Elements(lines.len() as u64));

    let mut decoders: Vec<Decoder> = lines.iter().map(|_| Decoder::new(&fields)).collect();
    let parsed: Vec<_> = decoders
        .iter_mut()
        .zip(&lines)
        .map(|(d, l)| d.decode(l.as_bytes()).expect("bench events are valid"))
        .collect();
    let matched: usize = parsed
        .iter()
        .map(|ev| stages.iter().filter(|s| s.matches(ev)).count())
        .sum();
    assert!(
        matched > 0 && matched < parsed.len(),
        "a mix of matching and non-matching events"
    );

    group.bench_function("matches", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for ev in &parsed {
                for s in stages {
                    n += usize::from(s.matches(std::hint::black_box(ev)));
                }
            }
            n
        })
    });

    let mut dec = Decoder::new(&fields);
    // Baseline in the same run: parsing + field indexing only.
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                n += usize::from(dec.decode(l.as_bytes()).is_ok());
            }
            n
        })
    });

    group.bench_function("decode_and_match", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut n = 0usize;
                for l in &lines {
                    if let Ok(ev) = dec.decode(l.as_bytes()) {
                        for s in stages {
                            n += usize::from(s.matches(&ev));
                        }
                    }
                }
                n
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}
