//! The running pipeline: source -> decode workers -> sequencer -> partition workers -> writer.
//!
//! ```text
//!            Batch            Decoded                PartitionWork        PartitionOutput
//! source ---------> decode xN ---------> sequencer ---------------> part xM -------------> writer -> stdout
//!  (stdin/tcp/unix)  (simd-json,          (order, watermark,                                 ^
//!                     stage conditions)    reorder buffer)  -------- WriterBatch ------------'
//! ```
//!
//! Matched events are put in the [`EventStore`](crate::store::EventStore) at decode; later stages
//! hold 16-byte handles and join-key fingerprints, and the workers read events back only to
//! render alerts.
//!
//! The rules come as a [`LiveRules`]: a reload publishes a new version, which applies from the
//! next batch the reader hands over, in every stage (see [`live`] for the design).
//!
//! Every hop is a bounded crossbeam channel carrying whole batches, so a slow consumer slows the
//! reader and memory stays bounded. The sequencer is the single point that sees lines in order;
//! it fixes every release point by input line, so output does not depend on thread scheduling,
//! worker counts or batch sizes. Shutdown is by dropping: when the source stops (end of input or
//! the [`Shutdown`] trigger), each stage drains its input and drops its senders; the writer ends
//! last.

pub mod checkpoint;
pub mod decode;
pub mod frame;
pub mod live;
pub mod prefilter;
pub mod rawscan;
pub(crate) mod sequencer;
pub mod shutdown;
pub mod sink;
pub mod source;
pub(crate) mod worker;
pub mod wrapped;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::bounded;

pub use live::{LiveRules, RuleVersion};
pub use shutdown::Shutdown;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::sequence::key::Fingerprinter;
use crate::sequence::watermark::{self, ClockConfig};

/// Running totals for the summary and progress lines (the metrics registry has the same figures
/// per label; these are plain sums that need no registry).
#[derive(Debug, Default)]
pub struct Totals {
    /// Input lines read.
    pub lines: AtomicU64,
    /// Input bytes read (newlines included).
    pub bytes: AtomicU64,
    /// Lines not usable for detection (any reason).
    pub invalid: AtomicU64,
    /// Lines the prefilter skipped without parsing.
    pub skipped: AtomicU64,
    /// Late events.
    pub late: AtomicU64,
    /// Events held back as outliers (dated far ahead of their source's time).
    pub outliers: AtomicU64,
    /// Input lines written.
    pub sent: AtomicU64,
    /// Alerts written.
    pub alerts: AtomicU64,
}

impl Totals {
    fn add_received(&self, lines: u64, bytes: u64, invalid: u64, skipped: u64) {
        self.lines.fetch_add(lines, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.invalid.fetch_add(invalid, Ordering::Relaxed);
        self.skipped.fetch_add(skipped, Ordering::Relaxed);
    }
    fn add_late(&self, late: u64, outliers: u64) {
        self.late.fetch_add(late, Ordering::Relaxed);
        self.outliers.fetch_add(outliers, Ordering::Relaxed);
    }
    fn add_sent(&self, lines: u64, alerts: u64) {
        self.sent.fetch_add(lines, Ordering::Relaxed);
        self.alerts.fetch_add(alerts, Ordering::Relaxed);
    }

    /// A snapshot of the totals.
    pub fn snapshot(&self) -> Summary {
        Summary {
            lines: self.lines.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            outliers: self.outliers.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            alerts: self.alerts.load(Ordering::Relaxed),
        }
    }
}

/// The figures of the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Input lines read.
    pub lines: u64,
    /// Input bytes read.
    pub bytes: u64,
    /// Lines not usable for detection.
    pub invalid: u64,
    /// Lines the prefilter skipped without parsing.
    pub skipped: u64,
    /// Late events.
    pub late: u64,
    /// Events held back as outliers.
    pub outliers: u64,
    /// Input lines written.
    pub sent: u64,
    /// Alerts written.
    pub alerts: u64,
}

impl Summary {
    /// The one-line summary, e.g. for stderr at exit.
    pub fn line(&self, seconds: f64) -> String {
        let eps = if seconds > 0.0 { self.lines as f64 / seconds } else { 0.0 };
        format!(
            "lines={} bytes={} alerts={} late={} outliers={} invalid={} skipped={} seconds={:.3} events_per_second={:.0}",
            self.lines,
            self.bytes,
            self.alerts,
            self.late,
            self.outliers,
            self.invalid,
            self.skipped,
            seconds,
            eps
        )
    }
}

/// Errors that end a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// The writer failed.
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    /// A pipeline thread could not be started.
    #[error("cannot start thread: {0}")]
    Spawn(std::io::Error),
    /// A pipeline thread panicked (a bug): what was complete was written, the rest is lost.
    #[error("internal error: the {thread} thread panicked: {message}")]
    Panicked {
        /// The thread's name (`decode-0`, `sequencer`, `partition-1`, `writer`).
        thread: String,
        /// The panic message.
        message: String,
    },
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Test hook, in debug builds only: `EQLSTREAM_DEBUG_PANIC=STAGE` (`decode`, `sequencer`,
/// `partition`, `writer`) makes that stage panic on its second batch, so that tests can check
/// that a crashed thread ends the run with an error. Release builds compile it to nothing.
#[inline]
pub(crate) fn debug_panic(stage: &str, batch: u64) {
    #[cfg(debug_assertions)]
    {
        static STAGE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let target = STAGE.get_or_init(|| std::env::var("EQLSTREAM_DEBUG_PANIC").ok());
        if batch == 1 && target.as_deref() == Some(stage) {
            panic!("EQLSTREAM_DEBUG_PANIC={stage}");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = (stage, batch);
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunReport {
    /// Final totals.
    pub summary: Summary,
    /// How the writer ended.
    pub end: sink::SinkEnd,
    /// Wall-clock duration.
    pub seconds: f64,
    /// The input was a Kafka group whose partitions were revoked: run a new pipeline.
    pub rebalanced: bool,
}

/// Everything a run needs besides settings.
pub struct RunContext {
    /// The rules, replaceable while the run goes on.
    pub rules: LiveRules,
    /// Metrics registry (served or not).
    pub metrics: Arc<Metrics>,
    /// Stop-reading trigger.
    pub shutdown: Shutdown,
    /// Runtime for sockets.
    pub runtime: tokio::runtime::Handle,
    /// Where output goes.
    pub outputs: sink::Outputs,
    /// Shared totals (the caller may print progress from them).
    pub totals: Arc<Totals>,
    /// A Kafka consumer-group member to read from (the input is `kafka://`).
    pub kafka: Option<KafkaRead>,
}

/// What a pipeline reading Kafka needs: the group member, and the end of the channel on which
/// the writer reports checkpoints (its other end is in [`sink::Outputs::checkpoints`]).
#[cfg(feature = "kafka")]
pub struct KafkaRead {
    /// The group member (kept across the pipelines of one run).
    pub group: Arc<crate::kafka::consumer::Group>,
    /// Batch size and commit interval.
    pub cfg: crate::kafka::consumer::GroupConfig,
    /// Finished checkpoints.
    pub checkpoints: crossbeam_channel::Receiver<checkpoint::CheckpointDone>,
}

#[cfg(feature = "kafka")]
impl KafkaRead {
    /// Reads for one pipeline; true when it ended for a rebalance (see [`crate::kafka::consumer`]).
    fn read(self, feeder: source::Feeder, shutdown: &Shutdown) -> bool {
        self.group.read(&self.cfg, feeder, self.checkpoints, shutdown) == crate::kafka::consumer::Ended::Rebalanced
    }
}

/// Without the `kafka` feature there is no Kafka input: `RunContext::kafka` is always `None`.
#[cfg(not(feature = "kafka"))]
pub enum KafkaRead {}

#[cfg(not(feature = "kafka"))]
impl KafkaRead {
    fn read(self, _: source::Feeder, _: &Shutdown) -> bool {
        match self {}
    }
}

/// Runs the pipeline to completion (end of input, shutdown, or closed stdout).
pub fn run(settings: &Settings, ctx: RunContext) -> Result<RunReport, PipelineError> {
    crate::time::init_monotonic_epoch();
    let started = Instant::now();
    let RunContext { rules, metrics, shutdown, runtime, outputs, totals, kafka } = ctx;
    let version = rules.current();
    let cap = settings.max_inflight_batches;
    let workers = settings.workers;
    let partitions = settings.partitions;

    let (batch_tx, batch_rx) = bounded(cap);
    let (decoded_tx, decoded_rx) = bounded(cap.max(workers));
    let (writer_tx, writer_rx) = bounded(cap);
    let mut part_txs = Vec::new();
    let mut part_out_rxs = Vec::new();
    let mut threads = Vec::new();

    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new().name(name.clone()).spawn(f).map(|h| (name, h)).map_err(PipelineError::Spawn)
    };

    let store = rules.store().clone();
    let fingerprints = Fingerprinter::new();
    for w in 0..workers {
        let (ctx, rx, tx, h, t) =
            (version.decode.clone(), batch_rx.clone(), decoded_tx.clone(), version.handles.clone(), totals.clone());
        threads.push(spawn(format!("decode-{w}"), Box::new(move || decode::run(ctx, rx, tx, h, t)))?);
    }
    drop(batch_rx);
    drop(decoded_tx);

    let max_partials_each = (settings.max_partial_sequences / partitions).max(1);
    for p in 0..partitions {
        let (tx, rx) = bounded(cap);
        let (otx, orx) = bounded(cap);
        part_txs.push(tx);
        part_out_rxs.push(orx);
        let (v, fmt, fp) = (version.clone(), settings.alert_format, fingerprints.clone());
        let space: Arc<str> = Arc::from(settings.kibana_space_id.as_str());
        threads.push(spawn(
            format!("partition-{p}"),
            Box::new(move || worker::run(v, (fmt, space, fp), max_partials_each, rx, otx)),
        )?);
    }

    let seq_cfg = sequencer::SequencerConfig {
        clock: ClockConfig {
            max_out_of_orderness_ns: watermark::ns(settings.max_out_of_orderness),
            max_future_ns: watermark::ns(settings.max_future),
            confirm_events: settings.outlier_confirm_events,
            confirm_time: settings.outlier_confirm_time,
            idle_timeout: settings.source_idle_timeout,
        },
        idle_release: settings.idle_release,
        max_buffered_events: settings.max_buffered_events,
        partitions,
        rules: version.clone(),
        fingerprints,
        finish_at_end: !matches!(settings.input, crate::config::InputSpec::Kafka(_)),
    };
    {
        let (h, t) = (metrics.handles(), totals.clone());
        threads.push(spawn(
            "sequencer".into(),
            Box::new(move || sequencer::run(seq_cfg, decoded_rx, part_txs, writer_tx, h, t)),
        )?);
    }

    // Written batches go back to the reader: room for every batch that can be alive at once
    // (three channels, one in each thread, and the ones the sequencer holds for reordering), so
    // that in a steady state no batch buffer is allocated.
    let pool = frame::BatchPool::new(3 * cap + 2 * workers + 4);
    let writer = {
        let (h, t, pool) = (metrics.handles(), totals.clone(), pool.clone());
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || sink::run(outputs, writer_rx, part_out_rxs, pool, h, t))
            .map_err(PipelineError::Spawn)?
    };

    let feeder = source::Feeder::new(batch_tx, pool, metrics.handles()).with_rules(&rules);
    drop(version);
    let source_cfg = source::SourceConfig {
        batch_size: settings.batch_size,
        max_line_bytes: settings.max_line_bytes,
        max_connections: settings.max_connections,
        connection_idle_timeout: settings.connection_idle_timeout,
        socket_mode: settings.socket_mode,
        line_grace: settings.shutdown_timeout / 2,
    };
    let (source_result, rebalanced) = match kafka {
        Some(k) => (Ok(()), k.read(feeder, &shutdown)),
        None => (source::run(&settings.input, &source_cfg, feeder, &shutdown, &runtime), false),
    };
    // The feeder (and its sender) is gone: the stages drain in order. Every thread is joined,
    // and a panic in any of them is the run's error (exit 70), after the writer has written
    // what was complete.
    let mut panicked: Option<PipelineError> = None;
    let end = match writer.join() {
        Ok(r) => Some(r),
        Err(p) => {
            panicked = Some(PipelineError::Panicked { thread: "writer".into(), message: panic_message(&*p) });
            None
        }
    };
    if end.as_ref().is_none_or(|e| matches!(e, Ok(sink::SinkEnd::BrokenPipe) | Err(_))) {
        // Stop reading too; the other stages end as their channels close.
        shutdown.trigger();
    }
    for (name, t) in threads {
        if let Err(p) = t.join() {
            if panicked.is_none() {
                panicked = Some(PipelineError::Panicked { thread: name, message: panic_message(&*p) });
            }
        }
    }
    let st = store.stats();
    if st.io_errors > 0 {
        tracing::warn!(
            io_errors = st.io_errors,
            spilled_events = st.spilled_events,
            "Event store had I/O errors; the events concerned were kept in memory."
        );
    }
    if let Some(e) = panicked {
        return Err(e);
    }
    let Some(end) = end else {
        return Err(PipelineError::Panicked { thread: "writer".into(), message: "(no message)".into() });
    };
    let end = end?;
    source_result?;
    Ok(RunReport { summary: totals.snapshot(), end, seconds: started.elapsed().as_secs_f64(), rebalanced })
}
