//! Integration tests: each module runs the real `eqlstream` binary on real files. This file only
//! lists the modules; the assertions live in them.

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
