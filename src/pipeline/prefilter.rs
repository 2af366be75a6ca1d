//! The prefilter: skip the JSON parse of a line whose raw bytes prove that it cannot match any
//! stage (or `until` clause) of any loaded rule, while still reading its timestamp so the
//! watermark sees every line.
//!
//! From each compiled stage it takes the literals every matching event must contain
//! ([`crate::eql::Stage::required_literals`]: a conjunction of clauses, each a set of string
//! values or value prefixes, exact or ASCII case-insensitive, from the category, `==`, `in`,
//! `in~`, `:`, `like`, `like~` and `and` / `or` of those). A JSON string value `v` without
//! escapes appears in the line as the bytes `"v"` (a prefix `p` as `"p`) followed, after its
//! closing quote and any whitespace, by anything but `:` (that would make it an object key: the
//! literal `"process"` does not match the key of `"process":{`). So a stage is possible only if
//! every clause has one of its quoted literals somewhere in the line as a value. One SIMD
//! multi-pattern scan (Teddy, from the aho-corasick crate) finds every quoted literal present;
//! when some literal ignores case, it scans an ASCII-lowercased copy of the line and checks the
//! exact literals against the line itself.
//!
//! It never skips a line that could match, and never changes what the rest of the pipeline sees:
//! - a line with a backslash (an escape could spell a value differently) is always parsed;
//! - a case-insensitive literal is only used when ASCII; a line with a character that folds to
//!   an ASCII letter (the Kelvin sign folds to `k`) is parsed when some such literal has it;
//! - a rule with a stage that has no required literal disables the prefilter altogether;
//! - a skipped line must have its timestamp as its first key, occurring once
//!   ([`LeadingTime`]); otherwise it is parsed. A skipped line is not validated: if it
//!   is not valid JSON, it could not have matched anyway, and its timestamp moves the watermark
//!   exactly as it does with `--no-prefilter`, where a line that fails to parse still gives the
//!   watermark the event time [`LeadingTime`] reads from it. So alerts are the same
//!   with the prefilter on and off; only the invalid-line counters differ (skipped lines are
//!   not classified).
//!
//! Whether the scan pays is measured while it runs ([`Adaptive`]): when the lines it skips do
//! not save more than the scans cost, it turns itself off (scanning one line in
//! [`adaptive::PROBE_EVERY`] to notice when that changes).

pub mod adaptive;

use aho_corasick::{packed, AhoCorasick, MatchKind};

pub use adaptive::{Adaptive, Tally};

use super::decode::LineTime;
use super::rawscan::{is_ws, LeadingTime};
use crate::ruleset::RuleSet;
use crate::time::Precision;

/// When more stages than this pass the anchor scan, one scan for every literal decides them,
/// instead of one scan per stage.
const MAX_STAGE_SCANS: usize = 2;

/// A literal a pattern stands for, with the bytes it must have in the line itself when the scan
/// is of the lowercased line (`None`: no check).
type Variant = (u32, Option<Box<[u8]>>);

/// A stage's requirement: every clause must have one of its literals present.
type Cnf = Vec<Vec<u32>>;

/// A literal as scanned for: its quoted bytes (`"text"` for a whole value, `"text` for a
/// prefix), folded when `ci`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Quoted {
    bytes: Vec<u8>,
    ci: bool,
}

/// The multi-pattern scan.
#[derive(Debug)]
enum Scanner {
    /// SIMD (Teddy), leftmost-longest.
    Packed(packed::Searcher),
    /// Aho-Corasick automaton (no SIMD available, or an overlapping scan is needed).
    Automaton(AhoCorasick),
}

/// One scan for a set of literals, and each stage's requirement over them.
#[derive(Debug)]
struct Level {
    scanner: Scanner,
    /// Scan the ASCII-lowercased line (some literal ignores case).
    lowered: bool,
    /// Per pattern: the patterns that are a prefix of it (itself included).
    prefixes_of: Vec<Vec<u32>>,
    /// Per pattern: the literals it stands for, with the bytes an exact literal must have in the
    /// line itself when the scan is of the lowercased line (`None`: no check).
    variants: Vec<Vec<Variant>>,
    literal_count: usize,
    /// Some pattern could start at a closing quote: scan with overlapping matches.
    overlapping: bool,
    stages: Vec<Cnf>,
    /// With a single stage: per literal, the clauses of that stage it is in.
    clauses_of: Option<Vec<Vec<u32>>>,
}

/// Per-thread scratch space of [`Prefilter::skip`].
#[derive(Debug, Default)]
pub struct Scratch {
    lowered: Vec<u8>,
    anchor: Vec<bool>,
    stage: Vec<bool>,
}

/// Non-ASCII characters that the evaluator's case folding ([`crate::eql::wildcard::fold_char`])
/// turns into an ASCII letter, with that letter: a value spelled with them can equal an ASCII
/// case-insensitive literal that lowercasing the line's bytes would not reveal.
const FOLDS_TO_ASCII: [(char, char); 1] = [('\u{212A}', 'k')];

/// The compiled prefilter.
#[derive(Debug)]
pub struct Prefilter {
    /// A cheap first scan for a few selective literals per stage (when the rules have them):
    /// most lines fail it and are skipped after scanning for a handful of patterns.
    anchor: Option<Level>,
    /// Every required literal of each stage, one scan per stage: decides, for the stages whose
    /// anchor a line passes, whether it can match.
    per_stage: Vec<Level>,
    /// Every required literal of every stage in one scan (when there is no anchor).
    full: Level,
    /// Lines with one of these byte strings are parsed ([`FOLDS_TO_ASCII`]).
    fold_traps: Vec<memchr::memmem::Finder<'static>>,
    timestamp: LeadingTime,
    adaptive: Adaptive,
}

/// Why the prefilter cannot be used for a rule set.
#[derive(Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// A stage has no required literal: any line might match it.
    StageWithoutTerms {
        /// The rule.
        rule_id: String,
    },
    /// The timestamp field is not a plain top-level key.
    NestedTimestampField,
    /// No rule loaded.
    NoRules,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::StageWithoutTerms { rule_id } => {
                write!(f, "rule {rule_id} has a stage without a required literal")
            }
            Unavailable::NestedTimestampField => write!(f, "the timestamp field is not a top-level key"),
            Unavailable::NoRules => write!(f, "no rule is loaded"),
        }
    }
}

/// Per stage: its clauses of quoted literals, and whether the first is the category.
type StageLiterals = (Vec<Vec<Quoted>>, bool);

impl Prefilter {
    /// Builds the prefilter for every stage and until clause of every rule.
    pub fn build(rules: &RuleSet, timestamp_field: &str, precision: Precision) -> Result<Prefilter, Unavailable> {
        if timestamp_field.contains('.') {
            return Err(Unavailable::NestedTimestampField);
        }
        if rules.rules.is_empty() {
            return Err(Unavailable::NoRules);
        }
        let mut stages: Vec<StageLiterals> = Vec::new();
        let mut folded_letters: Vec<char> = Vec::new();
        for rule in &rules.rules {
            for stage in rule.query.stages.iter().chain(rule.query.until.iter()) {
                let clauses = stage.required_literals();
                if clauses.is_empty() {
                    return Err(Unavailable::StageWithoutTerms { rule_id: rule.spec.rule_id.clone() });
                }
                let clauses = clauses
                    .into_iter()
                    .map(|clause| {
                        clause
                            .into_iter()
                            // A value with a quote, backslash or control character is escaped in
                            // JSON, so it only occurs in lines with a backslash, which are always
                            // parsed: such a literal is never present in a line that may be
                            // skipped (an empty clause then rules the stage out).
                            .filter(|lit| !lit.text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20))
                            .map(|lit| {
                                if lit.ci {
                                    folded_letters.extend(lit.text.chars().filter(char::is_ascii_alphabetic));
                                }
                                let mut p = Vec::with_capacity(lit.text.len() + 2);
                                p.push(b'"');
                                p.extend_from_slice(lit.text.as_bytes());
                                if lit.whole {
                                    p.push(b'"');
                                }
                                Quoted { bytes: p, ci: lit.ci }
                            })
                            .collect()
                    })
                    .collect();
                stages.push((clauses, stage.category().is_some()));
            }
        }
        let full = Level::build(stages.iter().map(|(c, _)| c.clone()).collect())?;
        // The anchor: per stage, its single-literal clauses other than the category (event
        // categories are broad by design), or else its smallest clause if it is small.
        let anchors: Option<Vec<Vec<Vec<Quoted>>>> = stages
            .iter()
            .map(|(clauses, has_category)| {
                let own = &clauses[usize::from(*has_category)..];
                let singles: Vec<Vec<Quoted>> = own.iter().filter(|c| c.len() <= 1).cloned().collect();
                if !singles.is_empty() {
                    return Some(singles);
                }
                own.iter().min_by_key(|c| c.len()).filter(|c| c.len() <= 4).map(|c| vec![c.clone()])
            })
            .collect();
        let anchor = match anchors {
            Some(a) => {
                let level = Level::build(a)?;
                (level.variants.len() * 2 <= full.variants.len()).then_some(level)
            }
            None => None,
        };
        let per_stage = match anchor {
            Some(_) => stages.iter().map(|(c, _)| Level::build(vec![c.clone()])).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let fold_traps = FOLDS_TO_ASCII
            .iter()
            .filter(|(_, ascii)| folded_letters.contains(ascii))
            .map(|(c, _)| memchr::memmem::Finder::new(c.to_string().as_bytes()).into_owned())
            .collect();
        Ok(Prefilter {
            anchor,
            per_stage,
            full,
            fold_traps,
            timestamp: LeadingTime::new(timestamp_field, precision),
            adaptive: Adaptive::new(),
        })
    }

    /// Number of distinct literals searched for.
    pub fn pattern_count(&self) -> usize {
        self.full.literal_count
    }

    /// Whether scanning pays, measured while the run goes ([`Adaptive`]).
    pub fn adaptive(&self) -> &Adaptive {
        &self.adaptive
    }

    /// True when some stage might match `line` (it must then be parsed). Only meaningful for
    /// lines without a backslash; others are parsed anyway.
    fn might_match(&self, line: &[u8], scratch: &mut Scratch) -> bool {
        if self.fold_traps.iter().any(|f| f.find(line).is_some()) {
            return true;
        }
        let Scratch { lowered, anchor, stage } = scratch;
        let lower = self.full.lowered || self.anchor.as_ref().is_some_and(|a| a.lowered);
        if lower {
            lowered.clear();
            lowered.extend(line.iter().map(u8::to_ascii_lowercase));
        }
        let Some(a) = &self.anchor else { return self.full.possible(line, lowered, anchor) };
        a.scan(line, lowered, anchor);
        // Usually no stage, else one or two: a scan for each of their literals only. With more
        // (many rules share anchors such as `exec`), one scan for every literal decides them all.
        let mut passed = (0..a.stages.len()).filter(|&s| a.stage_possible(s, anchor));
        let few: [Option<usize>; MAX_STAGE_SCANS + 1] = std::array::from_fn(|_| passed.next());
        if few[MAX_STAGE_SCANS].is_none() {
            return few.iter().flatten().any(|&s| self.per_stage[s].possible(line, lowered, stage));
        }
        self.full.scan(line, lowered, stage);
        (0..a.stages.len()).any(|s| a.stage_possible(s, anchor) && self.full.stage_possible(s, stage))
    }

    /// `Some(outcome)` when the line can be skipped (its timestamp, or why it has none);
    /// `None` when it must be parsed. `scratch` is reused between calls.
    pub fn skip(&self, line: &[u8], scratch: &mut Scratch) -> Option<LineTime> {
        if memchr::memchr(b'\\', line).is_some() || self.might_match(line, scratch) {
            return None;
        }
        Some(match self.timestamp.of(line)? {
            Ok(ts) => LineTime::At(ts),
            Err(reason) => LineTime::Invalid(reason),
        })
    }
}

/// Whether the string of a match at `line[start..end]` is a value rather than an object key: the
/// first byte after its closing quote that is not whitespace is not `:`. Scanned lines have no
/// backslash, so the closing quote is the match's last byte (a whole-value literal) or the next
/// quote after it; without one (an invalid line), a value.
#[inline]
fn is_value(line: &[u8], start: usize, end: usize) -> bool {
    let close = if end > start + 1 && line.get(end - 1) == Some(&b'"') {
        end - 1
    } else {
        match line.get(end..).and_then(|rest| memchr::memchr(b'"', rest)) {
            Some(i) => end + i,
            None => return true,
        }
    };
    let mut i = close + 1;
    while i < line.len() && is_ws(line[i]) {
        i += 1;
    }
    line.get(i) != Some(&b':')
}

impl Level {
    /// A scan for the literals of `stages` (per stage, its clauses of quoted literals).
    fn build(stages: Vec<Vec<Vec<Quoted>>>) -> Result<Level, Unavailable> {
        let mut literals: Vec<Quoted> = Vec::new();
        let mut literal_ids = hashbrown::HashMap::<Quoted, u32>::new();
        let mut cnfs = Vec::new();
        for clauses in stages {
            let mut cnf = Vec::new();
            for clause in clauses {
                let ids = clause
                    .into_iter()
                    .map(|q| {
                        let next = literals.len() as u32;
                        *literal_ids.entry(q.clone()).or_insert_with(|| {
                            literals.push(q);
                            next
                        })
                    })
                    .collect();
                cnf.push(ids);
            }
            cnfs.push(cnf);
        }
        let lowered = literals.iter().any(|q| q.ci);
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pattern_ids = hashbrown::HashMap::<Vec<u8>, usize>::new();
        let mut variants: Vec<Vec<Variant>> = Vec::new();
        for (id, q) in literals.iter().enumerate() {
            let key = if lowered { q.bytes.to_ascii_lowercase() } else { q.bytes.clone() };
            // An exact literal found in the lowercased line must be checked against the line
            // itself, unless it has no letter (then lowercasing changed nothing there).
            let check =
                (lowered && !q.ci && q.bytes.iter().any(u8::is_ascii_alphabetic)).then(|| q.bytes.clone().into());
            let next = patterns.len();
            let p = *pattern_ids.entry(key.clone()).or_insert_with(|| {
                patterns.push(key);
                variants.push(Vec::new());
                next
            });
            variants[p].push((id as u32, check));
        }
        // Every pattern starts with a quote. In a valid JSON line without backslashes, a quote
        // that begins a match is then the opening quote of a string (a closing quote is only
        // followed by `:`, `,`, `}`, `]` or whitespace, which no pattern has second), and a
        // match never runs past that string's closing quote. So matches of different strings
        // never overlap and a leftmost-longest scan, with every pattern that is a prefix of the
        // reported one counted as present too, finds the same set as an overlapping scan. A
        // pattern whose second byte could follow a closing quote needs the overlapping scan.
        // (In an invalid line the scan may miss a literal: the line cannot match anyway.)
        let overlapping =
            patterns.iter().any(|p| p.get(1).is_some_and(|b| matches!(b, b':' | b',' | b'}' | b']') || is_ws(*b)));
        let prefixes_of = patterns
            .iter()
            .map(|p| (0..patterns.len()).filter(|&q| p.starts_with(&patterns[q])).map(|q| q as u32).collect())
            .collect();
        // Teddy (SIMD) when possible: the patterns all start with a quote, which defeats the
        // automaton's start-byte prefilter.
        let packed = (!overlapping && !patterns.is_empty())
            .then(|| {
                packed::Config::new()
                    .match_kind(packed::MatchKind::LeftmostLongest)
                    .heuristic_pattern_limits(false)
                    .builder()
                    .extend(&patterns)
                    .build()
            })
            .flatten();
        let scanner = match packed {
            Some(s) => Scanner::Packed(s),
            None => {
                let kind = if overlapping { MatchKind::Standard } else { MatchKind::LeftmostLongest };
                Scanner::Automaton(
                    AhoCorasick::builder().match_kind(kind).build(&patterns).map_err(|_| Unavailable::NoRules)?,
                )
            }
        };
        let clauses_of = match &cnfs[..] {
            [cnf] => {
                let mut of = vec![Vec::new(); literals.len()];
                for (c, clause) in cnf.iter().enumerate() {
                    for &l in clause {
                        of[l as usize].push(c as u32);
                    }
                }
                Some(of)
            }
            _ => None,
        };
        Ok(Level {
            scanner,
            lowered,
            prefixes_of,
            variants,
            literal_count: literals.len(),
            overlapping,
            stages: cnfs,
            clauses_of,
        })
    }

    /// Marks in `present` the literals found in `line` as string values (`lowered`: the line
    /// lowercased, when this level scans that).
    fn scan(&self, line: &[u8], lowered: &[u8], present: &mut Vec<bool>) {
        self.scan_until(line, lowered, present, |_| false);
    }

    /// [`Level::scan`], stopping early when `done` (called with each literal the first time it
    /// is found) returns true; then true.
    fn scan_until(
        &self,
        line: &[u8],
        lowered: &[u8],
        present: &mut Vec<bool>,
        mut done: impl FnMut(u32) -> bool,
    ) -> bool {
        present.clear();
        present.resize(self.literal_count, false);
        let hay = if self.lowered { lowered } else { line };
        // Marks the literals of a match (and, `with_prefixes`, of the patterns that are a prefix of
        // it) when its string is a value; true when `done` says so.
        let mut mark = |pattern: usize, start: usize, end: usize, with_prefixes: bool| {
            if !is_value(line, start, end) {
                return false;
            }
            let one = [pattern as u32];
            let patterns: &[u32] = if with_prefixes { &self.prefixes_of[pattern] } else { &one };
            let mut stop = false;
            for &q in patterns {
                for (lit, check) in &self.variants[q as usize] {
                    if !present[*lit as usize]
                        && check.as_ref().is_none_or(|b| line.get(start..start + b.len()) == Some(&b[..]))
                    {
                        present[*lit as usize] = true;
                        stop |= done(*lit);
                    }
                }
            }
            stop
        };
        match &self.scanner {
            Scanner::Packed(s) => s.find_iter(hay).any(|m| mark(m.pattern().as_usize(), m.start(), m.end(), true)),
            Scanner::Automaton(ac) if self.overlapping => {
                ac.find_overlapping_iter(hay).any(|m| mark(m.pattern().as_usize(), m.start(), m.end(), false))
            }
            Scanner::Automaton(ac) => ac.find_iter(hay).any(|m| mark(m.pattern().as_usize(), m.start(), m.end(), true)),
        }
    }

    /// True when every clause of stage `s` has a literal in `present` (from [`Level::scan`]).
    fn stage_possible(&self, s: usize, present: &[bool]) -> bool {
        self.stages[s].iter().all(|clause| clause.iter().any(|p| present[*p as usize]))
    }

    /// True when some stage's clauses all have a literal present in `line`. A level of one stage
    /// stops scanning as soon as its clauses all hold (a line that must be parsed anyway).
    fn possible(&self, line: &[u8], lowered: &[u8], present: &mut Vec<bool>) -> bool {
        if let ([cnf], Some(clauses_of)) = (&self.stages[..], &self.clauses_of) {
            let mut held: smallvec::SmallVec<[bool; 16]> = smallvec::smallvec![false; cnf.len()];
            let mut left = cnf.len();
            return self.scan_until(line, lowered, present, |lit| {
                for &c in &clauses_of[lit as usize] {
                    if !std::mem::replace(&mut held[c as usize], true) {
                        left -= 1;
                    }
                }
                left == 0
            }) || self.stage_possible(0, present);
        }
        self.scan(line, lowered, present);
        (0..self.stages.len()).any(|s| self.stage_possible(s, present))
    }
}

/// What the prefilter can do for one rule, for `eqlstream rules list`: the number of distinct
/// literals its stages (and `until`) require, or `None` when a stage requires none, in which
/// case [`Prefilter::build`] refuses any rule set that holds the rule
/// ([`Unavailable::StageWithoutTerms`]). Reads the same [`crate::eql::Stage::required_literals`];
/// changes nothing in matching.
pub fn rule_literals(rule: &crate::ruleset::Rule) -> Option<usize> {
    let mut seen: Vec<(String, bool)> = Vec::new();
    for stage in rule.query.stages.iter().chain(rule.query.until.iter()) {
        let clauses = stage.required_literals();
        if clauses.is_empty() {
            return None;
        }
        for lit in clauses.into_iter().flatten() {
            let key = (lit.text, lit.whole);
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
    }
    Some(seen.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::InvalidReason;
    use crate::rules;

    /// `rule_literals` says `None` exactly for the rules that keep [`Prefilter::build`] from
    /// building (checked on every shared rule file, one rule at a time).
    #[test]
    fn rule_literals_agree_with_build() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules");
        let mut specs = rules::load_paths(&[dir]).expect("shared rules load").rules;
        for (id, query) in [
            ("insensitive", "any where process.name : \"curl\""),
            ("until-without", "sequence [process where process.name == \"a\"] [any where true] until [any where true]"),
            ("until-with", "sequence [process where true] [file where true] until [network where true]"),
        ] {
            specs.push(rules::RuleSpec { rule_id: id.into(), query: query.into(), ..Default::default() });
        }
        let (mut with, mut without) = (0, 0);
        for spec in specs {
            let set = RuleSet::compile(vec![spec]).expect("shared rules compile");
            let built = Prefilter::build(&set, "@timestamp", Precision::Millis);
            match rule_literals(&set.rules[0]) {
                Some(n) => {
                    with += 1;
                    assert!(n > 0);
                    assert!(built.is_ok(), "{}", set.rules[0].spec.rule_id);
                }
                None => {
                    without += 1;
                    assert!(matches!(built, Err(Unavailable::StageWithoutTerms { .. })));
                }
            }
        }
        assert!(with > 0 && without > 0, "both kinds are checked: {with} with literals, {without} without");
    }

    fn seed() -> RuleSet {
        let loaded = rules::embedded().expect("embedded rules load");
        RuleSet::compile(loaded.rules).expect("embedded rules compile")
    }

    #[test]
    fn seed_rule_prefilter_skips_only_impossible_lines() {
        let pf = Prefilter::build(&seed(), "@timestamp", Precision::Millis).unwrap();
        let mut scratch = Scratch::default();
        let network =
            br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["network"],"action":"connect"}}"#;
        assert!(matches!(pf.skip(network, &mut scratch), Some(LineTime::At(_))));
        // A creation needs a downloader (or a shell with a downloader argument) and a path
        // under one of the rule's prefixes to be possible.
        let creation =
            br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["file"],"action":"creation"}}"#;
        assert!(matches!(pf.skip(creation, &mut scratch), Some(LineTime::At(_))));
        let download = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["file"],"action":"creation"},"process":{"name":"curl"},"file":{"path":"/tmp/x"}}"#;
        assert_eq!(pf.skip(download, &mut scratch), None);
        let by_shell = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["file"],"action":"creation"},"process":{"name":"sh","args":["sh","/usr/bin/wget"]},"file":{"path":"/home/u/x"}}"#;
        assert_eq!(pf.skip(by_shell, &mut scratch), None);
        let elsewhere = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["file"],"action":"creation"},"process":{"name":"curl"},"file":{"path":"/etc/x"}}"#;
        assert!(matches!(pf.skip(elsewhere, &mut scratch), Some(LineTime::At(_))));
        let exec = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["process"],"type":["start"],"action":"exec"},"process":{"parent":{"name":"bash"}}}"#;
        assert_eq!(pf.skip(exec, &mut scratch), None);
        let escaped = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["fil\u0065"]}}"#;
        assert_eq!(pf.skip(escaped, &mut scratch), None);
        // Without a leading timestamp only the parser can tell.
        let no_ts = br#"{"event":{"category":["network"]}}"#;
        assert_eq!(pf.skip(no_ts, &mut scratch), None);
        let bad_ts = br#"{"@timestamp":"yesterday"}"#;
        assert_eq!(pf.skip(bad_ts, &mut scratch), Some(LineTime::Invalid(InvalidReason::BadTimestamp)));
        let truncated = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"#;
        // Not validated: it cannot match, and its timestamp is what `--no-prefilter` reads too.
        assert!(matches!(pf.skip(truncated, &mut scratch), Some(LineTime::At(_))));
        let millis = br#"{"@timestamp":1772704800000}"#;
        assert_eq!(pf.skip(millis, &mut scratch), Some(LineTime::At(1_772_704_800_000_000_000)));
    }

    #[test]
    fn nested_timestamp_field_disables_the_prefilter() {
        assert_eq!(
            Prefilter::build(&seed(), "event.ingested", Precision::Millis).unwrap_err(),
            Unavailable::NestedTimestampField
        );
    }

    proptest::proptest! {
        /// Soundness: a line the prefilter skips matches no stage of the seed rule when parsed.
        /// The events mix the rule's own values (whole, as prefixes, in other case), keys that
        /// look like values, nested and dotted spellings and arrays, so most lines are close
        /// calls.
        #[test]
        fn a_skipped_line_never_matches(fields in proptest::collection::vec((
                proptest::sample::select(vec![
                    "event.action", "event.type", "event.category", "process.name", "process.args",
                    "process.parent.name", "file.path", "file.name", "user.id", "container.id", "x",
                ]),
                proptest::collection::vec(proptest::sample::select(vec![
                    "creation", "exec", "deletion", "start", "file", "process", "curl", "wget", "sh",
                    "bash", "busybox", "rm", "/tmp/x", "/tmp/", "/TMP/x", "/home/u/f", "/home/u",
                    "/usr/bin/curl", "which", "Exec", "exe", "execs", "event.action", "process", "",
                ]), 1..3),
                proptest::bool::ANY,
                proptest::bool::ANY,
            ), 0..14)) {
            let rules = seed();
            let pf = Prefilter::build(&rules, "@timestamp", Precision::Millis).unwrap();
            let mut obj = serde_json::Map::new();
            obj.insert("@timestamp".into(), "2026-03-05T10:00:00.000Z".into());
            for (path, vals, as_array, dotted) in fields {
                let v: serde_json::Value = if as_array || vals.len() > 1 {
                    vals.iter().map(|v| serde_json::Value::from(*v)).collect()
                } else {
                    vals[0].into()
                };
                if dotted {
                    obj.insert(path.to_string(), v);
                } else {
                    let mut at = &mut obj;
                    let segs: Vec<&str> = path.split('.').collect();
                    for seg in &segs[..segs.len() - 1] {
                        let e = at.entry(seg.to_string()).or_insert_with(|| serde_json::json!({}));
                        if !e.is_object() {
                            *e = serde_json::json!({});
                        }
                        at = e.as_object_mut().unwrap();
                    }
                    at.insert(segs[segs.len() - 1].to_string(), v);
                }
            }
            let line = serde_json::to_string(&obj).unwrap();
            if pf.skip(line.as_bytes(), &mut Scratch::default()).is_some() {
                let mut decoder = crate::event::Decoder::new(&rules.fields);
                let ev = decoder.decode(line.as_bytes()).unwrap();
                for stage in &rules.rules[0].query.stages {
                    proptest::prop_assert!(!stage.matches(&ev), "skipped, but a stage matches: {}", line);
                }
            }
        }
    }

    /// The 16 prebuilt rules of tests/data/rules and the 66 Defend for Containers production
    /// rules (tests/data/production/cloud_defend), compiled together.
    fn many() -> &'static RuleSet {
        static SET: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
        SET.get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
            let mut specs = rules::load_paths(&[root.join("rules")]).expect("prebuilt rules load").rules;
            let d4c = rules::load_paths(&[root.join("production/cloud_defend")]).expect("production rules load").rules;
            specs.extend(d4c.into_iter().filter(|r| !specs.iter().any(|s| s.rule_id == r.rule_id)).collect::<Vec<_>>());
            RuleSet::compile(specs).expect("rules compile")
        })
    }

    /// A line made of the rules' own literals: as values (whole, prefixes completed, in another
    /// case, with a Kelvin sign for `k`), as object keys, nested or dotted, in arrays.
    fn close_call(set: &RuleSet, seed: u64) -> String {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let stages: Vec<&crate::eql::Stage> =
            set.rules.iter().flat_map(|r| r.query.stages.iter().chain(r.query.until.iter())).collect();
        let paths = [
            "event.category",
            "event.type",
            "event.action",
            "host.os.type",
            "process.name",
            "process.args",
            "process.parent.name",
            "process.executable",
            "process.parent.executable",
            "file.path",
            "file.name",
            "process.command_line",
            "data_stream.dataset",
            "x",
        ];
        let mut obj = serde_json::Map::new();
        obj.insert("@timestamp".into(), "2026-03-05T10:00:00.000Z".into());
        if rng.random_bool(0.8) {
            obj.insert("container.id".into(), "0a1b".into());
        }
        if rng.random_bool(0.5) {
            obj.insert("process.interactive".into(), rng.random_bool(0.5).into());
        }
        // The terms of one stage (one per clause, so that it nearly matches), some of others;
        // mostly in their own field.
        let own = stages[rng.random_range(0..stages.len())].required_terms();
        let mut terms: Vec<crate::eql::Term> =
            own.into_iter().filter_map(|c| c.get(rng.random_range(0..c.len().max(1))).cloned()).collect();
        for _ in 0..rng.random_range(0..4) {
            let other = stages[rng.random_range(0..stages.len())].required_terms();
            terms.extend(other.into_iter().filter_map(|c| c.last().cloned()));
        }
        for t in terms {
            let lit = crate::eql::RawLiteral { text: t.value.to_string(), whole: t.whole, ci: t.ci };
            let mut v = lit.text.clone();
            if !lit.whole {
                v.push_str(["", "x", "/y", " -z"][rng.random_range(0..4)]);
            }
            if lit.ci || rng.random_bool(0.05) {
                v = v.chars().map(|c| if rng.random_bool(0.5) { c.to_ascii_uppercase() } else { c }).collect();
                if rng.random_bool(0.1) {
                    v = v.replacen(['k', 'K'], "\u{212A}", 1);
                }
            }
            let path =
                if rng.random_bool(0.8) { set.fields.path(t.field) } else { paths[rng.random_range(0..paths.len())] };
            let value: serde_json::Value = match rng.random_range(0..12) {
                0 => serde_json::json!({ v.clone(): 1 }),
                1 => serde_json::json!([v.clone(), "other"]),
                _ => v.clone().into(),
            };
            if rng.random_bool(0.3) {
                obj.insert(path.to_string(), value);
            } else {
                let segs: Vec<&str> = path.split('.').collect();
                let mut at = &mut obj;
                for seg in &segs[..segs.len() - 1] {
                    let e = at.entry(seg.to_string()).or_insert_with(|| serde_json::json!({}));
                    if !e.is_object() {
                        *e = serde_json::json!({});
                    }
                    at = e.as_object_mut().expect("made an object above");
                }
                at.insert(segs[segs.len() - 1].to_string(), value);
            }
        }
        serde_json::Value::Object(obj).to_string()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, ..Default::default() })]

        /// Soundness with many rules: a line the prefilter of the 16 prebuilt and 66 Defend for
        /// Containers rules skips matches no stage of any of them when parsed.
        #[test]
        fn a_skipped_line_never_matches_with_many_rules(seed in proptest::prelude::any::<u64>()) {
            let set = many();
            let pf = Prefilter::build(set, "@timestamp", Precision::Millis).expect("the rules have literals");
            let line = close_call(set, seed);
            if pf.skip(line.as_bytes(), &mut Scratch::default()).is_some() {
                let mut decoder = crate::event::Decoder::new(&set.fields);
                let ev = decoder.decode(line.as_bytes()).expect("generated lines are JSON");
                for rule in &set.rules {
                    for stage in rule.query.stages.iter().chain(rule.query.until.iter()) {
                        proptest::prop_assert!(!stage.matches(&ev), "skipped, but {} matches: {}", rule.spec.rule_id, line);
                    }
                }
            }
        }
    }

    #[test]
    fn literals_match_values_never_keys_and_ignore_case_when_asked() {
        let spec = |q: &str| crate::rules::RuleSpec { rule_id: "r".into(), query: q.into(), ..Default::default() };
        let set = RuleSet::compile(vec![spec(r#"process where process.name : "KILL" and process.args == "-O""#)])
            .expect("compiles");
        let pf = Prefilter::build(&set, "@timestamp", Precision::Millis).expect("has literals");
        let ts = r#"{"@timestamp":"2026-03-05T10:00:00.000Z","#;
        let skip = |rest: &str| pf.skip(format!("{ts}{rest}").as_bytes(), &mut Scratch::default()).is_some();
        assert!(!skip(r#""event":{"category":"process"},"process":{"name":"Kill","args":["-O"]}}"#));
        assert!(skip(r#""event":{"category":"process"},"process":{"name":"Kill","args":["-o"]}}"#), "== is exact");
        assert!(skip(r#""process":{"category":1},"kill":{"-O":1}}"#), "keys are not values");
        assert!(!skip(r#""event":{"category" : "process" },"process":{"name":"kILL" ,"args":"-O"}}"#));
        assert!(
            !skip(r#""event":{"category":"process"},"process":{"name":"ki\u006cl","args":"-O"}}"#),
            "escapes: parsed"
        );
        // The Kelvin sign folds to `k` (eql::wildcard::fold_char): such a line is parsed.
        assert!(!skip("\"event\":{\"category\":\"process\"},\"process\":{\"name\":\"\u{212A}ill\",\"args\":\"-O\"}}"));
    }

    /// The characters [`FOLDS_TO_ASCII`] lists are all those whose fold is an ASCII letter.
    #[test]
    fn only_the_kelvin_sign_folds_to_ascii() {
        let found: Vec<(char, char)> = (0x80u32..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter_map(|c| {
                let f = crate::eql::wildcard::fold_char(c);
                f.is_ascii().then_some((c, f))
            })
            .collect();
        assert_eq!(found, FOLDS_TO_ASCII);
    }

    /// The generated lines are close calls: the prefilter skips many, parses many, and some
    /// match a stage.
    #[test]
    fn close_calls_are_skipped_parsed_and_matched() {
        let set = many();
        let pf = Prefilter::build(set, "@timestamp", Precision::Millis).expect("the rules have literals");
        let mut decoder = crate::event::Decoder::new(&set.fields);
        let (mut skipped, mut matched) = (0, 0);
        for seed in 0..500 {
            let line = close_call(set, seed);
            if pf.skip(line.as_bytes(), &mut Scratch::default()).is_some() {
                skipped += 1;
            } else {
                let ev = decoder.decode(line.as_bytes()).expect("generated lines are JSON");
                let any = set.rules.iter().flat_map(|r| r.query.stages.iter()).any(|s| s.matches(&ev));
                matched += usize::from(any);
            }
        }
        eprintln!("{skipped} of 500 skipped, {matched} matching");
        assert!(skipped > 50 && skipped < 450 && matched > 10, "{skipped} skipped, {matched} matching");
    }
}
