//! eqlstream: streaming threat detection with Elastic EQL rules over newline-delimited JSON.

pub mod eql;
pub mod event;
pub mod rules;
pub mod ruleset;
pub mod sequence;
pub mod validate;
