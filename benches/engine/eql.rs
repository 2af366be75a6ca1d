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

const RULE: &str = include_str!("../../config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml");
const TEMPLATES: &str = include_str!("data/seed_events.ndjson");
const EVENTS: usize = 1024;

fn seed_query() -> String {
    let v: toml::Value = toml::from_str(RULE).expect("seed rule is valid TOML");
    v["rule"]["query"].as_str().expect("seed rule has a query").to_string()
}

/// `EVENTS` events: the create/exec/delete templates with varied names, paths, parents,
/// tools and containers, so that every branch of the conditions is exercised.
fn events() -> Vec<String> {
    let t: Vec<&str> = TEMPLATES.lines().collect();
    let names = ["xmrig", "kworker", "miner", "a.out", "payload"];
    let dirs = ["/tmp/", "/dev/shm/", "/usr/local/bin/", "/home/u/", "/opt/app/", "/var/lib/"];
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
                1 => e = e.replacen("\"name\":\"sh\"", &format!("\"name\":{}", parents[(i / 3) % parents.len()]), 1),
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
    let parsed: Vec<_> =
        decoders.iter_mut().zip(&lines).map(|(d, l)| d.decode(l.as_bytes()).expect("bench events are valid")).collect();
    let matched: usize = parsed.iter().map(|ev| stages.iter().filter(|s| s.matches(ev)).count()).sum();
    assert!(matched > 0 && matched < parsed.len(), "a mix of matching and non-matching events");

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
    production_rules(c, &lines);
}

/// The compilable queries of the corpus (`sample` ones are left out).
fn queries_text(text: &str) -> Vec<String> {
    let mut scratch = FieldTable::new();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["query"].as_str().map(str::to_string))
        .filter(|q| eql::compile(q, &mut scratch).is_ok())
        .collect()
}

/// Every stage of all 1021 compilable production rules (Elastic's prebuilt EQL corpus) on the
/// same events: what evaluating a full rule set costs per event, decode included, next to the
/// decode alone with the field table of all those rules, and with rule dispatch
/// (`eqlstream::dispatch`) in front. Skipped when the corpus is absent.
fn production_rules(c: &mut Criterion, lines: &[String]) {
    let Ok(text) =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/eql_production_queries.jsonl"))
    else {
        return;
    };
    let mut fields = FieldTable::new();
    let queries: Vec<eql::Query> =
        queries_text(&text).into_iter().filter_map(|q| eql::compile(&q, &mut fields).ok().map(|c| c.query)).collect();
    let stages: Vec<&eql::Stage> = queries.iter().flat_map(|q| q.stages.iter()).collect();
    let mut group = c.benchmark_group(format!("eql/production_rules_{}", queries.len()));
    group.throughput(Throughput::Elements(lines.len() as u64));
    let mut dec = Decoder::new(&fields);
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in lines {
                n += usize::from(dec.decode(l.as_bytes()).is_ok());
            }
            n
        })
    });
    let specs = queries_text(&text)
        .into_iter()
        .enumerate()
        .map(|(i, q)| eqlstream::rules::RuleSpec { rule_id: format!("r{i}"), query: q, ..Default::default() })
        .collect();
    let set = eqlstream::ruleset::RuleSet::compile(specs).expect("production rules compile");
    let mut dec2 = Decoder::new(&set.fields);
    let mut scratch = eqlstream::dispatch::Scratch::default();
    group.bench_function("decode_and_dispatch_all", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in lines {
                if let Ok(ev) = dec2.decode(l.as_bytes()) {
                    let cands = set.dispatch.candidates(&ev, &mut scratch).len();
                    for i in 0..cands {
                        let Some(&e) = scratch.candidate(i) else { break };
                        let at = set.dispatch.entries()[e as usize].at;
                        n += usize::from(set.stage(at).is_some_and(|s| s.matches(&ev)));
                    }
                }
            }
            n
        })
    });
    group.bench_function("decode_and_match_all", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in lines {
                if let Ok(ev) = dec.decode(l.as_bytes()) {
                    for s in &stages {
                        n += usize::from(s.matches(&ev));
                    }
                }
            }
            n
        })
    });
    group.finish();
}
