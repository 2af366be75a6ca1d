//! From formatted event lines to output: the hostile line (`--invalid-rate`) written in front of
//! an event, the output (`--connections`) each line goes to, `--rate`, the `--realtime` pacing
//! and the truth file, whose lines wait for the write time of their completing line under
//! `--realtime`. Never changes the bytes or the order of the lines it is given.
//!
//! # `--realtime`
//! The scenario starts at the wall clock and its background clock runs at
//! [`sim_eps_for_rate`]`(--rate)`, so that `@timestamp` advances at wall-clock speed at the
//! requested event rate. Every line is written no earlier than its `@timestamp` (for
//! `--disorder`, its arrival key, which is never earlier): [`Pacer::wait`] sleeps to that
//! instant, and before each sleep hands everything written so far to the kernel, so lines leave
//! in small chunks at least every millisecond of their timestamps, never in bursts. All relative
//! timings of the scenarios (maxspan boundaries, decoys 1 ms past maxspan, `event.ingested` =
//! `@timestamp` + 2 s) are those of the generator, exactly.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::hostile;
use crate::output::{Disorder, RateLimiter};
use crate::scenario::events_per_slot;
use crate::sink::{unix_ns, Sink, Stamp};
use crate::truth::{self, TruthLine, TruthRecord};

/// The simulated background rate (`sim_eps`, slots per second of `@timestamp` time) that yields
/// `rate` event lines per second, attacks and decoys included.
pub fn sim_eps_for_rate(rate: f64, attack_rate: f64, decoy_rate: f64) -> f64 {
    rate / events_per_slot(attack_rate, decoy_rate)
}

/// Where a line goes and what to record when it is written.
#[derive(Debug)]
pub struct Meta {
    /// Output index (connection).
    pub out: usize,
    /// Set when the line is written (`--realtime`, completing lines only).
    pub stamp: Option<Stamp>,
}

/// The truth file. Lines without a stamp are written at once; stamped lines wait (in order) until
/// their stamp is set.
pub struct TruthOut {
    file: Option<BufWriter<File>>,
    pending: VecDeque<(TruthLine, Option<Stamp>)>,
    /// Truth lines written so far.
    pub written: u64,
}

impl TruthOut {
    /// Writes to `file` (or nowhere).
    pub fn new(file: Option<File>) -> Self {
        TruthOut { file: file.map(|f| BufWriter::with_capacity(1 << 16, f)), pending: VecDeque::new(), written: 0 }
    }

    /// Adds a truth line, completed by a line that will set `stamp` when written.
    pub fn add(&mut self, line: TruthLine, stamp: Option<Stamp>) -> io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        self.pending.push_back((line, stamp));
        self.write_ready(false)
    }

    /// Writes the pending lines whose stamps are set (all of them when `all`; an unset stamp is
    /// then left out of the line).
    pub fn write_ready(&mut self, all: bool) -> io::Result<()> {
        let Some(out) = self.file.as_mut() else { return Ok(()) };
        while let Some((_, stamp)) = self.pending.front() {
            let t = stamp.as_ref().map(|s| s.load(Ordering::Acquire));
            if t == Some(0) && !all {
                break;
            }
            let Some((seq, _)) = self.pending.pop_front() else { break };
            let rec = TruthRecord { seq, completed_written_unix_ns: t.filter(|&t| t > 0) };
            truth::write_record(out, &rec)?;
            self.written += 1;
        }
        Ok(())
    }

    /// Writes every pending line and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        self.write_ready(true)?;
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Writes event lines (each maybe preceded by a hostile line) to the sink.
pub struct LineWriter {
    /// The outputs.
    pub sink: Sink,
    /// The truth file.
    pub truth: TruthOut,
    invalid_rate: f64,
    huge_lines: bool,
    hostile_rng: ChaCha8Rng,
    /// The latest background event line (hostile look-alikes copy it).
    pub bg_template: Vec<u8>,
    scratch: Vec<u8>,
    limiter: RateLimiter,
    /// Hostile lines written.
    pub hostile_lines: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl LineWriter {
    /// A writer; `rate` 0 means unlimited (always so under `--realtime`: the [`Pacer`] paces).
    pub fn new(
        sink: Sink,
        truth: TruthOut,
        invalid_rate: f64,
        huge_lines: bool,
        hostile_rng: ChaCha8Rng,
        rate: f64,
    ) -> Self {
        LineWriter {
            sink,
            truth,
            invalid_rate,
            huge_lines,
            hostile_rng,
            bg_template: Vec::new(),
            scratch: Vec::with_capacity(4096),
            limiter: RateLimiter::new(rate),
            hostile_lines: 0,
            bytes: 0,
        }
    }

    /// Writes one event line, maybe preceded by a hostile line (which goes to the same output).
    pub fn write(&mut self, line: &[u8], meta: Meta) -> io::Result<()> {
        if self.invalid_rate > 0.0 && !self.bg_template.is_empty() && self.hostile_rng.random_bool(self.invalid_rate) {
            self.scratch.clear();
            let kind = hostile::pick(&mut self.hostile_rng, self.huge_lines);
            hostile::write(&mut self.scratch, &mut self.hostile_rng, kind, &self.bg_template);
            self.sink.write(meta.out, &self.scratch, None)?;
            self.bytes += self.scratch.len() as u64;
            self.hostile_lines += 1;
            self.limiter.tick();
        }
        self.sink.write(meta.out, line, meta.stamp)?;
        self.bytes += line.len() as u64;
        self.limiter.tick();
        Ok(())
    }

    /// Hands everything written to the kernel (or the connection threads) and writes the truth
    /// lines whose completing lines are out.
    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()?;
        self.truth.write_ready(false)
    }

    /// Flushes and closes everything; writes the rest of the truth file.
    pub fn finish(&mut self) -> io::Result<()> {
        self.sink.finish()?;
        self.truth.finish()
    }
}

/// `--realtime` pacing state.
#[derive(Debug, Default)]
pub struct Pacer {
    last_flush_ns: u64,
    /// Largest delay seen between a line's due time and the moment it was handed on, in ns.
    pub max_lag_ns: u64,
    /// Lines handed on more than 1 ms after their due time.
    pub late_lines: u64,
}

impl Pacer {
    /// Flush at least this often while behind schedule (ns).
    pub const FLUSH_EVERY_NS: u64 = 1_000_000;

    /// Returns once the wall clock has reached `ts_ms` (ms since the epoch). While waiting,
    /// releases the `--disorder` lines that are due (their keys are < `ts_ms`, which keeps the
    /// disorder guarantee since every later event has `@timestamp >= ts_ms`) and flushes `w`
    /// before every sleep; when behind schedule, flushes at least every millisecond.
    pub fn wait(&mut self, ts_ms: u64, disorder: &mut Disorder<Meta>, w: &mut LineWriter) -> io::Result<()> {
        let due = ts_ms.saturating_mul(1_000_000);
        loop {
            let now = unix_ns();
            if now >= due {
                let lag = now - due;
                self.max_lag_ns = self.max_lag_ns.max(lag);
                if lag > 1_000_000 {
                    self.late_lines += 1;
                }
                if now.saturating_sub(self.last_flush_ns) >= Self::FLUSH_EVERY_NS {
                    w.flush()?;
                    self.last_flush_ns = now;
                }
                return Ok(());
            }
            let now_ms = now / 1_000_000;
            disorder.release(now_ms, |l, m| w.write(l, m))?;
            w.flush()?;
            self.last_flush_ns = now;
            let wake = match disorder.next_key() {
                Some(k) => k.saturating_mul(1_000_000).clamp(now, due),
                None => due,
            };
            std::thread::sleep(Duration::from_nanos(wake - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::new_stamp;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn sim_eps_gives_the_requested_event_rate() {
        assert!((sim_eps_for_rate(1000.0, 0.0, 0.0) - 1000.0).abs() < 1e-9);
        let e = sim_eps_for_rate(20_000.0, 0.001, 0.001);
        assert!(e < 20_000.0 && e > 19_900.0, "{e}");
        assert!((e * events_per_slot(0.001, 0.001) - 20_000.0).abs() < 1e-6);
    }

    #[test]
    fn truth_lines_wait_for_their_stamps_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.jsonl");
        let mut t = TruthOut::new(Some(File::create(&path).expect("create")));
        let line = |n: &str| TruthLine { rule_id: "r".into(), join_keys: vec![], event_ids: vec![n.into()] };
        let (a, b) = (new_stamp(), new_stamp());
        t.add(line("1"), Some(a.clone())).expect("add");
        t.add(line("2"), Some(b.clone())).expect("add");
        b.store(7, Ordering::Release);
        t.write_ready(false).expect("write");
        assert_eq!(t.written, 0, "line 2 waits for line 1");
        a.store(5, Ordering::Release);
        t.write_ready(false).expect("write");
        assert_eq!(t.written, 2);
        t.add(line("3"), Some(Arc::new(AtomicU64::new(0)))).expect("add");
        t.finish().expect("finish");
        let recs = truth::read_records(std::io::BufReader::new(File::open(&path).expect("open"))).expect("read");
        let times: Vec<Option<u64>> = recs.iter().map(|r| r.completed_written_unix_ns).collect();
        assert_eq!(times, vec![Some(5), Some(7), None]);
    }
}
