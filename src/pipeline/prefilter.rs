//! The prefilter: skip the JSON parse of a line whose raw bytes prove that it cannot match any
//! stage (or `until` clause) of any loaded rule, while still reading its timestamp so the
//! watermark sees every line.
//!
//! From each compiled stage it takes the literals every matching event must contain
//! ([`crate::eql::Stage::required_literals`]: a conjunction of clauses, each a set of string
//! values or value prefixes, from the category, `==`, `in`, case-sensitive `like` and `and` /
//! `or` of those). In a line without backslashes, a JSON string value `v` is the bytes between
//! two quotes, unescaped. A stage is possible only if every clause has one of its literals
//! among the line's string values (equal to a whole literal, or starting with a prefix). One
//! SIMD pass finds the string values ([`super::strings`]: keys are told apart by the colon
//! after them), and each is looked up in a table of the literals by first byte and length, so
//! the cost per line hardly grows with the number of literals. Keys, numbers and booleans are
//! never looked up: a literal that a number or boolean could match gives no clause
//! (`required_literals`).
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

use super::decode::LineTime;
use super::rawscan::LeadingTime;
use super::strings;
use crate::ruleset::RuleSet;
use crate::time::Precision;

/// A stage's requirement: every clause must have one of its literals present.
type Cnf = Vec<Vec<usize>>;

/// Whole-value lengths at or above this share one bit of [`LiteralTable::whole_lengths`].
const LONG: usize = 63;

/// A literal for the scan: its first (up to) 8 bytes as a little-endian word, so that most
/// comparisons are one compare of words, and the bytes after them.
#[derive(Clone, Debug)]
struct Lit {
    id: usize,
    len: usize,
    head: u64,
    tail: Box<[u8]>,
}

/// Mask of the first `len` bytes of a little-endian word.
#[inline(always)]
fn head_mask(len: usize) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    }
}

impl Lit {
    fn new(id: usize, text: &[u8]) -> Lit {
        let n = text.len().min(8);
        let mut head = [0u8; 8];
        head[..n].copy_from_slice(&text[..n]);
        Lit { id, len: text.len(), head: u64::from_le_bytes(head), tail: text[n..].into() }
    }

    /// `s` (whose first 8 bytes, or fewer followed by others, are `word`) starts with the literal.
    #[inline(always)]
    fn is_prefix_of(&self, s: &[u8], word: u64) -> bool {
        s.len() >= self.len
            && word & head_mask(self.len) == self.head
            && (self.len <= 8 || s[8..self.len] == *self.tail)
    }
}

/// The literals of one first byte (ranges into [`LiteralTable::lits`]).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Bit `l` is set when a whole literal has length `l` (bit [`LONG`]: `LONG` or more), so
    /// most values are rejected by this one load.
    whole_lengths: u64,
    whole: (u32, u32),
    prefixes: (u32, u32),
}

/// The literals, by first byte, for a lookup per string value of a line.
#[derive(Debug)]
struct LiteralTable {
    /// Number of distinct literals (ids `0..count`).
    count: usize,
    /// Per first byte, where its literals are.
    slots: Box<[Slot; 256]>,
    /// The literals, by first byte, whole ones before prefixes.
    lits: Vec<Lit>,
    /// The id of the whole literal `""`, if any.
    empty_whole: Option<usize>,
    /// The id of the prefix literal `""` (present when the line has any string value), if any.
    empty_prefix: Option<usize>,
}

impl LiteralTable {
    /// The table of `literals` (`(text, whole)`, id = index).
    fn new(literals: &[(Vec<u8>, bool)]) -> LiteralTable {
        let mut t = LiteralTable {
            count: literals.len(),
            slots: Box::new([Slot::default(); 256]),
            lits: Vec::new(),
            empty_whole: None,
            empty_prefix: None,
        };
        let at = |lits: &Vec<Lit>| u32::try_from(lits.len()).unwrap_or(u32::MAX);
        for b in 0..=255u8 {
            let first = |whole: bool| {
                literals.iter().enumerate().filter(move |(_, (text, w))| *w == whole && text.first() == Some(&b))
            };
            let start = at(&t.lits);
            for (id, (text, _)) in first(true) {
                t.slots[b as usize].whole_lengths |= 1 << text.len().min(LONG);
                t.lits.push(Lit::new(id, text));
            }
            let mid = at(&t.lits);
            t.lits.extend(first(false).map(|(id, (text, _))| Lit::new(id, text)));
            let slot = &mut t.slots[b as usize];
            (slot.whole, slot.prefixes) = ((start, mid), (mid, at(&t.lits)));
        }
        for (id, (text, whole)) in literals.iter().enumerate() {
            match (text.is_empty(), whole) {
                (true, true) => t.empty_whole = Some(id),
                (true, false) => t.empty_prefix = Some(id),
                _ => {}
            }
        }
        t
    }

    fn range(&self, (from, to): (u32, u32)) -> &[Lit] {
        self.lits.get(from as usize..to as usize).unwrap_or_default()
    }

    /// Marks in `present` the literals among the string values of `line`
    /// ([`strings::values`]); `false` when the line has a backslash.
    #[inline]
    fn scan(&self, line: &[u8], spans: &mut Vec<(u32, u32)>, present: &mut Vec<bool>) -> bool {
        present.clear();
        present.resize(self.count, false);
        if !strings::values(line, spans) {
            return false;
        }
        for &(start, end) in spans.iter() {
            let (start, end) = (start as usize, end as usize);
            let s = &line[start..end];
            let Some(&b) = s.first() else {
                if let Some(id) = self.empty_whole {
                    present[id] = true;
                }
                continue;
            };
            let slot = &self.slots[b as usize];
            let whole = slot.whole_lengths >> s.len().min(LONG) & 1 != 0;
            if !whole && slot.prefixes.0 == slot.prefixes.1 {
                continue;
            }
            // The value's first 8 bytes (then whatever follows it, masked off by the compares).
            let word = match line.get(start..start + 8) {
                Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
                None => {
                    let mut w = [0u8; 8];
                    w[..line.len() - start].copy_from_slice(&line[start..]);
                    u64::from_le_bytes(w)
                }
            };
            if whole {
                for lit in self.range(slot.whole) {
                    if s.len() == lit.len && lit.is_prefix_of(s, word) {
                        present[lit.id] = true;
                    }
                }
            }
            for lit in self.range(slot.prefixes) {
                if lit.is_prefix_of(s, word) {
                    present[lit.id] = true;
                }
            }
        }
        if let (Some(id), false) = (self.empty_prefix, spans.is_empty()) {
            present[id] = true;
        }
        true
    }
}

/// Every clause of `cnf` has a literal in `present`.
#[inline]
fn satisfied(cnf: &Cnf, present: &[bool]) -> bool {
    cnf.iter().all(|clause| clause.iter().any(|&p| present[p]))
}

/// Per-thread scratch space of [`Prefilter::skip`].
#[derive(Debug, Default)]
pub struct Scratch {
    spans: Vec<(u32, u32)>,
    present: Vec<bool>,
}

/// The compiled prefilter.
#[derive(Debug)]
pub struct Prefilter {
    table: LiteralTable,
    /// Per stage (and until clause) of every rule, its clauses over literal ids.
    stages: Vec<Cnf>,
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
        let mut literals: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut index = hashbrown::HashMap::<(Vec<u8>, bool), usize>::new();
        let mut stages = Vec::new();
        for rule in &rules.rules {
            for stage in rule.query.stages.iter().chain(rule.query.until.iter()) {
                let clauses = stage.required_literals();
                if clauses.is_empty() {
                    return Err(Unavailable::StageWithoutTerms { rule_id: rule.spec.rule_id.clone() });
                }
                let cnf: Cnf = clauses
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
                                let k = (lit.text.into_bytes(), lit.whole);
                                let next = literals.len();
                                *index.entry(k.clone()).or_insert_with(|| {
                                    literals.push(k);
                                    next
                                })
                            })
                            .collect()
                    })
                    .collect();
                stages.push(cnf);
            }
        }
        Ok(Prefilter {
            table: LiteralTable::new(&literals),
            stages,
            timestamp: LeadingTime::new(timestamp_field, precision),
        })
    }

    /// Number of distinct literals searched for.
    pub fn pattern_count(&self) -> usize {
        self.table.count
    }

    /// `Some(outcome)` when the line can be skipped (its timestamp, or why it has none);
    /// `None` when it must be parsed. `scratch` is reused between calls.
    pub fn skip(&self, line: &[u8], scratch: &mut Scratch) -> Option<LineTime> {
        let Scratch { spans, present } = scratch;
        // A line with a backslash is parsed.
        if !self.table.scan(line, spans, present) || self.stages.iter().any(|cnf| satisfied(cnf, present)) {
            return None;
        }
        Some(match self.timestamp.of(line)? {
            Ok(ts) => LineTime::At(ts),
            Err(reason) => LineTime::Invalid(reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::InvalidReason;
    use crate::rules;

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
