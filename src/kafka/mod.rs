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
