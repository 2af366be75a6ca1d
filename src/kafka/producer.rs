//! Kafka outputs: each line, or each alert, one record (see [`crate::pipeline::sink::RecordSink`]).
//!
//! Records go through one librdkafka producer per topic, polled by its own thread. A full local
//! queue is waited out (backpressure, as a slow stdout would be). The writer flushes at every
//! checkpoint, before offsets are committed: a record not delivered is never behind a commit.
//! A delivery failure ends the run with an error (exit 74), after which the next owner replays
//! from the last commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::metrics::KafkaMetrics;
use super::url::KafkaUrl;
use crate::pipeline::sink::RecordSink;

/// How long a flush may wait for deliveries before the run fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts delivery failures and keeps the first error.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    errors: Option<prometheus::IntCounter>,
    /// librdkafka's errors, rate-limited.
    errors_log: super::ErrorLog,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors_log.report("producer", &error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = &self.errors {
                c.inc();
            }
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// A topic written record by record.
#[derive(Clone)]
pub struct TopicSink {
    producer: Arc<ThreadedProducer<Deliveries>>,
    topic: String,
    produced: prometheus::IntCounter,
}

impl TopicSink {
    /// A producer for `url`'s topic (`group` is ignored; other query pairs are librdkafka
    /// settings).
    pub fn connect(url: &KafkaUrl, metrics: &KafkaMetrics) -> Result<TopicSink, KafkaError> {
        let mut cfg = ClientConfig::new();
        // A bounded local queue (librdkafka's default is 1 GiB): a slow broker slows the writer.
        cfg.set("bootstrap.servers", &url.brokers)
            .set("linger.ms", "5")
            .set("client.id", "eqlstream")
            .set("queue.buffering.max.kbytes", "65536");
        for (k, v) in &url.options {
            cfg.set(k, v);
        }
        let ctx =
            Deliveries { errors: Some(metrics.delivery_errors.with_label_values(&[&url.topic])), ..Default::default() };
        let producer: ThreadedProducer<Deliveries> = cfg.create_with_context(ctx)?;
        Ok(TopicSink {
            producer: Arc::new(producer),
            topic: url.topic.clone(),
            produced: metrics.produced.with_label_values(&[&url.topic]),
        })
    }

    fn failure(&self) -> Option<std::io::Error> {
        let ctx = self.producer.context();
        if ctx.failed.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let first = ctx.first_error.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
        Some(std::io::Error::other(format!(
            "Kafka topic {}: {} record(s) not delivered (first error: {first})",
            self.topic,
            ctx.failed.load(Ordering::Relaxed)
        )))
    }
}

impl RecordSink for TopicSink {
    fn send(&mut self, key: Option<&[u8]>, payload: &[u8]) -> std::io::Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: wait for deliveries (backpressure).
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(std::io::Error::other(format!("Kafka topic {}: {e}", self.topic))),
            }
        }
        self.produced.inc();
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| std::io::Error::other(format!("Kafka topic {}: flush: {e}", self.topic)))?;
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
