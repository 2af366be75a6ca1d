//! Event time that real pipelines cannot break (issue 12): several TCP senders interleaved, one
//! line with a bad clock, a silent connection, and the alert-latency histograms.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{cmd, data, run, wait_output, Output};

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eqlstream-loadgen"))
}

/// A running eqlstream whose stdout is collected as it comes (so it never blocks on a full
/// pipe and a test can wait for a line), with the addresses it printed.
struct Running {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    input: Option<String>,
    metrics: Option<String>,
}

impl Running {
    /// Starts eqlstream with `args` and waits for its listening / metrics lines (those the args
    /// ask for).
    fn start(args: &[&str]) -> Running {
        let mut child = cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let want_input = args.iter().any(|a| a.starts_with("tcp://") || a.starts_with("unix://"));
        let want_metrics = args.windows(2).any(|w| w[0] == "--metrics-address" && w[1] != "off");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let (mut input, mut metrics) = (None, None);
        let mut line = String::new();
        while (want_input && input.is_none()) || (want_metrics && metrics.is_none()) {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "eqlstream exited before listening");
            if let Some(a) = line.trim().strip_prefix("eqlstream: listening on tcp://") {
                input = Some(a.to_string());
            }
            if let Some(a) = line.trim().strip_prefix("eqlstream: metrics on http://") {
                metrics = Some(a.trim_end_matches("/metrics").to_string());
            }
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (e2, o2) = (stderr.clone(), stdout.clone());
        let mut out = child.stdout.take().unwrap();
        let readers = vec![
            std::thread::spawn(move || {
                let mut l = String::new();
                while err.read_line(&mut l).unwrap_or(0) > 0 {
                    e2.lock().unwrap().push_str(&l);
                    l.clear();
                }
            }),
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    o2.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }),
        ];
        Running { child: Some(child), stdout, stderr, readers, input, metrics }
    }

    fn alerts_so_far(&self) -> usize {
        let out = self.stdout.lock().unwrap();
        let pattern = br#""kind":"alert""#;
        out.split(|b| *b == b'\n').filter(|l| l.windows(pattern.len()).any(|w| w == pattern)).count()
    }

    /// The value of one series of /metrics, if present.
    fn metric(&self, series: &str) -> Option<f64> {
        let addr = self.metrics.as_ref()?;
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Polls `series` until `ok` holds (panics after 20 s).
    fn wait_metric(&self, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let start = Instant::now();
        loop {
            if let Some(v) = self.metric(series).filter(|v| ok(*v)) {
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{series} never reached the expected value");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the whole output.
    fn stop(mut self) -> Output {
        let child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let o = wait_output(child, Duration::from_secs(60));
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
            code: o.code,
        }
    }
}

impl Drop for Running {
    /// A test that fails leaves no eqlstream behind.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A stable hash of a container id, for splitting the stream by container.
fn bucket(id: &str, n: usize) -> usize {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (h % n as u64) as usize
}

/// Sends the loadgen stream over `clients` TCP connections split by container, each in order,
/// written by one thread per connection in chunks of varying size, and scores the alerts.
fn several_clients_find_every_attack(clients: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (events, truth) = (dir.path().join("events.ndjson"), dir.path().join("truth.jsonl"));
    let st = loadgen()
        .args(["--events", "30000", "--attack-rate", "0.01", "--decoy-rate", "0.01", "--disorder", "1500"])
        .args(["--seed", &seed.to_string(), "-o", events.to_str().unwrap(), "--truth", truth.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let all = std::fs::read(&events).unwrap();
    let mut parts: Vec<Vec<u8>> = vec![Vec::new(); clients];
    for l in all.split_inclusive(|b| *b == b'\n') {
        let v: Value = serde_json::from_slice(l).unwrap();
        let id = v.pointer("/container/id").and_then(Value::as_str).unwrap_or("");
        parts[bucket(id, clients)].extend_from_slice(l);
    }
    assert!(parts.iter().all(|p| p.len() > 1_000_000), "every connection carries a share");

    let e = Running::start(&["--input", "tcp://127.0.0.1:0", "--metrics-address", "127.0.0.1:0"]);
    let addr = e.input.clone().unwrap();
    let socks: Vec<TcpStream> = (0..clients).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Every connection is open before any line is sent (as a shipper's workers are).
    e.wait_metric("eqlstream_sources{state=\"active\"}", |v| v == clients as f64);
    let writers: Vec<_> = socks
        .into_iter()
        .zip(parts)
        .enumerate()
        .map(|(c, (mut s, part))| {
            std::thread::spawn(move || {
                let mut rng = seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut rest = &part[..];
                while !rest.is_empty() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let n = (1 + rng % 100_000) as usize;
                    let (now, later) = rest.split_at(n.min(rest.len()));
                    s.write_all(now).unwrap();
                    rest = later;
                    if rng % 7 == 0 {
                        std::thread::sleep(Duration::from_millis(rng % 5));
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Closed connections release what they held; wait until every line is through.
    e.wait_metric("eqlstream_received_events_total", |v| v == 30_000.0);
    e.wait_metric("eqlstream_sources{state=\"active\"}", |v| v == 0.0);
    let o = e.stop();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut got: Vec<&[u8]> = o.stdout.split_inclusive(|b| *b == b'\n').filter(|l| !is_alert(l)).collect();
    let mut want: Vec<&[u8]> = all.split_inclusive(|b| *b == b'\n').collect();
    got.sort_unstable();
    want.sort_unstable();
    assert!(got == want, "every line comes out once");
    assert!(o.stderr.contains(" late=0 "), "no event is late: {}", o.stderr);
    let alerts = dir.path().join("out.ndjson");
    std::fs::write(&alerts, &o.stdout).unwrap();
    let score = loadgen()
        .args(["score", "--truth", truth.to_str().unwrap(), "--alerts", alerts.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(score.status.success(), "{clients} clients: {}", String::from_utf8_lossy(&score.stdout));
}

fn is_alert(l: &[u8]) -> bool {
    serde_json::from_slice::<Value>(l).is_ok_and(|v| v.pointer("/event/kind").and_then(Value::as_str) == Some("alert"))
}

#[test]
fn three_interleaved_tcp_clients_find_every_attack() {
    several_clients_find_every_attack(3, 31);
}

#[test]
fn eight_interleaved_tcp_clients_find_every_attack() {
    several_clients_find_every_attack(8, 32);
}

/// The seed cases' alerts with `event.created` (wall clock) removed.
fn seed_alerts(o: &Output) -> Vec<Value> {
    o.alerts()
        .into_iter()
        .map(|mut a| {
            crate::util::forget_created(&mut a);
            a
        })
        .collect()
}

#[test]
fn one_future_dated_line_anywhere_changes_no_seed_alert() {
    let seed = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let lines: Vec<&[u8]> = seed.split_inclusive(|b| *b == b'\n').collect();
    let expected = seed_alerts(&run(&[], &seed));
    assert_eq!(expected.len(), 6);
    // A copy of the first event (a file creation, stage 1 of the rule) with another id and a
    // timestamp 1 hour or about 200 years ahead, as a string and as epoch milliseconds.
    let first = std::str::from_utf8(lines[0]).unwrap();
    let at = r#""@timestamp":"2026-03-05T10:00:00.000Z""#;
    assert!(first.contains(at));
    let id = "00000000-0000-0000-0000-000000000001";
    let variants = [
        r#""@timestamp":"2026-03-05T11:10:00.000Z""#,
        r#""@timestamp":"2226-03-05T10:00:00.000Z""#,
        r#""@timestamp":1772709000000"#,
        r#""@timestamp":7258118400000"#,
        r#""@timestamp":"7258118400000""#,
    ];
    for v in variants {
        let bad = first.replace(at, v).replace(id, "ffffffff-0000-0000-0000-000000000001");
        for pos in [0, 1, 2, 5, 17, 30, 44, lines.len()] {
            let mut input = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                if i == pos {
                    input.extend_from_slice(bad.as_bytes());
                }
                input.extend_from_slice(l);
            }
            if pos == lines.len() {
                input.extend_from_slice(bad.as_bytes());
            }
            let o = run(&[], &input);
            assert_eq!(o.code, 0, "{}", o.stderr);
            assert_eq!(seed_alerts(&o), expected, "{v} at line {pos}");
            assert!(o.stderr.contains(" late=0 outliers=1 "), "{v} at line {pos}: {}", o.stderr);
        }
    }
}

/// eqlstream on TCP with `source_idle_timeout` 1 s and `idle_release`, and two clients: B, which
/// has sent two lines of 10:00:00 that match nothing (its time is confirmed, and is the
/// earliest), and A, connected second, which has sent nothing yet.
fn early_and_attacking_clients(idle_release: &str) -> (Running, TcpStream, TcpStream) {
    let e = Running::start(&[
        "--input",
        "tcp://127.0.0.1:0",
        "--metrics-address",
        "127.0.0.1:0",
        "--source-idle-timeout",
        "1s",
        "--idle-release",
        idle_release,
    ]);
    let addr = e.input.clone().unwrap();
    let mut b = TcpStream::connect(&addr).unwrap();
    let a = TcpStream::connect(&addr).unwrap();
    e.wait_metric("eqlstream_sources{state=\"active\"}", |v| v == 2.0);
    let tick = r#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"action":"tick"}}"#;
    writeln!(b, "{tick}\n{tick}").unwrap();
    (e, b, a)
}

#[test]
fn a_silent_connection_stops_holding_alerts_after_the_source_idle_timeout() {
    // Connection B sends one early event and stays open without a word; connection A sends an
    // attack and keeps sending. B holds the watermark until it has been silent for 1 s; then
    // A's alert comes out although B is still connected (idle release is out of the way).
    let seed = std::fs::read_to_string(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let lines: Vec<&str> = seed.lines().collect();
    let (e, b, mut a) = early_and_attacking_clients("1h");
    // A: the first attack (10:00:00-10:00:02), then events up to 10:00:20.
    let started = Instant::now();
    for l in &lines[..4] {
        writeln!(a, "{l}").unwrap();
    }
    let mut alert_at = None;
    let mut t = 0;
    while started.elapsed() < Duration::from_secs(15) {
        // A keeps sending (one line every 50 ms, 10:00:20 and later), so A stays active.
        t += 1;
        writeln!(
            a,
            r#"{{"@timestamp":"2026-03-05T10:00:{:02}.{:03}Z","event":{{"action":"tick"}}}}"#,
            20 + t / 1000,
            t % 1000
        )
        .unwrap();
        if e.alerts_so_far() > 0 {
            alert_at = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let alert_at = alert_at.expect("the alert came out while B was connected");
    assert!(alert_at >= Duration::from_millis(900), "B held the watermark first ({alert_at:?})");
    assert_eq!(e.metric("eqlstream_sources{state=\"idle\"}"), Some(1.0));
    drop((a, b));
    let o = e.stop();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(seed_alerts(&o).len(), 1);
}

#[test]
fn issue_16_sources_that_all_turn_idle_release_what_waits_without_new_input() {
    // Found with Kafka, whose partitions never close: B sends two early lines, A an attack, and
    // both stay open and silent. The first idle release may only go up to B's time (the slowest
    // active source); once both have turned idle, the rest must go too, without new input.
    let seed = std::fs::read_to_string(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let lines: Vec<&str> = seed.lines().collect();
    let (e, b, mut a) = early_and_attacking_clients("200ms");
    for l in &lines[..4] {
        writeln!(a, "{l}").unwrap();
    }
    let came = crate::util::wait_until(Duration::from_secs(15), || e.alerts_so_far() > 0);
    assert!(came, "the alert waits for input although every source is idle");
    assert_eq!(e.metric("eqlstream_sources{state=\"idle\"}"), Some(2.0));
    drop((a, b));
    let o = e.stop();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(seed_alerts(&o).len(), 1);
}

#[test]
fn alert_latency_is_measured_from_the_completing_line_and_buffering_is_its_wait() {
    // One attack on stdin, then silence: the completing line is released by the idle release
    // (300 ms), so both histograms hold one alert of at least 300 ms.
    let seed = std::fs::read_to_string(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let mut e = Running::start(&["--metrics-address", "127.0.0.1:0", "--idle-release", "300ms"]);
    let mut stdin = e.child.as_mut().and_then(|c| c.stdin.take()).unwrap();
    for l in seed.lines().take(3) {
        writeln!(stdin, "{l}").unwrap();
    }
    stdin.flush().unwrap();
    let n = e.wait_metric("eqlstream_alert_latency_seconds_count", |v| v >= 1.0);
    assert_eq!(n, 1.0);
    let latency = e.metric("eqlstream_alert_latency_seconds_sum").unwrap();
    let buffering = e.wait_metric("eqlstream_alert_buffering_seconds_count", |v| v >= 1.0);
    assert_eq!(buffering, 1.0);
    let waited = e.metric("eqlstream_alert_buffering_seconds_sum").unwrap();
    assert!((0.3..10.0).contains(&latency), "latency {latency}");
    assert!((0.3..=latency).contains(&waited), "buffering {waited} of {latency}");
    assert_eq!(e.metric("eqlstream_alert_latency_seconds_bucket{le=\"0.25\"}"), Some(0.0));
    drop(stdin);
    let o = e.stop();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.alerts().len(), 1);
}
