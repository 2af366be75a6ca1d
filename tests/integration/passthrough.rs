//! Every input line comes out exactly once, byte-identical, in input order, each followed by `\n`.

use crate::util::{data, run};

/// A file mixing valid events, invalid JSON, invalid UTF-8, empty lines, CRLF endings, a line over
/// `max_line_bytes`, deeply nested JSON, non-object JSON and a last line without a newline.
fn hostile_input() -> Vec<u8> {
    let mut v = Vec::new();
    let seed = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let first_event = seed.split(|b| *b == b'\n').next().unwrap().to_vec();
    v.extend_from_slice(b"{\"@timestamp\":\"2026-03-05T10:00:00Z\",\"event\":{\"category\":[\"file\"]}}\n");
    v.extend_from_slice(b"not json at all\n");
    v.extend_from_slice(b"{\"truncated\": \n");
    v.extend_from_slice(b"\xff\xfe{\"bad\":\"utf8 \xc3\x28\"}\n");
    v.extend_from_slice(b"\n");
    v.extend_from_slice(b"{\"crlf\":true,\"@timestamp\":\"2026-03-05T10:00:01Z\"}\r\n");
    v.extend_from_slice(b"[1,2,3]\n");
    v.extend_from_slice(b"42\n");
    v.extend_from_slice(b"\"string\"\n");
    v.extend_from_slice(b"{\"@timestamp\":\"not a time\"}\n");
    v.extend_from_slice(b"{\"no_timestamp\":1}\n");
    // Deeply nested: 5000 levels.
    v.extend(std::iter::repeat_n(b'[', 5000));
    v.extend(std::iter::repeat_n(b']', 5000));
    v.push(b'\n');
    v.extend(std::iter::repeat_n(b"{\"a\":".as_slice(), 3000).flatten());
    v.push(b'1');
    v.extend(std::iter::repeat_n(b'}', 3000));
    v.push(b'\n');
    // Over max_line_bytes (set to 4096 below): a valid event padded to 10 KB.
    let mut long = b"{\"@timestamp\":\"2026-03-05T10:00:02Z\",\"pad\":\"".to_vec();
    long.extend(std::iter::repeat_n(b'x', 10_000));
    long.extend_from_slice(b"\"}\n");
    v.extend_from_slice(&long);
    v.extend_from_slice(b"   \t  \n");
    v.extend_from_slice(b"\0\0\0\n");
    v.extend_from_slice(&first_event);
    v.push(b'\n');
    v.extend_from_slice(b"{\"last\":\"no newline\"}");
    v
}

fn expected_output(input: &[u8]) -> Vec<u8> {
    let mut e = input.to_vec();
    if e.last() != Some(&b'\n') {
        e.push(b'\n');
    }
    e
}

#[test]
fn hostile_lines_pass_through_byte_exact() {
    let input = hostile_input();
    let o = run(&["--max-line-bytes", "4096"], &input);
    assert_eq!(o.code, 0, "{}", o.stderr);
    eqnice!(expected_output(&input), o.stdout);
    assert!(o.stderr.contains("lines=18"), "{}", o.stderr);
}

#[test]
fn output_is_identical_for_every_worker_count_and_batch_size() {
    let input = hostile_input();
    let expected = expected_output(&input);
    for workers in ["1", "2", "4"] {
        for batch in ["1", "7", "4096"] {
            let o = run(&["--max-line-bytes", "4096", "--workers", workers, "--batch-size", batch], &input);
            assert_eq!(o.code, 0, "workers={workers} batch={batch}: {}", o.stderr);
            assert!(o.stdout == expected, "workers={workers} batch={batch}: output differs");
        }
    }
}

#[test]
fn empty_input_gives_empty_output() {
    let o = run(&[], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn no_passthrough_writes_only_alerts() {
    let seed = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let o = run(&["--no-passthrough"], &seed);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&[u8]> = o.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 6, "one line per expected sequence");
    assert_eq!(o.alerts().len(), 6);
}

#[test]
fn alerts_output_file_gets_the_alerts_too() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("alerts.ndjson");
    let seed = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let o = run(&["--alerts-output", f.to_str().unwrap()], &seed);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let file = std::fs::read_to_string(&f).unwrap();
    assert_eq!(file.lines().count(), 6);
    let stdout = o.text();
    for l in file.lines() {
        assert!(stdout.contains(l), "alert in file also on stdout");
    }
}

/// Random corpora (deterministic seeds): lines of random bytes, random JSON-ish content and real
/// events, through random worker counts and batch sizes: every line comes out once, in order.
#[test]
fn random_streams_come_out_unchanged() {
    use rand::{Rng, SeedableRng};
    let seed_events: Vec<Vec<u8>> = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson"))
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    for case in 0..6u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(case);
        let mut input = Vec::new();
        for _ in 0..rng.random_range(1..300) {
            match rng.random_range(0..4) {
                0 => input.extend((0..rng.random_range(0..80)).map(|_| rng.random::<u8>()).filter(|b| *b != b'\n')),
                1 => input.extend_from_slice(&seed_events[rng.random_range(0..seed_events.len())]),
                2 => input.extend_from_slice(
                    format!("{{\"@timestamp\":{},\"n\":{}}}", rng.random_range(0..1_000_000u64), rng.random::<u32>())
                        .as_bytes(),
                ),
                _ => {}
            }
            input.push(b'\n');
        }
        if rng.random_bool(0.5) {
            input.extend_from_slice(b"{\"tail\":1}");
        }
        let workers = rng.random_range(1..4).to_string();
        let batch = rng.random_range(1..50).to_string();
        let o = run(&["--workers", &workers, "--batch-size", &batch], &input);
        assert_eq!(o.code, 0, "{}", o.stderr);
        // Remove the alert lines: what remains is the input, byte for byte.
        let mut rest = Vec::new();
        for l in o.stdout.split_inclusive(|b| *b == b'\n') {
            let is_alert = serde_json::from_slice::<serde_json::Value>(l).is_ok_and(|v| {
                v.pointer("/event/kind").and_then(|k| k.as_str()) == Some("alert") && v.get("eql").is_some()
            });
            if !is_alert {
                rest.extend_from_slice(l);
            }
        }
        eqnice!(expected_output(&input), rest);
    }
}

/// The seed cases as Fluent Bit's `tail` sends them without `Parser json`: each event a JSON
/// string in `log`, after a `date` key. Every line still comes out unchanged; stderr says once
/// what happened and how to fix the shipper; the same events unwrapped give alerts.
#[test]
fn wrapped_events_pass_through_with_one_warning_naming_the_fix() {
    let seed = std::fs::read_to_string(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let mut input = String::new();
    for _ in 0..4 {
        for line in seed.lines().filter(|l| !l.trim().is_empty()) {
            let wrapped = serde_json::json!({"date": 1772704800.5, "log": line});
            input.push_str(&wrapped.to_string());
            input.push('\n');
        }
    }
    let lines = input.lines().count();
    assert!(lines >= 100, "enough lines for the warning: {lines}");
    let out = run(&["--metrics-address", "off"], input.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, input.as_bytes(), "passed through unchanged, no alert");
    let stderr = &out.stderr;
    assert_eq!(stderr.matches("wrapped as a JSON string in the field `log`").count(), 1, "{stderr}");
    assert!(stderr.contains("Parser json"), "{stderr}");
    let unwrapped = run(&["--metrics-address", "off"], seed.as_bytes());
    assert!(!unwrapped.alerts().is_empty(), "the same events unwrapped fire");
    assert!(!unwrapped.stderr.contains("wrapped as a JSON string"));
}
