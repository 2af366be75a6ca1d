//! `eqlstream-loadgen`: realistic Defend for Containers events with known attack sequences of the
//! seed rule (`defense_evasion_file_creation_execution_deletion_cradle`), near-miss decoys,
//! bounded disorder and hostile lines, to stdout, a file or TCP (one or N connections), as fast
//! as possible, rate-limited or in real time; plus `score`, which compares a truth file with
//! alerts, and `latency`, which measures the alert latency of a running eqlstream.
//!
//! Layout: `world.rs` (fleet) → `scenario/` (what happens, logical order, truth) →
//! `event.rs` (JSON line) → `output.rs` (disorder, rate, targets) → `writer.rs` (hostile lines,
//! real-time pacing, truth file) → `sink.rs` (one writer or N connections, write-time stamps);
//! `hostile.rs` (bad lines), `truth.rs` (truth file), `score.rs` (scoring), `latency.rs` and
//! `prom.rs` (latency and eqlstream's metrics). The truth never comes from an EQL engine.
//!
//! Exit codes: generation 0 on success (also when stdout is closed early), 64 on bad options,
//! 74 on I/O errors; `score` and `latency` 0 when recall and precision are both 100 %,
//! 1 otherwise, 2 on unreadable input.
//!
//! # Guarantees
//! * Same options and `--seed` give the same bytes on stdout/file/TCP and in `--truth`
//!   (`--realtime` aside, whose timestamps follow the clock).
//! * `--events N` writes exactly N event lines (hostile lines and `--drain` lines come on top);
//!   every `event.id` is unique (hostile CRLF/no-/bad-timestamp lines are copies of a background
//!   event and repeat its id).
//! * The truth lists every sequence Elasticsearch returns for the seed rule over the event lines,
//!   and nothing else, ordered by the completing event's (`@timestamp`, arrival). Why background
//!   and decoys cannot complete a sequence is argued in `scenario/mod.rs`.
//! * `--disorder MS`: no event line arrives after an event line whose `@timestamp` is more than MS
//!   later, and equal timestamps keep their order (proof in `output.rs`).
//! * `event.ingested` = `@timestamp` + 2 s exactly, so ordering/maxspan are the same whichever of
//!   the two fields an engine uses (the rule sets `timestamp_override = "event.ingested"`).
//! * `--connections N`: connection `i` carries exactly the lines (events and the hostile lines in
//!   front of them) of the containers with FNV-1a(`container.id`) % N = i, in the single-output
//!   order; the same seed and options give the same bytes per connection (`sink.rs`).
//! * `--realtime --rate R`: the first `@timestamp` is the start time, `@timestamp` advances at
//!   wall-clock speed with R event lines per second on average, and no line is written before
//!   its `@timestamp` (before its arrival key with `--disorder`); lines leave at least every
//!   millisecond. The scenarios' relative timings are the generator's, exactly. Each truth line
//!   gets `completed_written_unix_ns`, the wall clock right after the write that handed the
//!   completing line to the kernel (`writer.rs`, `sink.rs`).
//! * `--drain D`: after the run only background events, until every started scenario has
//!   completed and D more of `@timestamp` time has passed; the truth is unchanged.
//!
//! # Recipes
//! ```text
//! # acceptance: 10^6 events, attacks, decoys, disorder within 2 s, hostile lines
//! eqlstream-loadgen --events 1000000 --disorder 1500 --invalid-rate 0.001 \
//!     --truth truth.jsonl -o events.ndjson
//! eqlstream ... < events.ndjson > out.ndjson
//! eqlstream-loadgen score --truth truth.jsonl --alerts out.ndjson
//! # memory at 10^6 live keys (all stage-1 partials inside one 10 s maxspan window)
//! eqlstream-loadgen --events 1100000 --live-keys 1000000 -o live.ndjson
//! # alert latency at 20000 events/s in real time (benches/latency.sh runs this and the next)
//! eqlstream-loadgen --realtime --rate 20000 --duration 30s --drain 4s --attack-rate 0.001 \
//!     --truth t.jsonl | eqlstream --metrics-address 127.0.0.1:9780 \
//!   | eqlstream-loadgen latency --truth t.jsonl --metrics http://127.0.0.1:9780/metrics
//! # the same over 4 TCP connections (eqlstream listening first)
//! eqlstream --input tcp://127.0.0.1:5140 | eqlstream-loadgen latency --truth t.jsonl &
//! eqlstream-loadgen --realtime --rate 20000 --duration 30s --drain 4s --truth t.jsonl \
//!     --connections 4 -o tcp://127.0.0.1:5140
//! ```

mod event;
mod hostile;
mod latency;
mod output;
mod prom;
mod scenario;
mod score;
mod sink;
mod truth;
mod world;
mod writer;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::output::{Disorder, Target};
use crate::scenario::{Config, Decoy, Generator, Origin, DEFAULT_START_MS};
use crate::sink::Sink;
use crate::truth::TruthLine;
use crate::world::World;
use crate::writer::{LineWriter, Meta, Pacer, TruthOut};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Realistic Defend for Containers events with known attacks, for testing eqlstream.
///
/// Without a subcommand, generates events (one JSON object per line). `score` compares a truth
/// file with an alerts file.
#[derive(Parser, Debug)]
#[command(name = "eqlstream-loadgen", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    gen: GenArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Compare a truth file with an alerts file: print recall, precision, misses and false
    /// alerts. Exit 0 if both are 100 %, 1 otherwise, 2 if a file cannot be read.
    Score(ScoreArgs),
    /// Read eqlstream's output on stdin until EOF, stamp each alert with its read time, then
    /// match alerts to the truth (as `score` does) and print recall, precision and the latency
    /// (alert read - completing line written, from a `--realtime` truth file) p50/p90/p99/max.
    /// With --metrics, also the p50/p99 of eqlstream's latency histograms. Exit 0 if recall and
    /// precision are 100 %, 1 otherwise, 2 on unreadable input.
    Latency(latency::LatencyArgs),
}

#[derive(Args, Debug)]
struct ScoreArgs {
    /// Truth file written by `--truth`.
    #[arg(long)]
    truth: PathBuf,
    /// eqlstream output, either alert format (alerts and pass-through lines; ECS alerts and
    /// Kibana shells or single alerts count, building blocks and other lines do not).
    #[arg(long)]
    alerts: PathBuf,
    /// Score only alerts whose `rule.id` is this (others are counted and reported, not scored).
    #[arg(long, default_value = truth::SEED_RULE_ID, conflicts_with = "all_rules")]
    rule_id: String,
    /// Score the alerts of every rule.
    #[arg(long)]
    all_rules: bool,
    /// Count the alerts of one detection (same rule, join keys and events: what event.id is
    /// computed from) once, as a store keyed by event.id does: for at-least-once outputs, such
    /// as Kafka consumers after a rebalance or a crash.
    #[arg(long)]
    dedup: bool,
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Number of event lines to write (hostile lines come on top). Includes live-key creations.
    #[arg(long, default_value_t = 100_000, conflicts_with = "duration")]
    events: u64,
    /// Generate for this long (wall clock, e.g. `30s`, `5m`) instead of `--events`; scenarios
    /// under way at the end are completed.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Lines per second (0 = as fast as possible), hostile lines included. With --realtime:
    /// event lines per second (required, > 0; hostile lines come on top).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Real time: the first @timestamp is now and @timestamp advances at wall-clock speed at
    /// --rate events per second; every line is written no earlier than its @timestamp, evenly
    /// (flushed at least every millisecond), never in bursts. All relative timings of the
    /// scenarios are kept exactly. The truth file gets `completed_written_unix_ns`: when the line
    /// completing each sequence was written. Works with every output, --connections and
    /// --disorder (a line then leaves at its arrival key). Scenarios under way when the run ends
    /// complete in real time too (up to ~12 s more).
    #[arg(long, conflicts_with_all = ["sim_eps", "start_ms"])]
    realtime: bool,
    /// When the run ends (--events reached or --duration over), start no more scenarios but keep
    /// writing background events until every started scenario has completed and this much more
    /// @timestamp time has passed (lines come on top of --events). Lets an engine's watermark
    /// pass the last sequence before the input ends.
    #[arg(long, value_parser = humantime::parse_duration)]
    drain: Option<Duration>,
    /// Probability that an event slot starts a complete attack sequence (3-4 events, one truth
    /// line): varied downloaders, paths, shells, deleters, and the ES corner cases (maxspan
    /// boundary, overwrite, missing deleter name, double exec/delete, same-ms ties).
    #[arg(long, default_value_t = 0.001)]
    attack_rate: f64,
    /// Probability that an event slot starts a near miss (3 events, never a sequence): wrong
    /// case, 1 ms past maxspan, deleted by rm, non-shell parent, other container or user, missing
    /// user.id, `sh -c` string args, ... (all 20 kinds are listed in scenario.rs).
    #[arg(long, default_value_t = 0.001)]
    decoy_rate: f64,
    /// Bounded arrival jitter in ms: no line arrives after a line whose @timestamp is more than
    /// MS later; equal timestamps keep their order. Must stay below eqlstream's
    /// max_out_of_orderness (2000 by default).
    #[arg(long, default_value_t = 0)]
    disorder: u64,
    /// Probability, per event line, of inserting a hostile line before it (not JSON, invalid
    /// UTF-8, truncated, array/scalar, empty, CRLF, deep nesting, no/bad @timestamp).
    #[arg(long, default_value_t = 0.0)]
    invalid_rate: f64,
    /// Let about 1 in 1000 hostile lines be a JSON object larger than 1 MiB.
    #[arg(long)]
    huge_lines: bool,
    /// Start with this many distinct never-completing stage-1 partials (curl creations in /tmp,
    /// distinct container/user/file name) inside one maxspan window, to measure memory.
    #[arg(long, default_value_t = 0)]
    live_keys: u64,
    /// Seed: same seed and options give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of hosts.
    #[arg(long, default_value_t = 10)]
    hosts: usize,
    /// Number of containers (at least 2).
    #[arg(long, default_value_t = 200)]
    containers: usize,
    /// Number of distinct user.id values (at least 2).
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Slots of the background clock per second of @timestamp time (each slot is a background
    /// event or starts an attack or decoy, so events per second are a little higher). Set from
    /// --rate under --realtime.
    #[arg(long, default_value_t = 1000.0)]
    sim_eps: f64,
    /// First @timestamp, ms since the Unix epoch (default 2026-03-05T10:00:00Z).
    #[arg(long, default_value_t = DEFAULT_START_MS)]
    start_ms: u64,
    /// Output: `-` (stdout), a file path, `tcp://HOST:PORT`, or `kafka://BROKERS/TOPIC` (each
    /// line one record, keyed by its event's container.id).
    #[arg(short, long, default_value = "-")]
    output: String,
    /// Number of TCP connections (only with `-o tcp://HOST:PORT`). All are opened first; every
    /// event then goes to connection FNV-1a(container.id) % N (all events of one container, hence
    /// of one attack, on one connection, in generator order), a hostile line with the event it
    /// precedes. Connections are written concurrently; same seed and options give the same
    /// bytes per connection.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Write the sequences the seed rule must find (JSONL, ES order) to this file.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Print a summary of what was generated to stderr at the end.
    #[arg(long)]
    stats: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Score(a)) => run_score(&a),
        Some(Cmd::Latency(a)) => latency::run(&a),
        None => match generate(&cli.gen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                eprintln!("eqlstream-loadgen: {e}");
                ExitCode::from(64)
            }
            Err(e) => {
                eprintln!("eqlstream-loadgen: {e}");
                ExitCode::from(74)
            }
        },
    }
}

fn run_score(a: &ScoreArgs) -> ExitCode {
    let result = (|| -> anyhow::Result<score::Score> {
        let truth = truth::read_all(BufReader::new(
            File::open(&a.truth).map_err(|e| anyhow::anyhow!("{}: {e}", a.truth.display()))?,
        ))?;
        let alerts = BufReader::with_capacity(
            1 << 20,
            File::open(&a.alerts).map_err(|e| anyhow::anyhow!("{}: {e}", a.alerts.display()))?,
        );
        let rule = (!a.all_rules).then_some(a.rule_id.as_str());
        Ok(score::score(&truth, rule, alerts, a.dedup)?)
    })();
    match result {
        Ok(s) => {
            let mut out = io::stdout().lock();
            if s.print(&mut out).is_err() {
                return ExitCode::from(2);
            }
            if s.perfect() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("eqlstream-loadgen score: {e}");
            ExitCode::from(2)
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn generate(a: &GenArgs) -> io::Result<()> {
    for (name, v) in
        [("--attack-rate", a.attack_rate), ("--decoy-rate", a.decoy_rate), ("--invalid-rate", a.invalid_rate)]
    {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(format!("{name} must be in [0, 1], got {v}")));
        }
    }
    if a.attack_rate + a.decoy_rate > 1.0 {
        return Err(invalid("--attack-rate + --decoy-rate must be <= 1".into()));
    }
    if a.sim_eps <= 0.0 || !a.sim_eps.is_finite() {
        return Err(invalid("--sim-eps must be > 0".into()));
    }
    if !(a.rate >= 0.0 && a.rate.is_finite()) {
        return Err(invalid("--rate must be >= 0".into()));
    }
    if a.realtime && a.rate <= 0.0 {
        return Err(invalid("--realtime needs --rate > 0 (event lines per second)".into()));
    }
    if a.duration.is_none() && a.live_keys > a.events {
        return Err(invalid("--live-keys must be <= --events".into()));
    }
    let target = Target::parse(&a.output);
    if a.connections == 0 {
        return Err(invalid("--connections must be >= 1".into()));
    }
    if a.connections > 1 && !matches!(target, Target::Tcp(_)) {
        return Err(invalid("--connections > 1 needs -o tcp://HOST:PORT".into()));
    }
    if a.disorder >= 2000 {
        eprintln!("eqlstream-loadgen: warning: --disorder {} ms is not below eqlstream's default max_out_of_orderness (2000 ms)", a.disorder);
    }
    let world = World::build(a.seed, a.hosts, a.containers, a.users);
    let (sim_eps, start_ms) = if a.realtime {
        (writer::sim_eps_for_rate(a.rate, a.attack_rate, a.decoy_rate), sink::unix_ns() / 1_000_000)
    } else {
        (a.sim_eps, a.start_ms)
    };
    let cfg = Config {
        seed: a.seed,
        total: if a.duration.is_some() { None } else { Some(a.events) },
        attack_rate: a.attack_rate,
        decoy_rate: a.decoy_rate,
        live_keys: a.live_keys,
        sim_eps,
        start_ms,
    };
    let truth_file = match &a.truth {
        Some(p) => Some(File::create(p)?),
        None => None,
    };
    let sink = match &target {
        #[cfg(feature = "kafka")]
        Target::Kafka(url) => Sink::kafka(url, world.containers.iter().map(|c| c.id.clone()).collect())?,
        #[cfg(not(feature = "kafka"))]
        Target::Kafka(_) => return Err(invalid("this build has no Kafka support (cargo feature `kafka`)".into())),
        _ => Sink::open(&target, a.connections, a.realtime)?,
    };
    let outputs = sink.outputs() as u64;
    // Output of each container: FNV-1a of its id, modulo the number of outputs (for Kafka, the
    // container itself: its id is the record key).
    let routes: Vec<usize> = if matches!(target, Target::Kafka(_)) {
        (0..world.containers.len()).collect()
    } else {
        world.containers.iter().map(|c| (sink::route(&c.id) % outputs) as usize).collect()
    };
    let progress = match (&target, a.duration) {
        (Target::File(_), None) => {
            let pb = indicatif::ProgressBar::new(a.events);
            pb.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Some(pb)
        }
        (Target::File(_), Some(_)) => Some(indicatif::ProgressBar::new_spinner()),
        _ => None,
    };

    let mut gen = Generator::new(&world, cfg);
    let mut formatter = event::Formatter::new(a.seed);
    let mut jitter = ChaCha8Rng::seed_from_u64(event::mix64(a.seed ^ 0xd150));
    let hostile_rng = ChaCha8Rng::seed_from_u64(event::mix64(a.seed ^ 0xbad));
    let mut disorder: Disorder<Meta> = Disorder::new();
    let rate = if a.realtime { 0.0 } else { a.rate };
    let mut w = LineWriter::new(sink, TruthOut::new(truth_file), a.invalid_rate, a.huge_lines, hostile_rng, rate);
    let mut pacer = Pacer::default();
    let drain_ms = a.drain.map(|d| d.as_millis() as u64);
    // `None`: the run proper; `Some(until)`: wrapping up (`--drain`), no new scenarios;
    // `until` is set once the last scenario event is out.
    let mut wrap_up: Option<Option<u64>> = None;
    let started = Instant::now();

    let mut line = Vec::with_capacity(4096);
    loop {
        let Some(em) = gen.next_event() else {
            if drain_ms.is_some() && wrap_up.is_none() {
                gen.background_only();
                wrap_up = Some(None);
                continue;
            }
            break;
        };
        if let Some(d) = a.duration {
            if wrap_up.is_none() && started.elapsed() >= d {
                if drain_ms.is_some() {
                    gen.background_only();
                    wrap_up = Some(None);
                } else {
                    gen.stop();
                }
            }
        }
        if let (Some(until), Some(drain)) = (wrap_up.as_mut(), drain_ms) {
            if until.is_none() && gen.scheduled() == 0 {
                *until = Some(em.ev.ts + drain);
            }
            if until.is_some_and(|u| em.ev.ts >= u) {
                gen.stop();
            }
        }
        let mut buf = if a.disorder > 0 { disorder.buffer() } else { std::mem::take(&mut line) };
        buf.clear();
        formatter.write_event(&mut buf, &world, &em.ev);
        // Hostile lines that look like events copy the latest background event (so their
        // timestamps stay current and they can never join a sequence).
        if a.invalid_rate > 0.0 && em.origin == Origin::Background {
            w.bg_template.clear();
            w.bg_template.extend_from_slice(&buf);
        }
        let meta = Meta {
            out: routes.get(em.ev.container).copied().unwrap_or(0),
            stamp: (a.realtime && em.truth.is_some()).then(sink::new_stamp),
        };
        if let Some(t) = &em.truth {
            w.truth.add(TruthLine::from_seq(&world, a.seed, t), meta.stamp.clone())?;
        }
        if a.realtime {
            pacer.wait(em.ev.ts, &mut disorder, &mut w)?;
        }
        if a.disorder > 0 {
            let delay = jitter.random_range(0..=a.disorder);
            disorder.push(em.ev.ts, delay, buf, meta, |l, m| w.write(l, m))?;
        } else {
            w.write(&buf, meta)?;
            line = buf;
        }
        if let Some(pb) = &progress {
            let n = gen.emitted();
            if n % 65_536 == 0 {
                pb.set_position(n);
            }
        }
    }
    if a.realtime {
        // The rest of the disorder buffer, each line at its arrival key.
        while let Some(k) = disorder.next_key() {
            pacer.wait(k, &mut Disorder::new(), &mut w)?;
            disorder.release(k, |l, m| w.write(l, m))?;
        }
    }
    disorder.finish(|l, m| w.write(l, m))?;
    w.finish()?;
    if let Some(pb) = progress {
        pb.set_position(gen.emitted());
        pb.finish();
    }
    if a.stats {
        let st = &gen.stats;
        let secs = started.elapsed().as_secs_f64();
        let n = gen.emitted();
        eprintln!(
            "events={n} background={} attacks={} live_keys={} hostile_lines={} bytes={} mean_event_bytes={:.0} elapsed_s={secs:.3} events_per_s={:.0} outputs={outputs}",
            st.background,
            st.attacks,
            st.live_keys,
            w.hostile_lines,
            w.bytes,
            w.bytes as f64 / n.max(1) as f64,
            n as f64 / secs.max(1e-9)
        );
        let decoys: Vec<String> = Decoy::all().iter().map(|d| format!("{d:?}={}", st.decoys[d.index()])).collect();
        eprintln!("decoys: {}", decoys.join(" "));
        if a.realtime {
            eprintln!(
                "realtime: sim_eps={sim_eps:.1} max_lag_ms={:.3} lines_over_1ms_late={}",
                pacer.max_lag_ns as f64 / 1e6,
                pacer.late_lines
            );
        }
    }
    Ok(())
}
