//! Kafka: a consumer group of eqlstream instances (the input), and topics as outputs.
//!
//! Sequence rules join events by keys (`container.id` for the seed rule), so a topic keyed by the
//! join key splits the work exactly: every event of a container is in one partition, read by one
//! instance. See [`consumer`] for offsets, rebalances and the guarantees, and
//! docs/integrations/kafka.md for the set-up.
//!
//! [`url`] and [`offsets`] need no Kafka client; the rest needs the `kafka` cargo feature (on by
//! default: librdkafka, built from source by the `rdkafka` crate).

#[cfg(feature = "kafka")]
pub mod consumer;
#[cfg(feature = "kafka")]
pub mod metrics;
pub mod offsets;
#[cfg(feature = "kafka")]
pub mod producer;
pub mod url;

/// librdkafka's error callback, rate-limited: the client retries by itself and reports the same
/// condition (brokers down) many times a second; one warning per [`ERROR_INTERVAL`] says what
/// and how often.
#[cfg(feature = "kafka")]
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    last: std::sync::Mutex<Option<std::time::Instant>>,
    since: std::sync::atomic::AtomicU64,
}

/// At most one client-error warning per interval.
#[cfg(feature = "kafka")]
const ERROR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(feature = "kafka")]
impl ErrorLog {
    /// Notes an error of the client `who` (consumer, producer); warns when due.
    pub(crate) fn report(&self, who: &str, error: &rdkafka::error::KafkaError, reason: &str) {
        use std::sync::atomic::Ordering;
        let n = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = crate::sync::lock(&self.last);
        let now = std::time::Instant::now();
        if last.is_none_or(|t| now.saturating_duration_since(t) >= ERROR_INTERVAL) {
            *last = Some(now);
            self.since.store(0, Ordering::Relaxed);
            tracing::warn!(
                client = who,
                errors = n,
                "Kafka {who}: {error}: {reason} (librdkafka retries by itself; {n} error(s) since the last warning, \
                 at most one warning every 30 s)"
            );
        }
    }
}
