//! Arbitrary bytes as input lines, through the pipeline's own stages as far as the library lets a
//! caller drive them: the framer (`pipeline::frame::Framer`), the decode worker
//! (`pipeline::decode::run`: prefilter, simd-json, timestamp, every rule's stage conditions, join
//! keys, event store), then what a partition worker does with a hit: read the event back,
//! recompute its key tuples from the raw line, and render the alert in both formats.
//!
//! Checked on every input, besides "never panics":
//! * the prefilter changes nothing: the same hits and the same watermark time per line with it on
//!   and off (README, "Prefilter");
//! * a hit's join key is among the tuples recomputed from its stored line, as the worker's key
//!   recovery needs, and no stage gives more tuples than `max_key_combinations`;
//! * every alert renders whole (an event simd-json decoded must parse for the alert), each alert
//!   line is one JSON object without a raw newline.
//!
//! Rules: the seed rule (config/rules) and the rule corpus of tests/data/rules (sequences with
//! several join keys, `until`, missing-event stages, event rules).

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use eqlstream::alert::{self, AlertFormat, Detection};
use eqlstream::config::{FileConfig, Overrides, Settings};
use eqlstream::event::Decoder;
use eqlstream::metrics::Metrics;
use eqlstream::pipeline::decode::{self, DecodeContext, Decoded};
use eqlstream::pipeline::frame::Framer;
use eqlstream::pipeline::{prefilter::Prefilter, rawscan::LeadingTime, Totals};
use eqlstream::ruleset::RuleSet;
use eqlstream::sequence::key::Key;
use eqlstream::sequence::spec::StageKind;
use eqlstream::sequence::HitKind;
use eqlstream::store::{EventStore, StoreConfig};
use libfuzzer_sys::fuzz_target;

struct Setup {
    rules: Arc<RuleSet>,
    /// Decode contexts with the prefilter on, and off.
    with_prefilter: Arc<DecodeContext>,
    without: Arc<DecodeContext>,
    metrics: Metrics,
    totals: Arc<Totals>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let (loaded, _duplicates_and_bad_files) =
            eqlstream::rules::load_paths_all(&[repo.join("config/rules"), repo.join("tests/data/rules")]);
        let runnable: Vec<_> = loaded.rules.into_iter().filter(|r| RuleSet::compile(vec![r.clone()]).is_ok()).collect();
        let mut rules = RuleSet::compile(runnable).expect("rules that compile alone compile together");
        assert!(rules.rules.len() > 5, "the rule corpus is there");
        let settings = Settings::build(FileConfig::default(), Overrides::default()).expect("default settings");
        rules.fields.intern(&settings.timestamp_field);
        rules.configure_dispatch(settings.index_field.as_deref(), settings.dispatch);
        let labels = rules.labels();
        let metrics = Metrics::new(&labels).expect("metrics");
        rules.set_max_key_combinations(settings.max_key_combinations);
        rules.count_into(&metrics.handles());
        let rules = Arc::new(rules);
        let store = Arc::new(EventStore::new(StoreConfig {
            memory_bytes: settings.event_store_memory,
            spill_dir: settings.spill_dir.clone(),
        }));
        let context = |prefilter: bool| {
            Arc::new(DecodeContext {
                rules: rules.clone(),
                timestamp_field: rules.fields.get(&settings.timestamp_field).expect("interned"),
                tiebreaker_field: None,
                precision: settings.timestamp_precision,
                max_line_bytes: settings.max_line_bytes,
                leading_time: Some(LeadingTime::new(&settings.timestamp_field, settings.timestamp_precision)),
                prefilter: prefilter.then(|| {
                    Arc::new(
                        Prefilter::build(&rules, &settings.timestamp_field, settings.timestamp_precision)
                            .expect("the prefilter is available for these rules"),
                    )
                }),
                wrappers: Arc::new(eqlstream::pipeline::wrapped::WrapperWatch::new(&settings.timestamp_field)),
                store: store.clone(),
            })
        };
        Setup {
            with_prefilter: context(true),
            without: context(false),
            rules,
            metrics,
            totals: Arc::new(Totals::default()),
        }
    })
}

/// Frames `data` as the source does and runs one decode worker over it on this thread.
fn decode_all(s: &Setup, ctx: &Arc<DecodeContext>, data: &[u8]) -> Vec<Decoded> {
    let mut framer = Framer::new(7);
    let mut batches = Vec::new();
    framer.push(data, true, &mut batches);
    framer.finish(&mut batches);
    let (batch_tx, batch_rx) = crossbeam_channel::unbounded();
    let (decoded_tx, decoded_rx) = crossbeam_channel::unbounded();
    for b in batches {
        batch_tx.send(b).expect("receiver alive");
    }
    drop(batch_tx);
    decode::run(ctx.clone(), batch_rx, decoded_tx, s.metrics.handles(), s.totals.clone());
    decoded_rx.try_iter().collect()
}

/// Every hit, as (line, rule, kind, key), in order.
fn hits(decoded: &[Decoded]) -> Vec<(u64, u32, HitKind, Key)> {
    let mut out = Vec::new();
    let mut first = 0u64;
    for d in decoded {
        for m in &d.matches {
            for h in &m.hits {
                out.push((first + u64::from(m.line), h.rule, h.kind, h.key.clone()));
            }
        }
        first += d.batch.len() as u64;
    }
    out
}

fn parse_unbounded(line: &[u8]) -> serde_json::Value {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(line);
    de.disable_recursion_limit();
    serde_json::Value::deserialize(&mut de).expect("an alert line is JSON")
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let plain = decode_all(s, &s.without, data);
    let filtered = decode_all(s, &s.with_prefilter, data);

    // The prefilter changes nothing.
    assert_eq!(hits(&filtered), hits(&plain), "the prefilter changed the hits");
    let times = |d: &[Decoded]| -> Vec<Option<i64>> {
        d.iter().flat_map(|d| d.times.iter().map(|t| t.watermark_time())).collect()
    };
    assert_eq!(times(&filtered), times(&plain), "the prefilter changed a line's watermark time");

    let mut decoder = Decoder::new(&s.rules.fields);
    let mut keys = Vec::new();
    for m in plain.iter().flat_map(|d| d.matches.iter()) {
        let ev = m.event.read().expect("the event store gives the event back");
        // Hits come grouped by rule, then stage: recompute each stage's tuples once, and render
        // one alert per rule (every hit of a rule renders the same way but for its join key).
        let mut last: Option<(u32, HitKind)> = None;
        let mut rendered_rule = None;
        for h in &m.hits {
            let rule = &s.rules.rules[h.rule as usize];
            let stage = match h.kind {
                HitKind::Stage(i) => &rule.query.stages[usize::from(i)],
                HitKind::Until => rule.query.until.as_ref().expect("an until hit has an until"),
            };
            if last != Some((h.rule, h.kind)) {
                // The worker recovers the key from the stored line the same way.
                let parsed = decoder.decode(ev.raw.as_bytes()).expect("a matched line decodes again");
                stage.expand_keys(&parsed, &mut keys);
                assert!(keys.len() <= stage.key_limit().max);
                last = Some((h.rule, h.kind));
            }
            if rule.query.sequence.is_some() {
                assert!(keys.contains(&h.key), "the hit's key is not recomputed from its line");
            }
            if h.kind == HitKind::Until || rendered_rule == Some(h.rule) {
                continue;
            }
            rendered_rule = Some(h.rule);
            // The alert of a detection made of this event (at every positive stage).
            let slots: Vec<Option<&alert::MatchedEvent>> = match &rule.query.sequence {
                Some(seq) => seq.stages.iter().map(|k| (*k == StageKind::Positive).then_some(&ev)).collect(),
                None => vec![Some(&ev)],
            };
            let d = Detection { rule: &rule.spec, join_keys: &h.key, events: &slots };
            for format in [AlertFormat::Ecs, AlertFormat::Kibana] {
                let mut out = Vec::new();
                let rendered = alert::render(&d, format, SystemTime::UNIX_EPOCH, &mut out).expect("an alert");
                assert!(rendered.missing.is_empty(), "{format:?}: {:?}", rendered.missing);
                assert_eq!(out.last(), Some(&b'\n'));
                for line in out[..out.len() - 1].split(|b| *b == b'\n') {
                    assert!(!line.contains(&b'\r'));
                    assert!(parse_unbounded(line).is_object());
                }
            }
        }
    }
});
