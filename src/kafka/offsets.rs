//! Which Kafka offset each input line came from, and the offset a checkpoint may commit.
//!
//! Lines get global numbers as the feeder hands them over; a partition's lines are a rising
//! subsequence of them, and its offsets rise too (with gaps: compaction, transaction markers).
//! Runs of consecutive lines with consecutive offsets are kept as one entry, so a partition read
//! in batches costs one entry per batch, however many lines it holds.
//!
//! Bounded: past [`MAX_RUNS`] entries (a commit held back for long, by a partial sequence without
//! `maxspan`, on a partition read in small batches), the two oldest entries are merged into a
//! coarse one that answers its first offset for every line it covers: earlier than exact, so a
//! commit can only replay more, never skip a needed record.

use std::collections::VecDeque;

/// Entries kept per partition at most (24 bytes each).
pub const MAX_RUNS: usize = 1 << 16;

/// Lines `line..line + len` came from offsets `offset..offset + len` (exact), or from offsets at
/// or after `offset` (coarse: merged, see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    line: u64,
    offset: i64,
    len: u64,
    exact: bool,
}

/// The lines of one partition handed over and not yet forgotten, with their offsets.
#[derive(Debug, Default)]
pub struct LineOffsets {
    runs: VecDeque<Run>,
}

impl LineOffsets {
    /// Records that `line` came from `offset` (both rising from call to call).
    pub fn push(&mut self, line: u64, offset: i64) {
        if let Some(last) = self.runs.back_mut() {
            if last.exact && last.line + last.len == line && last.offset + last.len as i64 == offset {
                last.len += 1;
                return;
            }
        }
        if self.runs.len() >= MAX_RUNS {
            if let (Some(a), Some(b)) = (self.runs.pop_front(), self.runs.pop_front()) {
                self.runs.push_front(Run {
                    line: a.line,
                    offset: a.offset,
                    len: b.line + b.len - a.line,
                    exact: false,
                });
            }
        }
        self.runs.push_back(Run { line, offset, len: 1, exact: true });
    }

    /// The offset of the first recorded line at or after `line`, if any.
    pub fn offset_at_or_after(&self, line: u64) -> Option<i64> {
        // The first run that ends after `line`.
        let i = self.runs.partition_point(|r| r.line + r.len <= line);
        let r = self.runs.get(i)?;
        Some(if line <= r.line || !r.exact { r.offset } else { r.offset + (line - r.line) as i64 })
    }

    /// Forgets the lines before `line` (they will not be asked about again).
    pub fn forget_before(&mut self, line: u64) {
        while let Some(r) = self.runs.front_mut() {
            if r.line + r.len <= line {
                self.runs.pop_front();
            } else {
                if r.line < line && r.exact {
                    let cut = line - r.line;
                    r.line += cut;
                    r.offset += cut as i64;
                    r.len -= cut;
                }
                break;
            }
        }
    }

    /// Number of runs kept (for tests and memory accounting).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

/// The offset to commit for a partition after a checkpoint: the offset of the oldest line the
/// pipeline still needs (`needed_line`, if it holds any line of the partition), else the offset
/// after the last line handed over before the checkpoint (`next_offset`); never past either.
pub fn commit_offset(lines: &LineOffsets, needed_line: Option<u64>, next_offset: i64) -> i64 {
    match needed_line.and_then(|l| lines.offset_at_or_after(l)) {
        Some(o) => o.min(next_offset),
        None => next_offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_lines_and_offsets_share_a_run() {
        let mut l = LineOffsets::default();
        for i in 0..100 {
            l.push(10 + i, 500 + i as i64);
        }
        assert_eq!(l.runs(), 1);
        l.push(200, 600); // another partition's lines came between
        l.push(201, 603); // a gap in offsets (compaction)
        assert_eq!(l.runs(), 3);
        assert_eq!(l.offset_at_or_after(0), Some(500));
        assert_eq!(l.offset_at_or_after(57), Some(547));
        assert_eq!(l.offset_at_or_after(110), Some(600));
        assert_eq!(l.offset_at_or_after(201), Some(603));
        assert_eq!(l.offset_at_or_after(202), None);
    }

    #[test]
    fn forgetting_keeps_the_lines_after() {
        let mut l = LineOffsets::default();
        for i in 0..10 {
            l.push(i, 100 + i as i64);
        }
        l.push(20, 200);
        l.forget_before(4);
        assert_eq!(l.offset_at_or_after(0), Some(104));
        l.forget_before(15);
        assert_eq!(l.offset_at_or_after(0), Some(200));
        l.forget_before(21);
        assert_eq!(l.runs(), 0);
    }

    #[test]
    fn past_the_cap_old_entries_merge_and_answer_earlier_offsets_only() {
        let mut l = LineOffsets::default();
        // Every line its own entry (lines two apart).
        for i in 0..(MAX_RUNS as u64 + 10) {
            l.push(i * 2, i as i64 * 3);
        }
        assert!(l.runs() <= MAX_RUNS + 1, "{}", l.runs());
        for line in [0u64, 1, 5, 40, 1000, 100_000, 2 * (MAX_RUNS as u64 + 9)] {
            let exact = line.div_ceil(2) as i64 * 3;
            let got = l.offset_at_or_after(line).unwrap();
            assert!(got <= exact, "line {line}: {got} > {exact}");
        }
        // The newest entries stay exact.
        let last = 2 * (MAX_RUNS as u64 + 9);
        assert_eq!(l.offset_at_or_after(last), Some((MAX_RUNS as i64 + 9) * 3));
    }

    #[test]
    fn the_commit_never_passes_a_needed_line_nor_what_was_handed_over() {
        let mut l = LineOffsets::default();
        for i in 0..10 {
            l.push(i * 2, 40 + i as i64);
        }
        assert_eq!(commit_offset(&l, Some(7), 50), 44);
        assert_eq!(commit_offset(&l, None, 50), 50);
        assert_eq!(commit_offset(&l, Some(100), 50), 50);
        assert_eq!(commit_offset(&l, Some(0), 45), 40);
    }
}
