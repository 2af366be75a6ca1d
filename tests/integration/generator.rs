//! Integration tests of the `eqlstream-loadgen` binary: determinism, truth correctness (checked
//! against a small, independent evaluator of eql-semantics.md §0/§10 written here), the
//! `--disorder` lateness bound, hostile lines, live keys, TCP output and `score`.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_eqlstream-loadgen");
const RULE_ID: &str = "1dc56174-5d02-4ca4-af92-e391f096fb21";

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("loadgen binary runs");
    assert!(
        out.status.success() || args.first() == Some(&"score"),
        "loadgen {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a generation with a truth file; returns (stdout bytes, truth bytes).
fn generate(dir: &Path, tag: &str, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let truth = dir.join(format!("{tag}.truth.jsonl"));
    let mut all: Vec<&str> = args.to_vec();
    let tp = truth.to_str().expect("utf-8 temp path");
    all.extend(["--truth", tp]);
    let out = run(&all);
    (out.stdout, std::fs::read(&truth).expect("truth file written"))
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

fn parse_ts(s: &str) -> Option<i64> {
    // "YYYY-MM-DDTHH:MM:SS.mmmZ"
    let b = s.as_bytes();
    if b.len() != 24 || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    // days_from_civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

/// Events that parse as JSON objects with a valid `@timestamp`, in arrival order.
fn events(bytes: &[u8]) -> Vec<(i64, Value)> {
    lines(bytes)
        .into_iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_slice(l).ok()?;
            let ts = parse_ts(v.get("@timestamp")?.as_str()?)?;
            v.is_object().then_some((ts, v))
        })
        .collect()
}

fn strs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

fn field(v: &Value, path: &str) -> Vec<String> {
    let p = format!("/{}", path.replace('.', "/"));
    strs(v.pointer(&p))
}

/// Case-sensitive glob where `*` matches any run (eql-semantics.md §6.2 `like`).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

const PATHS: &[&str] = &[
    "/dev/shm/*",
    "/run/shm/*",
    "/tmp/*",
    "/var/tmp/*",
    "/run/*",
    "/var/run/*",
    "/var/www/*",
    "/proc/*/fd/*",
    "/home/*/*",
    "/root/*",
    "/opt/*",
];
const DL: &[&str] = &["curl", "wget", "fetch", "ftp", "sftp", "scp", "rsync", "ld"];
const SH1: &[&str] = &["bash", "dash", "sh", "tcsh", "csh", "zsh", "ksh", "fish", "busybox"];
const SH2: &[&str] = &["bash", "dash", "ash", "sh", "tcsh", "csh", "zsh", "ksh", "fish", "busybox"];

fn with_prefixes(names: &[&str]) -> Vec<String> {
    names.iter().flat_map(|n| ["", "/bin/", "/usr/bin/", "/usr/local/bin/"].map(|p| format!("{p}{n}"))).collect()
}

fn any_in(vals: &[String], list: &[&str]) -> bool {
    vals.iter().any(|v| list.contains(&v.as_str()))
}

fn path_ok(e: &Value) -> bool {
    field(e, "file.path").iter().any(|p| PATHS.iter().any(|g| glob(g.as_bytes(), p.as_bytes())))
}

fn stage_matches(stage: usize, e: &Value) -> bool {
    let cat = field(e, "event.category");
    let action = field(e, "event.action");
    let pname = field(e, "process.name");
    match stage {
        0 => {
            let args = field(e, "process.args");
            let dl_args = with_prefixes(DL);
            let ex_args = with_prefixes(&["which", "man", "chmod", "chown"]);
            let has = |l: &[String]| args.iter().any(|a| l.contains(a));
            cat.contains(&"file".into())
                && action.contains(&"creation".into())
                && (any_in(&pname, DL) || (any_in(&pname, SH1) && has(&dl_args) && !has(&ex_args)))
                && path_ok(e)
        }
        1 => {
            cat.contains(&"process".into())
                && field(e, "event.type").contains(&"start".into())
                && action.contains(&"exec".into())
                && any_in(&field(e, "process.parent.name"), SH2)
        }
        _ => {
            cat.contains(&"file".into())
                && action.contains(&"deletion".into())
                && path_ok(e)
                && !any_in(&pname, &["rm", "ld", "conftest", "link", "gcc", "getarch"])
        }
    }
}

/// The sequences Elasticsearch would return (eql-semantics.md §0), as truth-shaped JSON values.
/// Events are ordered by (@timestamp, arrival).
fn reference_sequences(bytes: &[u8]) -> Vec<Value> {
    let mut evs: Vec<(i64, usize, Value)> =
        events(bytes).into_iter().enumerate().map(|(i, (t, v))| (t, i, v)).collect();
    evs.sort_by_key(|e| (e.0, e.1));
    type Key = (String, String, String);
    let mut pending: [HashMap<Key, Vec<(i64, String)>>; 2] = [HashMap::new(), HashMap::new()];
    let mut out = Vec::new();
    for (ts, _, e) in &evs {
        for stage in (0..3).rev() {
            if !stage_matches(stage, e) {
                continue;
            }
            let name_field = if stage == 1 { "process.name" } else { "file.name" };
            let id = field(e, "event.id").pop().unwrap_or_default();
            for c in field(e, "container.id") {
                for u in field(e, "user.id") {
                    for n in field(e, name_field) {
                        let k = (c.clone(), u.clone(), n);
                        if stage == 0 {
                            pending[0].insert(k, vec![(*ts, id.clone())]);
                            continue;
                        }
                        let Some(mut seq) = pending[stage - 1].remove(&k) else {
                            continue;
                        };
                        if ts - seq[0].0 > 10_000 {
                            continue;
                        }
                        seq.push((*ts, id.clone()));
                        if stage == 2 {
                            out.push(serde_json::json!({
                                "rule_id": RULE_ID,
                                "join_keys": [k.0, k.1, k.2],
                                "event_ids": seq.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
                            }));
                        } else {
                            pending[1].insert(k, seq);
                        }
                    }
                }
            }
        }
    }
    out
}

fn truth_values(truth: &[u8]) -> Vec<Value> {
    lines(truth).into_iter().map(|l| serde_json::from_slice(l).expect("truth lines are JSON")).collect()
}

const MIXED: &[&str] =
    &["--events", "4000", "--attack-rate", "0.02", "--decoy-rate", "0.05", "--containers", "30", "--users", "4"];

#[test]
fn same_seed_gives_identical_bytes_and_truth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [MIXED, &["--seed", "7", "--disorder", "800", "--invalid-rate", "0.02", "--live-keys", "50"]].concat();
    let a = generate(dir.path(), "a", &args);
    let b = generate(dir.path(), "b", &args);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert!(!a.1.is_empty());
}

#[test]
fn different_seed_gives_different_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = generate(dir.path(), "a", &[MIXED, &["--seed", "1"]].concat());
    let b = generate(dir.path(), "b", &[MIXED, &["--seed", "2"]].concat());
    assert_ne!(a.0, b.0);
    assert_ne!(a.1, b.1);
}

#[test]
fn writes_exactly_the_requested_number_of_events() {
    let out = run(&[MIXED, &["--seed", "3"]].concat());
    assert_eq!(lines(&out.stdout).len(), 4000);
    let ids: std::collections::HashSet<String> =
        events(&out.stdout).iter().map(|(_, v)| field(v, "event.id").concat()).collect();
    assert_eq!(ids.len(), 4000, "event ids are unique");
}

#[test]
fn truth_equals_an_independent_es_semantics_evaluation() {
    let dir = tempfile::tempdir().expect("temp dir");
    for seed in ["1", "2", "3"] {
        let (out, truth) = generate(dir.path(), seed, &[MIXED, &["--seed", seed]].concat());
        let truth = truth_values(&truth);
        assert!(truth.len() > 40, "attacks were generated: {}", truth.len());
        assert_eq!(reference_sequences(&out), truth, "seed {seed}");
    }
}

#[test]
fn truth_entries_reference_events_in_stage_order_with_matching_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, truth) = generate(dir.path(), "t", &[MIXED, &["--seed", "11"]].concat());
    let evs = events(&out);
    let by_id: HashMap<String, (usize, i64, &Value)> =
        evs.iter().enumerate().map(|(i, (t, v))| (field(v, "event.id").concat(), (i, *t, v))).collect();
    let mut last_completion = i64::MIN;
    for t in truth_values(&truth) {
        assert_eq!(t["rule_id"], RULE_ID);
        let keys: Vec<String> = strs(t.get("join_keys"));
        let ids: Vec<String> = strs(t.get("event_ids"));
        assert_eq!(ids.len(), 3);
        let stages: Vec<&(usize, i64, &Value)> =
            ids.iter().map(|id| by_id.get(id).expect("truth id is in the output")).collect();
        for (s, (_, _, e)) in stages.iter().enumerate() {
            assert!(stage_matches(s, e), "stage {s} predicate: {e}");
            assert_eq!(field(e, "container.id"), vec![keys[0].clone()]);
            assert_eq!(field(e, "user.id"), vec![keys[1].clone()]);
            let name = if s == 1 { "process.name" } else { "file.name" };
            assert_eq!(field(e, name), vec![keys[2].clone()]);
        }
        assert!(stages[0].0 < stages[1].0 && stages[1].0 < stages[2].0, "arrival order follows the stages");
        assert!(stages[2].1 - stages[0].1 <= 10_000, "within maxspan");
        assert!(stages[2].1 >= last_completion, "truth is ordered by completion time");
        last_completion = stages[2].1;
    }
}

#[test]
fn decoys_of_every_kind_never_form_a_sequence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let truth = dir.path().join("d.truth.jsonl");
    let tp = truth.to_str().expect("utf-8 temp path");
    let out = run(&[
        "--events",
        "5000",
        "--attack-rate",
        "0",
        "--decoy-rate",
        "0.2",
        "--seed",
        "4",
        "--stats",
        "--truth",
        tp,
    ]);
    assert!(std::fs::read(&truth).expect("truth written").is_empty());
    assert!(reference_sequences(&out.stdout).is_empty());
    let stats = String::from_utf8_lossy(&out.stderr);
    let kinds = stats.lines().find(|l| l.starts_with("decoys:")).expect("decoy stats line");
    let counts: Vec<&str> = kinds.split_whitespace().skip(1).collect();
    assert_eq!(counts.len(), 20, "{kinds}");
    assert!(counts.iter().all(|c| !c.ends_with("=0")), "every kind generated: {kinds}");
}

#[test]
fn duration_mode_stops_and_completes_every_started_attack() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, truth) = generate(
        dir.path(),
        "dur",
        &["--duration", "300ms", "--rate", "5000", "--attack-rate", "0.05", "--seed", "13"],
    );
    let n = lines(&out).len();
    assert!((500..=3000).contains(&n), "about 1500 lines in 300 ms at 5000/s: {n}");
    assert_eq!(reference_sequences(&out), truth_values(&truth));
}

#[test]
fn rate_limits_the_output() {
    let started = std::time::Instant::now();
    run(&["--events", "1000", "--rate", "2000", "--seed", "14"]);
    assert!(started.elapsed() >= std::time::Duration::from_millis(400), "1000 lines at 2000/s take ~0.5 s");
}

#[test]
fn disorder_lateness_is_bounded_and_truth_still_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, truth) = generate(dir.path(), "o", &[MIXED, &["--seed", "5", "--disorder", "1500"]].concat());
    let mut max_seen = 0i64;
    let mut inversions = 0;
    for (ts, _) in events(&out) {
        if ts < max_seen {
            inversions += 1;
        }
        assert!(max_seen - ts <= 1500, "event {ts} arrived {} ms late", max_seen - ts);
        max_seen = max_seen.max(ts);
    }
    assert!(inversions > 100, "disorder actually reorders: {inversions}");
    assert_eq!(reference_sequences(&out), truth_values(&truth));
}

#[test]
fn hostile_lines_appear_at_the_requested_rate_and_are_never_in_truth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, truth) = generate(dir.path(), "h", &[MIXED, &["--seed", "6", "--invalid-rate", "0.05"]].concat());
    let total = out.iter().filter(|b| **b == b'\n').count();
    let hostile = total - 4000;
    assert!((120..=280).contains(&hostile), "about 5% of 4000: {hostile}");
    let ok_json =
        lines(&out).iter().filter(|l| serde_json::from_slice::<Value>(l).is_ok_and(|v| v.is_object())).count();
    assert!(ok_json < total, "some lines are not JSON objects");
    assert!(out.windows(2).any(|w| w == b"\r\n"), "a CRLF line is present");
    assert!(std::str::from_utf8(&out).is_err(), "an invalid UTF-8 line is present");
    assert_eq!(reference_sequences(&out), truth_values(&truth));
}

#[test]
fn live_keys_are_distinct_stage1_partials_within_one_window() {
    let out =
        run(&["--events", "3000", "--live-keys", "2000", "--attack-rate", "0", "--decoy-rate", "0", "--seed", "8"]);
    let evs = events(&out.stdout);
    let live: Vec<&(i64, Value)> = evs.iter().take(2000).collect();
    let keys: std::collections::HashSet<(String, String, String)> = live
        .iter()
        .map(|(_, e)| {
            assert!(stage_matches(0, e), "live key is a stage-1 creation: {e}");
            (field(e, "container.id").concat(), field(e, "user.id").concat(), field(e, "file.name").concat())
        })
        .collect();
    assert_eq!(keys.len(), 2000);
    let span = live.last().map(|e| e.0).unwrap_or(0) - live[0].0;
    assert!(span < 10_000, "inside one maxspan window: {span}");
    assert!(reference_sequences(&out.stdout).is_empty());
}

#[test]
fn tcp_output_carries_the_same_bytes_as_stdout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("loadgen connects");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read stream");
        buf
    });
    let target = format!("tcp://{addr}");
    run(&["--events", "1000", "--seed", "9", "-o", &target]);
    let received = reader.join().expect("reader thread");
    let stdout = run(&["--events", "1000", "--seed", "9"]).stdout;
    assert_eq!(received, stdout);
}

#[test]
fn huge_lines_flag_adds_rare_lines_over_one_mebibyte() {
    let out = run(&["--events", "3000", "--invalid-rate", "1.0", "--huge-lines", "--seed", "15"]);
    let huge = lines(&out.stdout).iter().filter(|l| l.len() > 1 << 20).count();
    assert!((1..=12).contains(&huge), "about 3 of 3000 hostile lines: {huge}");
    let plain = run(&["--events", "3000", "--invalid-rate", "1.0", "--seed", "15"]);
    assert!(lines(&plain.stdout).iter().all(|l| l.len() < 1 << 20));
}

fn alert_line(t: &Value, events: &HashMap<String, &Value>) -> String {
    let evs: Vec<Value> =
        strs(t.get("event_ids")).iter().map(|id| (*events.get(id).expect("event present")).clone()).collect();
    serde_json::json!({
        "@timestamp": "2026-03-05T11:00:00.000Z",
        "event": {"kind": "alert"},
        "rule": {"id": t["rule_id"], "name": "cradle"},
        "eql": {"join_keys": t["join_keys"], "events": evs},
    })
    .to_string()
}

#[test]
fn score_is_perfect_on_alerts_built_from_truth_and_reports_misses_and_false_alerts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, truth_bytes) = generate(dir.path(), "s", &[MIXED, &["--seed", "12", "--invalid-rate", "0.01"]].concat());
    let truth = truth_values(&truth_bytes);
    let evs = events(&out);
    let by_id: HashMap<String, &Value> = evs.iter().map(|(_, v)| (field(v, "event.id").concat(), v)).collect();
    // Alerts interleaved with the pass-through lines (including hostile ones).
    let mut alerts = out.clone();
    for t in &truth {
        alerts.extend_from_slice(alert_line(t, &by_id).as_bytes());
        alerts.push(b'\n');
    }
    let truth_path = dir.path().join("s.truth.jsonl");
    let alerts_path = dir.path().join("alerts.jsonl");
    // An alert of another rule is not scored against the seed rule's truth.
    let mut other = truth[0].clone();
    other["rule_id"] = Value::from("00000000-other-rule");
    alerts.extend_from_slice(alert_line(&other, &by_id).as_bytes());
    alerts.push(b'\n');
    std::fs::write(&alerts_path, &alerts).expect("write alerts");
    let ok = run(&[
        "score",
        "--truth",
        truth_path.to_str().expect("utf-8"),
        "--alerts",
        alerts_path.to_str().expect("utf-8"),
    ]);
    let report = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{report}");
    assert!(report.contains("recall:          100.000%"), "{report}");
    assert!(report.contains("precision:       100.000%"), "{report}");
    assert!(report.contains("ignored alerts of other rules: 1"), "{report}");

    // Drop one alert (a miss) and perturb another's event ids (a false alert plus a miss).
    let mut bad = out;
    for (i, t) in truth.iter().enumerate().skip(1) {
        let mut t = t.clone();
        if i == 1 {
            t["event_ids"][1] = t["event_ids"][0].clone();
        }
        bad.extend_from_slice(alert_line(&t, &by_id).as_bytes());
        bad.push(b'\n');
    }
    std::fs::write(&alerts_path, &bad).expect("write alerts");
    let res = run(&[
        "score",
        "--truth",
        truth_path.to_str().expect("utf-8"),
        "--alerts",
        alerts_path.to_str().expect("utf-8"),
    ]);
    let report = String::from_utf8_lossy(&res.stdout);
    assert_eq!(res.status.code(), Some(1), "{report}");
    assert!(report.contains("misses: 2"), "{report}");
    assert!(report.contains("false alerts: 1"), "{report}");
    let first = strs(truth[0].get("event_ids")).concat();
    assert!(report.contains(&strs(truth[0].get("event_ids"))[0]), "the miss is listed ({first}): {report}");
}

// ---------------------------------------------------------------------------------------------
// --connections, --realtime, --drain, latency

fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
}

/// Accepts `n` connections on a loopback listener and reads each to EOF; returns the listener
/// address and a handle yielding the byte streams in accept order.
fn tcp_receiver(n: usize) -> (String, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let h = std::thread::spawn(move || {
        let readers: Vec<std::thread::JoinHandle<Vec<u8>>> = (0..n)
            .map(|_| {
                let (mut s, _) = listener.accept().expect("loadgen connects");
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    s.read_to_end(&mut buf).expect("read stream");
                    buf
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().expect("reader thread")).collect()
    });
    (format!("tcp://{addr}"), h)
}

fn container_of(line: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(line).ok()?;
    v.pointer("/container/id")?.as_str().map(str::to_string)
}

/// Splits `with_hostile` (a stream with hostile lines) into groups "hostile lines + the event line
/// they precede", using `plain` (the same run without hostile lines: the event lines alone).
fn groups<'a>(with_hostile: &'a [u8], plain: &'a [u8]) -> Vec<(Vec<&'a [u8]>, &'a [u8])> {
    let events = lines(plain);
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut j = 0;
    for l in lines(with_hostile) {
        if j < events.len() && l == events[j] {
            out.push((std::mem::take(&mut pending), l));
            j += 1;
        } else {
            pending.push(l);
        }
    }
    assert_eq!(j, events.len(), "every event line found in order");
    assert!(pending.is_empty(), "no hostile line after the last event");
    out
}

#[test]
fn connections_route_by_container_keep_order_and_carry_hostile_lines_along() {
    const N: usize = 3;
    let args = [MIXED, &["--seed", "21", "--disorder", "700"]].concat();
    let hostile = [&args[..], &["--invalid-rate", "0.03"]].concat();
    let single = run(&hostile).stdout;
    let plain = run(&args).stdout;
    let receive = |extra: &[&str]| {
        let (target, h) = tcp_receiver(N);
        run(&[&hostile[..], extra, &["--connections", "3", "-o", &target]].concat());
        h.join().expect("receiver")
    };
    let streams = receive(&[]);
    assert_eq!(streams.len(), N);

    // Every container on exactly one connection (judged by the event lines, which are unique).
    let event_lines: std::collections::HashSet<&[u8]> = lines(&plain).into_iter().collect();
    let mut conn_of: HashMap<String, usize> = HashMap::new();
    for (i, s) in streams.iter().enumerate() {
        assert!(!s.is_empty(), "connection {i} carried lines");
        for l in lines(s).into_iter().filter(|l| event_lines.contains(l)) {
            let c = container_of(l).expect("event lines carry container.id");
            assert_eq!(*conn_of.entry(c.clone()).or_insert(i), i, "container {c} on two connections");
        }
    }
    // Each connection's bytes = the single-output stream's groups of its containers, in order
    // (so: the multiset union is the single stream, each container's lines keep the generator's
    // order, hostile lines travel with the event they precede).
    let mut expected = vec![Vec::new(); N];
    for (hostile_lines, ev) in groups(&single, &plain) {
        let c = container_of(ev).expect("container.id");
        let i = *conn_of.get(&c).expect("container seen on a connection");
        for l in hostile_lines.iter().chain([&ev]) {
            expected[i].extend_from_slice(l);
            expected[i].push(b'\n');
        }
    }
    for i in 0..N {
        assert!(streams[i] == expected[i], "connection {i} differs from the single stream's share");
    }
    assert!(single.len() > plain.len(), "hostile lines were generated");

    // Same seed and options: same bytes per connection.
    let mut again = receive(&[]);
    let mut first = streams.clone();
    first.sort();
    again.sort();
    assert!(first == again, "per-connection streams are deterministic");
}

#[test]
fn connections_need_tcp_output_and_at_least_one() {
    for args in [&["--connections", "2"][..], &["--connections", "0"], &["--connections", "2", "-o", "/dev/null"]] {
        let out = Command::new(BIN).args(["--events", "10"]).args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs the loadgen with stdout piped; returns every complete line with the wall-clock time
/// (ns) of the read that completed it, and the times just before the start and after the exit.
fn run_timed(args: &[&str]) -> (Vec<(u64, Vec<u8>)>, u64, u64) {
    let before = unix_ns();
    let mut child =
        Command::new(BIN).args(args).stdout(std::process::Stdio::piped()).spawn().expect("loadgen binary runs");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut got = Vec::new();
    let mut partial = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = out.read(&mut buf).expect("read stdout");
        let t = unix_ns();
        if n == 0 {
            break;
        }
        for b in &buf[..n] {
            if *b == b'\n' {
                got.push((t, std::mem::take(&mut partial)));
            } else {
                partial.push(*b);
            }
        }
    }
    let status = child.wait().expect("loadgen exits");
    let after = unix_ns();
    assert!(status.success(), "loadgen {args:?} failed");
    assert!(partial.is_empty(), "output ends with a newline");
    (got, before, after)
}

fn ts_ms_of(line: &[u8]) -> i64 {
    let v: Value = serde_json::from_slice(line).expect("event lines are JSON");
    parse_ts(v["@timestamp"].as_str().expect("@timestamp")).expect("valid @timestamp")
}

#[test]
fn realtime_writes_every_line_at_or_after_its_timestamp_at_the_requested_rate() {
    let args = ["--realtime", "--rate", "3000", "--events", "900", "--attack-rate", "0", "--decoy-rate", "0"];
    let (got, before, after) = run_timed(&args);
    assert_eq!(got.len(), 900);
    let ts: Vec<i64> = got.iter().map(|(_, l)| ts_ms_of(l)).collect();
    for ((read_ns, _), t) in got.iter().zip(&ts) {
        assert!(
            *read_ns >= *t as u64 * 1_000_000,
            "a line was read {} ms before its @timestamp",
            *t as f64 - *read_ns as f64 / 1e6
        );
    }
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "in time order");
    // @timestamp is the wall clock: inside the run (it starts at the loadgen's start, and no line
    // is written before its time).
    assert!(ts[0] as u64 >= before / 1_000_000, "first @timestamp {} before the start {}", ts[0], before / 1_000_000);
    assert!(ts[899] as u64 <= after / 1_000_000, "last @timestamp after the exit");
    // 900 events at 3000/s: ~300 ms of @timestamp time (seeded, so this is exact per seed; the
    // bounds only guard the rate mapping).
    let span = ts[899] - ts[0];
    assert!((240..=360).contains(&span), "900 events at 3000/s span {span} ms");
    assert!(after - before >= span as u64 * 1_000_000, "the run lasted at least the @timestamp span");
}

#[test]
fn realtime_needs_a_rate_and_owns_the_clock() {
    for args in [&["--realtime"][..], &["--realtime", "--rate", "0"], &["--realtime", "--rate=-5"]] {
        let out = Command::new(BIN).args(["--events", "10"]).args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for args in [&["--sim-eps", "10"][..], &["--start-ms", "0"]] {
        let out =
            Command::new(BIN).args(["--events", "10", "--realtime", "--rate", "10"]).args(args).output().expect("runs");
        assert!(!out.status.success(), "{args:?} conflicts with --realtime");
    }
}

/// Truth values without the write time (as `reference_sequences` gives them).
fn without_write_time(truth: &[Value]) -> Vec<Value> {
    truth
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.as_object_mut().expect("truth lines are objects").remove("completed_written_unix_ns");
            t
        })
        .collect()
}

#[test]
fn realtime_truth_records_when_each_completing_line_was_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let truth_path = dir.path().join("rt.truth.jsonl");
    let tp = truth_path.to_str().expect("utf-8 temp path");
    // 400 ms of scenario starts; the attacks started last complete up to 10 s later.
    let args = [
        "--realtime",
        "--rate",
        "2000",
        "--duration",
        "400ms",
        "--attack-rate",
        "0.03",
        "--decoy-rate",
        "0.03",
        "--disorder",
        "300",
        "--invalid-rate",
        "0.01",
        "--seed",
        "31",
        "--truth",
        tp,
    ];
    let (got, before, after) = run_timed(&args);
    let stdout: Vec<u8> = got.iter().flat_map(|(_, l)| l.iter().copied().chain([b'\n'])).collect();
    let truth = truth_values(&std::fs::read(&truth_path).expect("truth written"));
    assert!(truth.len() >= 5, "attacks were generated: {}", truth.len());
    // The scenarios' relative timings survive real time: ES semantics give exactly the truth.
    assert_eq!(reference_sequences(&stdout), without_write_time(&truth));
    let by_id: HashMap<String, i64> =
        events(&stdout).into_iter().map(|(t, v)| (field(&v, "event.id").concat(), t)).collect();
    for t in &truth {
        let w = t["completed_written_unix_ns"].as_u64().expect("completed_written_unix_ns under --realtime");
        let ids = strs(t.get("event_ids"));
        let completing_ts = by_id[&ids[2]];
        // Written after the wall clock reached its @timestamp, before the loadgen exited.
        assert!(w >= completing_ts as u64 * 1_000_000, "stamp {w} before the completing @timestamp {completing_ts}");
        assert!(w >= before && w <= after);
    }
}

#[test]
fn drain_adds_only_background_after_the_last_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = [MIXED, &["--seed", "41"]].concat();
    let (plain, truth) = generate(dir.path(), "p", &base);
    let (drained, drained_truth) = generate(dir.path(), "d", &[&base[..], &["--drain", "5s"]].concat());
    assert_eq!(truth, drained_truth, "the drain never adds a sequence");
    assert!(drained.starts_with(&plain), "the run proper is unchanged");
    let extra = &drained[plain.len()..];
    assert!(lines(extra).len() > 1000, "5 s of background at 1000/s");
    let last_run = events(&plain).iter().map(|e| e.0).max().expect("events");
    let last = events(&drained).iter().map(|e| e.0).max().expect("events");
    assert!(
        (5_000..5_100).contains(&(last - last_run)),
        "background for 5 s after the last event: {}",
        last - last_run
    );
    assert_eq!(reference_sequences(&drained), truth_values(&truth));
}

/// Serves `body` as `/metrics` to every request until the returned sender is dropped.
fn metrics_server(body: &'static str) -> (String, std::sync::mpsc::Sender<()>) {
    use std::io::Write;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let url = format!("http://{}/metrics", listener.local_addr().expect("address"));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || loop {
        if !matches!(rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
            return;
        }
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).expect("blocking stream");
                let mut req = [0u8; 1024];
                let n = s.read(&mut req).unwrap_or(0);
                assert!(req[..n].starts_with(b"GET /metrics HTTP/1.0\r\n"), "{:?}", String::from_utf8_lossy(&req[..n]));
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    });
    (url, tx)
}

const EXPOSITION: &str = "\
# HELP eqlstream_alert_latency_seconds From the arrival of the completing line to the alert.
# TYPE eqlstream_alert_latency_seconds histogram
eqlstream_alert_latency_seconds_bucket{le=\"0.5\"} 0
eqlstream_alert_latency_seconds_bucket{le=\"1\"} 10
eqlstream_alert_latency_seconds_bucket{le=\"2.5\"} 60
eqlstream_alert_latency_seconds_bucket{le=\"5\"} 100
eqlstream_alert_latency_seconds_bucket{le=\"+Inf\"} 100
eqlstream_alert_latency_seconds_sum 180
eqlstream_alert_latency_seconds_count 100
eqlstream_events_total 12345
";

#[test]
fn latency_matches_alerts_measures_from_the_write_time_and_reads_the_metrics() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, truth_bytes) = generate(dir.path(), "l", &[MIXED, &["--seed", "17"]].concat());
    let truth = truth_values(&truth_bytes);
    let evs = events(&out);
    let by_id: HashMap<String, &Value> = evs.iter().map(|(_, v)| (field(v, "event.id").concat(), v)).collect();
    // A realtime-style truth file: every completing line "written" 1.5 s ago.
    let written = unix_ns() - 1_500_000_000;
    let mut timed = String::new();
    for t in &truth {
        let mut t = t.clone();
        t["completed_written_unix_ns"] = Value::from(written);
        timed.push_str(&t.to_string());
        timed.push('\n');
    }
    let truth_path = dir.path().join("timed.truth.jsonl");
    std::fs::write(&truth_path, timed).expect("write truth");
    let tp = truth_path.to_str().expect("utf-8");
    // eqlstream-like output: the pass-through lines with the alerts among them.
    let mut stream = out.clone();
    for t in &truth {
        stream.extend_from_slice(alert_line(t, &by_id).as_bytes());
        stream.push(b'\n');
    }
    let (url, stop) = metrics_server(EXPOSITION);
    let latency = |input: &[u8], truth: &str, metrics: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["latency", "--truth", truth]);
        if let Some(m) = metrics {
            cmd.args(["--metrics", m]);
        }
        let mut child =
            cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().expect("latency runs");
        child.stdin.take().expect("stdin").write_all(input).expect("feed stdin");
        child.wait_with_output().expect("latency exits")
    };
    let res = latency(&stream, tp, Some(&url));
    let since_written_ms = (unix_ns() - written) as f64 / 1e6;
    let report = String::from_utf8_lossy(&res.stdout).into_owned();
    assert_eq!(res.status.code(), Some(0), "{report}");
    assert!(report.contains("recall:          100.000%"), "{report}");
    assert!(report.contains("precision:       100.000%"), "{report}");
    let lat_line = report.lines().find(|l| l.starts_with("latency ms")).expect("latency line");
    assert!(lat_line.contains(&format!("n={}", truth.len())), "{lat_line}");
    let p = |name: &str| -> f64 {
        let v = lat_line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).expect("field");
        v.parse().expect("a number")
    };
    // Read after the 1.5 s-old write, before the tool ended.
    assert!(p("p50") >= 1500.0 && p("max") <= since_written_ms, "{lat_line} (written {since_written_ms} ms ago)");
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"), "{lat_line}");
    // Buckets: p50 = rank 50 in (1, 2.5] -> 1 + 1.5 * 40/50 = 2.2 s; p99 = rank 99 in (2.5, 5]
    // -> 2.5 + 2.5 * 39/40 = 4.9375 s.
    assert!(report.contains("eqlstream_alert_latency_seconds: count=100 p50=2200.000 ms p99=4937.500 ms"), "{report}");
    let diff = 4937.5 - p("p99");
    assert!(report.contains(&format!("(p99 metric - measured = {diff:+.3} ms)")), "{report}");
    assert!(report.contains("eqlstream_alert_buffering_seconds: absent"), "{report}");
    drop(stop);

    // A dropped alert: exit 1 and the miss is counted.
    let mut short = out.clone();
    for t in &truth[1..] {
        short.extend_from_slice(alert_line(t, &by_id).as_bytes());
        short.push(b'\n');
    }
    let res = latency(&short, tp, None);
    let report = String::from_utf8_lossy(&res.stdout);
    assert_eq!(res.status.code(), Some(1), "{report}");
    assert!(report.contains("misses: 1"), "{report}");
    assert!(!report.contains("eqlstream_alert_latency_seconds"), "no metrics without --metrics: {report}");

    // A plain (non-realtime) truth file: scored, no latency; a missing one: exit 2.
    let plain_truth = dir.path().join("l.truth.jsonl");
    let res = latency(&stream, plain_truth.to_str().expect("utf-8"), None);
    let report = String::from_utf8_lossy(&res.stdout);
    assert_eq!(res.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("without a write time in the truth file (not --realtime?): {}", truth.len())),
        "{report}"
    );
    let res = latency(b"", dir.path().join("absent.jsonl").to_str().expect("utf-8"), None);
    assert_eq!(res.status.code(), Some(2));
}
