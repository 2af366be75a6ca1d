//! The sequence engine: Elasticsearch's sequence state machine, in event time.

pub mod key;
pub mod spec;
