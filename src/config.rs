//! Run-time configuration: the TOML file a user writes ([`FileConfig`]), merged with command-line
//! flags and `EQLSTREAM_*` environment variables into validated [`Settings`].
//!
//! Precedence, highest first: command-line flag, environment variable, config file, built-in
//! default. Every option is documented with its default in `config/eqlstream.toml`; a test parses
//! that file so the documentation cannot drift from the code. Unknown keys are an error (exit 78),
//! never silently ignored. `${VAR}` references in the file are replaced before it is parsed
//! ([`interpolate`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::alert::AlertFormat;
use crate::kafka::url::KafkaUrl;
use crate::time::Precision;

pub mod interpolate;

/// Default `max_line_bytes`: a longer line is passed through unparsed and counted (`too_long`).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// Default lines per batch handed between threads.
pub const DEFAULT_BATCH_SIZE: usize = 1024;
/// Default event-time allowance of the reorder buffer.
pub const DEFAULT_MAX_OUT_OF_ORDERNESS: Duration = Duration::from_secs(2);
/// Default wall-clock idle time after which buffered events are released.
pub const DEFAULT_IDLE_RELEASE: Duration = Duration::from_secs(1);
/// Default cap on live partial sequences (all rules, all partitions).
pub const DEFAULT_MAX_PARTIAL_SEQUENCES: usize = 1_000_000;
/// Default cap on the join-key tuples one event gives one stage (see `sequence::key::KeyLimit`).
pub use crate::sequence::key::DEFAULT_MAX_KEY_COMBINATIONS;
/// Default metrics listener: loopback only.
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9780";
/// Default time allowed to drain after SIGTERM/SIGINT.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on simultaneous socket connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default permissions of the Unix socket (`socket_mode`): owner only.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// Default `connection_idle_timeout`: a connection that sends nothing for this long is closed.
pub const DEFAULT_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default `max_buffered_events`: events the reorder buffer holds at most.
pub const DEFAULT_MAX_BUFFERED_EVENTS: usize = 1_000_000;
/// Default number of batches in flight per channel (bounds memory: lines in flight is about
/// `batch_size * max_inflight_batches` per hop).
pub const DEFAULT_MAX_INFLIGHT_BATCHES: usize = 4;
/// Default `commit_interval`: how often a Kafka input checkpoints and commits offsets.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Default timestamp field.
pub const DEFAULT_TIMESTAMP_FIELD: &str = "@timestamp";

/// Configuration errors: all map to exit code 78 (EX_CONFIG), except a missing config file (66).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file does not exist.
    #[error("config file {path}: not found")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The config file cannot be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown/mistyped keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The path given.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// An `${VAR}` reference in the config file cannot be replaced.
    #[error("config file {path}: {source}")]
    Interpolate {
        /// The path given.
        path: PathBuf,
        /// The variable or syntax problem, with its line.
        source: interpolate::InterpolateError,
    },
    /// A value is out of range or malformed.
    #[error("invalid {option}: {message}")]
    Invalid {
        /// The option's name as written in the config file.
        option: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The config file as the user wrote it. Every field is optional; see `config/eqlstream.toml`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Rule files or directories; relative paths are relative to the config file.
    pub rules: Option<Vec<PathBuf>>,
    /// `stdin`, `tcp://HOST:PORT`, `unix:///PATH` or `kafka://BROKERS/TOPIC?group=G`.
    pub input: Option<String>,
    /// `stdout` or `kafka://BROKERS/TOPIC`.
    pub output: Option<String>,
    /// How often a Kafka input commits offsets, e.g. "5s".
    pub commit_interval: Option<String>,
    /// Decode workers.
    pub workers: Option<usize>,
    /// Sequence-engine partitions (one thread each).
    pub partitions: Option<usize>,
    /// Lines per batch.
    pub batch_size: Option<usize>,
    /// Batches in flight per channel.
    pub max_inflight_batches: Option<usize>,
    /// Event-time reorder allowance, e.g. "2s".
    pub max_out_of_orderness: Option<String>,
    /// Wall-clock idle time before buffered events are released, e.g. "1s".
    pub idle_release: Option<String>,
    /// Wall-clock time after which a silent source stops holding the watermark, e.g. "5s".
    pub source_idle_timeout: Option<String>,
    /// How far ahead of its source's event time an event may be dated before it is an outlier.
    pub max_future: Option<String>,
    /// Outliers in a row from one source that confirm a jump of its event time.
    pub outlier_confirm_events: Option<u32>,
    /// Wall-clock time of nothing but outliers from one source that confirms a jump.
    pub outlier_confirm_time: Option<String>,
    /// Field holding the event time.
    pub timestamp_field: Option<String>,
    /// Optional tiebreaker field for events with equal timestamps.
    pub tiebreaker_field: Option<String>,
    /// `millis` (Elasticsearch `date`) or `nanos` (`date_nanos`).
    pub timestamp_precision: Option<String>,
    /// Longest line that is parsed.
    pub max_line_bytes: Option<usize>,
    /// Cap on live partial sequences.
    pub max_partial_sequences: Option<usize>,
    /// Cap on the join-key tuples one event gives one stage.
    pub max_key_combinations: Option<usize>,
    /// The field holding an event's index name (unset: the data stream name; `""`: off).
    pub index_field: Option<String>,
    /// Rule dispatch (default on); `false` evaluates every stage on every parsed line.
    pub dispatch: Option<bool>,
    /// Bytes of matched events kept in memory before spilling to disk.
    pub event_store_memory: Option<usize>,
    /// Directory of the event store's spill files.
    pub spill_dir: Option<PathBuf>,
    /// `HOST:PORT` or `off`.
    pub metrics_address: Option<String>,
    /// Also write alerts to this file.
    pub alerts_output: Option<PathBuf>,
    /// `append` (default) or `truncate` the alerts file at start.
    pub alerts_output_mode: Option<String>,
    /// Write only alerts to stdout.
    pub no_passthrough: Option<bool>,
    /// `ecs` or `kibana`.
    pub alert_format: Option<String>,
    /// The Kibana space of `--alert-format kibana` alerts (`kibana.space_ids`).
    pub kibana_space_id: Option<String>,
    /// Print a progress line on stderr every second.
    pub progress: Option<bool>,
    /// Time allowed to drain after SIGTERM, e.g. "10s".
    pub shutdown_timeout: Option<String>,
    /// Cap on simultaneous socket connections.
    pub max_connections: Option<usize>,
    /// Permissions of the Unix socket, octal (e.g. "0660").
    pub socket_mode: Option<String>,
    /// A connection that sends nothing for this long is closed, e.g. "5m" ("0s": never).
    pub connection_idle_timeout: Option<String>,
    /// Events the reorder buffer holds at most.
    pub max_buffered_events: Option<usize>,
    /// Refuse the rule set when a rule cannot run (another rule type, a `sample` query)
    /// instead of skipping it with a warning.
    pub strict_rules: Option<bool>,
    /// Reload the rules when their files change (they are always reloaded on SIGHUP).
    pub watch_rules: Option<bool>,
    /// Skip the JSON parse of lines that cannot match any rule.
    pub prefilter: Option<bool>,
    /// Log level or `tracing` filter directives for stderr, e.g. "info" or "eqlstream=debug".
    pub log_level: Option<String>,
    /// `text` or `json` log lines on stderr.
    pub log_format: Option<String>,
}

impl FileConfig {
    /// Reads a config file, replaces its `${VAR}` references from the process environment and
    /// parses it.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound { path: path.to_path_buf() }
            } else {
                ConfigError::Read { path: path.to_path_buf(), source }
            }
        })?;
        FileConfig::parse(path, &text, |name| std::env::var(name).ok())
    }

    /// Parses the text of the config file at `path` (for messages and relative rule paths),
    /// with `env` giving the values of `${VAR}` references.
    pub fn parse(path: &Path, text: &str, env: impl Fn(&str) -> Option<String>) -> Result<FileConfig, ConfigError> {
        let text = interpolate::interpolate(text, env)
            .map_err(|source| ConfigError::Interpolate { path: path.to_path_buf(), source })?;
        let mut cfg: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        if let Some(rules) = cfg.rules.as_mut() {
            let base = path.parent().unwrap_or(Path::new("."));
            for r in rules.iter_mut() {
                if r.is_relative() {
                    *r = base.join(&*r);
                }
            }
        }
        Ok(cfg)
    }
}

/// A `kafka://` address for `option`, refused when the build has no Kafka support.
fn kafka_url(option: &'static str, s: &str) -> Result<KafkaUrl, ConfigError> {
    let url = KafkaUrl::parse(s).map_err(|m| ConfigError::Invalid { option, message: format!("{m} (got `{s}`)") })?;
    if !cfg!(feature = "kafka") {
        return Err(ConfigError::Invalid {
            option,
            message: "this build has no Kafka support (it was built without the `kafka` cargo feature)".into(),
        });
    }
    Ok(url)
}

/// Where output goes instead of standard output: a Kafka topic (`None`: standard output).
pub fn parse_output(s: &str) -> Result<Option<KafkaUrl>, ConfigError> {
    if s == "stdout" || s == "-" {
        return Ok(None);
    }
    if !KafkaUrl::is_kafka(s) {
        return Err(ConfigError::Invalid {
            option: "output",
            message: format!("expected stdout or kafka://BROKERS/TOPIC (got `{s}`)"),
        });
    }
    kafka_url("output", s).map(Some)
}

/// Where events come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSpec {
    /// Standard input.
    Stdin,
    /// A TCP listener on this address.
    Tcp(String),
    /// A Unix stream socket at this path.
    Unix(PathBuf),
    /// A regular file, read once to its end like stdin. Not a command-line input (`parse` never
    /// gives it): `eqlstream test` runs each fixture's events this way.
    File(PathBuf),
    /// A Kafka topic, read as a member of a consumer group (see [`crate::kafka`]).
    Kafka(KafkaUrl),
}

impl InputSpec {
    /// Parses `stdin`, `-`, `tcp://HOST:PORT`, `unix:///PATH` or `kafka://BROKERS/TOPIC?group=G`.
    pub fn parse(s: &str) -> Result<InputSpec, ConfigError> {
        let invalid = |m: &str| ConfigError::Invalid { option: "input", message: format!("{m} (got `{s}`)") };
        if KafkaUrl::is_kafka(s) {
            let url = kafka_url("input", s)?;
            if url.group.is_none() {
                return Err(invalid("a Kafka input needs a consumer group: kafka://BROKERS/TOPIC?group=NAME"));
            }
            return Ok(InputSpec::Kafka(url));
        }
        if s == "stdin" || s == "-" {
            Ok(InputSpec::Stdin)
        } else if let Some(addr) = s.strip_prefix("tcp://") {
            if addr.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                return Err(invalid("expected tcp://HOST:PORT"));
            }
            Ok(InputSpec::Tcp(addr.to_string()))
        } else if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("expected unix:///PATH"));
            }
            Ok(InputSpec::Unix(PathBuf::from(path)))
        } else {
            Err(invalid("expected stdin, tcp://HOST:PORT, unix:///PATH or kafka://BROKERS/TOPIC?group=G"))
        }
    }
}

/// Where the rules come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSource {
    /// The rules of `config/rules/`, embedded in the binary at build time.
    Embedded,
    /// Files or directories given by the user.
    Paths(Vec<PathBuf>),
}

/// Validated settings for one run: what the pipeline reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Rule files or the embedded set.
    pub rules: RuleSource,
    /// Event source.
    pub input: InputSpec,
    /// A Kafka topic in place of standard output.
    pub output: Option<KafkaUrl>,
    /// A Kafka topic for alerts (`alerts_output = "kafka://..."`), in place of the alerts file.
    pub alerts_kafka: Option<KafkaUrl>,
    /// How often a Kafka input takes a checkpoint and commits offsets.
    pub commit_interval: Duration,
    /// Decode workers (>= 1).
    pub workers: usize,
    /// Sequence partitions (>= 1).
    pub partitions: usize,
    /// Lines per batch (>= 1).
    pub batch_size: usize,
    /// Batches in flight per channel (>= 1).
    pub max_inflight_batches: usize,
    /// Reorder allowance in event time.
    pub max_out_of_orderness: Duration,
    /// Idle time before buffered events are released.
    pub idle_release: Duration,
    /// Silent time after which a source stops holding the watermark.
    pub source_idle_timeout: Duration,
    /// Outlier threshold ahead of a source's confirmed event time.
    pub max_future: Duration,
    /// Outliers in a row that confirm a jump.
    pub outlier_confirm_events: u32,
    /// Wall-clock time of outliers only that confirms a jump.
    pub outlier_confirm_time: Duration,
    /// Timestamp field path.
    pub timestamp_field: String,
    /// Tiebreaker field path.
    pub tiebreaker_field: Option<String>,
    /// Timestamp precision.
    pub timestamp_precision: Precision,
    /// Longest parsed line.
    pub max_line_bytes: usize,
    /// Cap on live partial sequences.
    pub max_partial_sequences: usize,
    /// Cap on the join-key tuples one event gives one stage (>= 1).
    pub max_key_combinations: usize,
    /// The field holding an event's index name: `None` = the data stream name
    /// (`data_stream.type`-`dataset`-`namespace`), `Some("")` = no index restriction.
    pub index_field: Option<String>,
    /// Rule dispatch: evaluate only the stages an event can match (false: every stage).
    pub dispatch: bool,
    /// Bytes of matched events kept in memory (0: every matched event goes to a spill file).
    pub event_store_memory: usize,
    /// Existing directory for the event store's (unlinked) spill files.
    pub spill_dir: PathBuf,
    /// Metrics listener, `None` = off.
    pub metrics_address: Option<SocketAddr>,
    /// Extra alert output file.
    pub alerts_output: Option<PathBuf>,
    /// Whether the alerts file is appended to or truncated at start.
    pub alerts_output_mode: AlertsOutputMode,
    /// Pass input lines through to stdout.
    pub passthrough: bool,
    /// Alert record shape.
    pub alert_format: AlertFormat,
    /// The Kibana space of Kibana-format alerts (`kibana.space_ids: [id]`).
    pub kibana_space_id: String,
    /// Progress line every second.
    pub progress: bool,
    /// Drain time after a signal.
    pub shutdown_timeout: Duration,
    /// Cap on socket connections.
    pub max_connections: usize,
    /// Permissions of the Unix socket file.
    pub socket_mode: u32,
    /// Idle connections are closed after this long (`None`: never).
    pub connection_idle_timeout: Option<Duration>,
    /// Cap on events in the reorder buffer.
    pub max_buffered_events: usize,
    /// Unsupported rules are errors, not skips (`--strict`).
    pub strict_rules: bool,
    /// Reload the rules when their files change (`--watch`).
    pub watch_rules: bool,
    /// Skip parsing lines that cannot match.
    pub prefilter: bool,
    /// `tracing` filter for stderr diagnostics (before `-v`/`-q` and `RUST_LOG`).
    pub log_level: String,
    /// Shape of the log lines on stderr.
    pub log_format: LogFormat,
}

/// What opening the alerts file does to what it already holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlertsOutputMode {
    /// Keep it and add the new alerts after it (a restart loses nothing).
    #[default]
    Append,
    /// Empty it first.
    Truncate,
}

/// Shape of the log lines on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per message.
    #[default]
    Text,
    /// One JSON object per message (tracing-subscriber's JSON formatter).
    Json,
}

/// Default `log_level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Values given on the command line or through the environment (all optional: unset means
/// "take the config file's value, else the default").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// See [`FileConfig`] for each field.
    pub rules: Vec<PathBuf>,
    #[allow(missing_docs)]
    pub input: Option<String>,
    #[allow(missing_docs)]
    pub workers: Option<usize>,
    #[allow(missing_docs)]
    pub partitions: Option<usize>,
    #[allow(missing_docs)]
    pub batch_size: Option<usize>,
    #[allow(missing_docs)]
    pub max_inflight_batches: Option<usize>,
    #[allow(missing_docs)]
    pub max_out_of_orderness: Option<String>,
    #[allow(missing_docs)]
    pub idle_release: Option<String>,
    #[allow(missing_docs)]
    pub source_idle_timeout: Option<String>,
    #[allow(missing_docs)]
    pub max_future: Option<String>,
    #[allow(missing_docs)]
    pub outlier_confirm_events: Option<u32>,
    #[allow(missing_docs)]
    pub outlier_confirm_time: Option<String>,
    #[allow(missing_docs)]
    pub timestamp_field: Option<String>,
    #[allow(missing_docs)]
    pub tiebreaker_field: Option<String>,
    #[allow(missing_docs)]
    pub timestamp_precision: Option<String>,
    #[allow(missing_docs)]
    pub max_line_bytes: Option<usize>,
    #[allow(missing_docs)]
    pub max_partial_sequences: Option<usize>,
    #[allow(missing_docs)]
    pub max_key_combinations: Option<usize>,
    #[allow(missing_docs)]
    pub index_field: Option<String>,
    #[allow(missing_docs)]
    pub no_dispatch: bool,
    #[allow(missing_docs)]
    pub event_store_memory: Option<usize>,
    #[allow(missing_docs)]
    pub spill_dir: Option<PathBuf>,
    #[allow(missing_docs)]
    pub metrics_address: Option<String>,
    #[allow(missing_docs)]
    pub alerts_output: Option<PathBuf>,
    #[allow(missing_docs)]
    pub alerts_output_mode: Option<String>,
    #[allow(missing_docs)]
    pub output: Option<String>,
    #[allow(missing_docs)]
    pub commit_interval: Option<String>,
    #[allow(missing_docs)]
    pub no_passthrough: bool,
    #[allow(missing_docs)]
    pub alert_format: Option<String>,
    #[allow(missing_docs)]
    pub kibana_space_id: Option<String>,
    #[allow(missing_docs)]
    pub progress: bool,
    #[allow(missing_docs)]
    pub shutdown_timeout: Option<String>,
    #[allow(missing_docs)]
    pub max_connections: Option<usize>,
    #[allow(missing_docs)]
    pub socket_mode: Option<String>,
    #[allow(missing_docs)]
    pub connection_idle_timeout: Option<String>,
    #[allow(missing_docs)]
    pub max_buffered_events: Option<usize>,
    #[allow(missing_docs)]
    pub strict_rules: bool,
    #[allow(missing_docs)]
    pub watch_rules: bool,
    #[allow(missing_docs)]
    pub no_prefilter: bool,
    #[allow(missing_docs)]
    pub prefilter: bool,
    #[allow(missing_docs)]
    pub log_level: Option<String>,
    #[allow(missing_docs)]
    pub log_format: Option<String>,
}

fn duration(option: &'static str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.trim()).map_err(|e| ConfigError::Invalid {
        option,
        message: format!("`{s}` is not a duration like 500ms, 2s or 1m ({e})"),
    })
}

fn at_least_one(option: &'static str, v: usize) -> Result<usize, ConfigError> {
    if v == 0 {
        Err(ConfigError::Invalid { option, message: "must be at least 1".into() })
    } else {
        Ok(v)
    }
}

/// A log level is one of `off error warn info debug trace`, or `tracing` filter directives
/// with a target (`eqlstream=debug,warn`); a lone word that is not a level is refused, where
/// `tracing` would take it for a target name and log nothing useful.
fn check_log_level(s: &str) -> Result<(), ConfigError> {
    let level = s.trim().parse::<tracing_subscriber::filter::LevelFilter>().is_ok();
    let directives = s.contains('=') && tracing_subscriber::EnvFilter::builder().parse(s).is_ok();
    if level || directives {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            option: "log_level",
            message: format!(
                "expected error, warn, info, debug, trace, off or filter directives like `eqlstream=debug`, found `{s}`"
            ),
        })
    }
}

/// The number of cores to use by default.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl Settings {
    /// Merges overrides over the file config over defaults, and validates every value.
    pub fn build(file: FileConfig, o: Overrides) -> Result<Settings, ConfigError> {
        let rules = if !o.rules.is_empty() {
            RuleSource::Paths(o.rules)
        } else if let Some(r) = file.rules.filter(|r| !r.is_empty()) {
            RuleSource::Paths(r)
        } else {
            RuleSource::Embedded
        };
        let input = InputSpec::parse(o.input.or(file.input).as_deref().unwrap_or("stdin"))?;
        let output = parse_output(o.output.or(file.output).as_deref().unwrap_or("stdout"))?;
        let mut alerts_output = o.alerts_output.or(file.alerts_output);
        let alerts_kafka = match alerts_output.as_ref().and_then(|p| p.to_str()).filter(|p| KafkaUrl::is_kafka(p)) {
            Some(url) => Some(kafka_url("alerts_output", url)?),
            None => None,
        };
        if alerts_kafka.is_some() {
            alerts_output = None;
        }
        let commit_interval = match o.commit_interval.or(file.commit_interval) {
            Some(s) => duration("commit_interval", &s)?,
            None => DEFAULT_COMMIT_INTERVAL,
        };
        if commit_interval.is_zero() {
            return Err(ConfigError::Invalid { option: "commit_interval", message: "must be more than 0s".into() });
        }
        let cores = available_cores();
        let workers = at_least_one("workers", o.workers.or(file.workers).unwrap_or(cores))?;
        let partitions = at_least_one("partitions", o.partitions.or(file.partitions).unwrap_or(workers))?;
        let batch_size = at_least_one("batch_size", o.batch_size.or(file.batch_size).unwrap_or(DEFAULT_BATCH_SIZE))?;
        let max_inflight_batches = at_least_one(
            "max_inflight_batches",
            o.max_inflight_batches.or(file.max_inflight_batches).unwrap_or(DEFAULT_MAX_INFLIGHT_BATCHES),
        )?;
        let max_out_of_orderness = match o.max_out_of_orderness.or(file.max_out_of_orderness) {
            Some(s) => duration("max_out_of_orderness", &s)?,
            None => DEFAULT_MAX_OUT_OF_ORDERNESS,
        };
        let idle_release = match o.idle_release.or(file.idle_release) {
            Some(s) => duration("idle_release", &s)?,
            None => DEFAULT_IDLE_RELEASE,
        };
        if idle_release.is_zero() {
            return Err(ConfigError::Invalid { option: "idle_release", message: "must be above 0".into() });
        }
        let source_idle_timeout = match o.source_idle_timeout.or(file.source_idle_timeout) {
            Some(s) => duration("source_idle_timeout", &s)?,
            None => crate::sequence::watermark::DEFAULT_SOURCE_IDLE_TIMEOUT,
        };
        if source_idle_timeout.is_zero() {
            return Err(ConfigError::Invalid { option: "source_idle_timeout", message: "must be above 0".into() });
        }
        let max_future = match o.max_future.or(file.max_future) {
            Some(s) => duration("max_future", &s)?,
            None => crate::sequence::watermark::DEFAULT_MAX_FUTURE,
        };
        let outlier_confirm_events = o
            .outlier_confirm_events
            .or(file.outlier_confirm_events)
            .unwrap_or(crate::sequence::watermark::DEFAULT_OUTLIER_CONFIRM_EVENTS);
        if outlier_confirm_events == 0 {
            return Err(ConfigError::Invalid {
                option: "outlier_confirm_events",
                message: "must be at least 1".into(),
            });
        }
        let outlier_confirm_time = match o.outlier_confirm_time.or(file.outlier_confirm_time) {
            Some(s) => duration("outlier_confirm_time", &s)?,
            None => crate::sequence::watermark::DEFAULT_OUTLIER_CONFIRM_TIME,
        };
        let shutdown_timeout = match o.shutdown_timeout.or(file.shutdown_timeout) {
            Some(s) => duration("shutdown_timeout", &s)?,
            None => DEFAULT_SHUTDOWN_TIMEOUT,
        };
        let timestamp_field =
            o.timestamp_field.or(file.timestamp_field).unwrap_or_else(|| DEFAULT_TIMESTAMP_FIELD.to_string());
        if timestamp_field.trim().is_empty() {
            return Err(ConfigError::Invalid { option: "timestamp_field", message: "must not be empty".into() });
        }
        let tiebreaker_field = o.tiebreaker_field.or(file.tiebreaker_field).filter(|s| !s.is_empty());
        let timestamp_precision = match o.timestamp_precision.or(file.timestamp_precision).as_deref() {
            None | Some("millis") => Precision::Millis,
            Some("nanos") => Precision::Nanos,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    option: "timestamp_precision",
                    message: format!("expected `millis` or `nanos`, found `{other}`"),
                })
            }
        };
        let max_line_bytes =
            at_least_one("max_line_bytes", o.max_line_bytes.or(file.max_line_bytes).unwrap_or(DEFAULT_MAX_LINE_BYTES))?;
        let max_partial_sequences = at_least_one(
            "max_partial_sequences",
            o.max_partial_sequences.or(file.max_partial_sequences).unwrap_or(DEFAULT_MAX_PARTIAL_SEQUENCES),
        )?;
        let max_key_combinations = at_least_one(
            "max_key_combinations",
            o.max_key_combinations.or(file.max_key_combinations).unwrap_or(DEFAULT_MAX_KEY_COMBINATIONS),
        )?;
        let event_store_memory =
            o.event_store_memory.or(file.event_store_memory).unwrap_or(crate::store::DEFAULT_EVENT_STORE_MEMORY);
        let spill_dir = o.spill_dir.or(file.spill_dir).unwrap_or_else(std::env::temp_dir);
        crate::store::check_spill_dir(&spill_dir)
            .map_err(|message| ConfigError::Invalid { option: "spill_dir", message })?;
        let metrics_address = {
            let s = o.metrics_address.or(file.metrics_address).unwrap_or_else(|| DEFAULT_METRICS_ADDRESS.to_string());
            if s == "off" {
                None
            } else {
                Some(s.parse::<SocketAddr>().map_err(|_| ConfigError::Invalid {
                    option: "metrics_address",
                    message: format!("expected HOST:PORT (an IP address and a port) or `off`, found `{s}`"),
                })?)
            }
        };
        let alert_format = match o.alert_format.or(file.alert_format).as_deref() {
            None | Some("ecs") => AlertFormat::Ecs,
            Some("kibana") => AlertFormat::Kibana,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    option: "alert_format",
                    message: format!("expected `ecs` or `kibana`, found `{other}`"),
                })
            }
        };
        let kibana_space_id =
            o.kibana_space_id.or(file.kibana_space_id).unwrap_or_else(|| crate::alert::DEFAULT_KIBANA_SPACE.to_owned());
        if !crate::alert::valid_space_id(&kibana_space_id) {
            return Err(ConfigError::Invalid {
                option: "kibana_space_id",
                message: format!(
                    "expected a Kibana space id (lower-case letters, digits, `_` and `-`), found `{kibana_space_id}`"
                ),
            });
        }
        let max_connections = at_least_one(
            "max_connections",
            o.max_connections.or(file.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
        )?;
        let socket_mode = match o.socket_mode.or(file.socket_mode) {
            None => DEFAULT_SOCKET_MODE,
            Some(s) => u32::from_str_radix(s.trim().trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| ConfigError::Invalid {
                    option: "socket_mode",
                    message: format!("expected octal permissions like 0600 or 0660, found `{s}`"),
                })?,
        };
        let connection_idle_timeout = match o.connection_idle_timeout.or(file.connection_idle_timeout) {
            Some(s) => Some(duration("connection_idle_timeout", &s)?).filter(|d| !d.is_zero()),
            None => Some(DEFAULT_CONNECTION_IDLE_TIMEOUT),
        };
        let max_buffered_events = at_least_one(
            "max_buffered_events",
            o.max_buffered_events.or(file.max_buffered_events).unwrap_or(DEFAULT_MAX_BUFFERED_EVENTS),
        )?;
        let alerts_output_mode = match o.alerts_output_mode.or(file.alerts_output_mode).as_deref() {
            None | Some("append") => AlertsOutputMode::Append,
            Some("truncate") => AlertsOutputMode::Truncate,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    option: "alerts_output_mode",
                    message: format!("expected `append` or `truncate`, found `{other}`"),
                })
            }
        };
        let log_level = o.log_level.or(file.log_level).unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string());
        check_log_level(&log_level)?;
        let log_format = match o.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    option: "log_format",
                    message: format!("expected `text` or `json`, found `{other}`"),
                })
            }
        };
        Ok(Settings {
            rules,
            input,
            workers,
            partitions,
            output,
            alerts_kafka,
            commit_interval,
            batch_size,
            max_inflight_batches,
            max_out_of_orderness,
            idle_release,
            source_idle_timeout,
            max_future,
            outlier_confirm_events,
            outlier_confirm_time,
            timestamp_field,
            tiebreaker_field,
            timestamp_precision,
            max_line_bytes,
            max_partial_sequences,
            max_key_combinations,
            index_field: o.index_field.or(file.index_field),
            dispatch: !o.no_dispatch && file.dispatch.unwrap_or(true),
            event_store_memory,
            spill_dir,
            metrics_address,
            alerts_output,
            alerts_output_mode,
            passthrough: !(o.no_passthrough || file.no_passthrough.unwrap_or(false)),
            alert_format,
            kibana_space_id,
            progress: o.progress || file.progress.unwrap_or(false),
            shutdown_timeout,
            max_connections,
            socket_mode,
            connection_idle_timeout,
            max_buffered_events,
            strict_rules: o.strict_rules || file.strict_rules.unwrap_or(false),
            watch_rules: o.watch_rules || file.watch_rules.unwrap_or(false),
            prefilter: !o.no_prefilter && (o.prefilter || file.prefilter.unwrap_or(true)),
            log_level,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_config_parses_and_builds() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/eqlstream.toml");
        let file = FileConfig::load(&path).expect("config/eqlstream.toml parses");
        let s = Settings::build(file, Overrides::default()).expect("example config is valid");
        assert_eq!(s.input, InputSpec::Stdin);
        assert_eq!(s.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
        assert_eq!(s.max_out_of_orderness, DEFAULT_MAX_OUT_OF_ORDERNESS);
        assert_eq!(s.metrics_address, Some(DEFAULT_METRICS_ADDRESS.parse().unwrap()));
        assert_eq!(s.event_store_memory, crate::store::DEFAULT_EVENT_STORE_MEMORY);
        assert_eq!(s.spill_dir, std::env::temp_dir());
        assert_eq!(s.max_key_combinations, DEFAULT_MAX_KEY_COMBINATIONS);
        use crate::sequence::watermark as w;
        assert_eq!(s.source_idle_timeout, w::DEFAULT_SOURCE_IDLE_TIMEOUT);
        assert_eq!(s.max_future, w::DEFAULT_MAX_FUTURE);
        assert_eq!(s.outlier_confirm_events, w::DEFAULT_OUTLIER_CONFIRM_EVENTS);
        assert_eq!(s.outlier_confirm_time, w::DEFAULT_OUTLIER_CONFIRM_TIME);
        assert_eq!((s.alerts_output_mode, s.log_format), (AlertsOutputMode::Append, LogFormat::Text));
        assert_eq!(s.log_level, DEFAULT_LOG_LEVEL);
    }

    #[test]
    fn kibana_space_id_defaults_to_default_and_is_validated() {
        let s = Settings::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(s.kibana_space_id, "default");
        let file = toml::from_str::<FileConfig>("kibana_space_id = \"soc\"\n").unwrap();
        let o = Overrides { kibana_space_id: Some("soc-2".into()), ..Default::default() };
        assert_eq!(Settings::build(file, o).unwrap().kibana_space_id, "soc-2", "the flag wins");
        for bad in ["", "Default", "a b", "x/y"] {
            let o = Overrides { kibana_space_id: Some(bad.into()), ..Default::default() };
            let e = Settings::build(FileConfig::default(), o).unwrap_err().to_string();
            assert!(e.contains("kibana_space_id"), "{bad}: {e}");
        }
    }

    #[test]
    fn socket_and_buffer_settings_are_validated() {
        let s = Settings::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(s.socket_mode, 0o600);
        assert_eq!(s.connection_idle_timeout, Some(DEFAULT_CONNECTION_IDLE_TIMEOUT));
        let file = toml::from_str::<FileConfig>("socket_mode = \"0660\"\nconnection_idle_timeout = \"0s\"\n").unwrap();
        let s = Settings::build(file, Overrides::default()).unwrap();
        assert_eq!((s.socket_mode, s.connection_idle_timeout), (0o660, None));
        for bad in ["0999", "rw", "01777"] {
            let o = Overrides { socket_mode: Some(bad.into()), ..Default::default() };
            assert!(
                Settings::build(FileConfig::default(), o).unwrap_err().to_string().contains("socket_mode"),
                "{bad}"
            );
        }
        let o = Overrides { max_buffered_events: Some(0), ..Default::default() };
        assert!(Settings::build(FileConfig::default(), o).is_err());
    }

    #[test]
    fn event_clock_settings_are_validated() {
        let o = Overrides { outlier_confirm_events: Some(0), ..Default::default() };
        let e = Settings::build(FileConfig::default(), o).unwrap_err().to_string();
        assert!(e.contains("outlier_confirm_events"), "{e}");
        let o = Overrides { source_idle_timeout: Some("0s".into()), ..Default::default() };
        assert!(Settings::build(FileConfig::default(), o).unwrap_err().to_string().contains("source_idle_timeout"));
        let file = toml::from_str::<FileConfig>("max_future = \"1h\"\noutlier_confirm_time = \"2s\"\n").unwrap();
        let s = Settings::build(file, Overrides::default()).unwrap();
        assert_eq!((s.max_future, s.outlier_confirm_time), (Duration::from_secs(3600), Duration::from_secs(2)));
    }

    #[test]
    fn max_key_combinations_comes_from_the_file_and_flags_and_is_at_least_one() {
        let file = FileConfig { max_key_combinations: Some(8), ..Default::default() };
        assert_eq!(Settings::build(file.clone(), Overrides::default()).unwrap().max_key_combinations, 8);
        let o = Overrides { max_key_combinations: Some(2), ..Default::default() };
        assert_eq!(Settings::build(file, o).unwrap().max_key_combinations, 2);
        let o = Overrides { max_key_combinations: Some(0), ..Default::default() };
        let e = Settings::build(FileConfig::default(), o).unwrap_err().to_string();
        assert!(e.contains("max_key_combinations"), "{e}");
    }

    #[test]
    fn index_field_and_dispatch_come_from_the_file_and_flags() {
        let s = Settings::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!((s.index_field, s.dispatch), (None, true), "data stream names; dispatch on");
        let file = toml::from_str::<FileConfig>("index_field = \"_index\"\ndispatch = false\n").unwrap();
        let s = Settings::build(file.clone(), Overrides::default()).unwrap();
        assert_eq!((s.index_field.as_deref(), s.dispatch), (Some("_index"), false));
        let o = Overrides { index_field: Some(String::new()), ..Default::default() };
        assert_eq!(Settings::build(file, o).unwrap().index_field.as_deref(), Some(""));
        let o = Overrides { no_dispatch: true, ..Default::default() };
        assert!(!Settings::build(FileConfig::default(), o).unwrap().dispatch);
    }

    #[test]
    fn event_store_settings_come_from_the_file_and_flags() {
        let dir = std::env::temp_dir();
        let file = FileConfig { event_store_memory: Some(1), spill_dir: Some(dir.clone()), ..Default::default() };
        let s = Settings::build(file.clone(), Overrides::default()).unwrap();
        assert_eq!((s.event_store_memory, s.spill_dir.as_path()), (1, dir.as_path()));
        let o = Overrides { event_store_memory: Some(0), ..Default::default() };
        assert_eq!(Settings::build(file, o).unwrap().event_store_memory, 0);
        let o = Overrides { spill_dir: Some(dir.join("eqlstream-no-such-dir")), ..Default::default() };
        let e = Settings::build(FileConfig::default(), o).unwrap_err().to_string();
        assert!(e.contains("spill_dir"), "{e}");
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let s = Settings::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(s.rules, RuleSource::Embedded);
        assert_eq!(s.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(s.partitions, s.workers);
        assert!(s.passthrough);
        assert!(s.prefilter, "the prefilter is on by default (--no-prefilter turns it off)");
        assert_eq!(s.timestamp_field, "@timestamp");
        assert!(!s.strict_rules, "unsupported rules are skipped by default");
    }

    #[test]
    fn strict_rules_comes_from_the_file_or_the_flag() {
        let file = toml::from_str::<FileConfig>("strict_rules = true\n").unwrap();
        assert!(Settings::build(file, Overrides::default()).unwrap().strict_rules);
        let o = Overrides { strict_rules: true, ..Default::default() };
        assert!(Settings::build(FileConfig::default(), o).unwrap().strict_rules);
    }

    #[test]
    fn watch_rules_comes_from_the_file_or_the_flag() {
        assert!(!Settings::build(FileConfig::default(), Overrides::default()).unwrap().watch_rules);
        let file = toml::from_str::<FileConfig>("watch_rules = true\n").unwrap();
        assert!(Settings::build(file, Overrides::default()).unwrap().watch_rules);
        let o = Overrides { watch_rules: true, ..Default::default() };
        assert!(Settings::build(FileConfig::default(), o).unwrap().watch_rules);
    }

    #[test]
    fn overrides_win_over_file_values() {
        let file = FileConfig { workers: Some(3), batch_size: Some(10), ..Default::default() };
        let o = Overrides { workers: Some(1), ..Default::default() };
        let s = Settings::build(file, o).unwrap();
        assert_eq!(s.workers, 1);
        assert_eq!(s.batch_size, 10);
    }

    #[test]
    fn config_file_references_are_interpolated_before_parsing() {
        let env = |name: &str| (name == "WORKERS").then(|| "3".to_string());
        let text = "workers = ${WORKERS}\nbatch_size = ${BATCH:-16}\ninput = \"$${X}\"\n";
        let file = FileConfig::parse(Path::new("/etc/e.toml"), text, env).unwrap();
        assert_eq!((file.workers, file.batch_size, file.input.as_deref()), (Some(3), Some(16), Some("${X}")));
        let e = FileConfig::parse(Path::new("/etc/e.toml"), "workers = 2\nspill_dir = \"${SPILL}\"\n", env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/e.toml") && e.contains("line 2") && e.contains("`SPILL`"), "{e}");
    }

    #[test]
    fn alerts_output_appends_unless_told_to_truncate() {
        let s = Settings::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(s.alerts_output_mode, AlertsOutputMode::Append);
        let file = toml::from_str::<FileConfig>("alerts_output_mode = \"truncate\"\n").unwrap();
        assert_eq!(
            Settings::build(file.clone(), Overrides::default()).unwrap().alerts_output_mode,
            AlertsOutputMode::Truncate
        );
        let o = Overrides { alerts_output_mode: Some("append".into()), ..Default::default() };
        assert_eq!(Settings::build(file, o).unwrap().alerts_output_mode, AlertsOutputMode::Append);
        let o = Overrides { alerts_output_mode: Some("overwrite".into()), ..Default::default() };
        let e = Settings::build(FileConfig::default(), o).unwrap_err().to_string();
        assert!(e.contains("alerts_output_mode") && e.contains("overwrite"), "{e}");
    }

    #[test]
    fn log_level_and_format_come_from_the_file_and_flags_and_are_checked() {
        let s = Settings::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!((s.log_level.as_str(), s.log_format), ("info", LogFormat::Text));
        let file = toml::from_str::<FileConfig>("log_level = \"warn\"\nlog_format = \"json\"\n").unwrap();
        let s = Settings::build(file.clone(), Overrides::default()).unwrap();
        assert_eq!((s.log_level.as_str(), s.log_format), ("warn", LogFormat::Json));
        let o = Overrides { log_level: Some("warn,eqlstream=debug".into()), ..Default::default() };
        assert_eq!(Settings::build(file, o).unwrap().log_level, "warn,eqlstream=debug");
        for (o, option) in [
            (Overrides { log_level: Some("verbose".into()), ..Default::default() }, "log_level"),
            (Overrides { log_level: Some("eqlstream=loud".into()), ..Default::default() }, "log_level"),
            (Overrides { log_format: Some("yaml".into()), ..Default::default() }, "log_format"),
        ] {
            let e = Settings::build(FileConfig::default(), o).unwrap_err().to_string();
            assert!(e.contains(option), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<FileConfig>("wokers = 2\n").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn input_specs_parse() {
        assert_eq!(InputSpec::parse("-").unwrap(), InputSpec::Stdin);
        assert_eq!(InputSpec::parse("tcp://127.0.0.1:9000").unwrap(), InputSpec::Tcp("127.0.0.1:9000".into()));
        assert_eq!(InputSpec::parse("unix:///tmp/x.sock").unwrap(), InputSpec::Unix("/tmp/x.sock".into()));
        assert!(InputSpec::parse("tcp://nohost").is_err());
        assert!(InputSpec::parse("udp://1.2.3.4:5").is_err());
    }

    #[test]
    fn kafka_addresses_parse_and_an_input_needs_a_group() {
        let k = InputSpec::parse("kafka://k1:9092,k2:9092/events?group=eql&session.timeout.ms=6000");
        if cfg!(feature = "kafka") {
            let InputSpec::Kafka(url) = k.unwrap() else { panic!("not a Kafka input") };
            assert_eq!(
                (url.brokers.as_str(), url.topic.as_str(), url.group.as_deref()),
                ("k1:9092,k2:9092", "events", Some("eql"))
            );
            let e = InputSpec::parse("kafka://k1:9092/events").unwrap_err().to_string();
            assert!(e.contains("consumer group"), "{e}");
            let o = Overrides {
                output: Some("kafka://k1:9092/out".into()),
                alerts_output: Some("kafka://k1:9092/alerts".into()),
                commit_interval: Some("250ms".into()),
                ..Default::default()
            };
            let s = Settings::build(FileConfig::default(), o).unwrap();
            assert_eq!(s.output.map(|u| u.topic), Some("out".into()));
            assert_eq!(s.alerts_kafka.map(|u| u.topic), Some("alerts".into()));
            assert_eq!(s.alerts_output, None, "a Kafka topic is not a file");
            assert_eq!(s.commit_interval, Duration::from_millis(250));
        } else {
            assert!(k.unwrap_err().to_string().contains("no Kafka support"));
        }
        assert!(parse_output("stdout").unwrap().is_none());
        assert!(parse_output("file.ndjson").is_err());
        let o = Overrides { commit_interval: Some("0s".into()), ..Default::default() };
        assert!(Settings::build(FileConfig::default(), o).is_err());
    }

    #[test]
    fn bad_values_name_the_option() {
        let o = Overrides { max_out_of_orderness: Some("2 parsecs".into()), ..Default::default() };
        let e = Settings::build(FileConfig::default(), o).unwrap_err().to_string();
        assert!(e.contains("max_out_of_orderness"), "{e}");
        let o = Overrides { workers: Some(0), ..Default::default() };
        assert!(Settings::build(FileConfig::default(), o).is_err());
        let o = Overrides { metrics_address: Some("localhost".into()), ..Default::default() };
        assert!(Settings::build(FileConfig::default(), o).is_err());
    }
}
