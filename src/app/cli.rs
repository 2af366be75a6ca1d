//! Command-line flags (clap derive). Raw values only: merging with the config file and
//! validation happen in `crate::config::Settings::build`.

use std::path::PathBuf;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::config::Overrides;

const ABOUT: &str = "Streaming threat detection for log pipelines.

Reads newline-delimited JSON events, passes every line through unchanged and in order, and adds an \
alert line (JSON) whenever an Elastic detection rule written in EQL fires, with the results \
Elasticsearch's EQL would give on the same events.

    producer | eqlstream [--config config/eqlstream.toml] | consumer

Several instances can share the work as one Kafka consumer group, on a topic keyed by \
container.id:

    eqlstream --input 'kafka://BROKERS/TOPIC?group=G' --output kafka://BROKERS/OUT_TOPIC

Without --rules or --config, the rules of config/rules/ that are built into the binary are used.";

const AFTER: &str = "Every option can also be set in the config file (see config/eqlstream.toml) or \
through an EQLSTREAM_* environment variable; flags win over the environment, which wins over the \
file. On/off variables take 1/0, true/false, yes/no or on/off; an empty one counts as unset.

Signals: SIGTERM or SIGINT stops reading and drains (a Kafka member commits what it has processed \
and leaves its group; the partitions' next owner replays what was still pending); SIGHUP reloads \
the rule files (as --watch does on a change): a set with errors is refused and the running one kept.

Exit codes: 0 ok, 64 usage, 65 a rule cannot run, 66 a file or directory does not exist, \
70 internal error, 74 I/O error, 75 drain after a signal timed out, 78 bad configuration \
(or the metrics port is busy).";

/// The top-level command line.
#[derive(Debug, Parser)]
#[command(name = "eqlstream", version, about = ABOUT, after_help = AFTER, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, accepted without the word `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the detection pipeline (the default).
    Run(Box<RunArgs>),
    /// Parse and compile rule files; print each problem as FILE:LINE:COL with the source line.
    ///
    /// Rules that would be skipped at start-up (other rule types, `sample` queries, deprecated
    /// rules in a directory) are skipped here too, with the same warning.
    ///
    /// With --config, the config file is checked first, as `run` checks it before starting
    /// (`${VAR}` references, unknown keys, every value), then the rules it names (or PATHs).
    ///
    /// Exits 0 when every rule can run, 65 when any cannot, 66 when a path does not exist, 78
    /// when the config file is invalid.
    Validate {
        /// Rule files or directories (searched recursively). Default with --config: its rules.
        #[arg(required_unless_present = "config", value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Config file (TOML) to check; not taken from EQLSTREAM_CONFIG, but the EQLSTREAM_*
        /// variables that set options are applied as `run` applies them.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Unsupported rules (other rule types, `sample` queries) are errors, as with
        /// `eqlstream --strict`.
        #[arg(long)]
        strict: bool,
    },
    /// Run rule fixtures: each rule's events through the pipeline, compared with the alerts
    /// they must give.
    ///
    /// Layout: DIR/<rule>/events.ndjson and DIR/<rule>/expected.jsonl (one case), and/or
    /// DIR/<rule>/<case>/events.ndjson and .../expected.jsonl (named cases). <rule> is a loaded
    /// rule's rule_id or its file name without .toml; only that rule runs on the case's events.
    /// A line of expected.jsonl names one alert: {"rule_id": "...", "join_keys": [...],
    /// "event_ids": ["...", ...]} (rule_id optional; event_ids are the events' event.id values in
    /// sequence order, null for an event without one; an empty file expects no alert). Alerts
    /// are compared as a multiset; a mismatch shows expected alerts not produced (-) and
    /// produced ones not expected (+).
    ///
    /// Exits 0 when every case passes, 1 when one fails (or none is found), 65 when the rules
    /// cannot run, 66 when a directory does not exist.
    Test {
        /// Fixture directories (a root of <rule> directories, or one <rule> directory).
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Which rules.
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Inspect the rule set: `eqlstream rules list`.
    Rules {
        /// What to do with the rules.
        #[command(subcommand)]
        command: RulesCommand,
    },
}

/// Subcommands of `eqlstream rules`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules that would run: id, type (event or sequence), severity, stages (after
    /// `with runs=N`; "+until" when there is an until clause), the number of literals the
    /// prefilter looks for (- when a stage has none, which turns the prefilter off for the whole
    /// set), name and index patterns; then whether the prefilter is on.
    ///
    /// Skipped rules are reported on stderr as at start-up. Exits 0, 65 when the rule set cannot
    /// run, 66 when a path does not exist.
    List {
        /// Which rules.
        #[command(flatten)]
        rules: RuleArgs,
        /// One JSON array of objects (rule_id, name, type, severity, index, stages, until,
        /// prefilter_literals, path) instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// The rule set a command works on, chosen as `run` chooses it.
#[derive(Debug, Default, Args)]
pub struct RuleArgs {
    /// Config file (TOML): its `rules`, `strict_rules` and event-time settings are used.
    #[arg(long, short = 'c', env = "EQLSTREAM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Rule file or directory (TOML); repeatable. Default: the config file's `rules`, else the
    /// built-in rules of config/rules/.
    #[arg(long, short = 'r', env = "EQLSTREAM_RULES", value_name = "PATH", value_delimiter = ',')]
    pub rules: Vec<PathBuf>,

    /// Unsupported rules (other rule types, `sample` queries) are errors, not skips.
    #[arg(long = "strict", env = "EQLSTREAM_STRICT_RULES", value_parser = EnvBool)]
    pub strict_rules: bool,
}

impl RuleArgs {
    /// The flag values as config overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides { rules: self.rules.clone(), strict_rules: self.strict_rules, ..Overrides::default() }
    }
}

/// Options of the `run` command.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Config file (TOML); every option below can be set there.
    #[arg(long, short = 'c', env = "EQLSTREAM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Rule file or directory of Elastic detection rules (TOML); repeatable. Default: the built-in
    /// rules of config/rules/.
    #[arg(long, short = 'r', env = "EQLSTREAM_RULES", value_name = "PATH", value_delimiter = ',')]
    pub rules: Vec<PathBuf>,

    /// Event source: stdin, tcp://HOST:PORT, unix:///PATH, or kafka://BROKERS/TOPIC?group=G (a
    /// member of consumer group G). [default: stdin]
    #[arg(long, short = 'i', env = "EQLSTREAM_INPUT", value_name = "SOURCE")]
    pub input: Option<String>,

    /// Decode workers (JSON parse and rule conditions). [default: number of cores]
    #[arg(long, short = 'w', env = "EQLSTREAM_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Sequence-engine partitions (threads owning disjoint join keys). [default: --workers]
    #[arg(long, env = "EQLSTREAM_PARTITIONS", value_name = "N")]
    pub partitions: Option<usize>,

    /// Lines per batch handed between threads; output never depends on it. [default: 1024]
    #[arg(long, env = "EQLSTREAM_BATCH_SIZE", value_name = "N")]
    pub batch_size: Option<usize>,

    /// Batches in flight per channel; bounds memory. [default: 4]
    #[arg(long, env = "EQLSTREAM_MAX_INFLIGHT_BATCHES", value_name = "N")]
    pub max_inflight_batches: Option<usize>,

    /// Event-time reorder allowance: within one source (stdin or one connection), events up to
    /// this much older than its newest one are still put in order; older ones are late (passed
    /// through, not detected, counted). Alerts wait about this long: `0s` suits senders that
    /// keep their own order. [default: 2s]
    #[arg(long, env = "EQLSTREAM_MAX_OUT_OF_ORDERNESS", value_name = "DURATION")]
    pub max_out_of_orderness: Option<String>,

    /// Release buffered events after this much wall-clock time without input. [default: 1s]
    #[arg(long, env = "EQLSTREAM_IDLE_RELEASE", value_name = "DURATION")]
    pub idle_release: Option<String>,

    /// A source (connection) silent for this long (wall clock) stops holding the watermark back
    /// until it sends again. [default: 5s]
    #[arg(long, env = "EQLSTREAM_SOURCE_IDLE_TIMEOUT", value_name = "DURATION")]
    pub source_idle_timeout: Option<String>,

    /// An event dated more than this ahead of its source's event time is an outlier: kept for
    /// detection but it does not move time (one bad clock cannot make every later event late).
    /// [default: 5m]
    #[arg(long, env = "EQLSTREAM_MAX_FUTURE", value_name = "DURATION")]
    pub max_future: Option<String>,

    /// A source's event time follows a jump (e.g. a replay of another day) after this many
    /// outliers in a row from it. [default: 1000]
    #[arg(long, env = "EQLSTREAM_OUTLIER_CONFIRM_EVENTS", value_name = "N")]
    pub outlier_confirm_events: Option<u32>,

    /// ... or after this much wall-clock time of nothing but outliers from it. [default: 30s]
    #[arg(long, env = "EQLSTREAM_OUTLIER_CONFIRM_TIME", value_name = "DURATION")]
    pub outlier_confirm_time: Option<String>,

    /// Field holding the event time (RFC 3339 string or epoch milliseconds). [default: @timestamp]
    #[arg(long, env = "EQLSTREAM_TIMESTAMP_FIELD", value_name = "FIELD")]
    pub timestamp_field: Option<String>,

    /// Field that orders events with equal timestamps (Elasticsearch's tiebreaker_field).
    #[arg(long, env = "EQLSTREAM_TIEBREAKER_FIELD", value_name = "FIELD")]
    pub tiebreaker_field: Option<String>,

    /// Timestamp precision: millis (Elasticsearch `date`) or nanos (`date_nanos`). [default: millis]
    #[arg(long, env = "EQLSTREAM_TIMESTAMP_PRECISION", value_name = "P")]
    pub timestamp_precision: Option<String>,

    /// Longest line that is parsed; longer lines pass through unparsed and are counted.
    /// [default: 1048576]
    #[arg(long, env = "EQLSTREAM_MAX_LINE_BYTES", value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,

    /// Cap on live partial sequences; the oldest are evicted (and counted) past it.
    /// [default: 1000000]
    #[arg(long, env = "EQLSTREAM_MAX_PARTIAL_SEQUENCES", value_name = "N")]
    pub max_partial_sequences: Option<usize>,

    /// Cap on the join-key tuples one event gives one stage: multi-valued keys expand to the
    /// cartesian product of their values; past the cap only the first tuples are kept (first
    /// key's values in document order varying slowest) and the cut is counted. [default: 64]
    #[arg(long, env = "EQLSTREAM_MAX_KEY_COMBINATIONS", value_name = "N")]
    pub max_key_combinations: Option<usize>,

    /// The field holding an event's index name, which each rule's `index` patterns must select
    /// (as Elasticsearch searches only those indices). Default: the data stream name
    /// `{data_stream.type}-{data_stream.dataset}-{data_stream.namespace}`; an event without it
    /// is for every rule. An empty value turns the restriction off.
    #[arg(long, env = "EQLSTREAM_INDEX_FIELD", value_name = "FIELD")]
    pub index_field: Option<String>,

    /// Evaluate every stage of every rule on every parsed line instead of only those rule
    /// dispatch finds possible (slower; alerts are identical, for comparisons).
    #[arg(long, env = "EQLSTREAM_NO_DISPATCH", value_parser = EnvBool)]
    pub no_dispatch: bool,

    /// Bytes of matched events kept in memory; beyond it they go to spill files in
    /// --spill-dir (0: all of them). [default: 8388608]
    #[arg(long, env = "EQLSTREAM_EVENT_STORE_MEMORY", value_name = "BYTES")]
    pub event_store_memory: Option<usize>,

    /// Directory for the event store's spill files (unlinked as soon as created).
    /// [default: the OS temp dir]
    #[arg(long, env = "EQLSTREAM_SPILL_DIR", value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,

    /// Prometheus /metrics and /healthz listener, HOST:PORT or `off`; port 0 picks a free port
    /// (printed on stderr). [default: 127.0.0.1:9780]
    #[arg(long, env = "EQLSTREAM_METRICS_ADDRESS", value_name = "ADDR")]
    pub metrics_address: Option<String>,

    /// Where events and alerts go: `stdout`, or `kafka://BROKERS/TOPIC` (each line one record,
    /// keyed like its input record; each alert keyed by its event.id). [default: stdout]
    #[arg(long, short = 'o', env = "EQLSTREAM_OUTPUT", value_name = "DEST")]
    pub output: Option<String>,

    /// Also write alert lines to FILE, appended to what it holds (see --alerts-output-mode), or
    /// to a Kafka topic: kafka://BROKERS/TOPIC (records keyed by event.id).
    #[arg(long, env = "EQLSTREAM_ALERTS_OUTPUT", value_name = "FILE")]
    pub alerts_output: Option<PathBuf>,

    /// Kafka input: how often a checkpoint commits the offsets of the oldest events still
    /// needed. [default: 5s]
    #[arg(long, env = "EQLSTREAM_COMMIT_INTERVAL", value_name = "DURATION")]
    pub commit_interval: Option<String>,

    /// What opening --alerts-output does to the file: append (keep its lines) or truncate
    /// (empty it first). [default: append]
    #[arg(long, env = "EQLSTREAM_ALERTS_OUTPUT_MODE", value_name = "MODE")]
    pub alerts_output_mode: Option<String>,

    /// Write only alerts to stdout, not the input lines.
    #[arg(long, env = "EQLSTREAM_NO_PASSTHROUGH", value_parser = EnvBool)]
    pub no_passthrough: bool,

    /// Alert shape: ecs (one line per detection) or kibana (shell + building-block alerts).
    /// [default: ecs]
    #[arg(long, env = "EQLSTREAM_ALERT_FORMAT", value_name = "FORMAT")]
    pub alert_format: Option<String>,

    /// Kibana space of --alert-format kibana alerts (`kibana.space_ids`). [default: default]
    #[arg(long, env = "EQLSTREAM_KIBANA_SPACE_ID", value_name = "SPACE")]
    pub kibana_space_id: Option<String>,

    /// Print a progress line on stderr every second.
    #[arg(long, env = "EQLSTREAM_PROGRESS", value_parser = EnvBool)]
    pub progress: bool,

    /// After SIGTERM/SIGINT, drain what was read for at most this long. [default: 10s]
    #[arg(long, env = "EQLSTREAM_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,

    /// Cap on simultaneous socket connections; further clients wait in the listen backlog
    /// until one closes (see --connection-idle-timeout). [default: 64]
    #[arg(long, env = "EQLSTREAM_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Permissions of the Unix socket file (octal); the socket is created with them, never
    /// wider. [default: 0600]
    #[arg(long, env = "EQLSTREAM_SOCKET_MODE", value_name = "MODE")]
    pub socket_mode: Option<String>,

    /// Close a connection that sends nothing for this long, so idle clients cannot hold every
    /// --max-connections slot; 0s: never. [default: 5m]
    #[arg(long, env = "EQLSTREAM_CONNECTION_IDLE_TIMEOUT", value_name = "DURATION")]
    pub connection_idle_timeout: Option<String>,

    /// Events the reorder buffer holds at most; past it the oldest are released early (counted
    /// in eqlstream_reorder_overflow_events_total). [default: 1000000]
    #[arg(long, env = "EQLSTREAM_MAX_BUFFERED_EVENTS", value_name = "N")]
    pub max_buffered_events: Option<usize>,

    /// Refuse to start (exit 65) when a rule cannot run: a rule type other than eql, or a
    /// `sample` query. Without it such rules are skipped, one warning line each, and the
    /// summary line counts them. Deprecated rules found in a directory are skipped either way.
    #[arg(long = "strict", env = "EQLSTREAM_STRICT_RULES", value_parser = EnvBool)]
    pub strict_rules: bool,

    /// Reload the rules when their files change (looked at every second: size, modification
    /// time, inode of every *.toml under --rules), as SIGHUP always does. A rule set that fails
    /// to load is refused (errors on stderr) and the running one is kept; unchanged rules keep
    /// their partial sequences.
    #[arg(long = "watch", env = "EQLSTREAM_WATCH_RULES", value_parser = EnvBool)]
    pub watch_rules: bool,

    /// Skip the JSON parse of lines whose bytes prove they cannot match any rule, even with
    /// `prefilter = false` in the config file. On by default; alerts are identical either way.
    #[arg(long, env = "EQLSTREAM_PREFILTER", conflicts_with = "no_prefilter", value_parser = EnvBool)]
    pub prefilter: bool,

    /// Parse every line (the prefilter is on by default): every invalid line is then
    /// classified in eqlstream_invalid_events_total, not only those the prefilter lets through.
    #[arg(long, env = "EQLSTREAM_NO_PREFILTER", value_parser = EnvBool)]
    pub no_prefilter: bool,

    /// Log level for stderr diagnostics (error, warn, info, debug, trace, or directives such as
    /// eqlstream=debug). RUST_LOG, when set, wins over it; -v and -q win over both. [default: info]
    #[arg(long, env = "EQLSTREAM_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log line format on stderr: text or json (one JSON object per line). [default: text]
    #[arg(long, env = "EQLSTREAM_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// More diagnostics: -v logs at debug, -vv at trace (wins over --log-level and RUST_LOG).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only warnings and errors on stderr (wins over --log-level and RUST_LOG).
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

impl RunArgs {
    /// The flag values as config overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            rules: self.rules.clone(),
            input: self.input.clone(),
            workers: self.workers,
            partitions: self.partitions,
            batch_size: self.batch_size,
            max_inflight_batches: self.max_inflight_batches,
            max_out_of_orderness: self.max_out_of_orderness.clone(),
            idle_release: self.idle_release.clone(),
            source_idle_timeout: self.source_idle_timeout.clone(),
            max_future: self.max_future.clone(),
            outlier_confirm_events: self.outlier_confirm_events,
            outlier_confirm_time: self.outlier_confirm_time.clone(),
            timestamp_field: self.timestamp_field.clone(),
            tiebreaker_field: self.tiebreaker_field.clone(),
            timestamp_precision: self.timestamp_precision.clone(),
            max_line_bytes: self.max_line_bytes,
            max_partial_sequences: self.max_partial_sequences,
            max_key_combinations: self.max_key_combinations,
            index_field: self.index_field.clone(),
            no_dispatch: self.no_dispatch,
            event_store_memory: self.event_store_memory,
            spill_dir: self.spill_dir.clone(),
            metrics_address: self.metrics_address.clone(),
            alerts_output: self.alerts_output.clone(),
            alerts_output_mode: self.alerts_output_mode.clone(),
            output: self.output.clone(),
            commit_interval: self.commit_interval.clone(),
            no_passthrough: self.no_passthrough,
            alert_format: self.alert_format.clone(),
            kibana_space_id: self.kibana_space_id.clone(),
            progress: self.progress,
            shutdown_timeout: self.shutdown_timeout.clone(),
            max_connections: self.max_connections,
            socket_mode: self.socket_mode.clone(),
            connection_idle_timeout: self.connection_idle_timeout.clone(),
            max_buffered_events: self.max_buffered_events,
            strict_rules: self.strict_rules,
            watch_rules: self.watch_rules,
            no_prefilter: self.no_prefilter,
            prefilter: self.prefilter,
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
        }
    }

    /// The level `-v`/`-q` ask for, which wins over every other log setting.
    pub fn verbosity(&self) -> Option<&'static str> {
        match (self.quiet, self.verbose) {
            (true, _) => Some("warn"),
            (false, 0) => None,
            (false, 1) => Some("debug"),
            (false, _) => Some("trace"),
        }
    }
}

/// Value parser of the on/off flags that an `EQLSTREAM_*` variable can set: 1/0, true/false,
/// yes/no, on/off in any case (clap's own takes only true/false). The flag given on the command
/// line takes no value, so the only text this ever sees comes from the variable, and its error
/// names the variable. An empty variable is off, as if unset.
#[derive(Clone, Copy, Debug)]
pub struct EnvBool;

/// The spellings [`EnvBool`] accepts, true ones first.
const TRUE_WORDS: [&str; 4] = ["1", "true", "yes", "on"];
const FALSE_WORDS: [&str; 4] = ["0", "false", "no", "off"];

impl TypedValueParser for EnvBool {
    type Value = bool;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<bool, clap::Error> {
        let text = value.to_string_lossy();
        let word = text.trim().to_ascii_lowercase();
        if TRUE_WORDS.contains(&word.as_str()) {
            return Ok(true);
        }
        if word.is_empty() || FALSE_WORDS.contains(&word.as_str()) {
            return Ok(false);
        }
        let source = match arg.and_then(|a| a.get_env()) {
            Some(var) => var.to_string_lossy().into_owned(),
            None => arg.map(|a| format!("--{}", a.get_id())).unwrap_or_else(|| "a flag".into()),
        };
        let message =
            format!("invalid value `{text}` of {source}: expected 1/0, true/false, yes/no or on/off (any case)\n");
        Err(clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        // Hidden: `--help` of a flag that takes no value should not list values.
        Some(Box::new(TRUE_WORDS.iter().chain(FALSE_WORDS.iter()).map(|w| PossibleValue::new(*w).hide(true))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_states_the_defaults_the_code_uses() {
        let help = Cli::command().render_long_help().to_string();
        // Each option's block runs from its line to the next line that starts an option.
        let blocks: Vec<String> =
            help.split("\n      -").map(|b| b.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        for (flag, default) in [
            ("-batch-size", crate::config::DEFAULT_BATCH_SIZE.to_string()),
            ("-max-inflight-batches", crate::config::DEFAULT_MAX_INFLIGHT_BATCHES.to_string()),
            ("-event-store-memory", crate::store::DEFAULT_EVENT_STORE_MEMORY.to_string()),
            ("-max-line-bytes", crate::config::DEFAULT_MAX_LINE_BYTES.to_string()),
            ("-max-partial-sequences", crate::config::DEFAULT_MAX_PARTIAL_SEQUENCES.to_string()),
            ("-max-key-combinations", crate::config::DEFAULT_MAX_KEY_COMBINATIONS.to_string()),
            ("-max-connections", crate::config::DEFAULT_MAX_CONNECTIONS.to_string()),
            ("-max-buffered-events", crate::config::DEFAULT_MAX_BUFFERED_EVENTS.to_string()),
            ("-outlier-confirm-events", crate::sequence::watermark::DEFAULT_OUTLIER_CONFIRM_EVENTS.to_string()),
        ] {
            let block =
                blocks.iter().find(|b| b.starts_with(&format!("{flag} <"))).unwrap_or_else(|| panic!("-{flag}"));
            assert!(block.contains(&format!("[default: {default}]")), "-{block}");
        }
    }

    #[test]
    fn run_flags_work_with_and_without_the_subcommand() {
        let a = Cli::try_parse_from(["eqlstream", "--workers", "2"]).unwrap();
        assert_eq!(a.run.workers, Some(2));
        let b = Cli::try_parse_from(["eqlstream", "run", "--workers", "3"]).unwrap();
        assert!(matches!(b.command, Some(Command::Run(ref r)) if r.workers == Some(3)));
        let v = Cli::try_parse_from(["eqlstream", "validate", "a.toml", "dir"]).unwrap();
        assert!(
            matches!(v.command, Some(Command::Validate { paths, config: None, strict: false }) if paths.len() == 2)
        );
        let v = Cli::try_parse_from(["eqlstream", "validate", "--config", "e.toml"]).unwrap();
        assert!(matches!(v.command, Some(Command::Validate { paths, config: Some(_), .. }) if paths.is_empty()));
        assert!(Cli::try_parse_from(["eqlstream", "validate"]).is_err(), "validate needs a PATH or --config");
        let t = Cli::try_parse_from(["eqlstream", "test", "fixtures", "--rules", "r.toml"]).unwrap();
        assert!(
            matches!(t.command, Some(Command::Test { ref dirs, ref rules }) if dirs.len() == 1 && rules.rules.len() == 1)
        );
        let l = Cli::try_parse_from(["eqlstream", "rules", "list", "--rules", "a,b", "--json", "--strict"]).unwrap();
        assert!(matches!(l.command, Some(Command::Rules { command: RulesCommand::List { ref rules, json: true } })
            if rules.rules.len() == 2 && rules.strict_rules));
    }

    #[test]
    fn env_booleans_take_common_spellings_and_errors_name_the_variable() {
        let cmd = Cli::command();
        let arg = clap::Arg::new("no_passthrough").long("no-passthrough").env("EQLSTREAM_NO_PASSTHROUGH");
        let parse = |v: &str| EnvBool.parse_ref(&cmd, Some(&arg), std::ffi::OsStr::new(v));
        for v in ["1", "true", "TRUE", "yes", "Yes", "on", "ON", " 1 "] {
            assert!(parse(v).unwrap(), "{v}");
        }
        for v in ["0", "false", "False", "no", "NO", "off", "Off", ""] {
            assert!(!parse(v).unwrap(), "{v:?}");
        }
        let e = parse("maybe").unwrap_err().to_string();
        assert!(e.contains("EQLSTREAM_NO_PASSTHROUGH") && e.contains("maybe"), "{e}");
        assert!(!e.contains("--no-passthrough"), "names the variable, not the flag: {e}");
    }

    #[test]
    fn verbose_and_quiet_set_the_log_level() {
        let level = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.run.verbosity());
        assert_eq!(level(&["eqlstream"]).unwrap(), None);
        assert_eq!(level(&["eqlstream", "-v"]).unwrap(), Some("debug"));
        assert_eq!(level(&["eqlstream", "-vv"]).unwrap(), Some("trace"));
        assert_eq!(level(&["eqlstream", "-v", "-v", "-v"]).unwrap(), Some("trace"));
        assert_eq!(level(&["eqlstream", "-q"]).unwrap(), Some("warn"));
        assert!(level(&["eqlstream", "-q", "-v"]).is_err(), "-q and -v conflict");
        let r = Cli::try_parse_from(["eqlstream", "--log-format", "json", "--alerts-output-mode", "truncate"]).unwrap();
        assert_eq!(r.run.overrides().log_format.as_deref(), Some("json"));
        assert_eq!(r.run.overrides().alerts_output_mode.as_deref(), Some("truncate"));
    }
}
