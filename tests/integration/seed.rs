//! The seed rule's cases (tests/data/cloud_defend/seed_rule_cases.ndjson) give exactly the
//! sequences of seed_rule_cases.expected_es.jsonl: join keys and event ids, in that order
//! (eql-semantics.md sections 0-4 and 10).

use serde_json::Value;

use crate::util::{data, run};

fn seed_input() -> Vec<u8> {
    std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap()
}

/// (join_keys, event ids) of each expected sequence, in order.
fn expected() -> Vec<(Value, Vec<String>)> {
    std::fs::read_to_string(data("cloud_defend/seed_rule_cases.expected_es.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let ids = v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
            (v["join_keys"].clone(), ids)
        })
        .collect()
}

fn found(alerts: &[Value]) -> Vec<(Value, Vec<String>)> {
    alerts
        .iter()
        .map(|a| {
            let ids = a["eql"]["events"]
                .as_array()
                .expect("eql.events")
                .iter()
                .map(|e| e["event"]["id"].as_str().expect("event.id").to_string())
                .collect();
            (a["eql"]["join_keys"].clone(), ids)
        })
        .collect()
}

/// Alert lines with `event.created` (wall clock) removed; other lines unchanged.
fn masked(stdout: &[u8]) -> Vec<Vec<u8>> {
    stdout
        .split(|b| *b == b'\n')
        .map(|l| match serde_json::from_slice::<Value>(l) {
            Ok(mut v) if v.pointer("/event/kind").and_then(Value::as_str) == Some("alert") => {
                crate::util::forget_created(&mut v);
                serde_json::to_vec(&v).unwrap()
            }
            _ => l.to_vec(),
        })
        .collect()
}

#[test]
fn seed_cases_give_exactly_the_elasticsearch_sequences() {
    let o = run(&[], &seed_input());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let alerts = o.alerts();
    assert_eq!(found(&alerts), expected());
    for a in &alerts {
        assert_eq!(a["rule"]["id"], "1dc56174-5d02-4ca4-af92-e391f096fb21");
    }
}

#[test]
fn seed_output_is_identical_across_workers_and_batch_sizes() {
    let input = seed_input();
    let base = run(&["--workers", "1", "--batch-size", "1"], &input);
    assert_eq!(base.code, 0, "{}", base.stderr);
    let base_masked = masked(&base.stdout);
    for workers in ["1", "2", "4"] {
        for batch in ["1", "7", "4096"] {
            let o = run(&["--workers", workers, "--batch-size", batch], &input);
            assert_eq!(o.code, 0, "{}", o.stderr);
            assert!(masked(&o.stdout) == base_masked, "workers={workers} batch={batch}: stdout differs");
        }
    }
    // The pass-through part is the input itself.
    let events: Vec<&[u8]> = input.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let out_events: Vec<Vec<u8>> = base_masked
        .iter()
        .filter(|l| !l.is_empty())
        .filter(|l| {
            serde_json::from_slice::<Value>(l)
                .map(|v| v.pointer("/event/kind") != Some(&Value::from("alert")))
                .unwrap_or(true)
        })
        .cloned()
        .collect();
    assert_eq!(out_events.len(), events.len());
    for (a, b) in events.iter().zip(&out_events) {
        assert_eq!(*a, b.as_slice());
    }
}

#[test]
fn shuffled_within_the_allowance_gives_the_same_sequences() {
    // Swap neighbouring events whose timestamps are less than 2 s apart: the reorder buffer
    // restores event order (eql-semantics.md section 3).
    let input = seed_input();
    let mut lines: Vec<&[u8]> = input.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let ts = |l: &[u8]| -> String {
        let v: Value = serde_json::from_slice(l).unwrap();
        v["@timestamp"].as_str().unwrap().to_string()
    };
    let mut i = 0;
    while i + 1 < lines.len() {
        let (a, b) = (ts(lines[i]), ts(lines[i + 1]));
        // Same second prefix "2026-03-05T10:00:0" -> at most a few seconds apart; only swap when
        // the later one is within 1 s.
        let (sa, sb) = (parse_secs(&a), parse_secs(&b));
        if sb - sa < 1.5 && sb >= sa {
            lines.swap(i, i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut shuffled = lines.join(&b'\n');
    shuffled.push(b'\n');
    let o = run(&[], &shuffled);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut got = found(&o.alerts());
    let mut want = expected();
    got.sort_by_key(|(k, ids)| (k.to_string(), ids.clone()));
    want.sort_by_key(|(k, ids)| (k.to_string(), ids.clone()));
    assert_eq!(got, want);
}

fn parse_secs(rfc3339: &str) -> f64 {
    // "2026-03-05T10:01:23.000Z" -> seconds within the day.
    let t = &rfc3339[11..rfc3339.len() - 1];
    let mut parts = t.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn kibana_format_links_each_shell_to_its_building_blocks() {
    // eql-semantics.md section 8.3: per sequence one shell alert (no group index) and one
    // building block per event, all sharing kibana.alert.group.id; ids do not depend on workers.
    let input = seed_input();
    let group_ids = |workers: &str| -> Vec<(String, Option<u64>)> {
        let o = run(&["--alert-format", "kibana", "--no-passthrough", "--workers", workers], &input);
        assert_eq!(o.code, 0, "{}", o.stderr);
        o.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: Value = serde_json::from_slice(l).unwrap();
                let id = v["kibana.alert.group.id"].as_str().expect("group id").to_string();
                (id, v.get("kibana.alert.group.index").and_then(Value::as_u64))
            })
            .collect()
    };
    let one = group_ids("1");
    assert_eq!(one.len(), 24, "6 sequences x (1 shell + 3 building blocks)");
    for chunk in one.chunks(4) {
        assert!(chunk.iter().all(|(id, _)| *id == chunk[0].0), "one group per sequence");
        let idx: Vec<Option<u64>> = chunk.iter().map(|(_, i)| *i).collect();
        assert_eq!(idx, vec![None, Some(0), Some(1), Some(2)]);
    }
    let distinct: std::collections::BTreeSet<&String> = one.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 6);
    assert_eq!(group_ids("4"), one, "ids are stable across worker counts");
}

#[test]
fn kibana_alerts_belong_to_the_configured_space() {
    let input = seed_input();
    for (flags, space) in [(&[][..], "default"), (&["--kibana-space-id", "soc"][..], "soc")] {
        let mut args = vec!["--alert-format", "kibana", "--no-passthrough"];
        args.extend_from_slice(flags);
        let o = run(&args, &input);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let docs: Vec<Value> = o
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(docs.len(), 24);
        for d in &docs {
            assert_eq!(d["kibana.space_ids"], serde_json::json!([space]));
            assert_eq!(d["kibana.alert.rule.rule_type_id"], "siem.eqlRule");
        }
    }
    let o = run(&["--alert-format", "kibana", "--kibana-space-id", "Not A Space"], &input);
    assert_eq!(o.code, 78, "an invalid space id is a config error: {}", o.stderr);
}

#[test]
fn spilling_every_matched_event_to_disk_changes_nothing_and_leaves_no_file() {
    let input = seed_input();
    let base = run(&[], &input);
    assert_eq!(base.code, 0, "{}", base.stderr);
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().to_str().unwrap();
    for workers in ["1", "2"] {
        let o = run(&["--event-store-memory", "0", "--spill-dir", spill, "--workers", workers], &input);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(masked(&o.stdout) == masked(&base.stdout), "workers={workers}: stdout differs when spilled");
        assert!(!o.stderr.contains("Event store cannot"), "{}", o.stderr);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "spill files are unlinked");
    let o = run(&["--spill-dir", &format!("{spill}/missing")], &input);
    assert_eq!(o.code, 78, "a spill_dir that does not exist is a config error: {}", o.stderr);
}
