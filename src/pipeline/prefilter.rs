//! The prefilter: skip the JSON parse of a line whose raw bytes prove that it cannot match any
//! stage (or `until` clause) of any loaded rule, while still reading its timestamp so the
//! watermark sees every line.
//!
//! From each compiled stage it takes the terms every matching event must have
//! ([`crate::eql::Stage::required_terms`]: the category, and top-level `==` / `in` conjuncts on
//! plain string literals, all case-sensitive exact matches). A JSON string value `v` without
//! escapes appears in the line as the bytes `"v"`, so a stage is possible only if, for each of
//! its terms, one of the quoted values occurs somewhere in the line. One Aho-Corasick scan finds
//! every quoted value present.
//!
//! It never skips a line that could match, and never changes what the rest of the pipeline sees:
//! - a line with a backslash (an escape could spell a value differently) is always parsed;
//! - a rule with a stage that has no required term disables the prefilter altogether;
//! - a skipped line must be certainly a valid JSON object ([`rawscan`]) whose timestamp key
//!   occurs once at the top level; otherwise it is parsed. So invalid lines are classified by
//!   the real parser, exactly as with `--no-prefilter`.

use aho_corasick::AhoCorasick;

use super::decode::LineTime;
use super::rawscan::{self, RawScalar};
use crate::event::Scalar;
use crate::metrics::InvalidReason;
use crate::ruleset::RuleSet;
use crate::time::{self, Precision};

/// A stage's requirement: every clause must have one of its patterns present.
type Cnf = Vec<Vec<usize>>;

/// The compiled prefilter.
#[derive(Debug)]
pub struct Prefilter {
    patterns: AhoCorasick,
    pattern_count: usize,
    stages: Vec<Cnf>,
    timestamp_key: String,
    precision: Precision,
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
        let mut patterns: Vec<String> = Vec::new();
        let mut index = hashbrown::HashMap::<String, usize>::new();
        let mut stages = Vec::new();
        for rule in &rules.rules {
            for stage in rule.query.stages.iter().chain(rule.query.until.iter()) {
                let terms = stage.required_terms();
                if terms.is_empty() {
                    return Err(Unavailable::StageWithoutTerms { rule_id: rule.spec.rule_id.clone() });
                }
                let mut cnf = Vec::new();
                for (_field, values) in terms {
                    let clause = values
                        .iter()
                        .map(|v| {
                            let quoted = format!("\"{v}\"");
                            let next = patterns.len();
                            *index.entry(quoted.clone()).or_insert_with(|| {
                                patterns.push(quoted);
                                next
                            })
                        })
                        .collect();
                    cnf.push(clause);
                }
                stages.push(cnf);
            }
        }
        let ac = AhoCorasick::new(&patterns).map_err(|_| Unavailable::NoRules)?;
        Ok(Prefilter {
            patterns: ac,
            pattern_count: patterns.len(),
            stages,
            timestamp_key: timestamp_field.to_string(),
            precision,
        })
    }

    /// Number of distinct quoted literals searched for.
    pub fn pattern_count(&self) -> usize {
        self.pattern_count
    }

    /// True when some stage might match `line` (it must then be parsed).
    fn might_match(&self, line: &[u8], present: &mut Vec<bool>) -> bool {
        present.clear();
        present.resize(self.pattern_count, false);
        for m in self.patterns.find_overlapping_iter(line) {
            present[m.pattern().as_usize()] = true;
        }
        self.stages.iter().any(|cnf| cnf.iter().all(|clause| clause.iter().any(|p| present[*p])))
    }

    /// `Some(outcome)` when the line can be skipped (its timestamp, or why it has none);
    /// `None` when it must be parsed. `present` is scratch space reused between calls.
    pub fn skip(&self, line: &[u8], present: &mut Vec<bool>) -> Option<LineTime> {
        if memchr::memchr(b'\\', line).is_some() || self.might_match(line, present) {
            return None;
        }
        match rawscan::top_level_scalar(line, &self.timestamp_key)? {
            None => Some(LineTime::Invalid(InvalidReason::NoTimestamp)),
            Some(RawScalar::Str(s)) => Some(match time::parse_timestamp(s, self.precision) {
                Ok(ts) => LineTime::At(ts),
                Err(_) => LineTime::Invalid(InvalidReason::BadTimestamp),
            }),
            Some(RawScalar::Num(n)) => {
                // Only plain integers: simd-json reads them as the same i64 (floats and huge
                // numbers are left to the parser).
                let ms: i64 = n.parse().ok()?;
                Some(match time::scalar_timestamp(Scalar::I64(ms), self.precision) {
                    Ok(ts) => LineTime::At(ts),
                    Err(_) => LineTime::Invalid(InvalidReason::BadTimestamp),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules;

    fn seed() -> RuleSet {
        let loaded = rules::embedded().expect("embedded rules load");
        RuleSet::compile(loaded.rules).expect("embedded rules compile")
    }

    #[test]
    fn seed_rule_prefilter_skips_only_impossible_lines() {
        let pf = Prefilter::build(&seed(), "@timestamp", Precision::Millis).unwrap();
        let mut scratch = Vec::new();
        let network =
            br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["network"],"action":"connect"}}"#;
        assert!(matches!(pf.skip(network, &mut scratch), Some(LineTime::At(_))));
        let creation =
            br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["file"],"action":"creation"}}"#;
        assert_eq!(pf.skip(creation, &mut scratch), None);
        let escaped = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"category":["fil\u0065"]}}"#;
        assert_eq!(pf.skip(escaped, &mut scratch), None);
        let no_ts = br#"{"event":{"category":["network"]}}"#;
        assert_eq!(pf.skip(no_ts, &mut scratch), Some(LineTime::Invalid(InvalidReason::NoTimestamp)));
        let bad_ts = br#"{"@timestamp":"yesterday"}"#;
        assert_eq!(pf.skip(bad_ts, &mut scratch), Some(LineTime::Invalid(InvalidReason::BadTimestamp)));
        let truncated = br#"{"@timestamp":"2026-03-05T10:00:00.000Z","event":{"#;
        assert_eq!(pf.skip(truncated, &mut scratch), None, "invalid lines go to the real parser");
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
}
