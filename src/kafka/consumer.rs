//! Kafka input: one member of a consumer group, each assigned partition one ordered source.
//!
//! * **Sources.** Each assigned partition is a source of the pipeline (its own event clock, see
//!   [`crate::sequence::watermark`]): opened when assigned, its records handed over in offset
//!   order, one line per record, in batches of `batch_size` (or what is there when the broker has
//!   nothing more). A record's key goes with its line, so a Kafka output keys it the same way.
//! * **Checkpoints and commits.** Every `commit_interval` the reader asks the pipeline, in band,
//!   which lines it still holds ([`crate::pipeline::checkpoint`]). Per partition it then commits
//!   the offset of the oldest line still held (in a partial sequence, a missing-event window or
//!   the reorder buffer), or, when none is held, the offset after the last record handed over
//!   before the checkpoint, once the writer has written (and, for Kafka outputs, delivered)
//!   everything before it. A commit is never past a record the pipeline still needs, so whoever
//!   reads the partition next replays from there and rebuilds the same state. Commits carry
//!   `read_upto=N` as metadata (the offset after the last record read), so the next owner counts
//!   what it reads again in `eqlstream_kafka_replayed_events_total`.
//! * **Rebalances.** The eager protocol: a rebalance revokes every partition. On revocation the
//!   reader takes a last checkpoint and commits synchronously (inside the rebalance callback, so
//!   the commit lands before the partitions move), and the pipeline ends *without* deciding what
//!   is pending (see `SequencerConfig::finish_at_end`): partial sequences are rebuilt by the
//!   replay, by this instance or another. The caller then starts a new pipeline for the new
//!   assignment. SIGTERM does the same and leaves the group.
//! * **Guarantees.** Pass-through is at least once: records read after the last commit are
//!   written again after a crash or a rebalance. Alerts are at least once, and a repeated alert
//!   has the same `event.id` (deterministic ids), so a store that uses it as document id keeps one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;

use super::metrics::KafkaMetrics;
use super::offsets::{commit_offset, LineOffsets};
use super::url::KafkaUrl;
use crate::pipeline::checkpoint::CheckpointDone;
use crate::pipeline::frame::{Batch, SourceInfo, SourceMarker};
use crate::pipeline::shutdown::Shutdown;
use crate::pipeline::source::Feeder;
use crate::sequence::watermark::SourceId;
use crate::sync::lock;

/// How long the last checkpoint before a hand-over may take.
const FINAL_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(60);
/// A partition's pending lines are handed over when they are this old, even if the batch is
/// not full.
const MAX_BATCH_AGE: Duration = Duration::from_millis(50);
/// The source id of the reader's own markers (checkpoints); partitions count from 1.
const CONTROL_SOURCE: SourceId = 0;

/// Why a pipeline's reading ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// A rebalance revoked the partitions: start a new pipeline for the next assignment.
    Rebalanced,
    /// Shutdown was requested (or the pipeline closed): stop.
    Stopped,
}

/// A consumer-group member on one topic.
pub struct Group {
    consumer: BaseConsumer<GroupContext>,
    url: KafkaUrl,
}

/// How a group member is set up.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Lines per batch.
    pub batch_size: usize,
    /// How often a checkpoint is taken (and offsets committed).
    pub commit_interval: Duration,
}

impl Group {
    /// Joins `url`'s group (its `group` is required) and subscribes to its topic.
    pub fn join(url: &KafkaUrl, metrics: KafkaMetrics) -> Result<Group, KafkaError> {
        let group = url.group.clone().unwrap_or_default();
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &url.brokers)
            .set("group.id", &group)
            .set("client.id", "eqlstream")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Eager rebalancing: every rebalance revokes every partition, so a new pipeline
            // starts each partition at its committed offset (see the module docs).
            .set("partition.assignment.strategy", "range,roundrobin")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", "1000")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in &url.options {
            cfg.set(k, v);
        }
        let ctx = GroupContext {
            topic: url.topic.clone(),
            metrics,
            assignment: Mutex::new(Vec::new()),
            reader: Mutex::new(None),
            read_upto: Mutex::new(HashMap::new()),
            errors: super::ErrorLog::default(),
            carried: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<GroupContext> = cfg.create_with_context(ctx)?;
        consumer.subscribe(&[&url.topic])?;
        Ok(Group { consumer, url: url.clone() })
    }

    /// The group's address.
    pub fn url(&self) -> &KafkaUrl {
        &self.url
    }

    /// Reads for one pipeline: hands the assigned partitions' records to `feeder` until a
    /// rebalance revokes them, shutdown is requested, or the pipeline closes. `checkpoints` is
    /// where the pipeline's writer reports finished checkpoints.
    pub fn read(
        &self,
        cfg: &GroupConfig,
        feeder: Feeder,
        checkpoints: crossbeam_channel::Receiver<CheckpointDone>,
        shutdown: &Shutdown,
    ) -> Ended {
        let ctx = self.consumer.context();
        {
            let mut reader = Reader::new(cfg.clone(), feeder, checkpoints, ctx.topic.clone());
            let assigned = lock(&ctx.assignment).clone();
            reader.open(&assigned, &self.consumer);
            *lock(&ctx.reader) = Some(reader);
        }
        let ended = loop {
            if shutdown.is_triggered() {
                if let Some(r) = lock(&ctx.reader).as_mut() {
                    r.hand_over(&self.consumer);
                }
                break Ended::Stopped;
            }
            let polled = self.consumer.poll(Duration::from_millis(100));
            let mut guard = lock(&ctx.reader);
            let Some(r) = guard.as_mut() else { break Ended::Stopped };
            if r.revoked {
                // A poll that served the revocation may also have served the next assignment and
                // returned its first record: the next pipeline takes it (the consumer will not
                // return it again).
                if let Some(Ok(m)) = &polled {
                    lock(&ctx.carried).push(Carried::of(m));
                }
                break Ended::Rebalanced;
            }
            let now = Instant::now();
            match polled {
                Some(Ok(m)) => {
                    if !r.take(m.partition(), m.offset(), m.key(), m.payload().unwrap_or(b"")) {
                        lock(&ctx.carried).push(Carried::of(&m));
                    }
                }
                Some(Err(e)) => ctx.errors.report("consumer", &e, "while reading"),
                None => r.hand_over_pending(),
            }
            r.hand_over_aged(now);
            r.apply_checkpoints(&self.consumer);
            r.maybe_checkpoint(now);
            if r.closed {
                break Ended::Stopped;
            }
        };
        // Dropping the reader (and its feeder) ends the pipeline's input.
        let reader = lock(&ctx.reader).take();
        if let Some(r) = reader {
            let mut seen = lock(&ctx.read_upto);
            for (p, part) in &r.parts {
                let e = seen.entry(*p).or_insert(part.next_offset);
                *e = (*e).max(part.next_offset);
            }
        }
        ended
    }

    /// Leaves the group (committed offsets stay).
    pub fn close(self) {
        *lock(&self.consumer.context().reader) = None;
        self.consumer.unsubscribe();
    }
}

/// The rebalance callbacks' view of the member.
struct GroupContext {
    topic: String,
    metrics: KafkaMetrics,
    /// The partitions assigned now.
    assignment: Mutex<Vec<i32>>,
    /// The reader of the pipeline running now, if any.
    reader: Mutex<Option<Reader>>,
    /// Per partition, the offset after the last record this process read (across pipelines):
    /// records below it are replays.
    read_upto: Mutex<HashMap<i32, i64>>,
    /// librdkafka's errors, rate-limited.
    errors: super::ErrorLog,
    /// Records polled while no reader had their partition open (see `Group::read`).
    carried: Mutex<Vec<Carried>>,
}

/// A record kept for the reader that will have its partition open.
struct Carried {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

impl Carried {
    fn of<M: Message>(m: &M) -> Carried {
        Carried {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or(b"").to_vec(),
        }
    }
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report("consumer", &error, reason);
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each assigned
    /// partition, from the high watermark its fetches saw, without a request of our own.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        let assigned = lock(&self.assignment).clone();
        for (p, part) in &topic.partitions {
            if !assigned.contains(p) || part.hi_offset < 0 {
                continue;
            }
            let read = if part.app_offset >= 0 { part.app_offset } else { part.committed_offset.max(0) };
            self.metrics.lag.with_label_values(&[&self.topic, &p.to_string()]).set((part.hi_offset - read).max(0));
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.metrics.rebalances.with_label_values(&["revoke"]).inc();
            tracing::info!(partitions = tpl.count(), "Kafka: partitions revoked; committing what was processed.");
            if let Some(r) = lock(&self.reader).as_mut() {
                r.hand_over(consumer);
                r.revoked = true;
            }
            // Records kept for a partition that is no longer ours would be read again by its owner.
            lock(&self.carried).clear();
            // The lag of a partition read elsewhere now is not ours to report.
            for p in lock(&self.assignment).drain(..) {
                let _ = self.metrics.lag.remove_label_values(&[&self.topic, &p.to_string()]);
            }
            self.metrics.assigned.set(0);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                let parts: Vec<i32> =
                    tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "Kafka: partitions assigned.");
                self.metrics.assigned.set(parts.len() as i64);
                *lock(&self.assignment) = parts.clone();
                if let Some(r) = lock(&self.reader).as_mut().filter(|r| !r.revoked) {
                    r.open(&parts, consumer);
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "Kafka: rebalance error."),
        }
    }
}

/// One assigned partition, as a source.
struct Part {
    source: SourceId,
    batch: Batch,
    /// Offsets of `batch`'s lines.
    batch_offsets: Vec<i64>,
    /// When `batch` got its first line.
    batch_since: Option<Instant>,
    /// Lines handed over and not yet forgotten.
    lines: LineOffsets,
    /// The offset after the last record handed over (or the committed offset, before any).
    next_offset: i64,
    /// The last offset committed (or found committed).
    committed: i64,
    /// Records below this offset were read before (by this process or the previous owner).
    replay_until: i64,
    committed_gauge: prometheus::IntGauge,
    replayed: prometheus::IntCounter,
    consumed: prometheus::IntCounter,
}

/// A checkpoint sent and not yet answered: per partition, its source, the offset after its
/// last record handed over before the checkpoint, and the line after its last line then.
type Snapshot = Vec<(i32, SourceId, i64, u64)>;

/// The reading side of one pipeline.
struct Reader {
    cfg: GroupConfig,
    feeder: Feeder,
    checkpoints: crossbeam_channel::Receiver<CheckpointDone>,
    topic: String,
    parts: HashMap<i32, Part>,
    next_checkpoint: u64,
    outstanding: Vec<(u64, Snapshot)>,
    last_checkpoint: Instant,
    /// The partitions were revoked: stop at the next step.
    revoked: bool,
    /// The pipeline is gone.
    closed: bool,
}

impl Reader {
    fn new(
        cfg: GroupConfig,
        feeder: Feeder,
        checkpoints: crossbeam_channel::Receiver<CheckpointDone>,
        topic: String,
    ) -> Reader {
        let now = Instant::now();
        Reader {
            cfg,
            feeder,
            checkpoints,
            topic,
            parts: HashMap::new(),
            next_checkpoint: 0,
            outstanding: Vec::new(),
            last_checkpoint: now,
            revoked: false,
            closed: false,
        }
    }

    fn send(&mut self, batch: Batch) {
        if self.feeder.send(batch).is_err() {
            self.closed = true;
        }
    }

    /// Opens a source per partition, starting from the committed offsets.
    fn open(&mut self, partitions: &[i32], consumer: &BaseConsumer<GroupContext>) {
        if partitions.is_empty() {
            return;
        }
        let ctx = consumer.context();
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition(&self.topic, p);
        }
        // What the group committed, and how far its previous owner had read (the metadata).
        let mut committed: HashMap<i32, (i64, i64)> = HashMap::new();
        match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(c) => {
                for e in c.elements() {
                    let off = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(-1);
                    let read = e.metadata().strip_prefix("read_upto=").and_then(|n| n.parse().ok()).unwrap_or(off);
                    committed.insert(e.partition(), (off, read));
                }
            }
            Err(e) => tracing::warn!(error = %e, "Kafka: cannot read committed offsets; replays are not counted."),
        }
        let read_here = lock(&ctx.read_upto).clone();
        for &p in partitions {
            if self.parts.contains_key(&p) {
                continue;
            }
            let (off, read) = committed.get(&p).copied().unwrap_or((-1, -1));
            let replay_until = read.max(read_here.get(&p).copied().unwrap_or(-1));
            let labels = [self.topic.as_str(), &p.to_string()];
            let m = &ctx.metrics;
            let part = Part {
                source: u32::try_from(p).unwrap_or(0).saturating_add(1),
                batch: self.feeder.empty_batch(),
                batch_offsets: Vec::new(),
                batch_since: None,
                lines: LineOffsets::default(),
                next_offset: off,
                committed: off,
                replay_until,
                committed_gauge: m.committed.with_label_values(&labels),
                replayed: m.replayed.with_label_values(&labels),
                consumed: m.consumed.with_label_values(&labels),
            };
            if off >= 0 {
                part.committed_gauge.set(off);
            }
            let info = SourceInfo {
                name: format!("kafka topic {} partition {p}", self.topic),
                label: format!("kafka:{}/{p}", self.topic),
            };
            let source = part.source;
            self.parts.insert(p, part);
            self.send(Batch::marker(source, SourceMarker::Opened(Arc::new(info))));
        }
        // Records polled before their partition was open here, in the order they came.
        let carried: Vec<Carried> = std::mem::take(&mut *lock(&ctx.carried));
        let mut kept = Vec::new();
        for c in carried {
            if !self.take(c.partition, c.offset, c.key.as_deref(), &c.payload) {
                kept.push(c);
            }
        }
        lock(&ctx.carried).extend(kept);
    }

    /// Adds a record to its partition's batch.
    /// false when the partition is not open here (the record is then kept for when it is).
    fn take(&mut self, p: i32, offset: i64, key: Option<&[u8]>, payload: &[u8]) -> bool {
        let Some(part) = self.parts.get_mut(&p) else { return false };
        if offset < part.replay_until {
            part.replayed.inc();
        }
        part.consumed.inc();
        part.batch.push_record(payload, key);
        part.batch_offsets.push(offset);
        part.batch_since.get_or_insert_with(Instant::now);
        part.next_offset = offset + 1;
        if part.batch.len() >= self.cfg.batch_size {
            self.hand_over_part(p);
        }
        true
    }

    /// Hands a partition's batch to the pipeline and records its lines' offsets.
    fn hand_over_part(&mut self, p: i32) {
        let Some(part) = self.parts.get_mut(&p) else { return };
        if part.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::replace(&mut part.batch, self.feeder.empty_batch());
        batch.origin.source = part.source;
        batch.seal();
        let first = self.feeder.next_line();
        for (i, off) in part.batch_offsets.drain(..).enumerate() {
            part.lines.push(first + i as u64, off);
        }
        part.batch_since = None;
        self.send(batch);
    }

    fn hand_over_pending(&mut self) {
        let ps: Vec<i32> = self.parts.keys().copied().collect();
        for p in ps {
            self.hand_over_part(p);
        }
    }

    fn hand_over_aged(&mut self, now: Instant) {
        let aged: Vec<i32> = self
            .parts
            .iter()
            .filter(|(_, part)| part.batch_since.is_some_and(|t| now.saturating_duration_since(t) >= MAX_BATCH_AGE))
            .map(|(p, _)| *p)
            .collect();
        for p in aged {
            self.hand_over_part(p);
        }
    }

    /// Sends a checkpoint marker after everything read so far; returns its id.
    fn checkpoint(&mut self) -> u64 {
        self.hand_over_pending();
        let id = self.next_checkpoint;
        self.next_checkpoint += 1;
        let line = self.feeder.next_line();
        let snapshot: Snapshot = self
            .parts
            .iter()
            .filter(|(_, part)| part.next_offset >= 0)
            .map(|(p, part)| (*p, part.source, part.next_offset, line))
            .collect();
        self.outstanding.push((id, snapshot));
        self.send(Batch::marker(CONTROL_SOURCE, SourceMarker::Checkpoint(id)));
        self.last_checkpoint = Instant::now();
        id
    }

    fn maybe_checkpoint(&mut self, now: Instant) {
        if self.outstanding.is_empty()
            && now.saturating_duration_since(self.last_checkpoint) >= self.cfg.commit_interval
        {
            self.checkpoint();
        }
    }

    /// Commits what finished checkpoints allow (asynchronously).
    fn apply_checkpoints(&mut self, consumer: &BaseConsumer<GroupContext>) {
        while let Ok(done) = self.checkpoints.try_recv() {
            self.apply(done, consumer, CommitMode::Async);
        }
    }

    /// Commits, per partition, the offset the checkpoint allows.
    fn apply(&mut self, done: CheckpointDone, consumer: &BaseConsumer<GroupContext>, mode: CommitMode) {
        let Some(at) = self.outstanding.iter().position(|(id, _)| *id == done.id) else { return };
        let (_, snapshot) = self.outstanding.remove(at);
        let commits = &consumer.context().metrics.commits;
        if !done.complete {
            commits.with_label_values(&["skipped"]).inc();
            return;
        }
        let mut tpl = TopicPartitionList::new();
        let mut planned = Vec::new();
        for (p, source, next_offset, line) in snapshot {
            let Some(part) = self.parts.get_mut(&p) else { continue };
            let needed = done.needed.min_line.get(&source).copied();
            let offset = commit_offset(&part.lines, needed, next_offset);
            part.lines.forget_before(needed.map_or(line, |n| n.min(line)));
            if offset > part.committed && tpl.add_partition_offset(&self.topic, p, Offset::Offset(offset)).is_ok() {
                if let Some(mut e) = tpl.find_partition(&self.topic, p) {
                    e.set_metadata(format!("read_upto={}", part.next_offset));
                }
                planned.push((p, offset));
            }
        }
        if planned.is_empty() {
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                commits.with_label_values(&["ok"]).inc();
                for (p, offset) in planned {
                    if let Some(part) = self.parts.get_mut(&p) {
                        part.committed = offset;
                        part.committed_gauge.set(offset);
                    }
                }
            }
            Err(e) => {
                commits.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "Kafka: offset commit failed; the next one will cover it.");
            }
        }
    }

    /// The last checkpoint before the partitions move (or the member stops): waits for it and
    /// commits synchronously.
    fn hand_over(&mut self, consumer: &BaseConsumer<GroupContext>) {
        if self.revoked || self.closed {
            return;
        }
        let id = self.checkpoint();
        let deadline = Instant::now() + FINAL_CHECKPOINT_TIMEOUT;
        loop {
            match self.checkpoints.recv_deadline(deadline) {
                Ok(done) => {
                    let last = done.id == id;
                    self.apply(done, consumer, CommitMode::Sync);
                    if last {
                        break;
                    }
                }
                Err(_) => {
                    tracing::warn!(
                        "Kafka: the last checkpoint did not finish in time; the next owner replays from the \
                         previous commit."
                    );
                    break;
                }
            }
        }
    }
}
