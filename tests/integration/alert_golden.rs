//! Golden tests of the alert renderer (issue 5) on the seed rule's P1 case
//! (`/work/shared/data/cloud_defend/seed_rule_cases.ndjson` lines 1-3, join keys
//! `["1d556f...", "0", "xmrig"]`, eql-semantics.md sections 8.1 and 8.3).
//!
//! `now` is fixed, so the expected files pin every field, `event.created` included.
//! `BLESS=1 cargo test --test integration alert_golden::` rewrites `tests/golden/alerts/*`; review the diff.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eqlstream::alert::{render, render_in_space, AlertFormat, Detection, MatchedEvent};
use eqlstream::rules::RuleSpec;
use eqlstream::sequence::key::KeyValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const SEED_RULE: &str = "rules/integrations/cloud_defend/defense_evasion_file_creation_execution_deletion_cradle.toml";
const P1_CONTAINER: &str = "1d556f67a5106665bcde819619d16bee798378befd4248c8ebcf111b69e63732";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/alerts")
}

/// The seed rule's metadata, read from its TOML the way the rules loader maps it.
fn seed_rule() -> RuleSpec {
    let path = Path::new(DATA).join(SEED_RULE);
    eqlstream::rules::load_paths(&[path]).expect("seed rule loads").rules.remove(0)
}

/// Seed lines 1-3 (the P1 sequence), with the timestamps ES reports for them.
fn p1_events() -> Vec<MatchedEvent> {
    let text = std::fs::read_to_string(Path::new(DATA).join("cloud_defend/seed_rule_cases.ndjson"))
        .expect("seed cases are readable");
    let ts = [1_772_704_800_000_000_000, 1_772_704_801_000_000_000, 1_772_704_802_000_000_000];
    text.lines().take(3).zip(ts).map(|(l, t)| MatchedEvent { raw: l.into(), timestamp_ns: t }).collect()
}

fn p1_keys() -> Vec<KeyValue> {
    vec![KeyValue::Str(P1_CONTAINER.into()), KeyValue::Str("0".into()), KeyValue::Str("xmrig".into())]
}

fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_772_704_805_123)
}

fn render_p1(format: AlertFormat, events: &[MatchedEvent]) -> String {
    let rule = seed_rule();
    let keys = p1_keys();
    let slots: Vec<Option<&MatchedEvent>> = events.iter().map(Some).collect();
    let d = Detection { rule: &rule, join_keys: &keys, events: &slots };
    let mut out = Vec::new();
    render(&d, format, fixed_now(), &mut out).expect("P1 renders");
    String::from_utf8(out).expect("alert lines are UTF-8")
}

/// Compares with the golden file, or rewrites it under `BLESS=1`.
fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to create it)", path.display()));
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            let (e, a): (Value, Value) = (serde_json::from_str(e).unwrap(), serde_json::from_str(a).unwrap());
            panic!(
                "{name} line {}: differs\nexpected:\n{}\nactual:\n{}",
                i + 1,
                serde_json::to_string_pretty(&e).unwrap(),
                serde_json::to_string_pretty(&a).unwrap()
            );
        }
    }
    assert_eq!(expected.lines().count(), actual.lines().count(), "{name}: line count");
    assert_eq!(expected, actual, "{name}: bytes");
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn ecs_alert_for_p1_matches_golden_file() {
    let out = render_p1(AlertFormat::Ecs, &p1_events());
    check_golden("p1_seed.ecs.ndjson", &out);
}

#[test]
fn ecs_alert_for_p1_has_the_issue_fields() {
    let events = p1_events();
    let out = render_p1(AlertFormat::Ecs, &events);
    assert!(out.ends_with('\n') && out.matches('\n').count() == 1, "exactly one line");
    let a: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["@timestamp"], "2026-03-05T10:00:02.000Z");
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(a["event"]["module"], "eqlstream");
    assert_eq!(a["event"]["created"], "2026-03-05T10:00:05.123Z");
    assert_eq!(a["event"]["severity"], 73);
    assert_eq!(a["event"]["risk_score"], 73);
    assert_eq!(a["rule"]["id"], "1dc56174-5d02-4ca4-af92-e391f096fb21");
    assert_eq!(a["rule"]["uuid"], a["rule"]["id"]);
    assert_eq!(a["tags"][0], "Data Source: Elastic Defend for Containers");
    assert_eq!(a["threat"][0]["tactic"]["id"], "TA0005");
    assert_eq!(a["eql"]["join_keys"], json!([P1_CONTAINER, "0", "xmrig"]));
    // The events are the original lines, byte for byte, in stage order.
    let spliced: Vec<String> = a["eql"]["events"].as_array().unwrap().iter().map(Value::to_string).collect();
    assert_eq!(spliced.len(), 3);
    for ev in &events {
        assert!(out.contains(&*ev.raw), "event line is embedded verbatim");
    }
    // Common fields come up to the top level; differing ones and source event.* do not.
    assert_eq!(a["container"]["id"], P1_CONTAINER);
    assert_eq!(a["user"]["id"], "0");
    assert_eq!(a["host"]["name"], "ip-10-0-1-23");
    assert!(a.get("file").is_none() || a["file"].get("path").is_none() || a["file"]["path"] == "/tmp/xmrig");
    assert!(a["labels"].get("case").is_none(), "labels.case differs between the events");
    assert!(a["event"].get("dataset").is_none(), "no source event.* beside the alert's event");
    // The id: sha256 over length-prefixed rule id and the events' event.id values.
    let mut h = Sha256::new();
    let rule_id = "1dc56174-5d02-4ca4-af92-e391f096fb21";
    h.update((rule_id.len() as u64).to_le_bytes());
    h.update(rule_id);
    for n in 1..=3 {
        let id = format!("00000000-0000-0000-0000-00000000000{n}");
        h.update([1u8]);
        h.update((id.len() as u64).to_le_bytes());
        h.update(&id);
    }
    let expected: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(a["event"]["id"], expected);
    assert_eq!(a["kibana"]["alert"]["rule"]["rule_id"], rule_id);
    assert_eq!(a["kibana"]["alert"]["severity"], "high");
    assert_eq!(a["kibana"]["alert"]["original_time"], "2026-03-05T10:00:00.000Z");
    assert_eq!(a["kibana"]["alert"]["reason"], a["message"]);
}

/// Every sequence of `seed_rule_cases.expected_es.jsonl` (P1-P6): lines by `idx`, keys, times.
fn all_seed_detections() -> Vec<(Vec<KeyValue>, Vec<MatchedEvent>)> {
    let lines: Vec<String> = std::fs::read_to_string(Path::new(DATA).join("cloud_defend/seed_rule_cases.ndjson"))
        .expect("seed cases are readable")
        .lines()
        .map(str::to_owned)
        .collect();
    let expected = std::fs::read_to_string(Path::new(DATA).join("cloud_defend/seed_rule_cases.expected_es.jsonl"))
        .expect("expected sequences are readable");
    expected
        .lines()
        .map(|l| {
            let seq: Value = serde_json::from_str(l).unwrap();
            let keys = seq["join_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| KeyValue::Str(k.as_str().unwrap().into()))
                .collect();
            let events = seq["idx"]
                .as_array()
                .unwrap()
                .iter()
                .zip(seq["ts"].as_array().unwrap())
                .map(|(i, t)| MatchedEvent {
                    raw: lines[i.as_u64().unwrap() as usize].as_str().into(),
                    timestamp_ns: t.as_i64().unwrap(),
                })
                .collect();
            (keys, events)
        })
        .collect()
}

#[test]
fn ecs_alerts_for_all_seed_sequences_match_golden_file() {
    let rule = seed_rule();
    let mut out = Vec::new();
    for (keys, events) in all_seed_detections() {
        let slots: Vec<Option<&MatchedEvent>> = events.iter().map(Some).collect();
        let d = Detection { rule: &rule, join_keys: &keys, events: &slots };
        render(&d, AlertFormat::Ecs, fixed_now(), &mut out).unwrap();
    }
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 6, "P1-P6");
    let ids: std::collections::HashSet<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 6, "distinct sequences get distinct ids");
    check_golden("seed_p1_p6.ecs.ndjson", &out);
}

#[test]
fn ecs_alert_id_is_stable_across_runs_and_ignores_wall_clock() {
    let events = p1_events();
    let rule = seed_rule();
    let keys = p1_keys();
    let slots: Vec<Option<&MatchedEvent>> = events.iter().map(Some).collect();
    let d = Detection { rule: &rule, join_keys: &keys, events: &slots };
    let ids: Vec<Value> = [fixed_now(), SystemTime::now()]
        .into_iter()
        .map(|now| {
            let mut out = Vec::new();
            render(&d, AlertFormat::Ecs, now, &mut out).unwrap();
            serde_json::from_slice::<Value>(&out).unwrap()["event"]["id"].clone()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn kibana_alerts_for_p1_match_golden_file() {
    let out = render_p1(AlertFormat::Kibana, &p1_events());
    check_golden("p1_seed.kibana.ndjson", &out);
}

#[test]
fn kibana_group_links_shell_and_building_blocks_with_kibana_ids() {
    let out = render_p1(AlertFormat::Kibana, &p1_events());
    let docs: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 4, "1 shell + 3 building blocks");
    let rule_id = "1dc56174-5d02-4ca4-af92-e391f096fb21";
    let index =
        ["logs-cloud_defend.file-default", "logs-cloud_defend.process-default", "logs-cloud_defend.file-default"];
    let ev_ids: Vec<String> = (1..=3).map(|n| format!("00000000-0000-0000-0000-00000000000{n}")).collect();
    // generate_building_block_ids.ts: base = concat(ancestor.id + ancestor.index + rule uuid).
    let base: String = ev_ids.iter().zip(index).map(|(id, ix)| format!("{id}{ix}{rule_id}")).collect();
    let block_ids: Vec<String> = (0..3).map(|i| sha256_hex(&format!("{base}{i}"))).collect();
    // generateAlertId on the shell: ancestors = per block (event, block), then the rule uuid.
    let shell_pre: String =
        ev_ids.iter().zip(index).zip(&block_ids).map(|((id, ix), b)| format!("{id}{ix}{b}")).collect::<String>()
            + rule_id;
    let shell_id = sha256_hex(&shell_pre);

    let shell = &docs[0];
    assert_eq!(shell["kibana.alert.uuid"], shell_id.as_str());
    assert_eq!(shell["kibana.alert.group.id"], shell_id.as_str());
    assert!(shell.get("kibana.alert.group.index").is_none(), "only blocks carry an index");
    assert!(shell.get("kibana.alert.building_block_type").is_none());
    assert_eq!(shell["kibana.alert.depth"], 2);
    assert_eq!(shell["kibana.alert.ancestors"].as_array().unwrap().len(), 6);
    assert_eq!(shell["container"]["id"], P1_CONTAINER, "shell keeps the common fields");
    for (i, block) in docs[1..].iter().enumerate() {
        assert_eq!(block["kibana.alert.uuid"], block_ids[i].as_str());
        assert_eq!(block["kibana.alert.group.id"], shell_id.as_str());
        assert_eq!(block["kibana.alert.group.index"], i);
        assert_eq!(block["kibana.alert.building_block_type"], "default");
        assert_eq!(block["kibana.alert.depth"], 1);
        assert_eq!(block["event.kind"], "signal");
        assert!(block["event"].get("kind").is_none(), "source event.kind is removed");
        assert_eq!(block["event"]["id"], ev_ids[i].as_str());
        assert_eq!(
            block["kibana.alert.ancestors"],
            json!([{"id": ev_ids[i], "type": "event", "index": index[i], "depth": 0}])
        );
    }
}

#[test]
fn missing_event_stage_is_marked_in_ecs_and_skipped_in_kibana() {
    let events = p1_events();
    let rule = seed_rule();
    let keys = p1_keys();
    let slots = [Some(&events[0]), None, Some(&events[2])];
    let d = Detection { rule: &rule, join_keys: &keys, events: &slots };
    let mut out = Vec::new();
    render(&d, AlertFormat::Ecs, fixed_now(), &mut out).unwrap();
    let a: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(a["eql"]["events"][1], json!({"missing": true}));
    let mut out = Vec::new();
    render(&d, AlertFormat::Kibana, fixed_now(), &mut out).unwrap();
    assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 3, "shell + 2 blocks");
}

#[test]
fn event_rule_gives_one_alert_without_join_keys() {
    let events = p1_events();
    let rule = seed_rule();
    let slots = [Some(&events[1])];
    let d = Detection { rule: &rule, join_keys: &[], events: &slots };
    for format in [AlertFormat::Ecs, AlertFormat::Kibana] {
        let mut out = Vec::new();
        render(&d, format, fixed_now(), &mut out).unwrap();
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let a: Value = serde_json::from_slice(&out).unwrap();
        match format {
            AlertFormat::Ecs => {
                assert_eq!(a["eql"]["join_keys"], json!([]));
                assert_eq!(a["process"]["name"], "xmrig", "a single event's fields all come up");
            }
            AlertFormat::Kibana => {
                assert_eq!(a["kibana.alert.depth"], 1);
                assert!(a.get("kibana.alert.group.id").is_none());
            }
        }
    }
}

#[test]
fn events_without_event_id_are_identified_by_their_bytes() {
    let rule = seed_rule();
    let a = MatchedEvent { raw: r#"{"x":1,"host":{"name":"h"}}"#.into(), timestamp_ns: 0 };
    let b = MatchedEvent { raw: r#"{"x":2,"host":{"name":"h"}}"#.into(), timestamp_ns: 1 };
    let id_of = |slots: &[Option<&MatchedEvent>]| {
        let d = Detection { rule: &rule, join_keys: &[], events: slots };
        let mut out = Vec::new();
        render(&d, AlertFormat::Ecs, fixed_now(), &mut out).unwrap();
        serde_json::from_slice::<Value>(&out).unwrap()["event"]["id"].clone()
    };
    assert_ne!(id_of(&[Some(&a), Some(&b)]), id_of(&[Some(&b), Some(&a)]));
    assert_eq!(id_of(&[Some(&a), Some(&b)]), id_of(&[Some(&a), Some(&b)]));
}

#[test]
fn invalid_matched_event_still_gives_an_alert_that_says_what_is_missing() {
    let rule = seed_rule();
    let bad = MatchedEvent { raw: "[1,2]".into(), timestamp_ns: 0 };
    let slots = [Some(&bad)];
    let d = Detection { rule: &rule, join_keys: &[], events: &slots };
    let mut out = b"keep".to_vec();
    let r = render(&d, AlertFormat::Ecs, fixed_now(), &mut out).expect("an alert");
    assert_eq!(r.missing.len(), 1);
    let v: Value = serde_json::from_slice(&out[4..]).unwrap();
    assert_eq!(v["eqlstream"]["render_errors"][0], r.missing[0].as_str());
    assert_eq!(v["eql"]["events"], serde_json::json!(["[1,2]"]));
}

#[test]
fn a_detection_without_any_event_is_an_error_and_writes_nothing() {
    let rule = seed_rule();
    let slots = [None];
    let d = Detection { rule: &rule, join_keys: &[], events: &slots };
    let mut out = b"keep".to_vec();
    assert!(render(&d, AlertFormat::Ecs, fixed_now(), &mut out).is_err());
    assert_eq!(out, b"keep");
}

/// The fields Elastic Security's alerts page filters and groups on, and those Kibana's alert field
/// map requires (`packages/kbn-alerts-as-data-utils/src/field_maps/alert_field_map.ts`), on the
/// shell and on every building block; `kibana.space_ids` from the option.
#[test]
fn kibana_alerts_carry_what_the_security_alerts_page_needs() {
    let rule = seed_rule();
    let keys = p1_keys();
    let events = p1_events();
    let slots: Vec<Option<&MatchedEvent>> = events.iter().map(Some).collect();
    let d = Detection { rule: &rule, join_keys: &keys, events: &slots };
    for (space, expected) in [(None, "default"), (Some("soc-team_2"), "soc-team_2")] {
        let mut out = Vec::new();
        match space {
            None => render(&d, AlertFormat::Kibana, fixed_now(), &mut out).unwrap(),
            Some(s) => render_in_space(&d, AlertFormat::Kibana, s, fixed_now(), &mut out).unwrap(),
        };
        let docs: Vec<Value> =
            out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(docs.len(), 4);
        for doc in &docs {
            assert_eq!(doc["kibana.space_ids"], json!([expected]));
            assert_eq!(doc["kibana.alert.rule.rule_type_id"], "siem.eqlRule");
            assert_eq!(doc["kibana.alert.rule.type"], "eql");
            assert_eq!(doc["kibana.alert.rule.category"], "Event Correlation Rule");
            assert_eq!(doc["kibana.alert.rule.consumer"], "siem");
            assert_eq!(doc["kibana.alert.rule.producer"], "siem");
            assert_eq!(doc["kibana.alert.rule.revision"], 0);
            assert_eq!(doc["kibana.alert.status"], "active");
            assert_eq!(doc["kibana.alert.workflow_status"], "open");
            assert_eq!(doc["kibana.alert.rule.uuid"], rule.rule_id.as_str());
            assert_eq!(doc["kibana.alert.rule.name"], rule.name.as_str());
            assert_eq!(doc["kibana.alert.rule.parameters"]["query"], rule.query.as_str());
            assert_eq!(doc["tags"], json!(rule.tags), "the rule's tags (the events have none)");
            assert_eq!(doc["event.kind"], "signal");
            assert!(doc["@timestamp"].is_string() && doc["kibana.alert.uuid"].is_string());
            assert!(doc["kibana.alert.original_time"].is_string());
            assert!(!doc["kibana.alert.ancestors"].as_array().unwrap().is_empty());
        }
    }
}
