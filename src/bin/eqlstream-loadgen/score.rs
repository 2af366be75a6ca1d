//! `eqlstream-loadgen score`: compares a truth file with an alerts file and prints recall and
//! precision. A sequence is identified by `(rule id, join keys, event ids)`; both alert formats
//! are read, line by line, so a file may even mix them:
//! - ECS (`--alert-format ecs`): the lines with `"event":{"kind":"alert"}`, identified by
//!   `(rule.id, eql.join_keys, eql.events[*].event.id)`;
//! - Kibana (`--alert-format kibana`): the lines with `"event.kind":"signal"` that are not
//!   building blocks (a sequence's shell, or an event rule's single alert), identified by
//!   `kibana.alert.rule.rule_id`, the join keys eqlstream writes in `kibana.alert.reason`
//!   ("... with join keys [...]"; none for an event rule) and the `id`s of the
//!   `kibana.alert.ancestors` of type `event` (the events' `event.id`). A missing-event stage has
//!   no ancestor, where ECS lists an empty id for it.
//!
//! Every other line (pass-through events, building blocks, hostile bytes) is ignored. Never
//! modifies either file.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};

use serde_json::Value;

use crate::truth::TruthLine;

/// How many misses / false alerts are listed (the counts are always complete).
pub const LIST_LIMIT: usize = 20;

/// The comparison result.
#[derive(Debug, Default)]
pub struct Score {
    /// Truth sequences.
    pub truth: usize,
    /// Alert sequences.
    pub alerts: usize,
    /// Truth sequences with a matching alert.
    pub matched: usize,
    /// Truth sequences without an alert.
    pub misses: Vec<TruthLine>,
    /// Alerts without a truth sequence (including duplicates beyond the first).
    pub false_alerts: Vec<TruthLine>,
    /// Alerts of rules other than the scored one (not counted; listed as a number only).
    pub other_rules: usize,
}

impl Score {
    /// Recall in percent (100 when there is no truth).
    pub fn recall(&self) -> f64 {
        if self.truth == 0 {
            100.0
        } else {
            100.0 * self.matched as f64 / self.truth as f64
        }
    }
    /// Precision in percent (100 when there are no alerts).
    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            100.0
        } else {
            100.0 * self.matched as f64 / self.alerts as f64
        }
    }
    /// Both 100 %.
    pub fn perfect(&self) -> bool {
        self.misses.is_empty() && self.false_alerts.is_empty()
    }

    /// Prints the report.
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "truth sequences: {}", self.truth)?;
        writeln!(out, "alert sequences: {}", self.alerts)?;
        writeln!(out, "matched:         {}", self.matched)?;
        if self.other_rules > 0 {
            writeln!(out, "ignored alerts of other rules: {}", self.other_rules)?;
        }
        writeln!(out, "recall:          {:.3}% ({}/{})", self.recall(), self.matched, self.truth)?;
        writeln!(out, "precision:       {:.3}% ({}/{})", self.precision(), self.matched, self.alerts)?;
        for (title, list) in [("misses", &self.misses), ("false alerts", &self.false_alerts)] {
            writeln!(out, "{title}: {}", list.len())?;
            for t in list.iter().take(LIST_LIMIT) {
                writeln!(out, "  rule_id={} join_keys={:?} event_ids={:?}", t.rule_id, t.join_keys, t.event_ids)?;
            }
            if list.len() > LIST_LIMIT {
                writeln!(out, "  ... and {} more", list.len() - LIST_LIMIT)?;
            }
        }
        Ok(())
    }
}

fn key_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The sequence identity of an alert line (either format), or `None` if the line is not an
/// alert (or is a Kibana building block, whose shell stands for the sequence).
pub fn alert_identity(line: &[u8]) -> Option<TruthLine> {
    // Cheap filter before parsing: ECS alerts carry `"alert"`, Kibana alerts `"signal"`.
    let ecs = memchr::memmem::find(line, b"\"alert\"").is_some();
    if !ecs && memchr::memmem::find(line, b"\"signal\"").is_none() {
        return None;
    }
    let v: Value = serde_json::from_slice(line).ok()?;
    if v.get("event.kind").and_then(Value::as_str) == Some("signal") {
        return kibana_identity(&v);
    }
    if v.pointer("/event/kind")?.as_str()? != "alert" {
        return None;
    }
    let rule_id = v.pointer("/rule/id").map(key_string).unwrap_or_default();
    let join_keys = v
        .pointer("/eql/join_keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(key_string).collect())
        .unwrap_or_default();
    let event_ids = v
        .pointer("/eql/events")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|e| e.pointer("/event/id").map(key_string).unwrap_or_default()).collect())
        .unwrap_or_default();
    Some(TruthLine { rule_id, join_keys, event_ids })
}

/// The identity of a Kibana-format alert document (see the module comment).
fn kibana_identity(v: &Value) -> Option<TruthLine> {
    if v.get("kibana.alert.building_block_type").is_some() || v.get("kibana.alert.group.index").is_some() {
        return None;
    }
    let rule_id = v.get("kibana.alert.rule.rule_id").map(key_string)?;
    let event_ids = v
        .get("kibana.alert.ancestors")?
        .as_array()?
        .iter()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("event"))
        .map(|a| a.get("id").map(key_string).unwrap_or_default())
        .collect();
    let join_keys = v
        .get("kibana.alert.reason")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit_once(" with join keys "))
        .and_then(|(_, keys)| {
            let mut de = serde_json::Deserializer::from_str(keys).into_iter::<Vec<Value>>();
            de.next()?.ok()
        })
        .map(|keys| keys.iter().map(key_string).collect())
        .unwrap_or_default();
    Some(TruthLine { rule_id, join_keys, event_ids })
}

/// Matches alerts to truth sequences one at a time (shared by `score` and `latency`): an alert
/// matches the first truth sequence with its identity that no earlier alert matched; alerts of
/// other rules are counted apart; a second alert for one sequence is a false alert.
pub struct Matcher<'t> {
    truth: &'t [TruthLine],
    rule_id: Option<&'t str>,
    expected: HashMap<&'t TruthLine, VecDeque<usize>>,
    score: Score,
}

impl<'t> Matcher<'t> {
    /// A matcher for the alerts of rule `rule_id` (`None`: every rule) against `truth`.
    pub fn new(truth: &'t [TruthLine], rule_id: Option<&'t str>) -> Self {
        let mut expected: HashMap<&TruthLine, VecDeque<usize>> = HashMap::new();
        for (i, t) in truth.iter().enumerate() {
            expected.entry(t).or_default().push_back(i);
        }
        Matcher { truth, rule_id, expected, score: Score { truth: truth.len(), ..Score::default() } }
    }

    /// Accounts one alert; returns the index in `truth` of the sequence it matched.
    pub fn alert(&mut self, id: TruthLine) -> Option<usize> {
        if self.rule_id.is_some_and(|r| r != id.rule_id) {
            self.score.other_rules += 1;
            return None;
        }
        self.score.alerts += 1;
        match self.expected.get_mut(&id).and_then(VecDeque::pop_front) {
            Some(i) => {
                self.score.matched += 1;
                Some(i)
            }
            None => {
                self.score.false_alerts.push(id);
                None
            }
        }
    }

    /// The result; misses are listed in truth order.
    pub fn finish(self) -> Score {
        let mut missed: Vec<usize> = self.expected.into_values().flatten().collect();
        missed.sort_unstable();
        let mut s = self.score;
        s.misses = missed.into_iter().map(|i| self.truth[i].clone()).collect();
        s
    }
}

/// Scores the alerts of rule `rule_id` (`None`: every rule) in `alerts` (any JSONL stream)
/// against `truth`. With `dedup`, alerts of one detection (same rule, join keys and events: what
/// `event.id` is computed from) count once, as a store keyed by `event.id` keeps them: for
/// at-least-once outputs (Kafka consumers after a rebalance or a crash).
pub fn score(
    truth: &[TruthLine],
    rule_id: Option<&str>,
    mut alerts: impl BufRead,
    dedup: bool,
) -> std::io::Result<Score> {
    let mut m = Matcher::new(truth, rule_id);
    let mut seen = std::collections::HashSet::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if alerts.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(id) = alert_identity(&line) {
            if dedup && !seen.insert(id.clone()) {
                continue;
            }
            m.alert(id);
        }
    }
    Ok(m.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_counts_a_repeated_detection_once() {
        let t = TruthLine { rule_id: "r".into(), join_keys: vec!["c".into()], event_ids: vec!["1".into(), "2".into()] };
        let alert = br#"{"event":{"kind":"alert","module":"eqlstream"},"rule":{"id":"r"},"eql":{"join_keys":["c"],"events":[{"event":{"id":"1"}},{"event":{"id":"2"}}]}}"#;
        let twice = [&alert[..], b"\n", &alert[..], b"\n"].concat();
        let plain = score(std::slice::from_ref(&t), Some("r"), &twice[..], false).unwrap();
        assert_eq!((plain.matched, plain.false_alerts.len()), (1, 1));
        let dedup = score(std::slice::from_ref(&t), Some("r"), &twice[..], true).unwrap();
        assert!(dedup.perfect(), "{dedup:?}");
    }

    #[test]
    fn non_alert_lines_are_ignored() {
        assert!(alert_identity(b"{\"event\":{\"kind\":\"event\"},\"x\":\"alert\"}").is_none());
        assert!(alert_identity(b"\xff\"alert\" garbage").is_none());
        let a = br#"{"event":{"kind":"alert"},"rule":{"id":"r"},"eql":{"join_keys":["c","0","x"],"events":[{"event":{"id":"1"}},{"event":{"id":"2"}}]}}"#;
        let id = alert_identity(a).expect("an alert");
        assert_eq!(id.join_keys, vec!["c", "0", "x"]);
        assert_eq!(id.event_ids, vec!["1", "2"]);
    }

    #[test]
    fn kibana_shells_and_single_alerts_are_read_and_building_blocks_skipped() {
        let shell = br#"{"@timestamp":"2026-03-05T10:00:05.123Z","event.kind":"signal","kibana.alert.ancestors":[{"id":"1","type":"event","index":"i","depth":0},{"id":"b1","type":"signal","index":"","depth":1,"rule":"r"},{"id":"2","type":"event","index":"i","depth":0},{"id":"b2","type":"signal","index":"","depth":1,"rule":"r"}],"kibana.alert.depth":2,"kibana.alert.reason":"Sequence of 2 events matched rule \"a \\\" with join keys [\\\"x\\\"]\" (r) with join keys [\"c\",0,\"x\"].","kibana.alert.rule.rule_id":"r","kibana.alert.group.id":"g"}"#;
        let id = alert_identity(shell).expect("a shell is an alert");
        assert_eq!(id.rule_id, "r");
        assert_eq!(id.join_keys, vec!["c", "0", "x"]);
        assert_eq!(id.event_ids, vec!["1", "2"]);
        let block = br#"{"event.kind":"signal","kibana.alert.ancestors":[{"id":"1","type":"event"}],"kibana.alert.rule.rule_id":"r","kibana.alert.building_block_type":"default","kibana.alert.group.index":0}"#;
        assert!(alert_identity(block).is_none(), "building blocks are parts of their shell");
        let single = br#"{"event.kind":"signal","kibana.alert.ancestors":[{"id":"7","type":"event","index":"","depth":0}],"kibana.alert.depth":1,"kibana.alert.reason":"Event matched rule \"e\" (r2).","kibana.alert.rule.rule_id":"r2"}"#;
        let id = alert_identity(single).expect("an event rule's alert");
        assert_eq!((id.rule_id.as_str(), id.join_keys.len(), id.event_ids), ("r2", 0, vec!["7".to_string()]));
        // The same sequence in ECS has the same identity.
        let ecs = br#"{"event":{"kind":"alert"},"rule":{"id":"r"},"eql":{"join_keys":["c",0,"x"],"events":[{"event":{"id":"1"}},{"event":{"id":"2"}}]}}"#;
        assert_eq!(alert_identity(ecs), alert_identity(shell));
    }

    fn t(rule: &str, n: &str) -> TruthLine {
        TruthLine { rule_id: rule.into(), join_keys: vec!["c".into()], event_ids: vec![n.into()] }
    }

    #[test]
    fn matcher_pairs_each_sequence_once_and_lists_the_rest() {
        let truth = vec![t("r", "1"), t("r", "2"), t("r", "3")];
        let mut m = Matcher::new(&truth, Some("r"));
        assert_eq!(m.alert(t("r", "2")), Some(1));
        assert_eq!(m.alert(t("r", "2")), None, "a duplicate is a false alert");
        assert_eq!(m.alert(t("other", "1")), None);
        assert_eq!(m.alert(t("r", "1")), Some(0));
        assert_eq!(m.alert(t("r", "9")), None);
        let s = m.finish();
        assert_eq!((s.truth, s.alerts, s.matched, s.other_rules), (3, 4, 2, 1));
        assert_eq!(s.misses, vec![t("r", "3")]);
        assert_eq!(s.false_alerts, vec![t("r", "2"), t("r", "9")]);
        assert!(!s.perfect());
    }
}
