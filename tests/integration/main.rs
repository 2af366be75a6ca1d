//! The crate's only integration-test binary (one link instead of one per file; run one module
//! with `cargo test --test integration <module>::`). The modules of the first list run the real
//! `eqlstream` (or `eqlstream-loadgen`) binary on real files; those of the second call the
//! library directly. This file only lists the modules; the assertions live in them. Add a
//! module here rather than a file directly under tests/ (each such file is one more binary).
//! proptest keeps the failing cases of `<module>.rs` in `tests/proptest-regressions/<module>.txt`
//! (its default beside a `main.rs`).

#[macro_use]
mod util;

// cli: --help, exit codes, config and validate errors.
mod cli;
// passthrough: every input line comes out once, byte-exact, in order, whatever the line is.
mod passthrough;
// seed: the seed rule's cases give exactly Elasticsearch's sequences, for every worker/batch setup.
mod seed;
// sockets: TCP and Unix-socket sources with several clients at once.
mod sockets;
// shutdown: SIGTERM drains what was read; a closed stdout ends quietly; memory stays bounded.
mod shutdown;
// loadgen: the generator's ground truth is found exactly; the prefilter changes nothing.
#[cfg(feature = "loadgen")]
mod loadgen;
// dispatch: rule dispatch and the prefilter change nothing for 1 to 1,021 rules; index patterns.
mod dispatch;
// metrics: /metrics of a running binary counts exactly what went through.
mod metrics;
// eventtime: several senders, a bad clock, a silent connection, and honest alert latency.
mod eventtime;
// faults: crashed threads, signals mid-line, busy socket paths, idle clients, endless lines.
mod faults;
// rules: Elastic's rule corpus loads as it is, `rules list`, `test` fixtures, reloads.
mod rules;
// regression: one test per fixed bug (issue_<n>_<what>).
mod regression;
// docs: every relative link in README.md and docs/ resolves.
mod docs;
// kafka: a consumer group of instances on a real broker: split, crash, commits, keyed outputs.
#[cfg(all(feature = "kafka", feature = "loadgen"))]
mod kafka;
// generator: the `eqlstream-loadgen` binary on its own: determinism, truth, disorder, score.
#[cfg(feature = "loadgen")]
mod generator;

// The library, called directly.
// alert_golden: alert records (ECS and Kibana) against the golden files of tests/golden/alerts.
mod alert_golden;
// dispatch_props: rule dispatch equals brute force on seed, hand-made and generated events.
mod dispatch_props;
// eql_corpus: every production query of the corpus compiles (but `sample`).
mod eql_corpus;
// eql_golden: `validate` diagnostics against the golden files of tests/golden/parse.
mod eql_golden;
// eql_proptest: the EQL compiler and evaluator never panic on generated queries and events.
mod eql_proptest;
// eql_rules: loading Elastic rule TOML files and directories.
mod eql_rules;
// eql_seed: the seed rule's stages and keys follow Elasticsearch on the seed cases.
mod eql_seed;
// eql_semantics: operator, key and sequence-shape semantics (eql-semantics.md).
mod eql_semantics;
// sequence_machine: the sequence state machine, case by case.
mod sequence_machine;
// sequence_memory: bytes per partial sequence, counted by this binary's global allocator.
mod sequence_memory;
// sequence_props: streams in any arrival order within the allowance give the same sequences.
mod sequence_props;
// sequence_reference: the machine equals a naive reference model.
mod sequence_reference;
// sequence_seed: the seed cases through the sequence machines give exactly ES's sequences.
mod sequence_seed;
// sequence_spec: Elasticsearch's sequences.series-spec, one test per case.
mod sequence_spec;
