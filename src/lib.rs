//! eqlstream: streaming threat detection with Elastic EQL rules over newline-delimited JSON.

pub mod alert;
pub mod event;
pub mod metrics;
pub mod rules;
pub mod sequence;
