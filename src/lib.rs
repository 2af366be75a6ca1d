//! eqlstream: streaming threat detection with Elastic EQL rules over newline-delimited JSON.

pub mod event;
pub mod rules;
pub mod sequence;
pub mod time;
