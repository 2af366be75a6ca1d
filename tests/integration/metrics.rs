//! Scrapes `/metrics` of a running binary after a known input and checks exact counter values
//! (issue 5). Stage-match counts for the seed cases: stage 0 (creation) matches the 7 creations
//! of P1-P6 and 8 near misses whose creation itself is valid (N1, N2, N4, N5, N9, N10, N11, N13).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{cmd, data, wait_output, wait_until};

pub(crate) fn scrape(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

pub(crate) fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("series {series} not found in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// Runs the binary (with `extra` flags) over the seed cases plus one line per invalid reason, waits
/// until every line is out with stdin still open, and returns the `/metrics` page and the input
/// size in bytes.
fn scrape_after_seed_cases(extra: &[&str]) -> (String, usize) {
    let mut input = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    input.extend_from_slice(b"not json\n\xff\xfe\n[1]\n{\"a\":1}\n{\"@timestamp\":\"x\"}\n");
    input.extend_from_slice(format!("{{\"pad\":\"{}\"}}\n", "x".repeat(5000)).as_bytes());
    input.extend_from_slice(b"{\"@timestamp\":\"2020-01-01T00:00:00Z\"}\n");
    let mut args = vec!["--metrics-address", "127.0.0.1:0", "--max-line-bytes", "4096", "--idle-release", "200ms"];
    args.extend_from_slice(extra);
    let mut child = cmd(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "exited before serving metrics");
        if let Some(rest) = line.trim().strip_prefix("eqlstream: metrics on http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    std::thread::spawn(move || for _ in reader.lines() {});
    assert!(addr.starts_with("127.0.0.1:"), "loopback by default: {addr}");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    // Wait until every line and alert is out (61 + 7 lines + 6 alerts), stdin still open.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = 0;
    while lines < 74 && Instant::now() < deadline {
        let mut l = Vec::new();
        if out.read_until(b'\n', &mut l).unwrap() == 0 {
            break;
        }
        lines += 1;
    }
    assert_eq!(lines, 74);
    // The writer flushes its counts after writing a batch: wait for that last flush (every line
    // counted as sent, every queue empty) instead of sleeping.
    let mut m = String::new();
    let flushed = wait_until(Duration::from_secs(30), || {
        m = scrape(&addr, "/metrics");
        let queues =
            ["decode", "sequencer", "write"].map(|s| value(&m, &format!("eqlstream_queue_events{{stage=\"{s}\"}}")));
        value(&m, "eqlstream_sent_events_total") >= 74.0 && queues == [0.0; 3]
    });
    assert!(flushed, "counts never settled:\n{m}");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(scrape(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    drop(stdin);
    let o = wait_output(child, Duration::from_secs(30));
    assert_eq!(o.code, 0);
    (m, input.len())
}

#[test]
fn metrics_count_exactly_what_went_through() {
    // Every line parsed, so every invalid line is classified.
    let (m, input_len) = scrape_after_seed_cases(&["--no-prefilter"]);
    let rule = "rule_id=\"1dc56174-5d02-4ca4-af92-e391f096fb21\"";
    assert_eq!(value(&m, "eqlstream_received_events_total"), 68.0);
    assert_eq!(value(&m, "eqlstream_received_bytes_total"), input_len as f64);
    assert_eq!(value(&m, "eqlstream_sent_events_total"), 74.0);
    for reason in ["invalid_json", "invalid_utf8", "not_object", "too_long", "no_timestamp", "bad_timestamp"] {
        assert_eq!(value(&m, &format!("eqlstream_invalid_events_total{{reason=\"{reason}\"}}")), 1.0, "{reason}");
    }
    assert_eq!(value(&m, "eqlstream_late_events_total{source=\"stdin\"}"), 1.0);
    assert_eq!(value(&m, "eqlstream_outlier_events_total{source=\"stdin\"}"), 0.0);
    assert_eq!(value(&m, "eqlstream_sources{state=\"active\"}"), 1.0);
    assert_eq!(value(&m, "eqlstream_prefilter_skipped_events_total"), 0.0, "--no-prefilter parses every line");
    assert_eq!(value(&m, "eqlstream_prefilter_scanned_events_total"), 0.0);
    assert_eq!(value(&m, "eqlstream_prefilter_active"), 0.0);
    assert_eq!(value(&m, &format!("eqlstream_stage_matches_total{{{rule},stage=\"0\"}}")), 15.0);
    assert_eq!(value(&m, &format!("eqlstream_stage_matches_total{{{rule},stage=\"1\"}}")), 17.0);
    assert_eq!(value(&m, &format!("eqlstream_stage_matches_total{{{rule},stage=\"2\"}}")), 16.0);
    let alerts = m.lines().find(|l| l.starts_with("eqlstream_alerts_total{")).unwrap();
    assert!(alerts.contains(rule) && alerts.ends_with(" 6"), "{alerts}");
    for stage in ["decode", "sequencer", "write"] {
        assert_eq!(value(&m, &format!("eqlstream_queue_events{{stage=\"{stage}\"}}")), 0.0, "{stage} queue drained");
    }
}

#[test]
fn the_default_prefilter_skips_lines_without_changing_matches_or_alerts() {
    let (m, input_len) = scrape_after_seed_cases(&[]);
    let rule = "rule_id=\"1dc56174-5d02-4ca4-af92-e391f096fb21\"";
    assert_eq!(value(&m, "eqlstream_received_events_total"), 68.0);
    assert_eq!(value(&m, "eqlstream_received_bytes_total"), input_len as f64);
    assert_eq!(value(&m, "eqlstream_sent_events_total"), 74.0);
    // Only a line whose first key is `@timestamp` can be skipped: five seed-case events lacking
    // some literal of every stage (N13's fork among them), the last line, and
    // `{"@timestamp":"x"}`, whose raw timestamp is classified `bad_timestamp` without a parse.
    // The other hostile lines have no such key, so they are parsed and classified as without
    // the prefilter; the too-long line is refused before the prefilter.
    assert_eq!(value(&m, "eqlstream_prefilter_skipped_events_total"), 7.0);
    // Every line but the too-long one is scanned (the run is shorter than a decision window).
    assert_eq!(value(&m, "eqlstream_prefilter_scanned_events_total"), 67.0);
    assert_eq!(value(&m, "eqlstream_prefilter_active"), 1.0);
    for reason in ["invalid_json", "invalid_utf8", "not_object", "too_long", "no_timestamp", "bad_timestamp"] {
        assert_eq!(value(&m, &format!("eqlstream_invalid_events_total{{reason=\"{reason}\"}}")), 1.0, "{reason}");
    }
    assert_eq!(value(&m, &format!("eqlstream_stage_matches_total{{{rule},stage=\"0\"}}")), 15.0);
    assert_eq!(value(&m, &format!("eqlstream_stage_matches_total{{{rule},stage=\"1\"}}")), 17.0);
    assert_eq!(value(&m, &format!("eqlstream_stage_matches_total{{{rule},stage=\"2\"}}")), 16.0);
    let alerts = m.lines().find(|l| l.starts_with("eqlstream_alerts_total{")).unwrap();
    assert!(alerts.contains(rule) && alerts.ends_with(" 6"), "{alerts}");
}

/// The metric names in the reference table of `docs/alerts-and-metrics.md` (every backticked
/// `eqlstream_*` or `process_*` name in a table row's first cell).
fn documented_families() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts-and-metrics.md")).unwrap();
    let mut names = Vec::new();
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap_or("");
        for name in first_cell.split('`').skip(1).step_by(2) {
            if name.starts_with("eqlstream_") || name.starts_with("process_") {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// The samples of family `name` (histograms and summaries included) in an exposition.
fn samples<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let series = l.split([' ', '{']).next().unwrap_or("");
            series == name || ["_bucket", "_sum", "_count"].iter().any(|s| series.strip_suffix(s) == Some(name))
        })
        .collect()
}

#[test]
fn every_documented_family_is_fed_by_the_seed_cases() {
    let (m, _) = scrape_after_seed_cases(&[]);
    let names = documented_families();
    assert!(names.len() >= 30, "the reference table was not found: {names:?}");
    for name in &names {
        assert!(!samples(&m, name).is_empty(), "{name} has no sample after the seed cases:\n{m}");
    }
    // And every family the binary exposes is documented.
    for line in m.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let family = line.split(' ').next().unwrap_or("");
        assert!(names.iter().any(|n| n == family), "{family} is exposed but not in the reference table");
    }
    // Every stage times its batches: the read and partition stages included.
    for stage in ["read", "decode", "sequencer", "partition", "write"] {
        let count = value(&m, &format!("eqlstream_batch_duration_seconds_count{{stage=\"{stage}\"}}"));
        assert!(count >= 1.0, "stage {stage} observed no batch:\n{m}");
    }
    assert!(samples(&m, "eqlstream_queue_events").iter().all(|l| !l.contains("stage=\"read\"")), "no read queue");
    // CPU seconds as a float of clock ticks, not whole seconds.
    let cpu = value(&m, "process_cpu_seconds_total");
    assert!(cpu > 0.0, "CPU seconds: {cpu}");
    // The exposition passes promtool's lint when it is installed (Debian: `prometheus`; .ci/run
    // installs it and sets EQLSTREAM_REQUIRE_PROMTOOL=1, so that CI cannot skip this check).
    let body = m.split_once("\r\n\r\n").map_or(m.as_str(), |(_, b)| b);
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    if std::env::var("EQLSTREAM_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1") {
        assert!(spawned.is_ok(), "promtool is required (EQLSTREAM_REQUIRE_PROMTOOL=1) but cannot be run");
    }
    if spawned.is_err() {
        eprintln!("promtool not installed: the exposition lint is skipped (Debian: apt-get install prometheus)");
    }
    if let Ok(mut child) = spawned {
        child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
    }
}
