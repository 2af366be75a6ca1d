//! The `eqlstream` command: argv -> settings -> rules -> pipeline, and every error mapped to a
//! sysexits code in one place. stdout carries only events and alerts; everything else goes to
//! stderr. `src/main.rs` is only the allocator and a call to [`main`].

mod cli;
#[cfg(feature = "kafka")]
mod kafka;

use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::catalog::{self, LoadError, LoadOptions};
use crate::config::{AlertsOutputMode, ConfigError, FileConfig, LogFormat, RuleSource, Settings};
use crate::eql::diag;
use crate::metrics::{self, Metrics};
use crate::pipeline::{self, sink, LiveRules, RunContext, Shutdown, Totals};
use crate::ruleset::RuleSet;

/// sysexits(3) codes.
mod exit {
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const NOINPUT: u8 = 66;
    pub const SOFTWARE: u8 = 70;
    pub const IOERR: u8 = 74;
    pub const TEMPFAIL: u8 = 75;
    pub const CONFIG: u8 = 78;
}

/// An error that ends the program, with its exit code.
struct Fatal {
    code: u8,
    message: String,
}

impl Fatal {
    fn new(code: u8, message: impl Into<String>) -> Fatal {
        Fatal { code, message: message.into() }
    }
}

/// Runs the `eqlstream` command line (`std::env::args`) to completion: the binary's `main`.
pub fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Some(cli::Command::Validate { paths, config: Some(config), strict }) => {
            ExitCode::from(validate_config(&config, &paths, strict))
        }
        Some(cli::Command::Validate { paths, config: None, strict }) => {
            let mut err = std::io::stderr().lock();
            ExitCode::from(crate::validate::run_with(&paths, LoadOptions { strict }, &mut err))
        }
        Some(cli::Command::Rules { command: cli::RulesCommand::List { rules, json } }) => {
            finish(rules_list(&rules, json))
        }
        Some(cli::Command::Test { dirs, rules }) => finish(test_fixtures(&dirs, &rules)),
        Some(cli::Command::Run(args)) => finish(run(&args)),
        None => finish(run(&cli.run)),
    }
}

fn finish(r: Result<u8, Fatal>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("eqlstream: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Logging to stderr. The level: `-v`/`-q` (`verbosity`) if given, else RUST_LOG if set and
/// valid, else `log_level` (flag, EQLSTREAM_LOG, config file; validated by `Settings::build`).
fn init_logging(settings: &Settings, verbosity: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbosity {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&settings.log_level))
            .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_LEVEL)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match settings.log_format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

fn config_error(e: ConfigError) -> Fatal {
    match e {
        ConfigError::NotFound { .. } => Fatal::new(exit::NOINPUT, e.to_string()),
        _ => Fatal::new(exit::CONFIG, e.to_string()),
    }
}

/// The exit code and message of a rule set that cannot be used; its rendered problems go to
/// stderr first.
fn load_error(e: LoadError) -> Fatal {
    let _ = std::io::stderr().lock().write_all(e.rendered().as_bytes());
    let code = if e.is_not_found() { exit::NOINPUT } else { exit::DATAERR };
    Fatal::new(code, e.to_string())
}

/// Loads the rules under the load policy (`catalog`): skipped rules get one warning line each,
/// then the summary line; compiler warnings follow per rule.
fn load_rules(settings: &Settings) -> Result<RuleSet, Fatal> {
    let opts = LoadOptions { strict: settings.strict_rules };
    let catalog = catalog::load(&settings.rules, opts).map_err(load_error)?;
    for w in catalog.skipped.iter().filter_map(|s| s.warning()) {
        tracing::warn!("{w}");
    }
    tracing::info!("{}", catalog.summary());
    let set = catalog.rules;
    for r in &set.rules {
        for w in r.warnings.iter().take(diag::MAX_PER_FILE) {
            tracing::warn!(rule_id = %r.spec.rule_id, "{}", diag::clip(&w.message, diag::MAX_MESSAGE_CHARS));
        }
        if r.warnings.len() > diag::MAX_PER_FILE {
            let more = r.warnings.len() - diag::MAX_PER_FILE;
            tracing::warn!(rule_id = %r.spec.rule_id, more, "More warnings not shown.");
        }
    }
    Ok(set)
}

/// `eqlstream validate --config FILE [PATH...]`: the config file as `run` checks it before
/// starting (interpolation, keys, values, with the EQLSTREAM_* variables `run` would apply),
/// then the rules: PATHs if given, else those the config names (or the built-in set).
fn validate_config(path: &std::path::Path, paths: &[std::path::PathBuf], strict: bool) -> u8 {
    let mut err = std::io::stderr().lock();
    // The EQLSTREAM_* variables, read by the same clap definitions as `run` (EQLSTREAM_CONFIG
    // too, but the config checked is the one named on this command line).
    let env = match cli::Cli::try_parse_from(["eqlstream"]) {
        Ok(c) => c.run,
        Err(e) => {
            let _ = write!(err, "{}", e.render());
            return exit::USAGE;
        }
    };
    let settings = FileConfig::load(path).and_then(|file| {
        let mut o = env.overrides();
        o.strict_rules |= strict;
        Settings::build(file, o)
    });
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "eqlstream: error: {e}");
            return config_error(e).code;
        }
    };
    let _ = writeln!(err, "eqlstream: config file {}: ok", path.display());
    let opts = LoadOptions { strict: settings.strict_rules };
    match (paths, &settings.rules) {
        ([], RuleSource::Embedded) => match catalog::load(&RuleSource::Embedded, opts) {
            Ok(c) => {
                let _ = writeln!(err, "eqlstream: built-in rules: {}", c.summary());
                0
            }
            Err(e) => load_error(e).code,
        },
        ([], RuleSource::Paths(from_config)) => crate::validate::run_with(from_config, opts, &mut err),
        (given, _) => crate::validate::run_with(given, opts, &mut err),
    }
}

/// The settings of a command that works on the rule set only (`rules list`, `test`).
fn rule_settings(args: &cli::RuleArgs) -> Result<Settings, Fatal> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path).map_err(config_error)?,
        None => FileConfig::default(),
    };
    Settings::build(file, args.overrides()).map_err(config_error)
}

/// Loads the rules for a command other than `run`: skip warnings and the summary go to stderr
/// as plain lines.
fn load_catalog(settings: &Settings) -> Result<catalog::Catalog, Fatal> {
    let c = catalog::load(&settings.rules, LoadOptions { strict: settings.strict_rules }).map_err(load_error)?;
    let mut err = std::io::stderr().lock();
    for w in c.skipped.iter().filter_map(|s| s.warning()) {
        let _ = writeln!(err, "{w}");
    }
    let _ = writeln!(err, "eqlstream: {}", c.summary());
    Ok(c)
}

/// `eqlstream rules list`.
fn rules_list(args: &cli::RuleArgs, json: bool) -> Result<u8, Fatal> {
    let settings = rule_settings(args)?;
    let c = load_catalog(&settings)?;
    let rows = catalog::list::rows(&c.rules);
    let text = if json {
        catalog::list::json(&rows)
    } else {
        catalog::list::table(&rows, &c.rules, &settings.timestamp_field, settings.timestamp_precision)
    };
    write_stdout(text.as_bytes())
}

/// `eqlstream test DIR...`: 0 when every case passes, 1 when one fails or none is found.
fn test_fixtures(dirs: &[std::path::PathBuf], args: &cli::RuleArgs) -> Result<u8, Fatal> {
    use catalog::fixtures::{self, FixtureError};
    let settings = rule_settings(args)?;
    let c = load_catalog(&settings)?;
    let mut out = std::io::stdout().lock();
    let report = fixtures::run(dirs, &c.rules, &settings, &mut out).map_err(|e| match e {
        FixtureError::NotFound(_) => Fatal::new(exit::NOINPUT, e.to_string()),
        FixtureError::Runtime(_) => Fatal::new(exit::SOFTWARE, e.to_string()),
    })?;
    let _ = out.flush();
    Ok(if report.failed == 0 && report.passed > 0 { 0 } else { 1 })
}

/// Writes a command's output; a closed stdout (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<u8, Fatal> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Fatal::new(exit::IOERR, format!("writing standard output: {e}"))),
    }
}

fn run(args: &cli::RunArgs) -> Result<u8, Fatal> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path).map_err(config_error)?,
        None => FileConfig::default(),
    };
    let settings = Settings::build(file, args.overrides()).map_err(config_error)?;
    init_logging(&settings, args.verbosity());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("eqlstream-io")
        .enable_all()
        .build()
        .map_err(|e| Fatal::new(exit::SOFTWARE, format!("cannot start the I/O runtime: {e}")))?;
    // Before the rules load: a SIGHUP from then on asks for a reload (served once running)
    // instead of killing the process.
    let reload_requests = catch_hangup(&runtime);
    // The rule files as they are read now: --watch reloads when they differ from this.
    let watched = settings.watch_rules.then(|| catalog::reload::Snapshot::take(catalog::paths(&settings.rules)));
    let ruleset = load_rules(&settings)?;

    let labels = ruleset.labels();
    let metrics = Arc::new(
        Metrics::for_run(&labels, settings.max_out_of_orderness)
            .map_err(|e| Fatal::new(exit::SOFTWARE, e.to_string()))?,
    );
    let rules = LiveRules::new(ruleset, &settings, metrics.clone());

    let server = match settings.metrics_address {
        Some(addr) => {
            let s = metrics::serve(metrics.clone(), addr, runtime.handle()).map_err(metrics_error)?;
            notice(&settings, args.quiet, &format!("metrics on http://{}/metrics", s.local_addr()));
            Some(s)
        }
        None => None,
    };

    let shutdown = Shutdown::new();
    spawn_signal_handler(&runtime, shutdown.clone(), settings.shutdown_timeout);
    let reloads = start_reloads((reload_requests, watched), &settings, &rules, metrics.handles())?;

    let totals = Arc::new(Totals::default());
    if settings.progress {
        spawn_progress(totals.clone());
    }

    pipeline::source::grow_pipe(1);
    #[cfg(feature = "kafka")]
    let kafka_sinks = kafka::Sinks::open(&settings, &metrics)?;
    // The outputs and context of a pipeline (a Kafka group member runs one per assignment).
    let make_ctx = |first: bool| -> Result<RunContext, Fatal> {
        let (stdout, alerts) = open_streams(&settings, first)?;
        #[allow(unused_mut)]
        let mut outputs = sink::Outputs::streams(stdout, settings.passthrough, alerts);
        #[cfg(feature = "kafka")]
        kafka_sinks.attach(&mut outputs);
        Ok(RunContext {
            rules: rules.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            runtime: runtime.handle().clone(),
            outputs,
            totals: totals.clone(),
            kafka: None,
        })
    };
    tracing::info!(
        rules = rules.current().rules.rules.len(),
        workers = settings.workers,
        partitions = settings.partitions,
        input = ?settings.input,
        "Pipeline started."
    );
    let started = Instant::now();
    let report = match &settings.input {
        #[cfg(feature = "kafka")]
        crate::config::InputSpec::Kafka(url) => kafka::run_group(&settings, url, &kafka_sinks, make_ctx, &shutdown)?,
        _ => pipeline::run(&settings, make_ctx(true)?),
    };
    let report = report.map(|mut r| {
        r.seconds = started.elapsed().as_secs_f64();
        r
    });
    reloads.stop();
    if let Some(s) = server {
        s.shutdown();
    }
    let report = report.map_err(|e| match e {
        pipeline::PipelineError::Source(
            pipeline::source::SourceError::Bind { .. } | pipeline::source::SourceError::PathInUse { .. },
        ) => Fatal::new(exit::CONFIG, e.to_string()),
        pipeline::PipelineError::Spawn(_) | pipeline::PipelineError::Panicked { .. } => {
            Fatal::new(exit::SOFTWARE, e.to_string())
        }
        _ => Fatal::new(exit::IOERR, e.to_string()),
    })?;
    notice(&settings, args.quiet, &report.summary.line(report.seconds));
    if report.end == sink::SinkEnd::BrokenPipe {
        tracing::info!("Output closed by the consumer; stopped.");
    } else if shutdown.is_triggered() {
        tracing::info!("Drained after shutdown signal.");
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(0)
}

/// A byte-stream output.
type Stream = Box<dyn Write + Send>;

/// Standard output, and the alerts file if one is set (opened as `alerts_output_mode` says for
/// the `first` pipeline of a run, appended to by later ones).
fn open_streams(settings: &Settings, first: bool) -> Result<(Stream, Option<Stream>), Fatal> {
    // The raw descriptor (a duplicate of fd 1) rather than `Stdout`, whose line buffering would
    // scan every block for newlines: the writer flushes whole batches itself. The buffer only
    // gathers alerts and short runs of lines: a run of lines of 64 KiB or more (most of a
    // batch) is written straight from the batch buffer, without a copy.
    const OUT_BUFFER: usize = 64 << 10;
    let stdout: Box<dyn Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(BufWriter::with_capacity(OUT_BUFFER, std::fs::File::from(fd))),
        Err(_) => Box::new(BufWriter::with_capacity(OUT_BUFFER, std::io::stdout())),
    };
    let alerts: Option<Box<dyn Write + Send>> = match &settings.alerts_output {
        Some(path) => {
            let mut open = std::fs::OpenOptions::new();
            match settings.alerts_output_mode {
                AlertsOutputMode::Truncate if first => open.write(true).create(true).truncate(true),
                _ => open.append(true).create(true),
            };
            let f = open
                .open(path)
                .map_err(|e| Fatal::new(exit::IOERR, format!("cannot open alerts file {}: {e}", path.display())))?;
            Some(Box::new(BufWriter::new(f)))
        }
        None => None,
    };
    Ok((stdout, alerts))
}

/// A line for the operator outside the log levels (the metrics address, the run summary):
/// plain on stderr, a log record with `--log-format json` (so stderr stays JSON), nothing with
/// `-q`.
fn notice(settings: &Settings, quiet: bool, message: &str) {
    match settings.log_format {
        LogFormat::Json => tracing::info!("{message}"),
        LogFormat::Text if !quiet => eprintln!("eqlstream: {message}"),
        LogFormat::Text => {}
    }
}

/// The metrics listener cannot start (exit 78). A busy port is most often another eqlstream:
/// a chain `eqlstream | eqlstream` where both use the default port, so say how to pick another.
fn metrics_error(e: metrics::MetricsError) -> Fatal {
    match e {
        metrics::MetricsError::Bind { addr, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
            let other = std::net::SocketAddr::new(addr.ip(), addr.port().checked_add(1).unwrap_or(9781));
            Fatal::new(
                exit::CONFIG,
                format!(
                    "metrics listener: address {addr} is already in use, perhaps by another eqlstream \
                     (each instance of a chain such as `eqlstream | eqlstream` needs its own port). \
                     Choose another address with --metrics-address {other}, EQLSTREAM_METRICS_ADDRESS={other} \
                     or metrics_address = \"{other}\" in the config file, or turn the listener off with \
                     `off` (--metrics-address off)"
                ),
            )
        }
        other => Fatal::new(exit::CONFIG, format!("metrics listener: {other}")),
    }
}

/// Installs the SIGHUP handler (before this returns, so that SIGHUP, whose default action ends
/// the process, never does from here on): each SIGHUP becomes a reload request.
fn catch_hangup(rt: &tokio::runtime::Runtime) -> crossbeam_channel::Receiver<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let hangup = {
        let _in_runtime = rt.enter();
        signal(SignalKind::hangup())
    };
    match hangup {
        Ok(mut hangup) => {
            rt.spawn(async move {
                while hangup.recv().await.is_some() {
                    // Full: a reload is already pending, which reads the files as they are now.
                    let _ = tx.try_send(());
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "Cannot install the SIGHUP handler; rules reload only with --watch."),
    }
    rx
}

/// Starts the reload thread: SIGHUP (requests from [`catch_hangup`]) and, with `--watch`, a
/// change of the rule files reload the rules.
fn start_reloads(
    (requests, watched): (crossbeam_channel::Receiver<()>, Option<catalog::reload::Snapshot>),
    settings: &Settings,
    rules: &LiveRules,
    handles: metrics::Handles,
) -> Result<catalog::reload::ReloadThread, Fatal> {
    if settings.watch_rules && settings.rules == crate::config::RuleSource::Embedded {
        tracing::warn!("--watch: the rules are built into the binary; there are no rule files to watch.");
    }
    let opts = LoadOptions { strict: settings.strict_rules };
    let reloader = catalog::reload::Reloader::new(settings.rules.clone(), opts, rules.clone(), handles);
    catalog::reload::spawn(reloader, watched, requests)
        .map_err(|e| Fatal::new(exit::SOFTWARE, format!("cannot start the rule reload thread: {e}")))
}

/// First SIGTERM/SIGINT: stop reading and drain (bounded by `timeout`); a second: exit at once.
fn spawn_signal_handler(rt: &tokio::runtime::Runtime, shutdown: Shutdown, timeout: Duration) {
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::warn!("Cannot install signal handlers; SIGTERM will kill without draining.");
            return;
        };
        let first = tokio::select! { _ = term.recv() => 15, _ = int.recv() => 2 };
        tracing::info!(signal = first, "Shutdown requested: draining what was read.");
        shutdown.trigger();
        std::thread::spawn(move || {
            std::thread::sleep(timeout);
            eprintln!("eqlstream: error: drain did not finish within {timeout:?} after the signal; exiting");
            std::process::exit(exit::TEMPFAIL as i32);
        });
        let second = tokio::select! { _ = term.recv() => 15, _ = int.recv() => 2 };
        eprintln!("eqlstream: second signal: exiting without draining");
        std::process::exit(128 + second);
    });
}

fn spawn_progress(totals: Arc<Totals>) {
    let started = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        eprintln!("eqlstream: progress {}", totals.snapshot().line(started.elapsed().as_secs_f64()));
    });
}
