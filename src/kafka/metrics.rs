//! The Kafka families, registered in the run's registry when a Kafka input or output is used
//! (documented in docs/integrations/kafka.md, with Vector's names for the same figures).

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Handles of the Kafka metrics.
#[derive(Clone, Debug)]
pub struct KafkaMetrics {
    /// Messages between the partition's end and the next offset read.
    pub lag: IntGaugeVec,
    /// Last committed offset.
    pub committed: IntGaugeVec,
    /// Messages read again after a restart from a committed offset.
    pub replayed: IntCounterVec,
    /// Messages read.
    pub consumed: IntCounterVec,
    /// Rebalances seen, by kind.
    pub rebalances: IntCounterVec,
    /// Partitions assigned now.
    pub assigned: IntGauge,
    /// Commits, by result.
    pub commits: IntCounterVec,
    /// Records produced, by topic.
    pub produced: IntCounterVec,
    /// Records that could not be delivered, by topic.
    pub delivery_errors: IntCounterVec,
}

impl KafkaMetrics {
    /// Registers the families in `reg` (once per process: a second call returns the same
    /// families only if they are not registered yet, so call it once).
    pub fn register(reg: &Registry) -> prometheus::Result<KafkaMetrics> {
        fn gauges(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            reg.register(Box::new(g.clone()))?;
            Ok(g)
        }
        fn counters(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            reg.register(Box::new(c.clone()))?;
            Ok(c)
        }
        let tp = &["topic", "partition"];
        let assigned = IntGauge::with_opts(Opts::new(
            "eqlstream_kafka_assigned_partitions",
            "Partitions of the input topic assigned to this instance now.",
        ))?;
        reg.register(Box::new(assigned.clone()))?;
        Ok(KafkaMetrics {
            lag: gauges(
                reg,
                "eqlstream_kafka_consumer_lag",
                "Messages of a partition not read yet: its high watermark minus the next offset to read.",
                tp,
            )?,
            committed: gauges(
                reg,
                "eqlstream_kafka_committed_offset",
                "The offset last committed for a partition: the oldest message the pipeline still needed.",
                tp,
            )?,
            replayed: counters(
                reg,
                "eqlstream_kafka_replayed_events_total",
                "Messages read again after a restart from a committed offset (already read by this or an earlier owner).",
                tp,
            )?,
            consumed: counters(reg, "eqlstream_kafka_consumed_events_total", "Messages read from a partition.", tp)?,
            rebalances: counters(
                reg,
                "eqlstream_kafka_rebalances_total",
                "Consumer-group rebalances seen, by kind (assign, revoke).",
                &["kind"],
            )?,
            assigned,
            commits: counters(
                reg,
                "eqlstream_kafka_commits_total",
                "Offset commits, by result (ok, error, skipped: a checkpoint with an alert still waiting).",
                &["result"],
            )?,
            produced: counters(reg, "eqlstream_kafka_produced_records_total", "Records produced, by topic.", &["topic"])?,
            delivery_errors: counters(
                reg,
                "eqlstream_kafka_delivery_errors_total",
                "Records the broker did not accept, by topic (the run stops without committing past them).",
                &["topic"],
            )?,
        })
    }
}
