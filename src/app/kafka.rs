//! `eqlstream run` with Kafka: the topics written to, and a consumer-group member that runs one
//! pipeline per assignment (see [`crate::kafka::consumer`]).

use std::sync::Arc;

use super::{exit, Fatal};
use crate::config::{InputSpec, Settings};
use crate::kafka::consumer::{Group, GroupConfig};
use crate::kafka::metrics::KafkaMetrics;
use crate::kafka::producer::TopicSink;
use crate::kafka::url::KafkaUrl;
use crate::metrics::Metrics;
use crate::pipeline::{self, sink, KafkaRead, PipelineError, RunContext, RunReport, Shutdown};

/// The Kafka side of a run: its metrics and the topics it writes.
pub(super) struct Sinks {
    metrics: Option<KafkaMetrics>,
    output: Option<TopicSink>,
    alerts: Option<TopicSink>,
}

impl Sinks {
    /// Registers the Kafka metrics and connects the producers, when the run uses Kafka.
    pub(super) fn open(settings: &Settings, metrics: &Metrics) -> Result<Sinks, Fatal> {
        let used = matches!(settings.input, InputSpec::Kafka(_))
            || settings.output.is_some()
            || settings.alerts_kafka.is_some();
        if !used {
            return Ok(Sinks { metrics: None, output: None, alerts: None });
        }
        let km = KafkaMetrics::register(metrics.registry()).map_err(|e| Fatal::new(exit::SOFTWARE, e.to_string()))?;
        let connect = |url: &Option<KafkaUrl>| -> Result<Option<TopicSink>, Fatal> {
            url.as_ref()
                .map(|u| {
                    TopicSink::connect(u, &km).map_err(|e| Fatal::new(exit::CONFIG, format!("Kafka output {u}: {e}")))
                })
                .transpose()
        };
        let output = connect(&settings.output)?;
        let alerts = connect(&settings.alerts_kafka)?;
        Ok(Sinks { metrics: Some(km), output, alerts })
    }

    /// Points a pipeline's outputs at the topics.
    pub(super) fn attach(&self, outputs: &mut sink::Outputs) {
        if let Some(t) = &self.output {
            outputs.records = Some(Box::new(t.clone()));
        }
        if let Some(t) = &self.alerts {
            outputs.alert_records = Some(Box::new(t.clone()));
        }
    }
}

/// Joins `url`'s group and runs a pipeline per assignment until shutdown. Totals add up over
/// the pipelines; the report is the last one's.
pub(super) fn run_group(
    settings: &Settings,
    url: &KafkaUrl,
    sinks: &Sinks,
    mut make_ctx: impl FnMut(bool) -> Result<RunContext, Fatal>,
    shutdown: &Shutdown,
) -> Result<Result<RunReport, PipelineError>, Fatal> {
    let Some(km) = sinks.metrics.clone() else {
        return Err(Fatal::new(exit::SOFTWARE, "Kafka metrics were not registered"));
    };
    let group = Group::join(url, km).map_err(|e| Fatal::new(exit::CONFIG, format!("Kafka input {url}: {e}")))?;
    let group = Arc::new(group);
    let cfg = GroupConfig { batch_size: settings.batch_size, commit_interval: settings.commit_interval };
    let mut first = true;
    let report = loop {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut ctx = make_ctx(first)?;
        first = false;
        ctx.outputs.checkpoints = Some(tx);
        ctx.kafka = Some(KafkaRead { group: group.clone(), cfg: cfg.clone(), checkpoints: rx });
        match pipeline::run(settings, ctx) {
            Ok(r) if r.rebalanced && !shutdown.is_triggered() => {
                tracing::info!("Kafka: rebalanced; starting a pipeline for the new assignment.");
            }
            other => break other,
        }
    };
    if let Ok(g) = Arc::try_unwrap(group) {
        g.close();
    }
    Ok(report)
}
