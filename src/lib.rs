//! eqlstream: streaming threat detection with Elastic EQL rules over newline-delimited JSON.
//!
//! ```text
//! stdin | tcp | unix
//!   -> pipeline::source   frame lines into batches (never looks inside a line)
//!   -> pipeline::decode   xN: simd-json, timestamp, the stage conditions that dispatch finds (eql)
//!   -> pipeline::sequencer  stream order, an event clock per source (sequence::watermark),
//!                           reorder buffer (sequence::reorder)
//!   -> pipeline::worker   xM: sequence machines for the join keys they own (sequence), alerts (alert)
//!   -> pipeline::sink     every line byte-exact and in order, alerts after the line that released them
//! ```
//!
//! Module map: [`app`] (the command line: `eqlstream`'s `main`), [`config`] (settings), [`rules`] (Elastic rule TOML), [`eql`] (EQL parser,
//! compiler, evaluator), [`ruleset`] (compiled rules), [`dispatch`] (which stages an event can match), [`event`] (field access on parsed
//! events), [`time`] (timestamps), [`sequence`] (state machines), [`alert`] (alert records),
//! [`store`] (matched events in memory or spilled to disk), [`metrics`] (Prometheus),
//! [`pipeline`] (threads and channels; `pipeline::live`: rule-set versions and reloads),
//! [`validate`] (the validate command), [`catalog`] (the load policy shared by every command,
//! `rules list`, `test` fixtures, reload triggers).

pub mod alert;
pub mod app;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod eql;
pub mod event;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod rules;
pub mod ruleset;
pub mod sequence;
pub mod store;
pub(crate) mod sync;
pub mod time;
pub mod validate;
