//! `eqlstream test DIR...`: each rule's fixture events run through the real pipeline, and the
//! alerts compared with the expected ones (as `vector test` does for transforms, and
//! detection-rules' unit tests for rules).
//!
//! # Fixture layout
//!
//! ```text
//! DIR/                              a fixtures root (several may be given)
//!   <rule>/                         a loaded rule's rule_id, or its file name without .toml
//!     events.ndjson                 one case named after the rule ...
//!     expected.jsonl
//!     <case>/                       ... and/or any number of named cases
//!       events.ndjson               the events, one JSON object per line, as eqlstream reads them
//!       expected.jsonl              the alerts they must give, one per line (empty: none)
//! ```
//!
//! A line of `expected.jsonl` names one alert:
//! `{"rule_id": "...", "join_keys": ["c0ffee", "0"], "event_ids": ["e1", "e2", "e3"]}`:
//! the join-key values as Elasticsearch's EQL API returns them (`[]` for an event rule), and
//! the `event.id` of each event of the sequence in order (`null` for an event without one).
//! `rule_id` may be left out (the rule of the directory). Alerts are compared as a multiset:
//! their order does not matter, their number does. A `DIR` that is itself a `<rule>` directory
//! is accepted too.
//!
//! Each case runs the pipeline of `eqlstream run` in this process, with the settings of the
//! command (config file, event-time options) and only the case's rule loaded, on its events
//! file read as stdin is; alerts in the ECS shape. A mismatch prints what is missing and what is
//! unexpected, one alert per line, and the command exits 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::alert::AlertFormat;
use crate::config::{InputSpec, Settings};
use crate::metrics::Metrics;
use crate::pipeline::{self, sink, LiveRules, RunContext, Shutdown, Totals};
use crate::ruleset::{Rule, RuleSet};

/// The events file of a case.
pub const EVENTS_FILE: &str = "events.ndjson";
/// The expected-alerts file of a case.
pub const EXPECTED_FILE: &str = "expected.jsonl";

/// Why the fixtures cannot be run at all.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A directory given does not exist (exit 66).
    #[error("{}: no such directory", .0.display())]
    NotFound(PathBuf),
    /// The runtime the pipeline needs could not start.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
}

/// One test case: a rule directory, or a case directory under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The `<rule>` directory's name.
    pub rule: String,
    /// `<rule>` or `<rule>/<case>`, for the report.
    pub name: String,
    /// The directory holding `events.ndjson` and `expected.jsonl`.
    pub dir: PathBuf,
}

/// The totals of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Cases whose alerts were the expected ones.
    pub passed: usize,
    /// Cases that gave other alerts, or could not run.
    pub failed: usize,
    /// Loaded rules that no case tests.
    pub untested: usize,
}

/// The cases under `dirs`, in path order. Fixture problems (a `<rule>` directory without
/// events) are reported when the case runs, not here.
pub fn discover(dirs: &[PathBuf], rules: &RuleSet) -> Result<Vec<Case>, FixtureError> {
    let mut cases = Vec::new();
    for root in dirs {
        if !root.is_dir() {
            return Err(FixtureError::NotFound(root.clone()));
        }
        let name = file_name(root);
        if find_rule(rules, &name).is_some() {
            rule_dir(root, &name, &mut cases);
        } else {
            for d in subdirs(root) {
                rule_dir(&d, &file_name(&d), &mut cases);
            }
        }
    }
    Ok(cases)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|es| es.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The cases of one `<rule>` directory (itself, and its case subdirectories); a directory with
/// neither is still a case, which fails and says why.
fn rule_dir(dir: &Path, rule: &str, cases: &mut Vec<Case>) {
    let before = cases.len();
    if dir.join(EVENTS_FILE).is_file() {
        cases.push(Case { rule: rule.to_string(), name: rule.to_string(), dir: dir.to_path_buf() });
    }
    for d in subdirs(dir) {
        if d.join(EVENTS_FILE).is_file() {
            cases.push(Case { rule: rule.to_string(), name: format!("{rule}/{}", file_name(&d)), dir: d });
        }
    }
    if cases.len() == before {
        cases.push(Case { rule: rule.to_string(), name: rule.to_string(), dir: dir.to_path_buf() });
    }
}

/// The loaded rule a `<rule>` directory names: by `rule_id`, else by file name without `.toml`.
pub fn find_rule<'r>(rules: &'r RuleSet, name: &str) -> Option<&'r Rule> {
    rules
        .rules
        .iter()
        .find(|r| r.spec.rule_id == name)
        .or_else(|| rules.rules.iter().find(|r| r.spec.path.file_stem().is_some_and(|s| s.to_string_lossy() == name)))
}

/// One alert as the fixtures name it, in a canonical one-line form (compared as text).
fn alert_key(rule_id: &str, join_keys: &Value, event_ids: &[Value]) -> String {
    format!(
        "{{\"rule_id\":{},\"join_keys\":{},\"event_ids\":{}}}",
        Value::String(rule_id.to_string()),
        join_keys,
        Value::Array(event_ids.to_vec())
    )
}

/// The alerts named in an `expected.jsonl` (`rule_id` defaults to `rule_id`).
fn expected(path: &Path, rule_id: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |m: &str| format!("{}:{}: {m}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| at(&format!("not JSON: {e}")))?;
        let rid = match v.get("rule_id") {
            None => rule_id,
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(at("`rule_id` must be a string")),
        };
        let Some(keys @ Value::Array(_)) = v.get("join_keys") else {
            return Err(at("expected `join_keys`, an array (`[]` for an event rule)"));
        };
        let Some(Value::Array(ids)) = v.get("event_ids") else {
            return Err(at("expected `event_ids`, an array of the events' `event.id` values"));
        };
        out.push(alert_key(rid, keys, ids));
    }
    Ok(out)
}

/// The alerts of an ECS alert stream, as the fixtures name them.
fn produced(stdout: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("an alert line is not JSON: {e}"))?;
        let rule_id = v.pointer("/rule/id").and_then(Value::as_str).unwrap_or_default();
        let keys = v.pointer("/eql/join_keys").cloned().unwrap_or(Value::Array(Vec::new()));
        let ids: Vec<Value> = v
            .pointer("/eql/events")
            .and_then(Value::as_array)
            .map(|evs| evs.iter().map(|e| e.pointer("/event/id").cloned().unwrap_or(Value::Null)).collect())
            .unwrap_or_default();
        out.push(alert_key(rule_id, &keys, &ids));
    }
    Ok(out)
}

/// A `Write` the pipeline's writer can own, read back after the run.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `rule` alone over `events` with `settings`; returns the alert lines.
fn alerts_of(rule: &Rule, events: &Path, settings: &Settings, rt: &tokio::runtime::Runtime) -> Result<Vec<u8>, String> {
    let set = RuleSet::compile(vec![rule.spec.clone()]).map_err(|e| crate::ruleset::render_errors(&e))?;
    let mut s = settings.clone();
    s.input = InputSpec::File(events.to_path_buf());
    s.metrics_address = None;
    s.alerts_output = None;
    s.passthrough = false;
    s.progress = false;
    s.alert_format = AlertFormat::Ecs;
    let labels = set.labels();
    let metrics = Arc::new(Metrics::for_run(&labels, s.max_out_of_orderness).map_err(|e| e.to_string())?);
    let out = SharedBuf::default();
    let ctx = RunContext {
        rules: LiveRules::new(set, &s, metrics.clone()),
        metrics,
        shutdown: Shutdown::new(),
        runtime: rt.handle().clone(),
        outputs: sink::Outputs::streams(Box::new(out.clone()), false, None),
        totals: Arc::new(Totals::default()),
        kafka: None,
    };
    pipeline::run(&s, ctx).map_err(|e| e.to_string())?;
    let bytes = std::mem::take(&mut *out.0.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(bytes)
}

/// What one case gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The expected alerts, this many.
    Pass(usize),
    /// Other alerts: expected ones not produced, and produced ones not expected.
    Mismatch {
        /// Expected, not produced.
        missing: Vec<String>,
        /// Produced, not expected.
        unexpected: Vec<String>,
    },
    /// The case could not run (no such rule, a file missing or malformed).
    Broken(String),
}

/// Runs one case.
pub fn run_case(case: &Case, rules: &RuleSet, settings: &Settings, rt: &tokio::runtime::Runtime) -> Outcome {
    let Some(rule) = find_rule(rules, &case.rule) else {
        return Outcome::Broken(format!(
            "no loaded rule has the rule_id or file name `{}` (the name of {})",
            case.rule,
            case.dir.display()
        ));
    };
    let events = case.dir.join(EVENTS_FILE);
    if !events.is_file() {
        return Outcome::Broken(format!("{}: no {EVENTS_FILE} here or in a case directory below", case.dir.display()));
    }
    let want = match expected(&case.dir.join(EXPECTED_FILE), &rule.spec.rule_id) {
        Ok(w) => w,
        Err(e) => return Outcome::Broken(e),
    };
    let got = match alerts_of(rule, &events, settings, rt).and_then(|b| produced(&b)) {
        Ok(g) => g,
        Err(e) => return Outcome::Broken(e),
    };
    let (missing, unexpected) = multiset_diff(want, got.clone());
    if missing.is_empty() && unexpected.is_empty() {
        Outcome::Pass(got.len())
    } else {
        Outcome::Mismatch { missing, unexpected }
    }
}

/// (in `a` not `b`, in `b` not `a`), counting repeats, each sorted.
fn multiset_diff(mut a: Vec<String>, mut b: Vec<String>) -> (Vec<String>, Vec<String>) {
    a.sort();
    b.sort();
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(x.clone());
                i += 1;
            }
            (Some(_), Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (Some(x), None) => {
                only_a.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

/// Runs every case under `dirs` against `rules`, writing one line per case (and the diff of a
/// mismatch) and a summary line to `out`.
pub fn run(
    dirs: &[PathBuf],
    rules: &RuleSet,
    settings: &Settings,
    out: &mut dyn Write,
) -> Result<Report, FixtureError> {
    let cases = discover(dirs, rules)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(FixtureError::Runtime)?;
    let mut report = Report::default();
    let mut tested: Vec<&str> = Vec::new();
    // Output failures cannot be reported anywhere else; the exit code still says what happened.
    for case in &cases {
        if let Some(r) = find_rule(rules, &case.rule) {
            tested.push(r.spec.rule_id.as_str());
        }
        match run_case(case, rules, settings, &rt) {
            Outcome::Pass(n) => {
                report.passed += 1;
                let _ = writeln!(out, "test {} ... ok ({n} alert{})", case.name, if n == 1 { "" } else { "s" });
            }
            Outcome::Mismatch { missing, unexpected } => {
                report.failed += 1;
                let _ = writeln!(out, "test {} ... FAILED", case.name);
                let _ = writeln!(out, "    {}", case.dir.join(EXPECTED_FILE).display());
                for m in &missing {
                    let _ = writeln!(out, "    - {m}");
                }
                for u in &unexpected {
                    let _ = writeln!(out, "    + {u}");
                }
                let _ = writeln!(
                    out,
                    "    ({} expected alert{} not produced (-), {} produced not expected (+))",
                    missing.len(),
                    if missing.len() == 1 { "" } else { "s" },
                    unexpected.len()
                );
            }
            Outcome::Broken(why) => {
                report.failed += 1;
                let _ = writeln!(out, "test {} ... FAILED", case.name);
                for l in why.lines() {
                    let _ = writeln!(out, "    {l}");
                }
            }
        }
    }
    tested.sort_unstable();
    tested.dedup();
    report.untested = rules.rules.len() - tested.len();
    let _ = writeln!(
        out,
        "\ntest result: {}. {} passed; {} failed; {} rule{} without fixtures",
        if report.failed == 0 && report.passed > 0 { "ok" } else { "FAILED" },
        report.passed,
        report.failed,
        report.untested,
        if report.untested == 1 { "" } else { "s" }
    );
    if cases.is_empty() {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let _ = writeln!(out, "no test case found under {} (see `eqlstream test --help`)", dirs.join(", "));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_compare_as_a_multiset() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (missing, unexpected) = multiset_diff(s(&["b", "a", "a", "c"]), s(&["a", "c", "d", "c"]));
        assert_eq!(missing, ["a", "b"]);
        assert_eq!(unexpected, ["c", "d"]);
        assert_eq!(multiset_diff(s(&["x", "y"]), s(&["y", "x"])), (vec![], vec![]));
    }

    #[test]
    fn expected_lines_default_their_rule_and_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join(EXPECTED_FILE);
        std::fs::write(&p, "{\"join_keys\":[\"k\",0],\"event_ids\":[\"e1\",null]}\n\n").expect("write");
        assert_eq!(
            expected(&p, "r").expect("valid"),
            ["{\"rule_id\":\"r\",\"join_keys\":[\"k\",0],\"event_ids\":[\"e1\",null]}"]
        );
        std::fs::write(&p, "{\"rule_id\":\"r\",\"join_keys\":[]}\n").expect("write");
        let e = expected(&p, "r").expect_err("no event_ids");
        assert!(
            e.ends_with("expected.jsonl:1: expected `event_ids`, an array of the events' `event.id` values"),
            "{e}"
        );
        std::fs::write(&p, "{}\nnot json\n").expect("write");
        assert!(expected(&p, "r").expect_err("line 1").contains(":1: expected `join_keys`"));
    }

    #[test]
    fn produced_alerts_are_named_by_rule_join_keys_and_event_ids() {
        let alert =
            br#"{"rule":{"id":"r"},"eql":{"join_keys":["c",1],"events":[{"event":{"id":"e1"}},{"a":1},"unparsable"]}}"#;
        assert_eq!(
            produced(alert).expect("JSON"),
            ["{\"rule_id\":\"r\",\"join_keys\":[\"c\",1],\"event_ids\":[\"e1\",null,null]}"]
        );
    }
}
