//! The compiled rule set: every loaded [`RuleSpec`] compiled against one shared
//! [`FieldTable`], with diagnostics mapped from query offsets to `FILE:LINE:COL` of the rule's
//! TOML file. Built once at start-up; nothing here runs per event.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dispatch::Dispatch;
use crate::eql::{self, diag, CompileOptions, Diagnostic, Span};
use crate::event::{FieldId, FieldTable};
use crate::metrics::{Handles, RareCounter, RuleLabels};
use crate::rules::RuleSpec;

/// The default timestamp field (eql-semantics.md 3).
pub const DEFAULT_TIMESTAMP_FIELD: &str = "@timestamp";

/// Every rule, compiled, and the fields they reference.
#[derive(Debug)]
pub struct RuleSet {
    /// The rules, in load order.
    pub rules: Vec<Rule>,
    /// Every field any rule references (conditions, keys, category, timestamp, tiebreaker).
    pub fields: FieldTable,
    /// Finds the stages an event can match ([`RuleSet::configure_dispatch`] changes it).
    pub dispatch: Dispatch,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// The rule as loaded.
    pub spec: RuleSpec,
    /// The compiled query.
    pub query: eql::Query,
    /// Warnings (`| head` ignored, ...); spans are byte ranges into `spec.source`.
    pub warnings: Vec<Diagnostic>,
    /// `timestamp_override` or `@timestamp`.
    pub timestamp_field: FieldId,
    /// `tiebreaker_field`, when set.
    pub tiebreaker_field: Option<FieldId>,
    /// Alerts of this rule written with parts missing, or lost (see [`RuleSet::count_into`]).
    pub alert_render_errors: RareCounter,
}

/// A problem with one rule, positioned in its TOML file.
#[derive(Clone, Debug)]
pub struct RuleError {
    /// The rule file.
    pub path: PathBuf,
    /// The file's text.
    pub source: Arc<str>,
    /// The problem; its span is a byte range into `source`.
    pub diagnostic: Diagnostic,
}

impl fmt::Display for RuleError {
    /// `FILE:LINE:COL: error: MESSAGE`, the source line and a caret line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&diag::render(&self.path.display().to_string(), &self.source, &self.diagnostic))
    }
}

impl std::error::Error for RuleError {}

/// Renders rule errors as [`RuleSet::compile`] returns them (grouped by file, in order), at most
/// `diag::MAX_PER_FILE` per file followed by a count of the rest (see [`diag::render_file`]).
pub fn render_errors(errors: &[RuleError]) -> String {
    let mut out = String::new();
    for group in errors.chunk_by(|a, b| a.path == b.path) {
        let origin = group[0].path.display().to_string();
        out.push_str(&diag::render_file(&origin, &group[0].source, group.iter().map(|e| &e.diagnostic)));
    }
    out
}

/// Moves a diagnostic from query offsets to file offsets.
pub fn map_to_file(spec: &RuleSpec, d: &Diagnostic) -> Diagnostic {
    let r = spec.query_map.file_range(d.span.start, d.span.end);
    Diagnostic { span: Span::new(r.start, r.end), ..d.clone() }
}

/// The compile options a rule asks for (`event_category_override`).
pub fn options_for(spec: &RuleSpec) -> CompileOptions {
    let mut o = CompileOptions::default();
    if let Some(f) = &spec.event_category_override {
        o.event_category_field = f.clone();
    }
    o
}

/// Which stage of which rule: `stage` indexes `rule.query.stages`, or is [`StageRef::UNTIL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageRef {
    /// Index into `RuleSet::rules`.
    pub rule: u32,
    /// Index into the rule's `query.stages`, or `UNTIL`.
    pub stage: u32,
}

impl StageRef {
    /// The `stage` value that designates a rule's `until` stage.
    pub const UNTIL: u32 = u32::MAX;
}

impl RuleSet {
    /// Rebuilds [`RuleSet::dispatch`]: event indices from `index_field` (`None`: the data
    /// stream name; `""`: no index restriction, see [`crate::dispatch::index`]), and with
    /// `dispatch` false, every stage of every selected rule evaluated on every parsed event
    /// (`--no-dispatch`, for comparisons). Call before decoders are built from the field table.
    pub fn configure_dispatch(&mut self, index_field: Option<&str>, dispatch: bool) {
        let index = Dispatch::index_source_for(&self.rules, index_field, &mut self.fields);
        self.dispatch = Dispatch::build(&self.rules, &self.fields, index, !dispatch);
    }

    /// The stage a [`StageRef`] designates.
    pub fn stage(&self, r: StageRef) -> Option<&eql::Stage> {
        let q = &self.rules.get(r.rule as usize)?.query;
        if r.stage == StageRef::UNTIL {
            q.until.as_ref()
        } else {
            q.stages.get(r.stage as usize)
        }
    }

    /// Caps every stage's join-key expansion at `max` tuples per event (`max_key_combinations`,
    /// at least 1; see [`crate::sequence::key::KeyLimit`]).
    pub fn set_max_key_combinations(&mut self, max: usize) {
        for stage in self.rules.iter_mut().flat_map(|r| r.query.stages.iter_mut().chain(r.query.until.iter_mut())) {
            stage.key_limit.max = max.max(1);
        }
    }

    /// The metric labels of each rule, in rule order (for [`crate::metrics::Metrics`]).
    pub fn labels(&self) -> Vec<RuleLabels> {
        self.rules
            .iter()
            .map(|r| RuleLabels {
                rule_id: r.spec.rule_id.clone(),
                rule_name: r.spec.name.clone(),
                stages: r.query.stages.len(),
            })
            .collect()
    }

    /// Connects each rule's rare-occurrence counters (key expansion cut at its cap, alerts not
    /// rendered whole) to the registry of `handles`; until then they count without being exported.
    pub fn count_into(&mut self, handles: &Handles) {
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let truncated = handles.key_expansion_truncated(i);
            for stage in rule.query.stages.iter_mut().chain(rule.query.until.iter_mut()) {
                stage.key_limit.truncated = truncated.clone();
            }
            rule.alert_render_errors = handles.alert_render_errors(i);
        }
    }

    /// Compiles every spec; all errors of all rules are returned together.
    pub fn compile(specs: Vec<RuleSpec>) -> Result<RuleSet, Vec<RuleError>> {
        let mut fields = FieldTable::new();
        let mut rules = Vec::with_capacity(specs.len());
        let mut errors = Vec::new();
        for spec in specs {
            let opts = options_for(&spec);
            match eql::compile_with(&spec.query, &mut fields, &opts) {
                Ok(c) => {
                    let warnings = c.warnings.iter().map(|w| map_to_file(&spec, w)).collect();
                    let timestamp_field =
                        fields.intern(spec.timestamp_override.as_deref().unwrap_or(DEFAULT_TIMESTAMP_FIELD));
                    let tiebreaker_field = spec.tiebreaker_field.as_deref().map(|t| fields.intern(t));
                    rules.push(Rule {
                        spec,
                        query: c.query,
                        warnings,
                        timestamp_field,
                        tiebreaker_field,
                        alert_render_errors: RareCounter::detached(),
                    });
                }
                Err(diags) => {
                    for d in diags {
                        errors.push(RuleError {
                            path: spec.path.clone(),
                            source: spec.source.clone(),
                            diagnostic: map_to_file(&spec, &d),
                        });
                    }
                }
            }
        }
        if errors.is_empty() {
            let index = Dispatch::index_source_for(&rules, None, &mut fields);
            let dispatch = Dispatch::build(&rules, &fields, index, false);
            Ok(RuleSet { rules, fields, dispatch })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Decoder;
    use crate::metrics::{Metrics, RuleLabels};

    #[test]
    fn the_key_cap_and_its_counter_reach_every_stage_and_until() {
        let query = "sequence by a, b [any where true] [any where true] until [any where c == 1]";
        let spec = RuleSpec { rule_id: "r".into(), query: query.into(), ..RuleSpec::default() };
        let mut set = RuleSet::compile(vec![spec]).expect("compiles");
        let labels = [RuleLabels { rule_id: "r".into(), rule_name: "n".into(), stages: 2 }];
        let metrics = Metrics::new(&labels).expect("metrics");
        set.set_max_key_combinations(4);
        set.count_into(&metrics.handles());
        let mut dec = Decoder::new(&set.fields);
        let ev = dec.decode(br#"{"a":[1,2,3],"b":[4,5,6],"c":1}"#).expect("valid");
        let mut keys = Vec::new();
        let q = &set.rules[0].query;
        for stage in q.stages.iter().chain(q.until.iter()) {
            stage.keys(&ev, &mut keys);
            assert_eq!(keys.len(), 4, "3 x 3 tuples cut at 4");
        }
        let page = metrics.render();
        assert!(page.contains("eqlstream_key_expansion_truncated_total{rule_id=\"r\"} 3\n"), "{page}");
    }
}
