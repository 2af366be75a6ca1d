//! Whether the prefilter pays on this stream, measured while it runs: it does when the share of
//! scanned lines it skips, times what parsing and evaluating a line costs, exceeds what scanning a
//! line costs. With many rules, or rules whose literals occur in most lines, it skips too few
//! lines and the scan is pure overhead (issue 14: 35 % more CPU with 16 prebuilt rules).
//!
//! The decode workers count, per batch, the lines scanned and skipped, and time one line in
//! [`TIME_EVERY`]: the scan, and for a line that is then parsed, the parse and evaluation. The
//! counts of all workers go into one window; when it holds [`WINDOW_LINES`] lines the medians of
//! the timings decide:
//!
//! * on, and `skipped / scanned x parse < scan`: off. Then only one line in [`PROBE_EVERY`] is
//!   scanned (and skipped when it can be), which measures the same figures at 1/128 of the cost (with
//!   1,000 rules a scan costs more than a parse: about 1 % of CPU while off);
//! * off, and `skipped / scanned x parse > 1.25 x scan`: on again (the margin keeps a stream
//!   near the break-even point from switching back and forth).
//!
//! Medians, because a worker that the machine preempts in the middle of a timed line records
//! milliseconds. What it decides changes only how much CPU a run uses: a skipped line could not
//! have matched, so alerts are the same either way. Each switch is logged and sets the
//! `eqlstream_prefilter_active` gauge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Lines per decision window (all workers together).
pub const WINDOW_LINES: u64 = 4_096;
/// While off, one line in this many is scanned.
pub const PROBE_EVERY: u64 = 128;
/// One line in this many is timed (a multiple of [`PROBE_EVERY`], so that a timed line is always
/// scanned).
pub const TIME_EVERY: u64 = 128;
/// Timed samples kept per window and kind (the rest are dropped: a window holds about 32 while
/// on, 256 while off).
const MAX_SAMPLES: usize = 1024;
/// Turning back on needs the benefit to exceed the cost by this factor.
const ON_MARGIN: f64 = 1.25;

/// One worker's counts since its last [`Adaptive::record`].
#[derive(Debug, Default)]
pub struct Tally {
    /// Lines seen (scanned or not).
    pub lines: u64,
    /// Lines scanned.
    pub scanned: u64,
    /// Lines skipped.
    pub skipped: u64,
    /// Nanoseconds of timed scans.
    pub scan_ns: Vec<u32>,
    /// Nanoseconds of timed parses and evaluations (of lines that were then parsed).
    pub parse_ns: Vec<u32>,
}

impl Tally {
    fn clear(&mut self) {
        self.lines = 0;
        self.scanned = 0;
        self.skipped = 0;
        self.scan_ns.clear();
        self.parse_ns.clear();
    }
}

/// A switch of [`Adaptive`], with the figures that decided it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Switch {
    /// The new state.
    pub active: bool,
    /// Share of scanned lines skipped in the window.
    pub skipped_share: f64,
    /// Median scan, in microseconds.
    pub scan_us: f64,
    /// Median parse and evaluation of a line, in microseconds.
    pub parse_us: f64,
}

/// The shared on/off state of the prefilter and its decision window.
#[derive(Debug)]
pub struct Adaptive {
    active: AtomicBool,
    window: Mutex<Tally>,
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive::new()
    }
}

fn median(v: &mut [u32]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable(mid);
    Some(f64::from(*m))
}

impl Adaptive {
    /// On, with an empty window.
    pub fn new() -> Adaptive {
        Adaptive { active: AtomicBool::new(true), window: Mutex::new(Tally::default()) }
    }

    /// Whether every line is scanned (otherwise one in [`PROBE_EVERY`]).
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Adds a worker's tally (then cleared) to the window; when the window is full, decides,
    /// and returns the switch if the state changed.
    pub fn record(&self, t: &mut Tally) -> Option<Switch> {
        let mut w = match self.window.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        w.lines += t.lines;
        w.scanned += t.scanned;
        w.skipped += t.skipped;
        let room = MAX_SAMPLES.saturating_sub(w.scan_ns.len());
        w.scan_ns.extend(t.scan_ns.iter().take(room));
        let room = MAX_SAMPLES.saturating_sub(w.parse_ns.len());
        w.parse_ns.extend(t.parse_ns.iter().take(room));
        t.clear();
        let needed = if self.active() { WINDOW_LINES } else { WINDOW_LINES * PROBE_EVERY / 16 };
        if w.lines < needed || w.scanned == 0 {
            return None;
        }
        let skipped_share = w.skipped as f64 / w.scanned as f64;
        let scan = median(&mut w.scan_ns);
        let parse = median(&mut w.parse_ns);
        w.clear();
        let (Some(scan), Some(parse)) = (scan, parse) else {
            // No line parsed among the timed ones: nearly everything is skipped, which pays.
            return self.set(true, skipped_share, scan.unwrap_or(0.0), 0.0);
        };
        let benefit = skipped_share * parse;
        let active = if self.active() { benefit >= scan } else { benefit > ON_MARGIN * scan };
        self.set(active, skipped_share, scan, parse)
    }

    fn set(&self, active: bool, skipped_share: f64, scan_ns: f64, parse_ns: f64) -> Option<Switch> {
        (self.active.swap(active, Ordering::Relaxed) != active).then_some(Switch {
            active,
            skipped_share,
            scan_us: scan_ns / 1e3,
            parse_us: parse_ns / 1e3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(lines: u64, scanned: u64, skipped: u64, scan: u32, parse: u32) -> Tally {
        Tally { lines, scanned, skipped, scan_ns: vec![scan; 100], parse_ns: vec![parse; 100] }
    }

    #[test]
    fn it_turns_off_when_skipping_saves_less_than_scanning_costs_and_back_on() {
        let a = Adaptive::new();
        assert!(a.active());
        // 10 % skipped x 2,000 ns = 200 ns saved per line, for 300 ns of scan: off.
        assert_eq!(
            a.record(&mut tally(WINDOW_LINES - 1, WINDOW_LINES - 1, WINDOW_LINES / 10, 300, 2_000)),
            None,
            "window not full"
        );
        let s = a.record(&mut tally(1, 1, 0, 300, 2_000)).expect("switches");
        assert!(!s.active && !a.active());
        assert!((s.skipped_share - 0.1).abs() < 0.001, "{s:?}");
        // Off: probes only; 15 % x 2,000 = 300 is not 1.25 x 300: stays off.
        let probes = WINDOW_LINES * PROBE_EVERY / 16;
        let scanned = probes / PROBE_EVERY;
        assert_eq!(a.record(&mut tally(probes, scanned, scanned * 15 / 100, 300, 2_000)), None);
        assert!(!a.active());
        // 50 % x 2,000 = 1,000 > 375: on.
        assert!(a.record(&mut tally(probes, scanned, scanned / 2, 300, 2_000)).is_some_and(|s| s.active));
        // On, just above the break-even point (16 % x 2,000 = 320 > 300), it stays on.
        assert_eq!(a.record(&mut tally(WINDOW_LINES, WINDOW_LINES, WINDOW_LINES * 16 / 100, 300, 2_000)), None);
        assert!(a.active());
    }

    #[test]
    fn medians_ignore_preempted_samples_and_nothing_parsed_means_on() {
        let a = Adaptive::new();
        let mut t = tally(WINDOW_LINES, WINDOW_LINES, WINDOW_LINES / 2, 300, 2_000);
        t.scan_ns.extend([50_000_000; 40]);
        assert_eq!(a.record(&mut t), None, "50 % x 2,000 > 300 despite 40 slow samples");
        let mut t = tally(WINDOW_LINES, WINDOW_LINES, WINDOW_LINES, 300, 0);
        t.parse_ns.clear();
        assert_eq!(a.record(&mut t), None);
        assert!(a.active());
    }
}
