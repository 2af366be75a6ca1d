//! Rule dispatch against brute force: over Elastic's 1,021 production rules (and the 16 prebuilt
//! rules of tests/data/rules), on the seed cases, hand-made events and generated events, the
//! stages that match among dispatch's candidates are exactly the stages that match among all
//! stages of the rules whose index patterns select the event (eql-semantics.md 5 and 6; index
//! patterns: `eqlstream::dispatch::index`). So dispatch skips no stage that can match.
//!
//! Generated events are close calls: each takes the required terms of one stage of one rule
//! (one term per clause, so that the stage is a candidate), in changed case, as prefixes
//! completed or cut, as arrays, dotted or nested, plus terms of other rules and a data stream.

use std::path::PathBuf;
use std::sync::OnceLock;

use eqlstream::dispatch::{index, Scratch};
use eqlstream::event::Decoder;
use eqlstream::rules::RuleSpec;
use eqlstream::ruleset::{RuleSet, StageRef};
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/eql_production_queries.jsonl");
const SEED_CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cloud_defend/seed_rule_cases.ndjson");

/// The 1,021 runnable production rules, with their index patterns.
fn production_specs() -> Vec<RuleSpec> {
    let text = std::fs::read_to_string(CORPUS).expect("corpus present");
    let mut scratch = eqlstream::event::FieldTable::new();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["query"].as_str().is_some_and(|q| eqlstream::eql::compile(q, &mut scratch).is_ok()))
        .enumerate()
        .map(|(i, v)| RuleSpec {
            rule_id: format!("r{i}"),
            query: v["query"].as_str().unwrap_or_default().to_string(),
            index: v["index"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            ..Default::default()
        })
        .collect()
}

/// The production rules with dispatch on, and the same with brute force.
fn production() -> &'static (RuleSet, RuleSet) {
    static SETS: OnceLock<(RuleSet, RuleSet)> = OnceLock::new();
    SETS.get_or_init(|| {
        let specs = production_specs();
        assert_eq!(specs.len(), 1021);
        let on = RuleSet::compile(specs.clone()).expect("compiles");
        let mut off = RuleSet::compile(specs).expect("compiles");
        off.configure_dispatch(None, false);
        (on, off)
    })
}

/// The stages that match `line`: among dispatch's candidates, among brute force's candidates,
/// and among every stage of every rule whose patterns select the event's index (computed here
/// from the generated data stream).
fn compare(on: &RuleSet, off: &RuleSet, line: &str, index_name: Option<&str>) -> (usize, usize) {
    let mut dec = Decoder::new(&on.fields);
    let Ok(ev) = dec.decode(line.as_bytes()) else { return (0, 0) };
    let mut scratch = Scratch::default();
    // As the decode workers do: candidates that match, of rules whose patterns select the event.
    let matching = |set: &RuleSet, ev: &eqlstream::event::Event<'_>, scratch: &mut Scratch| -> (usize, Vec<StageRef>) {
        let cands = set.dispatch.candidates(ev, scratch).to_vec();
        let hits = cands
            .iter()
            .filter(|&&e| {
                let at = set.dispatch.entries()[e as usize].at;
                set.stage(at).is_some_and(|s| s.matches(ev)) && set.dispatch.selects(e, ev, scratch)
            })
            .map(|&e| set.dispatch.entries()[e as usize].at)
            .collect();
        (cands.len(), hits)
    };
    let (cands, by_dispatch) = matching(on, &ev, &mut scratch);
    let mut dec_off = Decoder::new(&off.fields);
    let ev_off = dec_off.decode(line.as_bytes()).expect("decoded once already");
    let (_, brute) = matching(off, &ev_off, &mut Scratch::default());
    let mut all = Vec::new();
    for (r, rule) in on.rules.iter().enumerate() {
        let selected = rule.spec.index.is_empty()
            || index_name.is_none_or(|n| {
                let patterns: Vec<Box<str>> = rule.spec.index.iter().map(|p| Box::from(p.as_str())).collect();
                index::selects(&patterns, n)
            });
        if !selected {
            continue;
        }
        let q = &rule.query;
        let stages = (0..q.stages.len() as u32).chain(q.until.iter().map(|_| StageRef::UNTIL));
        for s in stages {
            let at = StageRef { rule: r as u32, stage: s };
            if on.stage(at).is_some_and(|st| st.matches(&ev)) {
                all.push(at);
            }
        }
    }
    assert_eq!(by_dispatch, all, "dispatch vs every stage: {line}");
    assert_eq!(brute, all, "brute force vs every stage: {line}");
    (cands, all.len())
}

/// The data stream fields Fleet would give an event of `dataset`, and its index name.
const DATASETS: [&str; 8] = [
    "cloud_defend.process",
    "cloud_defend.file",
    "endpoint.events.process",
    "endpoint.events.file",
    "windows.sysmon_operational",
    "system.security",
    "kubernetes.audit_logs",
    "okta.system",
];

/// Data stream fields (type, dataset, namespace) whose name `pattern` selects.
fn stream_for(pattern: &str) -> [String; 3] {
    let name = pattern.rsplit(':').next().unwrap_or(pattern).replace('*', "");
    let mut parts: Vec<String> = name.splitn(2, '-').map(String::from).collect();
    let rest = parts.pop().unwrap_or_default();
    let ty = parts.pop().unwrap_or_else(|| "logs".into());
    let rest = if rest.ends_with('-') || rest.is_empty() { format!("{rest}default") } else { rest };
    match rest.rsplit_once('-') {
        Some((ds, ns)) if !ds.is_empty() && !ns.is_empty() => [ty, ds.to_string(), ns.to_string()],
        _ => [ty, rest, "default".into()],
    }
}

fn set_path(obj: &mut Map<String, Value>, path: &str, v: Value, dotted: bool) {
    if dotted {
        obj.insert(path.to_string(), v);
        return;
    }
    let segs: Vec<&str> = path.split('.').collect();
    let mut at = obj;
    for seg in &segs[..segs.len() - 1] {
        let e = at.entry(seg.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !e.is_object() {
            *e = Value::Object(Map::new());
        }
        let Value::Object(m) = e else { unreachable!("made an object above") };
        at = m;
    }
    at.insert(segs[segs.len() - 1].to_string(), v);
}

/// A value that satisfies `term` (or nearly does, when `miss`), in a random case when it is
/// case-insensitive.
fn realise(t: &eqlstream::eql::Term, rng: &mut impl Rng, miss: bool) -> String {
    let mut v = t.value.to_string();
    if !t.whole {
        v.push_str(["", "x", "/a/b", ".exe", " -c 'y'"][rng.random_range(0..5)]);
    }
    if t.ci {
        v = v.chars().map(|c| if rng.random_bool(0.5) { c.to_ascii_uppercase() } else { c }).collect();
        if rng.random_bool(0.05) {
            v = v.replacen('k', "\u{212A}", 1);
        }
    }
    if miss {
        match rng.random_range(0..4) {
            0 => v.push('x'),
            1 => {
                v.pop();
            }
            2 => v = v.to_uppercase(),
            _ => v.insert(0, ' '),
        }
    }
    v
}

/// An event close to stage `stage` of rule `rule`; returns the line and its index name.
fn event(on: &RuleSet, rule: usize, stage: usize, seed: u64) -> (String, Option<String>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let q = &on.rules[rule].query;
    let st = q.stages.get(stage).or(q.until.as_ref()).unwrap_or(&q.stages[0]);
    let mut obj = Map::new();
    obj.insert("@timestamp".into(), "2026-03-05T10:00:00.000Z".into());
    let mut fields: Vec<(String, Vec<Value>)> = Vec::new();
    let mut add = |path: &str, v: Value| match fields.iter_mut().find(|(p, _)| p == path) {
        Some((_, vs)) => vs.push(v),
        None => fields.push((path.to_string(), vec![v])),
    };
    for clause in st.required_terms() {
        if clause.is_empty() || rng.random_bool(0.05) {
            continue;
        }
        let t = &clause[rng.random_range(0..clause.len())];
        let miss = rng.random_bool(0.1);
        add(on.fields.path(t.field), Value::from(realise(t, &mut rng, miss)));
    }
    // Terms of other rules, and odd values.
    for _ in 0..rng.random_range(0..6) {
        let other = &on.rules[rng.random_range(0..on.rules.len())].query.stages[0];
        let terms = other.required_terms();
        if let Some(clause) = terms.get(rng.random_range(0..terms.len().max(1))) {
            if let Some(t) = clause.first() {
                add(on.fields.path(t.field), Value::from(realise(t, &mut rng, false)));
            }
        }
    }
    if rng.random_bool(0.2) {
        add("process.interactive", Value::from(rng.random_bool(0.5)));
    }
    if rng.random_bool(0.1) {
        add("process.pid", Value::from(rng.random_range(0..100)));
    }
    // Mostly a data stream the rule's own index patterns select; else another one, or none.
    let own = &on.rules[rule].spec.index;
    let stream = match rng.random_range(0..10) {
        0 => None,
        1..=6 if !own.is_empty() => Some(stream_for(&own[rng.random_range(0..own.len())])),
        i => {
            let ds = DATASETS[i % DATASETS.len()];
            Some(["logs", ds, if rng.random_bool(0.8) { "default" } else { "prod" }].map(String::from))
        }
    };
    // One value each (replacing values other rules' terms gave), or the index is unknown.
    fields.retain(|(p, _)| !p.starts_with("data_stream."));
    let index_name = stream.map(|parts| {
        for (f, v) in index::DATA_STREAM_FIELDS.iter().zip(&parts) {
            fields.push((f.to_string(), vec![Value::from(v.as_str())]));
        }
        parts.join("-")
    });
    for (path, mut vs) in fields {
        let dotted = rng.random_bool(0.2);
        let v = if vs.len() == 1 && rng.random_bool(0.7) { vs.remove(0) } else { Value::Array(vs) };
        set_path(&mut obj, &path, v, dotted);
    }
    (Value::Object(obj).to_string(), index_name)
}

#[test]
fn dispatch_equals_brute_force_on_seed_and_hand_made_events() {
    let (on, off) = production();
    let mut events: Vec<(String, Option<String>)> = std::fs::read_to_string(SEED_CASES)
        .expect("seed events present")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("seed cases are JSON");
            let ds = &v["data_stream"];
            let name = match (ds["type"].as_str(), ds["dataset"].as_str(), ds["namespace"].as_str()) {
                (Some(t), Some(d), Some(n)) => Some(format!("{t}-{d}-{n}")),
                _ => None,
            };
            (l.to_string(), name)
        })
        .collect();
    events.extend(
        [
            r#"{"event":{"category":["process"],"type":["start"]},"host":{"os":{"type":"windows"}},"process":{"name":"powershell.exe","args":["powershell.exe","-enc","AAAA"],"parent":{"name":"winword.exe"},"command_line":"powershell.exe -enc AAAA"}}"#,
            r#"{"event":{"category":"network","action":"connection_attempted","type":["start"]},"host":{"os":{"type":"linux"}},"process":{"name":"bash"},"destination":{"ip":"8.8.8.8","port":443}}"#,
            r#"{"event.category":"authentication","event.outcome":"failure","event.dataset":"okta.system","okta":{"event_type":"user.mfa.okta_verify.deny_push"}}"#,
            r#"{"event":{"category":["file","process"],"type":["creation","start"]},"host":{"os":{"type":["linux","macos"]}},"file":{"path":"/tmp/x","extension":"sh"}}"#,
            r#"{"event":{"category":"registry","type":"change"},"host.os.type":"windows","registry":{"path":"HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\x"}}"#,
        ]
        .iter()
        .map(|s| (s.to_string(), None)),
    );
    let (mut cands, mut matched) = (0, 0);
    for (line, name) in &events {
        let (c, m) = compare(on, off, line, name.as_deref());
        cands += c;
        matched += m;
    }
    assert!(matched > 0, "some stage matches");
    let stages: usize = on.rules.iter().map(|r| r.query.stages.len() + usize::from(r.query.until.is_some())).sum();
    assert!(
        cands * 20 < stages * events.len(),
        "dispatch keeps under 5 % of the stages: {cands} of {}",
        stages * events.len()
    );
}

/// The same with the 16 rules of tests/data/rules (sequences with `until`, missing-event
/// stages, `runs`, backtick fields) on their loaded index patterns.
#[test]
fn dispatch_equals_brute_force_for_the_prebuilt_rules() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules"));
    let specs = eqlstream::rules::load_paths(&[dir]).expect("loads").rules;
    let on = RuleSet::compile(specs.clone()).expect("compiles");
    let mut off = RuleSet::compile(specs).expect("compiles");
    off.configure_dispatch(None, false);
    for seed in 0..300u64 {
        let rule = (seed as usize) % on.rules.len();
        let stage = (seed as usize / on.rules.len()) % 4;
        let (line, name) = event(&on, rule, stage, seed);
        compare(&on, &off, &line, name.as_deref());
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// Soundness over the production corpus: generated close calls give the same matching stages
    /// with dispatch and by brute force.
    #[test]
    fn dispatch_equals_brute_force_on_close_calls(rule in 0usize..1021, stage in 0usize..4, seed in proptest::prelude::any::<u64>()) {
        let (on, off) = production();
        let (line, name) = event(on, rule, stage, seed);
        compare(on, off, &line, name.as_deref());
    }
}

/// The generated events are close calls: many make stages candidates, and some match.
#[test]
fn generated_events_are_close_calls() {
    let (on, off) = production();
    let (mut with_cands, mut with_matches) = (0, 0);
    for seed in 0..400u64 {
        let (line, name) = event(on, (seed as usize * 7919) % on.rules.len(), 0, seed);
        let (c, m) = compare(on, off, &line, name.as_deref());
        with_cands += usize::from(c > 0);
        with_matches += usize::from(m > 0);
    }
    eprintln!("{with_cands} of 400 events with candidates, {with_matches} with a matching stage");
    assert!(with_cands > 200 && with_matches > 30, "{with_cands} with candidates, {with_matches} matching");
}
