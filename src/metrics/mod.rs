//! Prometheus metrics: every name, help text and label set in one place, the start-up
//! [`Handles`] (label values resolved once), the per-worker [`Stats`] counted without touching the
//! registry, and the `/metrics` HTTP server ([`server`]).
//!
//! This is the only module that touches the `prometheus` crate. The hot path never does: a
//! worker bumps plain `u64` fields of its own [`Stats`] per event and calls [`Stats::flush`] once
//! per batch (and on receive timeout and at shutdown), which issues one `inc_by` per non-zero
//! field (style.md, "Metrics off the hot path"; Vector's registered events). A flushed batch of n
//! adds exactly n.
//!
//! Naming follows Prometheus conventions (`<namespace>_<name>_<unit>[_total]`, base units):
//! see [`names`]. Stage labels (`stage` on `eqlstream_stage_matches_total`) are 0-based positions
//! in the rule's sequence, as `kibana.alert.group.index` counts them.

#[cfg(target_os = "linux")]
pub mod process;
pub mod server;

use std::ops::AddAssign;
use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

pub use server::{serve, serve_listener, MetricsServer};

/// Metric names, one constant each.
pub mod names {
    /// Input lines received (valid or not).
    pub const RECEIVED_EVENTS: &str = "eqlstream_received_events_total";
    /// Input bytes received, line terminators included.
    pub const RECEIVED_BYTES: &str = "eqlstream_received_bytes_total";
    /// Lines written to the output (passed-through events and alerts).
    pub const SENT_EVENTS: &str = "eqlstream_sent_events_total";
    /// Invalid input lines by `reason`.
    pub const INVALID_EVENTS: &str = "eqlstream_invalid_events_total";
    /// Input lines (or their unread remainders) dropped, by `reason`.
    pub const DISCARDED_LINES: &str = "eqlstream_discarded_lines_total";
    /// Lines the prefilter proved unable to match any rule, so they were not parsed.
    pub const PREFILTER_SKIPPED_EVENTS: &str = "eqlstream_prefilter_skipped_events_total";
    /// Events older than the watermark allows (arrived too late for sequence matching), by
    /// `source`.
    pub const LATE_EVENTS: &str = "eqlstream_late_events_total";
    /// Events dated further ahead of their source's event time than `max_future`: held back,
    /// they do not move the watermark; by `source`.
    pub const OUTLIER_EVENTS: &str = "eqlstream_outlier_events_total";
    /// Jumps of a source's event time confirmed by outliers in a row, by `source`.
    pub const EVENT_TIME_JUMPS: &str = "eqlstream_event_time_jumps_total";
    /// A source's largest event time minus the watermark, by `source` (gauge).
    pub const SOURCE_LAG: &str = "eqlstream_source_lag_seconds";
    /// Events in the reorder buffer (gauge).
    pub const REORDER_BUFFERED: &str = "eqlstream_reorder_buffered_events";
    /// Events released from the reorder buffer before the watermark passed them, or refused,
    /// because it held `max_buffered_events`.
    pub const REORDER_OVERFLOW: &str = "eqlstream_reorder_overflow_events_total";
    /// Rule reloads (SIGHUP, `--watch`) by `result` (`success`, `failure`: refused, the previous
    /// rules keep running).
    pub const RULE_RELOADS: &str = "eqlstream_rule_reloads_total";
    /// Rules in the rule set in effect (gauge; a reload sets it when the new set is accepted).
    pub const RULES_LOADED: &str = "eqlstream_rules_loaded";
    /// Open input sources (connections, stdin), by `state` (`active`, `idle`).
    pub const SOURCES: &str = "eqlstream_sources";
    /// Events that matched a sequence stage (or an event rule), by `rule_id` and `stage`.
    pub const STAGE_MATCHES: &str = "eqlstream_stage_matches_total";
    /// Detections (completed sequences or matching events) by `rule_id` and `rule_name`.
    pub const ALERTS: &str = "eqlstream_alerts_total";
    /// Partial sequences currently held, by `rule_id` (gauge).
    pub const PARTIAL_SEQUENCES: &str = "eqlstream_partial_sequences";
    /// Partial sequences dropped because `maxspan` passed, by `rule_id`.
    pub const PARTIAL_SEQUENCES_EXPIRED: &str = "eqlstream_partial_sequences_expired_total";
    /// Partial sequences dropped to respect the state limit, by `rule_id`.
    pub const PARTIAL_SEQUENCES_EVICTED: &str = "eqlstream_partial_sequences_evicted_total";
    /// Stage matches whose join-key tuples were cut at `max_key_combinations`, by `rule_id`.
    pub const KEY_EXPANSION_TRUNCATED: &str = "eqlstream_key_expansion_truncated_total";
    /// Alerts written with parts missing, or lost, because they could not be rendered whole, by
    /// `rule_id`.
    pub const ALERT_RENDER_ERRORS: &str = "eqlstream_alert_render_errors_total";
    /// 1 while the prefilter scans every line; 0 when it is off (not built, or turned off because
    /// it did not pay: it then scans one line in 128 to notice when it would) (gauge).
    pub const PREFILTER_ACTIVE: &str = "eqlstream_prefilter_active";
    /// Input lines the prefilter scanned (skipped or not).
    pub const PREFILTER_SCANNED_EVENTS: &str = "eqlstream_prefilter_scanned_events_total";
    /// The event-time watermark, in seconds since the Unix epoch.
    pub const WATERMARK: &str = "eqlstream_watermark_seconds";
    /// From the arrival (read) of the line that completed a detection to its alert being written.
    pub const ALERT_LATENCY: &str = "eqlstream_alert_latency_seconds";
    /// From the arrival of the line that completed a detection to its release by the watermark
    /// (the reorder-buffer part of [`ALERT_LATENCY`]).
    pub const ALERT_BUFFERING: &str = "eqlstream_alert_buffering_seconds";
    /// Time spent processing one batch, by pipeline `stage`.
    pub const BATCH_DURATION: &str = "eqlstream_batch_duration_seconds";
    /// Events waiting in the queue in front of a pipeline `stage`.
    pub const QUEUE_EVENTS: &str = "eqlstream_queue_events";
    /// Always 1, labelled with the crate `version`.
    pub const BUILD_INFO: &str = "eqlstream_build_info";
}

/// Base histogram buckets of [`names::ALERT_LATENCY`] and [`names::ALERT_BUFFERING`]: 100 µs
/// to 60 s; [`latency_buckets`] adds fine ones around `max_out_of_orderness`.
pub const ALERT_LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Offsets (s) from `max_out_of_orderness` of the extra latency buckets: with events stamped in
/// real time, an alert waits about `max_out_of_orderness` plus processing, so that is where the
/// quantiles must be resolved to a few ms.
const WINDOW_OFFSETS: &[f64] = &[
    -0.25, -0.1, -0.05, -0.02, -0.01, -0.005, 0.0, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025,
    0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
];

/// The latency buckets for a run with `max_out_of_orderness`: [`ALERT_LATENCY_BUCKETS`] plus
/// buckets of 2.5 to 5 ms just above the allowance (and a few below).
pub fn latency_buckets(max_out_of_orderness: std::time::Duration) -> Vec<f64> {
    let w = max_out_of_orderness.as_secs_f64();
    let mut b: Vec<f64> = ALERT_LATENCY_BUCKETS.to_vec();
    b.extend(WINDOW_OFFSETS.iter().map(|d| ((w + d) * 1e6).round() / 1e6).filter(|x| *x > 0.0));
    b.sort_by(f64::total_cmp);
    b.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    b
}

/// Histogram buckets of [`names::BATCH_DURATION`]: 10 µs to 1 s.
pub const BATCH_DURATION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Number of [`InvalidReason`]s.
pub const N_REASONS: usize = 6;

/// Why an input line was invalid (the bounded `reason` label of
/// `eqlstream_invalid_events_total`). The line itself is passed through unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// Not valid JSON.
    InvalidJson,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Valid JSON, but not an object.
    NotObject,
    /// Longer than the maximum line length.
    TooLong,
    /// No timestamp field.
    NoTimestamp,
    /// A timestamp that cannot be parsed.
    BadTimestamp,
}

impl InvalidReason {
    /// Every reason, in label-index order.
    pub const ALL: [InvalidReason; N_REASONS] = [
        InvalidReason::InvalidJson,
        InvalidReason::InvalidUtf8,
        InvalidReason::NotObject,
        InvalidReason::TooLong,
        InvalidReason::NoTimestamp,
        InvalidReason::BadTimestamp,
    ];

    /// The `reason` label value.
    pub fn label(&self) -> &'static str {
        match self {
            InvalidReason::InvalidJson => "invalid_json",
            InvalidReason::InvalidUtf8 => "invalid_utf8",
            InvalidReason::NotObject => "not_object",
            InvalidReason::TooLong => "too_long",
            InvalidReason::NoTimestamp => "no_timestamp",
            InvalidReason::BadTimestamp => "bad_timestamp",
        }
    }

    /// The position in [`InvalidReason::ALL`] (and in [`Stats::invalid`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why an input line (or the unread remainder of one) was dropped: the bounded `reason` label
/// of `eqlstream_discarded_lines_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscardReason {
    /// A line being read at shutdown did not end within the grace period.
    UnterminatedAtShutdown,
    /// A line longer than `max_line_bytes` stalled while other connections waited for it.
    StalledLongLine,
}

impl DiscardReason {
    /// Every reason, in label-index order.
    pub const ALL: [DiscardReason; 2] = [DiscardReason::UnterminatedAtShutdown, DiscardReason::StalledLongLine];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            DiscardReason::UnterminatedAtShutdown => "unterminated_at_shutdown",
            DiscardReason::StalledLongLine => "stalled_long_line",
        }
    }
}

/// Number of [`PipelineStage`]s.
pub const N_PIPELINE_STAGES: usize = 5;

/// A pipeline stage (the `stage` label of the batch-duration histogram and the queue gauge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PipelineStage {
    /// The source: reading and framing input lines.
    Read,
    /// The decode workers: JSON parsing and field extraction.
    Decode,
    /// The sequencer: stream order, event clocks, reorder buffer, routing to partitions.
    Sequencer,
    /// The partition workers: rule evaluation, sequence state and alert rendering.
    Partition,
    /// The sink: writing lines and alerts in input order.
    Write,
}

impl PipelineStage {
    /// Every stage, in label-index order.
    pub const ALL: [PipelineStage; N_PIPELINE_STAGES] = [
        PipelineStage::Read,
        PipelineStage::Decode,
        PipelineStage::Sequencer,
        PipelineStage::Partition,
        PipelineStage::Write,
    ];

    /// The stages with a queue of events in front of them (`eqlstream_queue_events`): the
    /// reader has none, and the partitions get work items (hits), not events.
    pub const QUEUED: [PipelineStage; 3] = [PipelineStage::Decode, PipelineStage::Sequencer, PipelineStage::Write];

    /// The `stage` label value.
    pub fn label(&self) -> &'static str {
        match self {
            PipelineStage::Read => "read",
            PipelineStage::Decode => "decode",
            PipelineStage::Sequencer => "sequencer",
            PipelineStage::Partition => "partition",
            PipelineStage::Write => "write",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the metrics need to know about one loaded rule. Rules are then referred to by their
/// position in the slice given to [`Metrics::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleLabels {
    /// The rule's `rule_id`.
    pub rule_id: String,
    /// The rule's `name`.
    pub rule_name: String,
    /// The number of stages (1 for an event rule; after `runs=N` expansion).
    pub stages: usize,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be registered (a bug: names are fixed).
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
    /// The listener could not be bound (port busy, permission, unknown address).
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Every registered metric, with its label values resolved. Per-rule series are resolved for
/// one rule set ([`Metrics::rule_handles`] makes a copy for another one after a reload).
#[derive(Clone)]
struct Resolved {
    received_events: IntCounter,
    received_bytes: IntCounter,
    sent_events: IntCounter,
    invalid: [IntCounter; N_REASONS],
    discarded: [IntCounter; 2],
    prefilter_skipped: IntCounter,
    late: IntCounterVec,
    outliers: IntCounterVec,
    jumps: IntCounterVec,
    lag: GaugeVec,
    sources: [IntGauge; 2],
    reorder_buffered: IntGauge,
    reorder_overflow: IntCounter,
    /// `success`, `failure`.
    rule_reloads: [IntCounter; 2],
    rules_loaded: IntGauge,
    /// `stage_offsets[r]..stage_offsets[r + 1]` are rule `r`'s entries of `stage_matches`.
    stage_offsets: Arc<[usize]>,
    stage_matches: Vec<IntCounter>,
    alerts: Vec<IntCounter>,
    partials: Vec<IntGauge>,
    expired: Vec<IntCounter>,
    evicted: Vec<IntCounter>,
    key_expansion_truncated: Vec<IntCounter>,
    alert_render_errors: Vec<IntCounter>,
    prefilter_active: IntGauge,
    prefilter_scanned: IntCounter,
    watermark: Gauge,
    alert_latency: Histogram,
    alert_buffering: Histogram,
    batch_duration: [Histogram; N_PIPELINE_STAGES],
    /// `None` for the stages without a queue (see [`PipelineStage::QUEUED`]).
    queue: [Option<IntGauge>; N_PIPELINE_STAGES],
}

/// The metric handles, resolved once at start-up; cheap to clone (one `Arc`), one per worker.
#[derive(Clone)]
pub struct Handles {
    inner: Arc<Resolved>,
}

/// The registry with every eqlstream metric, the process collector and `eqlstream_build_info`.
pub struct Metrics {
    registry: Registry,
    handles: Handles,
    families: RuleFamilies,
}

/// The metric families labelled by rule, kept to resolve the series of the rules of a reload.
struct RuleFamilies {
    stage: IntCounterVec,
    alerts: IntCounterVec,
    partials: IntGaugeVec,
    expired: IntCounterVec,
    evicted: IntCounterVec,
    key_expansion_truncated: IntCounterVec,
    alert_render_errors: IntCounterVec,
}

impl RuleFamilies {
    /// Resolves (and so creates, at zero) every per-rule series of `rules` into `r`.
    fn resolve_into(&self, rules: &[RuleLabels], r: &mut Resolved) {
        let mut stage_offsets = Vec::with_capacity(rules.len() + 1);
        let mut stage_matches = Vec::new();
        stage_offsets.push(0);
        for rule in rules {
            for s in 0..rule.stages {
                stage_matches.push(self.stage.with_label_values(&[rule.rule_id.as_str(), &s.to_string()]));
            }
            stage_offsets.push(stage_matches.len());
        }
        let per_rule = |v: &IntCounterVec| -> Vec<IntCounter> {
            rules.iter().map(|r| v.with_label_values(&[r.rule_id.as_str()])).collect()
        };
        r.stage_offsets = stage_offsets.into();
        r.stage_matches = stage_matches;
        r.alerts =
            rules.iter().map(|x| self.alerts.with_label_values(&[x.rule_id.as_str(), x.rule_name.as_str()])).collect();
        r.partials = rules.iter().map(|x| self.partials.with_label_values(&[x.rule_id.as_str()])).collect();
        r.expired = per_rule(&self.expired);
        r.evicted = per_rule(&self.evicted);
        r.key_expansion_truncated = per_rule(&self.key_expansion_truncated);
        r.alert_render_errors = per_rule(&self.alert_render_errors);
    }
}

fn counter_vec(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, MetricsError> {
    let v = IntCounterVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(v.clone()))?;
    Ok(v)
}

fn counter(reg: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    let c = IntCounter::with_opts(Opts::new(name, help))?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// [`Metrics::for_run`] with the default `max_out_of_orderness` (2 s).
    pub fn new(rules: &[RuleLabels]) -> Result<Metrics, MetricsError> {
        Metrics::for_run(rules, crate::config::DEFAULT_MAX_OUT_OF_ORDERNESS)
    }

    /// Registers every metric and resolves every label value for `rules` (so that all series
    /// exist, at zero, from the start); the latency histograms get fine buckets around
    /// `max_out_of_orderness` ([`latency_buckets`]).
    pub fn for_run(rules: &[RuleLabels], max_out_of_orderness: std::time::Duration) -> Result<Metrics, MetricsError> {
        let reg = Registry::new();
        let received_events = counter(&reg, names::RECEIVED_EVENTS, "Input lines received, valid or not.")?;
        let received_bytes = counter(&reg, names::RECEIVED_BYTES, "Input bytes received, line terminators included.")?;
        let sent_events =
            counter(&reg, names::SENT_EVENTS, "Lines written to the output: passed-through events and alerts.")?;
        let invalid_vec = counter_vec(
            &reg,
            names::INVALID_EVENTS,
            "Input lines that could not be evaluated (passed through unchanged), by reason.",
            &["reason"],
        )?;
        let invalid = InvalidReason::ALL.map(|r| invalid_vec.with_label_values(&[r.label()]));
        let discarded_vec = counter_vec(
            &reg,
            names::DISCARDED_LINES,
            "Input lines, or the unread remainders of lines, dropped (not passed through), by reason.",
            &["reason"],
        )?;
        let discarded = DiscardReason::ALL.map(|r| discarded_vec.with_label_values(&[r.label()]));
        let prefilter_skipped = counter(
            &reg,
            names::PREFILTER_SKIPPED_EVENTS,
            "Input lines the prefilter proved unable to match any rule, so they were not parsed.",
        )?;
        let late = counter_vec(
            &reg,
            names::LATE_EVENTS,
            "Events older than the watermark allows, not used for sequence matching, by source.",
            &["source"],
        )?;
        let outliers = counter_vec(
            &reg,
            names::OUTLIER_EVENTS,
            "Events dated more than max_future ahead of their source's event time: held back, they do not move \
             the watermark; by source.",
            &["source"],
        )?;
        let jumps = counter_vec(
            &reg,
            names::EVENT_TIME_JUMPS,
            "Jumps of a source's event time confirmed by outliers in a row, by source.",
            &["source"],
        )?;
        let lag = GaugeVec::new(
            Opts::new(names::SOURCE_LAG, "A source's largest event time minus the watermark, in seconds, by source."),
            &["source"],
        )?;
        reg.register(Box::new(lag.clone()))?;
        let sources_vec = IntGaugeVec::new(
            Opts::new(names::SOURCES, "Open input sources (stdin, connections), by state (active, idle)."),
            &["state"],
        )?;
        reg.register(Box::new(sources_vec.clone()))?;
        let sources = ["active", "idle"].map(|s| sources_vec.with_label_values(&[s]));
        let reorder_buffered = IntGauge::with_opts(Opts::new(
            names::REORDER_BUFFERED,
            "Matched events waiting in the reorder buffer for the watermark.",
        ))?;
        reg.register(Box::new(reorder_buffered.clone()))?;
        let reorder_overflow = counter(
            &reg,
            names::REORDER_OVERFLOW,
            "Events released from the reorder buffer before the watermark passed them (or refused) because it \
             held max_buffered_events.",
        )?;
        let reloads_vec = counter_vec(
            &reg,
            names::RULE_RELOADS,
            "Rule reloads (SIGHUP, --watch) by result: success, or failure (refused; the previous rules keep running).",
            &["result"],
        )?;
        let rule_reloads = ["success", "failure"].map(|r| reloads_vec.with_label_values(&[r]));
        let rules_loaded = IntGauge::with_opts(Opts::new(
            names::RULES_LOADED,
            "Rules in the rule set in effect (after the last reload).",
        ))?;
        reg.register(Box::new(rules_loaded.clone()))?;
        let stage_vec = counter_vec(
            &reg,
            names::STAGE_MATCHES,
            "Events that matched a rule stage (0-based), by rule and stage.",
            &["rule_id", "stage"],
        )?;
        let alerts_vec = counter_vec(
            &reg,
            names::ALERTS,
            "Detections (completed sequences or matching events), by rule.",
            &["rule_id", "rule_name"],
        )?;
        let partials_vec = IntGaugeVec::new(
            Opts::new(names::PARTIAL_SEQUENCES, "Partial sequences currently held, by rule."),
            &["rule_id"],
        )?;
        reg.register(Box::new(partials_vec.clone()))?;
        let expired_vec = counter_vec(
            &reg,
            names::PARTIAL_SEQUENCES_EXPIRED,
            "Partial sequences dropped because maxspan passed, by rule.",
            &["rule_id"],
        )?;
        let evicted_vec = counter_vec(
            &reg,
            names::PARTIAL_SEQUENCES_EVICTED,
            "Partial sequences dropped to respect the state limit, by rule.",
            &["rule_id"],
        )?;
        let key_expansion_truncated_vec = counter_vec(
            &reg,
            names::KEY_EXPANSION_TRUNCATED,
            "Stage matches whose join-key tuples were cut at max_key_combinations, by rule.",
            &["rule_id"],
        )?;
        let alert_render_errors_vec = counter_vec(
            &reg,
            names::ALERT_RENDER_ERRORS,
            "Alerts written with parts missing, or lost, because they could not be rendered whole, by rule.",
            &["rule_id"],
        )?;
        let prefilter_active = IntGauge::with_opts(Opts::new(
            names::PREFILTER_ACTIVE,
            "1 while the prefilter scans every line; 0 when it is off (not built, or turned off because it \
             did not pay; it then scans one line in 128).",
        ))?;
        reg.register(Box::new(prefilter_active.clone()))?;
        let prefilter_scanned =
            counter(&reg, names::PREFILTER_SCANNED_EVENTS, "Input lines the prefilter scanned (skipped or not).")?;
        let watermark =
            Gauge::with_opts(Opts::new(names::WATERMARK, "Event-time watermark, in seconds since the Unix epoch."))?;
        reg.register(Box::new(watermark.clone()))?;
        let buckets = latency_buckets(max_out_of_orderness);
        let alert_latency = Histogram::with_opts(
            HistogramOpts::new(
                names::ALERT_LATENCY,
                "Seconds from the arrival (read) of the line that completed a detection to its alert being written.",
            )
            .buckets(buckets.clone()),
        )?;
        reg.register(Box::new(alert_latency.clone()))?;
        let alert_buffering = Histogram::with_opts(
            HistogramOpts::new(
                names::ALERT_BUFFERING,
                "Seconds from the arrival of the line that completed a detection to its release by the watermark.",
            )
            .buckets(buckets),
        )?;
        reg.register(Box::new(alert_buffering.clone()))?;
        let batch_vec = HistogramVec::new(
            HistogramOpts::new(names::BATCH_DURATION, "Seconds spent processing one batch, by pipeline stage.")
                .buckets(BATCH_DURATION_BUCKETS.to_vec()),
            &["stage"],
        )?;
        reg.register(Box::new(batch_vec.clone()))?;
        let queue_vec = IntGaugeVec::new(
            Opts::new(names::QUEUE_EVENTS, "Events waiting in the queue in front of a pipeline stage."),
            &["stage"],
        )?;
        reg.register(Box::new(queue_vec.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(names::BUILD_INFO, "Always 1; labelled with the eqlstream version."),
            &["version"],
        )?;
        reg.register(Box::new(build_info.clone()))?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // CPU (in fractional seconds), memory, file descriptors and threads (Linux only).
        #[cfg(target_os = "linux")]
        reg.register(Box::new(process::ProcessMetrics::for_self()?))?;

        let families = RuleFamilies {
            stage: stage_vec,
            alerts: alerts_vec,
            partials: partials_vec,
            expired: expired_vec,
            evicted: evicted_vec,
            key_expansion_truncated: key_expansion_truncated_vec,
            alert_render_errors: alert_render_errors_vec,
        };
        let mut inner = Resolved {
            received_events,
            received_bytes,
            sent_events,
            invalid,
            discarded,
            prefilter_skipped,
            late,
            outliers,
            jumps,
            lag,
            sources,
            reorder_buffered,
            reorder_overflow,
            rule_reloads,
            rules_loaded,
            stage_offsets: Arc::from([0usize]),
            stage_matches: Vec::new(),
            alerts: Vec::new(),
            partials: Vec::new(),
            expired: Vec::new(),
            evicted: Vec::new(),
            key_expansion_truncated: Vec::new(),
            alert_render_errors: Vec::new(),
            prefilter_active,
            prefilter_scanned,
            watermark,
            alert_latency,
            alert_buffering,
            batch_duration: PipelineStage::ALL.map(|s| batch_vec.with_label_values(&[s.label()])),
            queue: PipelineStage::ALL
                .map(|s| PipelineStage::QUEUED.contains(&s).then(|| queue_vec.with_label_values(&[s.label()]))),
        };
        families.resolve_into(rules, &mut inner);
        inner.rules_loaded.set(i64::try_from(rules.len()).unwrap_or(i64::MAX));
        Ok(Metrics { registry: reg, handles: Handles { inner: Arc::new(inner) }, families })
    }

    /// A clone of the resolved handles (one per worker), for the rules given to
    /// [`Metrics::for_run`].
    pub fn handles(&self) -> Handles {
        self.handles.clone()
    }

    /// Handles for another rule set (a reload): the same metrics, with the per-rule series of
    /// `rules` resolved (those of new rules created at zero), indexed by position in `rules`.
    /// Series of rules no longer loaded stay in the registry with their totals.
    pub fn rule_handles(&self, rules: &[RuleLabels]) -> Handles {
        let mut inner = (*self.handles.inner).clone();
        self.families.resolve_into(rules, &mut inner);
        Handles { inner: Arc::new(inner) }
    }

    /// The registry in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut buf = Vec::new();
        match TextEncoder::new().encode(&families, &mut buf) {
            Ok(()) => String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Err(e) => format!("# eqlstream: cannot encode metrics: {e}\n"),
        }
    }

    /// The underlying registry (for embedding in another exporter).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Handles {
    /// Number of rules the handles were built for.
    pub fn rules(&self) -> usize {
        self.inner.alerts.len()
    }

    /// Sets the partial-sequence gauge of `rule` (only when a single owner holds all its state;
    /// with several workers use [`Stats::partials_delta`] or [`Handles::add_partials`]).
    pub fn set_partials(&self, rule: usize, n: i64) {
        if let Some(g) = self.inner.partials.get(rule) {
            g.set(n);
        }
    }

    /// Adds `delta` (may be negative) to the partial-sequence gauge of `rule`.
    pub fn add_partials(&self, rule: usize, delta: i64) {
        if let Some(g) = self.inner.partials.get(rule) {
            g.add(delta);
        }
    }

    /// The counter of stage matches of `rule` whose join-key expansion was cut at its cap
    /// (detached when `rule` is out of range).
    pub fn key_expansion_truncated(&self, rule: usize) -> RareCounter {
        self.inner.key_expansion_truncated.get(rule).map_or_else(RareCounter::detached, |c| RareCounter(c.clone()))
    }

    /// The counter of alerts of `rule` written with parts missing, or lost (detached when `rule`
    /// is out of range).
    pub fn alert_render_errors(&self, rule: usize) -> RareCounter {
        self.inner.alert_render_errors.get(rule).map_or_else(RareCounter::detached, |c| RareCounter(c.clone()))
    }

    /// Sets the prefilter gauge: whether it scans every line.
    pub fn set_prefilter_active(&self, active: bool) {
        self.inner.prefilter_active.set(i64::from(active));
    }

    /// Sets the watermark gauge, in seconds since the epoch.
    pub fn set_watermark(&self, seconds: f64) {
        self.inner.watermark.set(seconds);
    }

    /// Sets the watermark gauge from nanoseconds since the epoch.
    pub fn set_watermark_ns(&self, ns: i64) {
        self.inner.watermark.set(ns as f64 / 1e9);
    }

    /// Records one alert's latency in seconds (called by the writer, once per alert: alerts are
    /// rare, so this is not a hot path).
    pub fn observe_alert_latency(&self, seconds: f64) {
        self.inner.alert_latency.observe(seconds);
    }

    /// Records how long the line that completed a detection waited for the watermark, in
    /// seconds (once per alert).
    pub fn observe_alert_buffering(&self, seconds: f64) {
        self.inner.alert_buffering.observe(seconds);
    }

    /// Counts `n` lines dropped for `reason` (rare: not a hot path).
    pub fn discarded_lines(&self, reason: DiscardReason, n: u64) {
        self.inner.discarded[reason as usize].inc_by(n);
    }

    /// The per-source metrics of the `source` label value `label`.
    pub fn source(&self, label: &str) -> SourceHandles {
        let r = &*self.inner;
        SourceHandles {
            label: label.to_string(),
            late: r.late.with_label_values(&[label]),
            outliers: r.outliers.with_label_values(&[label]),
            jumps: r.jumps.with_label_values(&[label]),
            lag: r.lag.with_label_values(&[label]),
        }
    }

    /// The last source with label `label` has closed: its lag gauge goes (its counters stay).
    pub fn forget_source(&self, label: &str) {
        let _ = self.inner.lag.remove_label_values(&[label]);
    }

    /// Sets the reorder buffer's size and counts `overflow` events released early or refused.
    pub fn reorder_buffer(&self, buffered: usize, overflow: u64) {
        self.inner.reorder_buffered.set(i64::try_from(buffered).unwrap_or(i64::MAX));
        if overflow > 0 {
            self.inner.reorder_overflow.inc_by(overflow);
        }
    }

    /// Counts one rule reload, accepted (`ok`) or refused.
    pub fn rule_reload(&self, ok: bool) {
        self.inner.rule_reloads[usize::from(!ok)].inc();
    }

    /// Sets the number of rules in effect.
    pub fn set_rules_loaded(&self, n: usize) {
        self.inner.rules_loaded.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the numbers of active and idle sources.
    pub fn set_sources(&self, active: usize, idle: usize) {
        self.inner.sources[0].set(i64::try_from(active).unwrap_or(i64::MAX));
        self.inner.sources[1].set(i64::try_from(idle).unwrap_or(i64::MAX));
    }

    /// Records the processing time of one batch of `stage`.
    pub fn observe_batch(&self, stage: PipelineStage, seconds: f64) {
        self.inner.batch_duration[stage.index()].observe(seconds);
    }

    /// `n` events entered the queue in front of `stage` (call once per batch; ignored for a stage
    /// without a queue).
    pub fn queue_pushed(&self, stage: PipelineStage, n: u64) {
        if let Some(q) = &self.inner.queue[stage.index()] {
            q.add(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// `n` events left the queue in front of `stage` (call once per batch).
    pub fn queue_popped(&self, stage: PipelineStage, n: u64) {
        if let Some(q) = &self.inner.queue[stage.index()] {
            q.sub(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// The metrics of one `source` label, resolved once when the source opens.
#[derive(Clone)]
pub struct SourceHandles {
    label: String,
    late: IntCounter,
    outliers: IntCounter,
    jumps: IntCounter,
    lag: Gauge,
}

impl SourceHandles {
    /// The `source` label value.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Adds late events, outliers and time jumps (call once per batch).
    pub fn add(&self, late: u64, outliers: u64, jumps: u64) {
        for (c, n) in [(&self.late, late), (&self.outliers, outliers), (&self.jumps, jumps)] {
            if n > 0 {
                c.inc_by(n);
            }
        }
    }

    /// Sets the source's lag (its largest event time minus the watermark), in seconds.
    pub fn set_lag_seconds(&self, s: f64) {
        self.lag.set(s);
    }
}

/// A counter of rare occurrences, bumped where they happen (one atomic add) by code that keeps no
/// [`Stats`] of its own: the shared rule set (a join-key expansion cut at its cap, an alert that
/// could not be rendered whole). Never
/// for per-event counts: those go through [`Stats`]. A [`RareCounter::detached`] counter (the
/// default: tests, benches, `validate`) counts without being exported.
#[derive(Clone, Debug)]
pub struct RareCounter(IntCounter);

impl RareCounter {
    /// A counter that is not in any registry.
    pub fn detached() -> RareCounter {
        RareCounter(IntCounter::new("eqlstream_detached_total", "Not exported.").expect("a valid fixed metric name"))
    }

    /// Counts one occurrence.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl Default for RareCounter {
    fn default() -> Self {
        RareCounter::detached()
    }
}

/// Plain counters that a worker bumps in its hot loop, then [`Stats::flush`]es once per batch.
///
/// Per-rule vectors are indexed by the rule's position in the [`Metrics::new`] slice;
/// `stage_matches` is flat (`[rule][stage]`, see [`Stats::stage_match`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Input lines received.
    pub received_events: u64,
    /// Input bytes received.
    pub received_bytes: u64,
    /// Output lines written.
    pub sent_events: u64,
    /// Invalid lines, indexed by [`InvalidReason::index`].
    pub invalid: [u64; N_REASONS],
    /// Lines the prefilter skipped.
    pub prefilter_skipped: u64,
    /// Lines the prefilter scanned.
    pub prefilter_scanned: u64,
    /// Stage matches, flat `[rule][stage]`.
    pub stage_matches: Vec<u64>,
    /// Detections per rule.
    pub alerts: Vec<u64>,
    /// Change in held partial sequences per rule (created minus completed/expired/evicted).
    pub partials_delta: Vec<i64>,
    /// Expired partial sequences per rule.
    pub expired: Vec<u64>,
    /// Evicted partial sequences per rule.
    pub evicted: Vec<u64>,
    stage_offsets: Arc<[usize]>,
}

impl Stats {
    /// Zeroed stats shaped for `h`'s rules.
    pub fn new(h: &Handles) -> Stats {
        let n = h.rules();
        Stats {
            received_events: 0,
            received_bytes: 0,
            sent_events: 0,
            invalid: [0; N_REASONS],
            prefilter_skipped: 0,
            prefilter_scanned: 0,
            stage_matches: vec![0; h.inner.stage_matches.len()],
            alerts: vec![0; n],
            partials_delta: vec![0; n],
            expired: vec![0; n],
            evicted: vec![0; n],
            stage_offsets: h.inner.stage_offsets.clone(),
        }
    }

    /// Counts one invalid line.
    #[inline]
    pub fn invalid(&mut self, reason: InvalidReason) {
        self.invalid[reason.index()] += 1;
    }

    /// Counts one match of `stage` (0-based) of `rule`; out-of-range indices are ignored.
    #[inline]
    pub fn stage_match(&mut self, rule: usize, stage: usize) {
        if let Some(i) = self.stage_slot(rule, stage) {
            self.stage_matches[i] += 1;
        }
    }

    /// The flat index of (`rule`, `stage`) in `stage_matches`.
    #[inline]
    pub fn stage_slot(&self, rule: usize, stage: usize) -> Option<usize> {
        let start = *self.stage_offsets.get(rule)?;
        let end = *self.stage_offsets.get(rule + 1)?;
        (start + stage < end).then_some(start + stage)
    }

    /// True when there is nothing to flush.
    pub fn is_zero(&self) -> bool {
        self.received_events == 0
            && self.received_bytes == 0
            && self.sent_events == 0
            && self.invalid.iter().all(|&n| n == 0)
            && self.prefilter_skipped == 0
            && self.prefilter_scanned == 0
            && self.stage_matches.iter().all(|&n| n == 0)
            && self.alerts.iter().all(|&n| n == 0)
            && self.partials_delta.iter().all(|&n| n == 0)
            && self.expired.iter().all(|&n| n == 0)
            && self.evicted.iter().all(|&n| n == 0)
    }

    /// Adds every non-zero field to the registry through `h` (one `inc_by`/`add` each), then
    /// zeroes the fields.
    pub fn flush(&mut self, h: &Handles) {
        let r = &*h.inner;
        fn inc(c: &IntCounter, n: &mut u64) {
            if *n != 0 {
                c.inc_by(*n);
                *n = 0;
            }
        }
        fn inc_all(cs: &[IntCounter], ns: &mut [u64]) {
            for (c, n) in cs.iter().zip(ns.iter_mut()) {
                inc(c, n);
            }
        }
        inc(&r.received_events, &mut self.received_events);
        inc(&r.received_bytes, &mut self.received_bytes);
        inc(&r.sent_events, &mut self.sent_events);
        inc_all(&r.invalid, &mut self.invalid);
        inc(&r.prefilter_skipped, &mut self.prefilter_skipped);
        inc(&r.prefilter_scanned, &mut self.prefilter_scanned);
        inc_all(&r.stage_matches, &mut self.stage_matches);
        inc_all(&r.alerts, &mut self.alerts);
        inc_all(&r.expired, &mut self.expired);
        inc_all(&r.evicted, &mut self.evicted);
        for (g, d) in r.partials.iter().zip(self.partials_delta.iter_mut()) {
            if *d != 0 {
                g.add(*d);
                *d = 0;
            }
        }
    }
}

impl AddAssign<&Stats> for Stats {
    /// Adds `rhs` field by field (both shaped for the same handles; extra entries are ignored).
    fn add_assign(&mut self, rhs: &Stats) {
        fn add<T: Copy + AddAssign>(a: &mut [T], b: &[T]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
        self.received_events += rhs.received_events;
        self.received_bytes += rhs.received_bytes;
        self.sent_events += rhs.sent_events;
        add(&mut self.invalid, &rhs.invalid);
        self.prefilter_skipped += rhs.prefilter_skipped;
        self.prefilter_scanned += rhs.prefilter_scanned;
        add(&mut self.stage_matches, &rhs.stage_matches);
        add(&mut self.alerts, &rhs.alerts);
        add(&mut self.partials_delta, &rhs.partials_delta);
        add(&mut self.expired, &rhs.expired);
        add(&mut self.evicted, &rhs.evicted);
    }
}

#[cfg(test)]
mod tests;
