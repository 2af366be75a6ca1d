//! Event time per input source, and the pipeline's watermark (Flink's model, made robust to
//! clocks that lie).
//!
//! Every input connection (and stdin) is a *source* with a clock of its own:
//! * **Per-source watermarks.** A source's watermark is its largest *confirmed* event time minus
//!   `max_out_of_orderness`. The pipeline's watermark is the minimum over the *active* sources,
//!   and never goes back. A source stops holding it back when it closes, or when it has sent
//!   nothing for `source_idle_timeout` (wall clock); its next line makes it active again (lines
//!   it sends behind the watermark by then are late). Two senders whose lines interleave
//!   therefore never make each other's events late, as long as each keeps its own order within
//!   `max_out_of_orderness`.
//! * **A source's first events.** A source's time is confirmed once two of its timestamps agree
//!   (within `max_future` of each other): a first line dated a year ahead cannot set the clock.
//!   Until then the source holds the watermark back (at most `source_idle_timeout` if it stays
//!   silent) and its events wait in the reorder buffer.
//! * **Outliers.** An event dated further ahead of its source's confirmed time than `max_future`
//!   (plus the wall-clock time since that time last advanced, so that a quiet real-time source
//!   may move on as fast as the clock on the wall) is an *outlier*: it is kept for detection (it
//!   waits in the reorder buffer until the watermark reaches its time, or the end of input, as
//!   Elasticsearch would place it by its timestamp), but it does not move time. One line dated
//!   an hour or two centuries ahead therefore changes no alert.
//! * **Jumps.** The whole stream may genuinely jump ahead (a replay of another day). A source's
//!   time follows such a jump once it has sent nothing but outliers for `outlier_confirm_events`
//!   events in a row, or for `outlier_confirm_time` of wall-clock time (at least two events);
//!   the new time is the *smallest* of those outliers, so one extreme line among them cannot pull
//!   time further. Any non-outlier event of the source in between starts the count again, so on
//!   a stream shared with honest senders an attacker's lines cannot move time.
//!
//! Results depend only on the input lines, in their interleaving, except where wall-clock time
//! is named above (idle sources, the allowance of a quiet real-time source, time-confirmed
//! jumps). This module never reads a clock: callers pass the arrival `Instant` of each batch.

use std::time::{Duration, Instant};

use hashbrown::HashMap;
use smallvec::SmallVec;

/// Default `source_idle_timeout`: a source silent for this long stops holding the watermark.
pub const DEFAULT_SOURCE_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `max_future`: how far ahead of its source's confirmed time an event may be dated
/// before it is an outlier.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(5 * 60);
/// Default `outlier_confirm_events`: outliers in a row that confirm a jump of a source's time.
pub const DEFAULT_OUTLIER_CONFIRM_EVENTS: u32 = 1000;
/// Default `outlier_confirm_time`: wall-clock time of nothing but outliers that confirms a jump.
pub const DEFAULT_OUTLIER_CONFIRM_TIME: Duration = Duration::from_secs(30);

/// Timestamps kept per source until two of them agree.
const CANDIDATES: usize = 4;

/// Identifies one input source (stdin, or one connection) for the life of a run.
pub type SourceId = u32;

/// Settings of [`Watermarks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockConfig {
    /// `max_out_of_orderness` in ns (negative counts as 0).
    pub max_out_of_orderness_ns: i64,
    /// `max_future` in ns.
    pub max_future_ns: i64,
    /// `outlier_confirm_events` (at least 1).
    pub confirm_events: u32,
    /// `outlier_confirm_time`.
    pub confirm_time: Duration,
    /// `source_idle_timeout`.
    pub idle_timeout: Duration,
}

impl ClockConfig {
    /// The defaults, with `max_out_of_orderness_ns`.
    pub fn with_allowance(max_out_of_orderness_ns: i64) -> Self {
        ClockConfig {
            max_out_of_orderness_ns,
            max_future_ns: ns(DEFAULT_MAX_FUTURE),
            confirm_events: DEFAULT_OUTLIER_CONFIRM_EVENTS,
            confirm_time: DEFAULT_OUTLIER_CONFIRM_TIME,
            idle_timeout: DEFAULT_SOURCE_IDLE_TIMEOUT,
        }
    }
}

/// A duration in ns, saturating.
pub fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// What to do with one timestamped line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// In time: buffer it for detection (its time has been taken into account).
    OnTime,
    /// Behind the watermark by `behind_ns`: pass it through, leave it out of detection, count it.
    Late {
        /// Watermark minus the event's timestamp (> 0).
        behind_ns: i64,
    },
    /// Kept for detection, but its time does not move the watermark: hold it apart in the
    /// reorder buffer ([`crate::sequence::ReorderBuffer::hold`]).
    Held {
        /// `Some(ns ahead of what its source may reach)` for an outlier (counted);
        /// `None` for one of a source's first events, before its time is confirmed.
        outlier_ns: Option<i64>,
    },
}

/// A source's time followed a jump confirmed by outliers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jump {
    /// The source's confirmed time before (ns).
    pub from: i64,
    /// The source's confirmed time after (ns): the smallest of the confirming outliers.
    pub to: i64,
    /// Outliers in the run that confirmed it.
    pub events: u32,
    /// Wall-clock time from the first of them.
    pub after: Duration,
}

/// The outcome of [`Watermarks::observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// What to do with the line.
    pub verdict: Verdict,
    /// Set when this line confirmed a jump of its source's time.
    pub jump: Option<Jump>,
    /// Earlier first events of the source that, once its time was confirmed by this line,
    /// turned out to be outliers ahead of it (they are held already; count them).
    pub outliers_found: u32,
}

#[derive(Clone, Debug)]
enum SourceTime {
    /// No two timestamps have agreed yet: the ones seen (ts, arrival).
    Unconfirmed(SmallVec<[(i64, Instant); CANDIDATES]>),
    /// The largest confirmed event time, and when (wall clock) it last rose.
    Confirmed { max: i64, rose_at: Instant },
}

/// Outliers in a row.
#[derive(Clone, Copy, Debug)]
struct OutlierRun {
    count: u32,
    min: i64,
    since: Instant,
}

#[derive(Clone, Debug)]
struct Source {
    time: SourceTime,
    run: Option<OutlierRun>,
    last_arrival: Instant,
    idle: bool,
}

impl Source {
    fn confirmed_max(&self) -> Option<i64> {
        match self.time {
            SourceTime::Confirmed { max, .. } => Some(max),
            SourceTime::Unconfirmed(_) => None,
        }
    }
}

/// One clock per source and the pipeline's watermark (see the module docs).
#[derive(Debug)]
pub struct Watermarks {
    cfg: ClockConfig,
    sources: HashMap<SourceId, Source>,
    watermark: Option<i64>,
    /// The largest confirmed time of the sources that have closed (for the idle release).
    closed_max: Option<i64>,
}

/// The `ns` between two instants (0 if `later` is earlier).
fn elapsed_ns(earlier: Instant, later: Instant) -> i64 {
    ns(later.saturating_duration_since(earlier))
}

impl Watermarks {
    /// No sources yet, no watermark.
    pub fn new(mut cfg: ClockConfig) -> Self {
        cfg.max_out_of_orderness_ns = cfg.max_out_of_orderness_ns.max(0);
        cfg.max_future_ns = cfg.max_future_ns.max(0);
        cfg.confirm_events = cfg.confirm_events.max(1);
        Watermarks { cfg, sources: HashMap::new(), watermark: None, closed_max: None }
    }

    /// The pipeline's watermark (ns): events with a smaller timestamp are late.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// A source has opened (a connection was accepted) at `now`; it holds the watermark until
    /// its time is confirmed or it is idle. Opening a source that is open already only counts as
    /// an arrival.
    pub fn open(&mut self, id: SourceId, now: Instant) {
        self.sources
            .entry(id)
            .and_modify(|s| {
                s.last_arrival = now;
                s.idle = false;
            })
            .or_insert_with(|| Source {
                time: SourceTime::Unconfirmed(SmallVec::new()),
                run: None,
                last_arrival: now,
                idle: false,
            });
    }

    /// A source has closed: it no longer holds the watermark. Returns true when the watermark
    /// rose.
    pub fn close(&mut self, id: SourceId) -> bool {
        if let Some(s) = self.sources.remove(&id) {
            if let Some(m) = s.confirmed_max() {
                self.closed_max = Some(self.closed_max.map_or(m, |c| c.max(m)));
            }
            return self.recompute();
        }
        false
    }

    /// Lines of `id` arrived at `now` (call once per batch, before [`Self::observe`]); opens the
    /// source if it was not. An idle source becomes active again.
    pub fn arrive(&mut self, id: SourceId, now: Instant) {
        self.open(id, now);
    }

    /// Marks the sources silent since `now - source_idle_timeout` as idle. Returns true when the
    /// watermark rose.
    pub fn expire_idle(&mut self, now: Instant) -> bool {
        let timeout = self.cfg.idle_timeout;
        let mut changed = false;
        for s in self.sources.values_mut() {
            if !s.idle && now.saturating_duration_since(s.last_arrival) >= timeout {
                s.idle = true;
                changed = true;
            }
        }
        changed && self.recompute()
    }

    /// When the next active source will become idle if it sends nothing.
    pub fn next_idle_at(&self) -> Option<Instant> {
        self.sources.values().filter(|s| !s.idle).map(|s| s.last_arrival + self.cfg.idle_timeout).min()
    }

    /// Number of sources open, and how many of them are idle.
    pub fn counts(&self) -> (usize, usize) {
        (self.sources.len(), self.sources.values().filter(|s| s.idle).count())
    }

    /// For each source with a confirmed time: its largest event time minus the watermark (ns;
    /// the source's lag), by source.
    pub fn lags(&self) -> impl Iterator<Item = (SourceId, i64)> + '_ {
        let w = self.watermark;
        self.sources.iter().filter_map(move |(id, s)| Some((*id, s.confirmed_max()?.saturating_sub(w?))))
    }

    /// One timestamped line of source `id`, arrived at `now`, in input order. See [`Verdict`].
    pub fn observe(&mut self, id: SourceId, ts: i64, now: Instant) -> Observation {
        let mut obs = Observation { verdict: Verdict::OnTime, jump: None, outliers_found: 0 };
        let cfg = self.cfg;
        // The usual line: a confirmed source, not an outlier. One lookup, and the same outcome
        // as the general path below.
        enum Fast {
            Done,
            Rose,
            General,
        }
        let fast = match self.sources.get_mut(&id) {
            Some(Source { time: SourceTime::Confirmed { max, rose_at }, run, .. })
                if ts <= *max
                    || ts <= max.saturating_add(cfg.max_future_ns).saturating_add(elapsed_ns(*rose_at, now)) =>
            {
                *run = None;
                if let Some(w) = self.watermark.filter(|w| ts < *w) {
                    obs.verdict = Verdict::Late { behind_ns: w - ts };
                    return obs;
                }
                if ts > *max {
                    *max = ts;
                    *rose_at = now;
                    Fast::Rose
                } else {
                    Fast::Done
                }
            }
            _ => Fast::General,
        };
        match fast {
            Fast::Done => return obs,
            Fast::Rose => {
                self.recompute();
                return obs;
            }
            Fast::General => {}
        }
        let Some(s) = self.sources.get_mut(&id) else {
            self.open(id, now);
            return self.observe(id, ts, now);
        };
        match &mut s.time {
            SourceTime::Unconfirmed(cands) => {
                let agreeing = cands
                    .iter()
                    .filter(|(c, at)| {
                        let tolerance = cfg.max_future_ns.saturating_add(elapsed_ns(*at, now));
                        ts.abs_diff(*c) <= tolerance.unsigned_abs()
                    })
                    .map(|(c, _)| *c)
                    .max();
                let Some(c) = agreeing else {
                    if cands.len() == CANDIDATES {
                        cands.remove(0);
                    }
                    cands.push((ts, now));
                    obs.verdict = match self.watermark {
                        Some(w) if ts < w => Verdict::Late { behind_ns: w - ts },
                        _ => Verdict::Held { outlier_ns: None },
                    };
                    return obs;
                };
                // As if `c` had been observed first (the usual case: the source's first line),
                // then this line.
                let limit = c.saturating_add(cfg.max_future_ns);
                obs.outliers_found = cands.iter().filter(|(t, _)| *t > limit).count() as u32;
                s.time = SourceTime::Confirmed { max: c, rose_at: now };
                self.recompute();
            }
            SourceTime::Confirmed { max, rose_at } => {
                let limit = max.saturating_add(cfg.max_future_ns).saturating_add(elapsed_ns(*rose_at, now));
                if ts > limit {
                    let run = s.run.get_or_insert(OutlierRun { count: 0, min: ts, since: now });
                    run.count += 1;
                    run.min = run.min.min(ts);
                    let after = now.saturating_duration_since(run.since);
                    let confirmed = run.count >= cfg.confirm_events || (run.count >= 2 && after >= cfg.confirm_time);
                    if !confirmed {
                        obs.verdict = Verdict::Held { outlier_ns: Some(ts - limit) };
                        return obs;
                    }
                    let jump = Jump { from: *max, to: run.min, events: run.count, after };
                    *max = run.min;
                    *rose_at = now;
                    s.run = None;
                    obs.jump = Some(jump);
                    self.recompute();
                    let mut rest = self.observe(id, ts, now);
                    rest.jump = obs.jump;
                    return rest;
                }
            }
        }
        // Not an outlier: its source's time is confirmed, and may rise.
        let Some(s) = self.sources.get_mut(&id) else { return obs };
        s.run = None;
        if let Some(w) = self.watermark.filter(|w| ts < *w) {
            obs.verdict = Verdict::Late { behind_ns: w - ts };
            return obs;
        }
        if let SourceTime::Confirmed { max, rose_at } = &mut s.time {
            if ts > *max {
                *max = ts;
                *rose_at = now;
                self.recompute();
            }
        }
        obs
    }

    /// The time up to which an idle release (no input at all for `idle_release`) may release
    /// and lift the watermark: the smallest confirmed time of the active sources (each has sent
    /// all it had), or, when none is active, the largest confirmed time of any source. `None`
    /// when no source has a confirmed time. Outliers and unconfirmed first events stay held.
    pub fn idle_release_limit(&self) -> Option<i64> {
        let active = self.sources.values().filter(|s| !s.idle).filter_map(Source::confirmed_max).min();
        active.or_else(|| {
            let any = self.sources.values().filter_map(Source::confirmed_max).max();
            match (any, self.closed_max) {
                (Some(a), Some(c)) => Some(a.max(c)),
                (a, c) => a.or(c),
            }
        })
    }

    /// The watermark was lifted to `limit` by an idle release.
    pub fn lift(&mut self, limit: i64) {
        self.watermark = Some(self.watermark.map_or(limit, |w| w.max(limit)));
    }

    /// Recomputes the watermark from the active sources; true when it rose. It does not move
    /// while an active source has no confirmed time, or when no source is active.
    fn recompute(&mut self) -> bool {
        let allowance = self.cfg.max_out_of_orderness_ns;
        let mut min: Option<i64> = None;
        for s in self.sources.values().filter(|s| !s.idle) {
            match s.confirmed_max() {
                Some(m) => {
                    let w = m.saturating_sub(allowance);
                    min = Some(min.map_or(w, |x| x.min(w)));
                }
                None => return false,
            }
        }
        match (min, self.watermark) {
            (Some(m), Some(w)) if m > w => {
                self.watermark = Some(m);
                true
            }
            (Some(m), None) => {
                self.watermark = Some(m);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const H: i64 = 3600 * S;

    fn clocks() -> (Watermarks, Instant) {
        (Watermarks::new(ClockConfig::with_allowance(2 * S)), Instant::now())
    }

    fn verdicts(w: &mut Watermarks, id: SourceId, now: Instant, ts: &[i64]) -> Vec<Verdict> {
        ts.iter().map(|t| w.observe(id, *t, now).verdict).collect()
    }

    /// The watermark of today's single-source rule (max seen minus the allowance), for
    /// comparison.
    fn single_source_reference(ts: &[i64], allowance: i64) -> Vec<(bool, Option<i64>)> {
        let mut max: Option<i64> = None;
        ts.iter()
            .map(|t| {
                let late = max.is_some_and(|m| *t < m - allowance);
                if !late {
                    max = Some(max.map_or(*t, |m| m.max(*t)));
                }
                (late, max.map(|m| m - allowance))
            })
            .collect()
    }

    #[test]
    fn one_in_order_source_matches_the_single_watermark_from_its_second_line_on() {
        let (mut w, now) = clocks();
        let ts = [10 * S, 9 * S, 12 * S, 7 * S, 13 * S, 13 * S, 20 * S, 17 * S, 18 * S];
        let reference = single_source_reference(&ts, 2 * S);
        for (i, t) in ts.iter().enumerate() {
            let v = w.observe(0, *t, now).verdict;
            if i == 0 {
                assert_eq!(v, Verdict::Held { outlier_ns: None }, "first line: not confirmed yet");
                assert_eq!(w.watermark(), None);
                continue;
            }
            assert_eq!(matches!(v, Verdict::Late { .. }), reference[i].0, "line {i}");
            assert_eq!(w.watermark(), reference[i].1, "line {i}");
        }
    }

    #[test]
    fn the_watermark_is_the_minimum_over_active_sources() {
        let (mut w, now) = clocks();
        verdicts(&mut w, 1, now, &[100 * S, 101 * S]);
        assert_eq!(w.watermark(), Some(99 * S));
        w.open(2, now);
        verdicts(&mut w, 1, now, &[150 * S]);
        assert_eq!(w.watermark(), Some(99 * S), "source 2 has no time yet: it holds the watermark");
        verdicts(&mut w, 2, now, &[110 * S, 111 * S]);
        assert_eq!(w.watermark(), Some(109 * S));
        // Source 2 is 40 s behind source 1, yet none of its in-order events is late.
        assert_eq!(verdicts(&mut w, 2, now, &[112 * S, 130 * S]), vec![Verdict::OnTime; 2]);
        assert_eq!(w.watermark(), Some(128 * S));
        assert!(w.close(2));
        assert_eq!(w.watermark(), Some(148 * S), "a closed source no longer holds it");
    }

    #[test]
    fn idle_sources_stop_holding_the_watermark_and_come_back() {
        let (mut w, t0) = clocks();
        w.open(1, t0);
        w.open(2, t0);
        verdicts(&mut w, 1, t0, &[100 * S, 100 * S]);
        assert_eq!(w.watermark(), None, "source 2 has no time yet");
        verdicts(&mut w, 2, t0, &[50 * S, 50 * S]);
        assert_eq!(w.watermark(), Some(48 * S));
        let t1 = t0 + Duration::from_secs(4);
        w.arrive(1, t1);
        verdicts(&mut w, 1, t1, &[101 * S]);
        assert!(!w.expire_idle(t1));
        assert_eq!(w.next_idle_at(), Some(t0 + DEFAULT_SOURCE_IDLE_TIMEOUT));
        let t2 = t0 + DEFAULT_SOURCE_IDLE_TIMEOUT;
        assert!(w.expire_idle(t2), "source 2 silent for 5 s");
        assert_eq!(w.watermark(), Some(99 * S));
        assert_eq!(w.counts(), (2, 1));
        // It comes back, behind: its events are late, and it holds the watermark again.
        w.arrive(2, t2);
        assert_eq!(w.observe(2, 51 * S, t2).verdict, Verdict::Late { behind_ns: 48 * S });
        verdicts(&mut w, 1, t2, &[110 * S]);
        assert_eq!(w.watermark(), Some(99 * S));
    }

    #[test]
    fn a_future_first_line_does_not_set_the_clock() {
        for outlier in [H, 200 * 365 * 24 * H] {
            let (mut w, now) = clocks();
            let base = 1_000_000 * S;
            assert_eq!(w.observe(0, base + outlier, now).verdict, Verdict::Held { outlier_ns: None });
            assert_eq!(w.observe(0, base, now).verdict, Verdict::Held { outlier_ns: None });
            let o = w.observe(0, base + S, now);
            assert_eq!(o.verdict, Verdict::OnTime);
            assert_eq!(o.outliers_found, 1);
            assert_eq!(w.watermark(), Some(base - S));
            assert_eq!(verdicts(&mut w, 0, now, &[base + 2 * S, base]), vec![Verdict::OnTime; 2]);
        }
    }

    #[test]
    fn one_outlier_anywhere_changes_nothing() {
        let ts: Vec<i64> = (0..100).map(|i| 1_000 * S + i * S / 2).collect();
        for at in [1, 50, 99] {
            for outlier in [H, -H, 7_258_118_400_000 * 1_000_000] {
                let (mut w, now) = clocks();
                let (mut reference, _) = clocks();
                let mut with: Vec<i64> = ts.clone();
                with.insert(at, if outlier > 0 { ts[at] + outlier } else { outlier });
                let mut seen = Vec::new();
                for t in &with {
                    let v = w.observe(0, *t, now).verdict;
                    if *t == with[at] {
                        assert!(matches!(v, Verdict::Held { .. } | Verdict::Late { .. }), "{v:?}");
                    } else {
                        seen.push((v, w.watermark()));
                    }
                }
                let expected: Vec<_> =
                    ts.iter().map(|t| (reference.observe(0, *t, now).verdict, reference.watermark())).collect();
                assert_eq!(seen, expected, "outlier {outlier} at {at}");
            }
        }
    }

    #[test]
    fn a_jump_is_followed_after_enough_outliers_in_a_row() {
        let cfg = ClockConfig { confirm_events: 10, ..ClockConfig::with_allowance(2 * S) };
        let mut w = Watermarks::new(cfg);
        let now = Instant::now();
        verdicts(&mut w, 0, now, &[100 * S, 101 * S]);
        let day = 24 * H;
        for i in 0..9 {
            let v = w.observe(0, day + i * S, now).verdict;
            assert!(matches!(v, Verdict::Held { outlier_ns: Some(_) }), "{i}: {v:?}");
        }
        assert_eq!(w.watermark(), Some(99 * S));
        let o = w.observe(0, day + 9 * S, now);
        assert_eq!(o.jump, Some(Jump { from: 101 * S, to: day, events: 10, after: Duration::ZERO }));
        assert_eq!(o.verdict, Verdict::OnTime);
        assert_eq!(w.watermark(), Some(day + 7 * S));
    }

    #[test]
    fn an_honest_event_between_outliers_restarts_the_count() {
        let cfg = ClockConfig { confirm_events: 3, ..ClockConfig::with_allowance(2 * S) };
        let mut w = Watermarks::new(cfg);
        let now = Instant::now();
        verdicts(&mut w, 0, now, &[100 * S, 101 * S]);
        for i in 0..50 {
            w.observe(0, 10 * H + i, now);
            w.observe(0, 10 * H + i, now);
            let o = w.observe(0, 102 * S + i, now);
            assert_eq!(o.jump, None);
            assert_eq!(o.verdict, Verdict::OnTime);
        }
        assert_eq!(w.watermark(), Some(100 * S + 49));
    }

    #[test]
    fn a_jump_is_followed_after_the_confirm_time() {
        let (mut w, t0) = clocks();
        verdicts(&mut w, 0, t0, &[100 * S, 101 * S]);
        assert!(matches!(w.observe(0, 10 * H, t0).verdict, Verdict::Held { outlier_ns: Some(_) }));
        let later = t0 + DEFAULT_OUTLIER_CONFIRM_TIME;
        let o = w.observe(0, 10 * H + S, later);
        assert_eq!(o.jump.map(|j| (j.to, j.events)), Some((10 * H, 2)));
    }

    #[test]
    fn a_quiet_real_time_source_may_move_on_as_fast_as_the_wall_clock() {
        let (mut w, t0) = clocks();
        verdicts(&mut w, 0, t0, &[100 * S, 100 * S]);
        // Ten minutes later (wall clock), an event ten minutes later (event time): not an outlier.
        let later = t0 + Duration::from_secs(600);
        assert_eq!(w.observe(0, 700 * S, later).verdict, Verdict::OnTime);
        assert_eq!(w.watermark(), Some(698 * S));
        // But not an hour ahead of that.
        assert!(matches!(w.observe(0, 700 * S + H, later).verdict, Verdict::Held { outlier_ns: Some(_) }));
    }

    #[test]
    fn idle_release_limit_is_the_slowest_active_source() {
        let (mut w, t0) = clocks();
        assert_eq!(w.idle_release_limit(), None);
        verdicts(&mut w, 1, t0, &[100 * S, 100 * S]);
        verdicts(&mut w, 2, t0, &[90 * S, 90 * S]);
        w.observe(1, 100 * S + H, t0); // an outlier is never a limit
        assert_eq!(w.idle_release_limit(), Some(90 * S));
        w.expire_idle(t0 + DEFAULT_SOURCE_IDLE_TIMEOUT);
        assert_eq!(w.idle_release_limit(), Some(100 * S), "none active: the largest");
        w.close(1);
        w.close(2);
        assert_eq!(w.idle_release_limit(), Some(100 * S), "closed sources are remembered");
        w.lift(100 * S);
        assert_eq!(w.watermark(), Some(100 * S));
    }

    #[test]
    fn a_late_first_event_still_confirms_its_source() {
        let (mut w, now) = clocks();
        verdicts(&mut w, 1, now, &[100 * S, 100 * S]);
        // Source 2 starts behind the watermark: late, but its clock is confirmed, so it does
        // not hold the watermark for ever.
        assert_eq!(verdicts(&mut w, 2, now, &[10 * S, 10 * S]), vec![Verdict::Late { behind_ns: 88 * S }; 2]);
        assert_eq!(w.watermark(), Some(98 * S));
        verdicts(&mut w, 2, now, &[200 * S]);
        verdicts(&mut w, 1, now, &[300 * S]);
        assert_eq!(w.watermark(), Some(198 * S));
    }
}
