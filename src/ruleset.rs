//! The compiled rule set: every loaded [`RuleSpec`] compiled against one shared
//! [`FieldTable`], with diagnostics mapped from query offsets to `FILE:LINE:COL` of the rule's
//! TOML file. Built once at start-up; nothing here runs per event.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::eql::{self, diag, CompileOptions, Diagnostic, Span};
use crate::event::{FieldId, FieldTable};
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
}

impl Rule {
    /// Renders one of this rule's warnings as `FILE:LINE:COL: warning: ...` + caret.
    pub fn render_warning(&self, w: &Diagnostic) -> String {
        diag::render(&self.spec.path.display().to_string(), &self.spec.source, w)
    }
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
        f.write_str(&diag::render(
            &self.path.display().to_string(),
            &self.source,
            &self.diagnostic,
        ))
    }
}

impl std::error::Error for RuleError {}

/// Moves a diagnostic from query offsets to file offsets.
pub fn map_to_file(spec: &RuleSpec, d: &Diagnostic) -> Diagnostic {
    let r = spec.query_map.file_range(d.span.start, d.span.end);
    Diagnostic {
        span: Span::new(r.start, r.end),
        ..d.clone()
    }
}

/// The compile options a rule asks for (`event_category_override`).
pub fn options_for(spec: &RuleSpec) -> CompileOptions {
    let mut o = CompileOptions::default();
    if let Some(f) = &spec.event_category_override {
        o.event_category_field = f.clone();
    }
    o
}

impl RuleSet {
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
                    let timestamp_field = fields.intern(
                        spec.timestamp_override
                            .as_deref()
                            .unwrap_or(DEFAULT_TIMESTAMP_FIELD),
                    );
                    let tiebreaker_field =
                        spec.tiebreaker_field.as_deref().map(|t| fields.intern(t));
                    rules.push(Rule {
                        spec,
                        query: c.query,
                        warnings,
                        timestamp_field,
                        tiebreaker_field,
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
            Ok(RuleSet { rules, fields })
        } else {
            Err(errors)
        }
    }
}
