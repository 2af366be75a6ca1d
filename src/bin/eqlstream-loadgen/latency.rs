//! `eqlstream-loadgen latency`: end-to-end alert latency of eqlstream under `--realtime` load.
//!
//! Reads eqlstream's output on stdin until EOF. Each `read` is stamped with the wall clock as it
//! returns; an alert line (found by a scan for `"alert"`, then parsed and recognised as `score`
//! does) gets the stamp of the read that completed it; every other line is skipped unparsed. At
//! EOF the truth file is read, alerts are matched to sequences with `score`'s [`Matcher`], and
//! latency = alert read time - `completed_written_unix_ns` of the matched sequence (the moment
//! the loadgen wrote the line completing it). With `--metrics URL`, a thread scrapes the URL
//! about once a second (failures ignored, the last good scrape kept; one more attempt at EOF)
//! and the report adds eqlstream's own histograms computed as `histogram_quantile` would.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use crossbeam_channel::RecvTimeoutError;

use crate::prom;
use crate::score::{alert_identity, Matcher, Score};
use crate::sink::unix_ns;
use crate::truth::{self, TruthLine, SEED_RULE_ID};

/// Histograms reported with `--metrics`, when present.
pub const HISTOGRAMS: &[&str] = &["eqlstream_alert_latency_seconds", "eqlstream_alert_buffering_seconds"];

/// Time between scrapes.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// Connect/read timeout of one scrape.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Read buffer (grows for longer lines).
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Options of `latency`.
#[derive(Args, Debug)]
pub struct LatencyArgs {
    /// Truth file written by `--truth` (with `--realtime`, it holds the write times).
    #[arg(long)]
    pub truth: PathBuf,
    /// eqlstream's Prometheus endpoint, e.g. http://127.0.0.1:9780/metrics (scraped ~1/s).
    #[arg(long)]
    pub metrics: Option<String>,
    /// Score only alerts whose `rule.id` is this (others are counted, not scored).
    #[arg(long, default_value = SEED_RULE_ID, conflicts_with = "all_rules")]
    pub rule_id: String,
    /// Score the alerts of every rule.
    #[arg(long)]
    pub all_rules: bool,
}

/// An alert seen on stdin and when its line was read.
#[derive(Debug)]
pub struct SeenAlert {
    /// Its sequence identity.
    pub id: TruthLine,
    /// Wall clock (ns since the epoch) when the read that completed the line returned.
    pub read_ns: u64,
}

/// Reads `input` to EOF, returning every alert line with its read time; other lines are skipped.
pub fn read_alerts(mut input: impl Read, mut clock: impl FnMut() -> u64) -> io::Result<Vec<SeenAlert>> {
    let finder = memchr::memmem::Finder::new(b"\"alert\"");
    let mut alerts = Vec::new();
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    // buf[..filled] holds bytes not yet scanned; they start at a line start.
    let mut filled = 0usize;
    let mut last_data_ns = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let eof = n == 0;
        // At EOF, an unterminated last line was complete with the last read that brought data.
        if !eof {
            last_data_ns = clock();
        }
        let now = last_data_ns;
        filled += n;
        // Complete lines end at the last newline (at EOF, everything is complete).
        let complete = if eof {
            filled
        } else {
            match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let region = &buf[..complete];
        let mut from = 0;
        while let Some(hit) = finder.find(&region[from..]) {
            let hit = from + hit;
            let start = memchr::memrchr(b'\n', &region[..hit]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &region[hit..]).map_or(region.len(), |i| hit + i);
            if let Some(id) = alert_identity(&region[start..end]) {
                alerts.push(SeenAlert { id, read_ns: now });
            }
            from = end;
        }
        buf.copy_within(complete..filled, 0);
        filled -= complete;
        if eof {
            return Ok(alerts);
        }
    }
}

/// The `q`-quantile of sorted `v` by nearest rank (the smallest value with at least `q` of the
/// values at or below it); `None` when empty.
pub fn nearest_rank(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = (q * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank.min(v.len()) - 1).copied()
}

/// Measured latencies, ms, sorted.
#[derive(Debug, Default)]
pub struct Latencies {
    /// One per matched alert whose sequence has a write time.
    pub ms: Vec<f64>,
    /// Matched alerts whose truth line has no `completed_written_unix_ns`.
    pub without_write_time: usize,
}

impl Latencies {
    /// Percentile `q` in ms.
    pub fn p(&self, q: f64) -> Option<f64> {
        nearest_rank(&self.ms, q)
    }
}

/// Matches `alerts` to `truth` (rule filter as in `score`) and computes the latencies.
pub fn evaluate(truth: &[truth::TruthRecord], rule_id: Option<&str>, alerts: Vec<SeenAlert>) -> (Score, Latencies) {
    let seqs: Vec<TruthLine> = truth.iter().map(|r| r.seq.clone()).collect();
    let mut m = Matcher::new(&seqs, rule_id);
    let mut lat = Latencies::default();
    for a in alerts {
        let read_ns = a.read_ns;
        let Some(i) = m.alert(a.id) else { continue };
        match truth.get(i).and_then(|r| r.completed_written_unix_ns) {
            Some(w) => lat.ms.push((read_ns as f64 - w as f64) / 1e6),
            None => lat.without_write_time += 1,
        }
    }
    lat.ms.sort_by(f64::total_cmp);
    (m.finish(), lat)
}

/// The report lines for eqlstream's histograms in the exposition `text`.
pub fn metrics_report(out: &mut impl Write, text: Option<&str>, measured_p99_ms: Option<f64>) -> io::Result<()> {
    let Some(text) = text else {
        return writeln!(out, "metrics: no successful scrape");
    };
    for name in HISTOGRAMS {
        let Some(h) = prom::histogram(text, name) else {
            writeln!(out, "{name}: absent")?;
            continue;
        };
        let p50 = prom::histogram_quantile(0.5, &h.buckets) * 1e3;
        let p99 = prom::histogram_quantile(0.99, &h.buckets) * 1e3;
        write!(out, "{name}: count={} p50={p50:.3} ms p99={p99:.3} ms", h.count)?;
        match measured_p99_ms {
            Some(m) => writeln!(out, " (p99 metric - measured = {:+.3} ms)", p99 - m)?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

/// Scrapes `url` every [`SCRAPE_EVERY`] until `stop` is dropped; keeps the last good body.
fn spawn_scraper(
    url: String,
    last: Arc<Mutex<Option<String>>>,
    stop: crossbeam_channel::Receiver<()>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("scrape".into()).spawn(move || loop {
        if let Ok(body) = prom::scrape(&url, SCRAPE_TIMEOUT) {
            if let Ok(mut g) = last.lock() {
                *g = Some(body);
            }
        }
        match stop.recv_timeout(SCRAPE_EVERY) {
            Err(RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    })
}

/// Runs the subcommand.
pub fn run(a: &LatencyArgs) -> ExitCode {
    let last = Arc::new(Mutex::new(None::<String>));
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let scraper = match &a.metrics {
        Some(url) => match spawn_scraper(url.clone(), last.clone(), stop_rx) {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("eqlstream-loadgen latency: cannot start the scraper: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let alerts = read_alerts(io::stdin().lock(), unix_ns);
    drop(stop_tx);
    if let Some(h) = scraper {
        let _ = h.join();
    }
    let alerts = match alerts {
        Ok(v) => v,
        Err(e) => {
            eprintln!("eqlstream-loadgen latency: stdin: {e}");
            return ExitCode::from(2);
        }
    };
    let metrics = a.metrics.as_ref().map(|url| {
        // One more try after EOF (eqlstream may still be up); else the last good scrape.
        let previous = last.lock().ok().and_then(|g| g.clone());
        prom::scrape(url, SCRAPE_TIMEOUT).ok().or(previous)
    });
    let truth = match File::open(&a.truth)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.truth.display()))
        .and_then(|f| truth::read_records(BufReader::new(f)))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("eqlstream-loadgen latency: {e}");
            return ExitCode::from(2);
        }
    };
    let rule = (!a.all_rules).then_some(a.rule_id.as_str());
    let (score, lat) = evaluate(&truth, rule, alerts);
    let mut out = io::stdout().lock();
    if print(&mut out, &score, &lat, metrics.as_ref()).is_err() {
        return ExitCode::from(2);
    }
    if score.perfect() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints the whole report; `metrics` is `Some` when `--metrics` was given.
fn print(out: &mut impl Write, score: &Score, lat: &Latencies, metrics: Option<&Option<String>>) -> io::Result<()> {
    score.print(out)?;
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    writeln!(
        out,
        "latency ms (alert read - completing line written): n={} p50={} p90={} p99={} max={}",
        lat.ms.len(),
        fmt(lat.p(0.5)),
        fmt(lat.p(0.9)),
        fmt(lat.p(0.99)),
        fmt(lat.ms.last().copied())
    )?;
    if lat.without_write_time > 0 {
        writeln!(
            out,
            "matched alerts without a write time in the truth file (not --realtime?): {}",
            lat.without_write_time
        )?;
    }
    if let Some(m) = metrics {
        metrics_report(out, m.as_deref(), lat.p(0.99))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `chunks` one per read; the clock returns the read's index.
    struct Chunks(Vec<Vec<u8>>);
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0.remove(0);
            assert!(c.len() <= buf.len(), "test chunk fits");
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    fn alert(n: &str) -> String {
        format!(
            r#"{{"event":{{"kind":"alert"}},"rule":{{"id":"r"}},"eql":{{"join_keys":["c"],"events":[{{"event":{{"id":"{n}"}}}}]}}}}"#
        )
    }

    #[test]
    fn alerts_get_the_time_of_the_read_that_completed_them() {
        let a1 = alert("1");
        let a2 = alert("2");
        let (a2_head, a2_tail) = a2.split_at(20);
        let chunks = vec![
            format!("{{\"x\":\"alert\"}}\n{a1}\n{{\"event\":1}}\n{a2_head}").into_bytes(),
            [a2_tail.as_bytes(), b"\nplain line\n"].concat(),
            alert("3").into_bytes(), // last line without a newline
        ];
        let mut t = 0;
        let got = read_alerts(Chunks(chunks), || {
            t += 1;
            t * 100
        })
        .expect("read");
        let ids: Vec<(String, u64)> = got.into_iter().map(|a| (a.id.event_ids.concat(), a.read_ns)).collect();
        assert_eq!(ids, vec![("1".into(), 100), ("2".into(), 200), ("3".into(), 300)]);
    }

    #[test]
    fn lines_longer_than_the_buffer_are_read_whole() {
        let long = format!("{{\"pad\":\"{}\",{}\n", "x".repeat(3 * READ_BUFFER_BYTES), &alert("7")[1..]);
        let chunks: Vec<Vec<u8>> = long.as_bytes().chunks(READ_BUFFER_BYTES / 2).map(<[u8]>::to_vec).collect();
        let got = read_alerts(Chunks(chunks), || 1).expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id.event_ids, vec!["7"]);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50.0));
        assert_eq!(nearest_rank(&v, 0.99), Some(99.0));
        assert_eq!(nearest_rank(&v, 1.0), Some(100.0));
        assert_eq!(nearest_rank(&v, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&[3.0], 0.9), Some(3.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn evaluate_measures_from_the_write_time_of_the_matched_sequence() {
        let seq = |n: &str| TruthLine { rule_id: "r".into(), join_keys: vec!["c".into()], event_ids: vec![n.into()] };
        let truth = vec![
            truth::TruthRecord { seq: seq("1"), completed_written_unix_ns: Some(1_000_000_000) },
            truth::TruthRecord { seq: seq("2"), completed_written_unix_ns: None },
            truth::TruthRecord { seq: seq("3"), completed_written_unix_ns: Some(2_000_000_000) },
        ];
        let alerts = vec![
            SeenAlert { id: seq("3"), read_ns: 2_002_500_000 },
            SeenAlert { id: seq("1"), read_ns: 1_010_000_000 },
            SeenAlert { id: seq("2"), read_ns: 5 },
            SeenAlert { id: seq("9"), read_ns: 5 },
        ];
        let (s, lat) = evaluate(&truth, Some("r"), alerts);
        assert_eq!(lat.ms, vec![2.5, 10.0]);
        assert_eq!(lat.without_write_time, 1);
        assert_eq!((s.matched, s.alerts, s.false_alerts.len()), (3, 4, 1));
    }

    #[test]
    fn metrics_report_prints_quantiles_and_the_difference() {
        let text = "\
eqlstream_alert_latency_seconds_bucket{le=\"1\"} 0
eqlstream_alert_latency_seconds_bucket{le=\"2\"} 50
eqlstream_alert_latency_seconds_bucket{le=\"4\"} 100
eqlstream_alert_latency_seconds_bucket{le=\"+Inf\"} 100
eqlstream_alert_latency_seconds_count 100
";
        let mut out = Vec::new();
        metrics_report(&mut out, Some(text), Some(3000.0)).expect("report");
        let s = String::from_utf8(out).expect("utf-8");
        // p50: rank 50 in (1, 2] -> 2 s; p99: rank 99 in (2, 4] -> 2 + 2 * 49/50 = 3.96 s.
        assert!(s.contains("eqlstream_alert_latency_seconds: count=100 p50=2000.000 ms p99=3960.000 ms"), "{s}");
        assert!(s.contains("(p99 metric - measured = +960.000 ms)"), "{s}");
        assert!(s.contains("eqlstream_alert_buffering_seconds: absent"), "{s}");
        let mut none = Vec::new();
        metrics_report(&mut none, None, None).expect("report");
        assert_eq!(String::from_utf8_lossy(&none), "metrics: no successful scrape\n");
    }
}
