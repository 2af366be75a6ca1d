//! The prefilter: skip the JSON parse of a line whose raw bytes prove that it cannot match any
//! stage (or `until` clause) of any loaded rule, while still reading its timestamp so the
//! watermark sees every line.
//!
//! From each compiled stage it takes the literals every matching event must contain
//! ([`crate::eql::Stage::required_literals`]: a conjunction of clauses, each a set of string
//! values or value prefixes, from the category, `==`, `in`, case-sensitive `like` and `and` /
//! `or` of those). A JSON string value `v` without escapes appears in the line as the bytes
//! `"v"` (a prefix `p` as `"p`), so a stage is possible only if every clause has one of its
//! quoted literals somewhere in the line. One SIMD multi-pattern scan (Teddy, from the
//! aho-corasick crate) finds every quoted literal present.
//!
//! It never skips a line that could match, and never changes what the rest of the pipeline sees:
//! - a line with a backslash (an escape could spell a value differently) is always parsed;
//! - case-insensitive operators give no literal (they never make a line skippable);
//! - a rule with a stage that has no required literal disables the prefilter altogether;
//! - a skipped line must have its timestamp as its first key, occurring once
//!   ([`LeadingTime`]); otherwise it is parsed. A skipped line is not validated: if it
//!   is not valid JSON, it could not have matched anyway, and its timestamp moves the watermark
//!   exactly as it does with `--no-prefilter`, where a line that fails to parse still gives the
//!   watermark the event time [`LeadingTime`] reads from it. So alerts are the same
//!   with the prefilter on and off; only the invalid-line counters differ (skipped lines are
//!   not classified).

use aho_corasick::{packed, AhoCorasick, MatchKind};

use super::decode::LineTime;
use super::rawscan::{is_ws, LeadingTime};
use crate::ruleset::RuleSet;
use crate::time::Precision;

/// A stage's requirement: every clause must have one of its patterns present.
type Cnf = Vec<Vec<usize>>;

/// The multi-pattern scan.
#[derive(Debug)]
enum Scanner {
    /// SIMD (Teddy), leftmost-longest.
    Packed(packed::Searcher),
    /// Aho-Corasick automaton (no SIMD available, or an overlapping scan is needed).
    Automaton(AhoCorasick),
}

/// One scan for a set of quoted literals, and each stage's requirement over them.
#[derive(Debug)]
struct Level {
    scanner: Scanner,
    pattern_count: usize,
    /// For each pattern, the patterns that are a prefix of it (itself included).
    prefixes_of: Vec<Vec<usize>>,
    /// Some pattern could start at a closing quote: scan with overlapping matches.
    overlapping: bool,
    stages: Vec<Cnf>,
}

/// Per-thread scratch space of [`Prefilter::skip`].
#[derive(Debug, Default)]
pub struct Scratch {
    anchor: Vec<bool>,
    stage: Vec<bool>,
}

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
    timestamp: LeadingTime,
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

impl Prefilter {
    /// Builds the prefilter for every stage and until clause of every rule.
    pub fn build(rules: &RuleSet, timestamp_field: &str, precision: Precision) -> Result<Prefilter, Unavailable> {
        if timestamp_field.contains('.') {
            return Err(Unavailable::NestedTimestampField);
        }
        if rules.rules.is_empty() {
            return Err(Unavailable::NoRules);
        }
        // Per stage: its clauses as quoted patterns, and whether the first is the category.
        let mut stages: Vec<(Vec<Vec<Vec<u8>>>, bool)> = Vec::new();
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
                                let mut p = Vec::with_capacity(lit.text.len() + 2);
                                p.push(b'"');
                                p.extend_from_slice(lit.text.as_bytes());
                                if lit.whole {
                                    p.push(b'"');
                                }
                                p
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
        let anchors: Option<Vec<Vec<Vec<Vec<u8>>>>> = stages
            .iter()
            .map(|(clauses, has_category)| {
                let own = &clauses[usize::from(*has_category)..];
                let singles: Vec<Vec<Vec<u8>>> = own.iter().filter(|c| c.len() <= 1).cloned().collect();
                if !singles.is_empty() {
                    return Some(singles);
                }
                own.iter().min_by_key(|c| c.len()).filter(|c| c.len() <= 4).map(|c| vec![c.clone()])
            })
            .collect();
        let anchor = match anchors {
            Some(a) => {
                let level = Level::build(a)?;
                (level.pattern_count * 2 <= full.pattern_count).then_some(level)
            }
            None => None,
        };
        let per_stage = match anchor {
            Some(_) => stages.iter().map(|(c, _)| Level::build(vec![c.clone()])).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(Prefilter { anchor, per_stage, full, timestamp: LeadingTime::new(timestamp_field, precision) })
    }

    /// Number of distinct quoted literals searched for.
    pub fn pattern_count(&self) -> usize {
        self.full.pattern_count
    }

    /// True when some stage might match `line` (it must then be parsed). Only meaningful for
    /// lines without a backslash; others are parsed anyway.
    fn might_match(&self, line: &[u8], scratch: &mut Scratch) -> bool {
        let Some(a) = &self.anchor else { return self.full.possible(line, &mut scratch.anchor) };
        a.scan(line, &mut scratch.anchor);
        // Usually no stage, else one: a scan for that stage's literals only.
        (0..a.stages.len())
            .any(|s| a.stage_possible(s, &scratch.anchor) && self.per_stage[s].possible(line, &mut scratch.stage))
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

impl Level {
    /// A scan for the patterns of `stages` (per stage, its clauses of quoted patterns).
    fn build(stages: Vec<Vec<Vec<Vec<u8>>>>) -> Result<Level, Unavailable> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut index = hashbrown::HashMap::<Vec<u8>, usize>::new();
        let mut cnfs = Vec::new();
        for clauses in stages {
            let mut cnf = Vec::new();
            for clause in clauses {
                let ids = clause
                    .into_iter()
                    .map(|p| {
                        let next = patterns.len();
                        *index.entry(p.clone()).or_insert_with(|| {
                            patterns.push(p);
                            next
                        })
                    })
                    .collect();
                cnf.push(ids);
            }
            cnfs.push(cnf);
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
        let prefixes_of =
            patterns.iter().map(|p| (0..patterns.len()).filter(|&q| p.starts_with(&patterns[q])).collect()).collect();
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
        Ok(Level { scanner, pattern_count: patterns.len(), prefixes_of, overlapping, stages: cnfs })
    }

    /// Marks in `present` the patterns found in `line`.
    fn scan(&self, line: &[u8], present: &mut Vec<bool>) {
        present.clear();
        present.resize(self.pattern_count, false);
        let mut mark = |id: usize| {
            for &q in &self.prefixes_of[id] {
                present[q] = true;
            }
        };
        match &self.scanner {
            Scanner::Packed(s) => s.find_iter(line).for_each(|m| mark(m.pattern().as_usize())),
            Scanner::Automaton(ac) if self.overlapping => {
                ac.find_overlapping_iter(line).for_each(|m| present[m.pattern().as_usize()] = true)
            }
            Scanner::Automaton(ac) => ac.find_iter(line).for_each(|m| mark(m.pattern().as_usize())),
        }
    }

    /// True when every clause of stage `s` has a pattern in `present` (from [`Level::scan`]).
    fn stage_possible(&self, s: usize, present: &[bool]) -> bool {
        self.stages[s].iter().all(|clause| clause.iter().any(|p| present[*p]))
    }

    /// True when some stage's clauses all have a pattern present in `line`.
    fn possible(&self, line: &[u8], present: &mut Vec<bool>) -> bool {
        self.scan(line, present);
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
}
