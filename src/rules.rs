//! Elastic detection-rule TOML files (the format of elastic/detection-rules) -> [`RuleSpec`].
//! No EQL logic here.

use std::path::PathBuf;

/// One detection rule as written in its TOML file: metadata for alerts, plus the EQL query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleSpec {
    /// The file the rule was loaded from (`<embedded>/...` for built-in rules).
    pub path: PathBuf,
    /// `rule.rule_id`.
    pub rule_id: String,
    /// `rule.name`.
    pub name: String,
    /// `rule.description`.
    pub description: String,
    /// `rule.severity` (`low`, `medium`, `high`, `critical`).
    pub severity: String,
    /// `rule.risk_score` (0-100).
    pub risk_score: f64,
    /// `rule.version`, when present.
    pub version: Option<i64>,
    /// `rule.references`.
    pub references: Vec<String>,
    /// `rule.tags`.
    pub tags: Vec<String>,
    /// `rule.threat` (the MITRE ATT&CK mapping), converted to JSON, `[]` when absent.
    pub threat: serde_json::Value,
    /// `rule.index` patterns.
    pub index: Vec<String>,
    /// `rule.timestamp_override`, when present.
    pub timestamp_override: Option<String>,
    /// `rule.event_category_override`, when present.
    pub event_category_override: Option<String>,
    /// `rule.tiebreaker_field`, when present.
    pub tiebreaker_field: Option<String>,
    /// `rule.query`: the EQL text.
    pub query: String,
}
