//! The load generator's ground truth through the real binary: recall and precision are 100 %
//! (ECS and Kibana formats), and the prefilter changes nothing (issue 6).

use std::process::Command;

use crate::util::{data, masked, run};

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eqlstream-loadgen"))
}

#[test]
fn loadgen_truth_is_found_exactly_with_and_without_prefilter() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let truth = dir.path().join("truth.jsonl");
    let st = loadgen()
        .args(["--events", "30000", "--attack-rate", "0.01", "--decoy-rate", "0.01", "--disorder", "1500"])
        .args([
            "--invalid-rate",
            "0.01",
            "--seed",
            "7",
            "-o",
            events.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let input = std::fs::read(&events).unwrap();
    let on = run(&["--prefilter"], &input);
    assert_eq!(on.code, 0, "{}", on.stderr);
    let off = run(&["--no-prefilter"], &input);
    assert_eq!(off.code, 0, "{}", off.stderr);
    assert!(masked(&on.stdout) == masked(&off.stdout), "prefilter on and off give the same output");

    let alerts = dir.path().join("out.ndjson");
    std::fs::write(&alerts, &on.stdout).unwrap();
    let score = loadgen()
        .args(["score", "--truth", truth.to_str().unwrap(), "--alerts", alerts.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&score.stdout);
    assert!(score.status.success(), "recall/precision below 100 %:\n{report}");
    let truths = std::fs::read_to_string(&truth).unwrap().lines().count();
    assert!(truths > 100, "the run has attacks to find ({truths})");

    // `score` reads Kibana-format output (shells) just as well.
    let kibana = run(&["--alert-format", "kibana"], &input);
    assert_eq!(kibana.code, 0, "{}", kibana.stderr);
    std::fs::write(&alerts, &kibana.stdout).unwrap();
    let score = loadgen()
        .args(["score", "--truth", truth.to_str().unwrap(), "--alerts", alerts.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&score.stdout);
    assert!(score.status.success(), "Kibana format: recall/precision below 100 %:\n{report}");
    assert!(report.contains(&format!("alert sequences: {truths}\n")), "{report}");
}

#[test]
fn seed_cases_are_identical_with_and_without_prefilter() {
    let input = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let on = run(&["--prefilter"], &input);
    let off = run(&["--no-prefilter"], &input);
    assert_eq!((on.code, off.code), (0, 0));
    assert!(masked(&on.stdout) == masked(&off.stdout));
    assert_eq!(on.alerts().len(), 6);
    // The summary line counts what the prefilter skipped: N13's fork and four other events
    // lacking some literal of every stage.
    let summary = |o: &crate::util::Output| o.stderr.lines().last().unwrap_or("").to_string();
    assert!(summary(&on).contains(" skipped=5 "), "{}", summary(&on));
    assert!(summary(&off).contains(" skipped=0 "), "{}", summary(&off));
}

#[test]
fn invalid_lines_move_the_watermark_the_same_way_with_and_without_prefilter() {
    // A truncated line with a leading timestamp 28 s ahead (within max_future, so it moves
    // time): the prefilter skips it without validating it, the parser rejects it; in both modes
    // its timestamp moves the watermark, so the seed events of the next 26 s are late and the
    // sequences they complete are not found.
    let seed = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let mut input = Vec::new();
    for (i, l) in seed.split_inclusive(|b| *b == b'\n').enumerate() {
        input.extend_from_slice(l);
        if i == 1 {
            input.extend_from_slice(b"{\"@timestamp\":\"2026-03-05T10:00:30.000Z\",\"event\":{\"kind\":\"ev\n");
        }
    }
    let on = run(&["--prefilter"], &input);
    let off = run(&["--no-prefilter"], &input);
    assert_eq!((on.code, off.code), (0, 0));
    assert!(masked(&on.stdout) == masked(&off.stdout));
    let without = run(&[], &seed);
    assert_eq!(without.alerts().len(), 6);
    assert!(on.alerts().len() < 6, "the invalid line's timestamp made events late: {}", on.alerts().len());
    assert!(on.stderr.contains(" late=") && !on.stderr.contains(" late=0 "), "{}", on.stderr);
}

#[test]
fn a_watermark_jump_over_many_buffered_events_gives_the_same_output_at_every_batch_size() {
    // 20,000 events in one second of event time, then a line four minutes later (within
    // max_future, so it moves time): the watermark passes every buffered event at once (over
    // 4,096 stage matches), which the sequencer hands to the partitions in steps without lines.
    // The alerts those steps carry must still come right after the jump line, whatever the
    // batching; the lines after it are late.
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let st = loadgen()
        .args(["--events", "30000", "--attack-rate", "0.01", "--decoy-rate", "0.01", "--sim-eps", "20000"])
        .args(["--seed", "9", "-o", events.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let all = std::fs::read(&events).unwrap();
    let jump = br#"{"@timestamp":"2026-03-05T10:04:00.000Z","event":{"action":"tick"}}"#;
    let mut input = Vec::new();
    for (i, l) in all.split_inclusive(|b| *b == b'\n').enumerate() {
        if i == 20_000 {
            input.extend_from_slice(jump);
            input.push(b'\n');
        }
        input.extend_from_slice(l);
    }

    let base = run(&["--workers", "1", "--batch-size", "1", "--no-prefilter"], &input);
    assert_eq!(base.code, 0, "{}", base.stderr);
    let lines: Vec<&[u8]> = base.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let at = lines.iter().position(|l| *l == &jump[..]).expect("the jump line is passed through");
    let is_alert = |l: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(l)
            .is_ok_and(|v| v.pointer("/event/kind").and_then(|k| k.as_str()) == Some("alert"))
    };
    let after = lines[at + 1..].iter().take_while(|l| is_alert(l)).count();
    assert!(after >= 10, "alerts come right after the jump line ({after})");
    // Nothing was released before the jump (one second of events, a 2 s allowance), and the
    // lines after it are late.
    assert_eq!(base.alerts().len(), after, "every alert is released by the jump");
    let base_masked = masked(&base.stdout);
    for (workers, batch) in [("2", "7"), ("2", "4096"), ("1", "4096")] {
        let o = run(&["--workers", workers, "--batch-size", batch], &input);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(masked(&o.stdout) == base_masked, "workers={workers} batch={batch}: stdout differs");
    }
}
