//! `eqlstream rules list`: one row per loaded rule (what would run), as an aligned table for
//! people or as JSON for scripts. Rows come from the compiled rule set, so they show what the
//! engine runs (stages after `with runs=N` expansion, the prefilter's literals), not just what
//! the files say.

use serde::Serialize;

use crate::pipeline::prefilter::{self, Prefilter};
use crate::ruleset::RuleSet;
use crate::time::Precision;

/// One loaded rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// `rule.rule_id`.
    pub rule_id: String,
    /// `rule.name`.
    pub name: String,
    /// `event` (one event per alert) or `sequence`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `rule.severity`.
    pub severity: String,
    /// `rule.index` patterns.
    pub index: Vec<String>,
    /// Stages as the engine runs them (`with runs=N` counts N; 1 for an event rule).
    pub stages: usize,
    /// Whether the sequence has an `until` clause.
    pub until: bool,
    /// Distinct literals the prefilter can look for in this rule's stages; `None` when a stage
    /// requires none (the prefilter is then off for the whole set).
    pub prefilter_literals: Option<usize>,
    /// The rule file.
    pub path: String,
}

/// The rows of every rule, in load order.
pub fn rows(set: &RuleSet) -> Vec<Row> {
    set.rules
        .iter()
        .map(|r| Row {
            rule_id: r.spec.rule_id.clone(),
            name: r.spec.name.clone(),
            kind: if r.query.sequence.is_some() { "sequence" } else { "event" },
            severity: r.spec.severity.clone(),
            index: r.spec.index.clone(),
            stages: r.query.stages.len(),
            until: r.query.until.is_some(),
            prefilter_literals: prefilter::rule_literals(r),
            path: r.spec.path.display().to_string(),
        })
        .collect()
}

/// The rows as a pretty-printed JSON array.
pub fn json(rows: &[Row]) -> String {
    let mut s = serde_json::to_string_pretty(rows).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// The rows as a table with a header, columns padded to their widest cell, then one line on
/// whether the prefilter runs for this set (for the timestamp field `timestamp_field`).
pub fn table(rows: &[Row], set: &RuleSet, timestamp_field: &str, precision: Precision) -> String {
    const HEADER: [&str; 7] = ["RULE_ID", "TYPE", "SEVERITY", "STAGES", "PREFILTER", "NAME", "INDEX"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.rule_id.clone(),
                r.kind.to_string(),
                r.severity.clone(),
                if r.until { format!("{}+until", r.stages) } else { r.stages.to_string() },
                r.prefilter_literals.map_or_else(|| "-".to_string(), |n| n.to_string()),
                r.name.clone(),
                r.index.join(","),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |row: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            l.push_str(c);
            if i + 1 < row.len() {
                l.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEADER.map(str::to_string));
    for row in &cells {
        line(row);
    }
    match Prefilter::build(set, timestamp_field, precision) {
        Ok(p) => out.push_str(&format!(
            "prefilter: on, {} distinct literals (lines without them are not parsed)\n",
            p.pattern_count()
        )),
        Err(why) => out.push_str(&format!("prefilter: off for this rule set: {why} (every line is parsed)\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSpec;

    fn set() -> RuleSet {
        let spec = |id: &str, query: &str| RuleSpec {
            rule_id: id.into(),
            name: format!("rule {id}"),
            severity: "low".into(),
            index: vec!["logs-*".into(), "auditbeat-*".into()],
            query: query.into(),
            ..RuleSpec::default()
        };
        RuleSet::compile(vec![
            spec("e", "process where process.name == \"curl\""),
            spec(
                "s",
                "sequence by host.id [process where true] [file where true] with runs=2 until [network where true]",
            ),
            spec("c", "any where process.name : \"curl\""),
            spec("i", "any where process.pid > 5"),
        ])
        .expect("compiles")
    }

    #[test]
    fn rows_show_what_the_engine_runs() {
        let rows = rows(&set());
        let short: Vec<_> = rows.iter().map(|r| (r.rule_id.as_str(), r.kind, r.stages, r.until)).collect();
        assert_eq!(
            short,
            [("e", "event", 1, false), ("s", "sequence", 3, true), ("c", "event", 1, false), ("i", "event", 1, false)]
        );
        assert_eq!(rows[0].prefilter_literals, Some(2), "the category and the name");
        assert_eq!(rows[1].prefilter_literals, Some(3), "the three categories");
        assert_eq!(rows[2].prefilter_literals, Some(1), "`:` with an ASCII value: one case-insensitive literal");
        assert_eq!(rows[3].prefilter_literals, None, "a comparison of numbers: no literal");
    }

    #[test]
    fn the_table_is_aligned_and_says_why_the_prefilter_is_off() {
        let set = set();
        let t = table(&rows(&set), &set, "@timestamp", Precision::Millis);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "RULE_ID  TYPE      SEVERITY  STAGES   PREFILTER  NAME    INDEX");
        assert_eq!(lines[2], "s        sequence  low       3+until  3          rule s  logs-*,auditbeat-*");
        assert_eq!(lines[3], "c        event     low       1        1          rule c  logs-*,auditbeat-*");
        assert_eq!(lines[4], "i        event     low       1        -          rule i  logs-*,auditbeat-*");
        assert_eq!(
            lines[5],
            "prefilter: off for this rule set: rule i has a stage without a required literal (every line is parsed)"
        );
        let json: serde_json::Value = serde_json::from_str(&json(&rows(&set))).expect("JSON");
        assert_eq!(json[1]["type"], "sequence");
        assert_eq!(json[3]["prefilter_literals"], serde_json::Value::Null);
        assert_eq!(json[0]["index"][1], "auditbeat-*");
    }
}
