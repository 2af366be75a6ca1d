//! Elastic detection-rule TOML files (the format of elastic/detection-rules) -> [`RuleSpec`].
//! No EQL logic here.
//!
//! Loading: files or directories (recursive, `*.toml`, sorted by path); a duplicate `rule_id` is
//! an error. Some rules are skipped rather than loaded, each recorded as a [`Skipped`] with its
//! [`SkipReason`] (the caller decides whether a skip is a warning or, with `--strict`, an error):
//! rules whose `type` is not `eql`, and deprecated rules met while walking a directory.
//!
//! **Deprecated rules** follow elastic/detection-rules' conventions (`detection_rules/rule_loader.py`
//! files them apart when `[metadata] maturity = "deprecated"`, and the repository keeps them in
//! `rules/_deprecated/`, each with `maturity = "deprecated"` and a `deprecation_date`): a
//! directory named `_deprecated` is not read at all (its `*.toml` files are counted as skipped),
//! and a file found in a directory walk whose metadata says `maturity = "deprecated"` is skipped.
//! A deprecated rule is loaded only when its file is named explicitly, so
//! `--rules detection-rules/rules` runs what Elastic ships as current.
//! Each spec remembers where its query string sits in the TOML file ([`QueryMap`]) so that EQL
//! diagnostics (byte spans into the query) can be shown at `FILE:LINE:COL` of the file itself,
//! for `'''literal'''`, `"""basic"""` (with escapes and line-ending backslashes) and
//! single-line strings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

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
    /// `rule.type` (always `eql` for loaded rules).
    pub rule_type: String,
    /// `rule.language`, when present.
    pub language: Option<String>,
    /// The whole TOML file, for rendering diagnostics.
    pub source: Arc<str>,
    /// Where each byte of `query` came from in `source`.
    pub query_map: QueryMap,
    /// Byte range of the `rule_id` value in `source`.
    pub rule_id_span: std::ops::Range<usize>,
}

/// Maps byte offsets of a decoded TOML string back to byte offsets of the file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryMap {
    /// `offsets[i]` = file offset of query byte `i`; one extra entry for the end.
    offsets: Vec<usize>,
}

impl QueryMap {
    /// A map for a string whose bytes start at `start` of the file, unchanged.
    pub fn linear(start: usize, len: usize) -> QueryMap {
        QueryMap { offsets: (start..=start + len).collect() }
    }

    /// The file offset of query byte `i` (clamped to the end of the string).
    pub fn file_offset(&self, i: usize) -> usize {
        match self.offsets.get(i) {
            Some(o) => *o,
            None => self.offsets.last().copied().unwrap_or(0),
        }
    }

    /// Maps a query byte range to a file byte range.
    pub fn file_range(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        let s = self.file_offset(start);
        let e = if end > start {
            // End of the last byte, not the start of the next (escapes may lie in between).
            self.file_offset(end - 1) + 1
        } else {
            s
        };
        s..e.max(s)
    }
}

/// Decodes the TOML string literal `raw` (delimiters included), returning the text and the
/// offset in `raw` of each byte of the text (plus one for the end). `None` if `raw` is not a
/// string literal this decoder understands.
pub fn decode_toml_string(raw: &str) -> Option<(String, Vec<usize>)> {
    let mut out = String::new();
    let mut map = Vec::new();
    let push = |out: &mut String, map: &mut Vec<usize>, c: char, at: usize| {
        for _ in 0..c.len_utf8() {
            map.push(at);
        }
        out.push(c);
    };
    let (multi, literal) = if raw.starts_with("'''") {
        (true, true)
    } else if raw.starts_with("\"\"\"") {
        (true, false)
    } else if raw.starts_with('\'') {
        (false, true)
    } else if raw.starts_with('"') {
        (false, false)
    } else {
        return None;
    };
    let d = if multi { 3 } else { 1 };
    if raw.len() < 2 * d {
        return None;
    }
    let body_end = raw.len() - d;
    let mut i = d;
    if multi {
        if raw[i..].starts_with("\r\n") {
            i += 2;
        } else if raw[i..].starts_with('\n') {
            i += 1;
        }
    }
    while i < body_end {
        let c = raw[i..].chars().next()?;
        if literal || c != '\\' {
            push(&mut out, &mut map, c, i);
            i += c.len_utf8();
            continue;
        }
        let esc_at = i;
        let e = raw[i + 1..].chars().next()?;
        let simple = match e {
            'b' => Some('\u{8}'),
            't' => Some('\t'),
            'n' => Some('\n'),
            'f' => Some('\u{c}'),
            'r' => Some('\r'),
            'e' => Some('\u{1b}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(ch) = simple {
            push(&mut out, &mut map, ch, esc_at);
            i += 2;
            continue;
        }
        let hex_len = match e {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => 0,
        };
        if hex_len > 0 {
            let hex = raw.get(i + 2..i + 2 + hex_len)?;
            let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
            push(&mut out, &mut map, ch, esc_at);
            i += 2 + hex_len;
            continue;
        }
        if multi && (e == ' ' || e == '\t' || e == '\n' || e == '\r') {
            // Line-ending backslash: skip whitespace and newlines.
            i += 1;
            while i < body_end {
                match raw.as_bytes()[i] {
                    b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                    _ => break,
                }
            }
            continue;
        }
        return None;
    }
    map.push(body_end);
    Some((out, map))
}

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A path given on the command line does not exist (exit 66).
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid TOML or misses required keys; `span` points into `text`.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The file's text.
        text: Arc<str>,
        /// Byte range of the problem, when known.
        span: Option<std::ops::Range<usize>>,
        /// What is wrong.
        message: String,
    },
    /// Two rules share a `rule_id`.
    #[error("{path}: duplicate rule_id `{rule_id}` (first defined in {})", first.display())]
    DuplicateRuleId {
        /// The id.
        rule_id: String,
        /// The file that defined it first.
        first: PathBuf,
        /// The file with the duplicate.
        path: PathBuf,
        /// The duplicate file's text.
        text: Arc<str>,
        /// Byte range of the duplicate `rule_id` value.
        span: std::ops::Range<usize>,
    },
}

impl RulesError {
    /// `FILE:LINE:COL: error: MESSAGE` plus source line and caret when a position is known,
    /// else `FILE: error: MESSAGE`.
    pub fn render(&self) -> String {
        use crate::eql::diag::{clip, render, Diagnostic, Span, MAX_MESSAGE_CHARS};
        match self {
            RulesError::Invalid { path, text, span: Some(span), message } => render(
                &path.display().to_string(),
                text,
                &Diagnostic::error(Span::new(span.start, span.end), message.clone()),
            ),
            RulesError::DuplicateRuleId { rule_id, first, path, text, span } => render(
                &path.display().to_string(),
                text,
                &Diagnostic::error(
                    Span::new(span.start, span.end),
                    format!("duplicate rule_id `{rule_id}`: expected a unique id, found the id of {}", first.display()),
                ),
            ),
            RulesError::NotFound { path } => {
                format!("{}: error: no such file or directory\n", path.display())
            }
            RulesError::Io { path, source } => format!("{}: error: {source}\n", path.display()),
            RulesError::Invalid { path, message, .. } => {
                format!("{}: error: {}\n", path.display(), clip(message, MAX_MESSAGE_CHARS))
            }
        }
    }

    /// True for a missing input path (sysexits 66).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RulesError::NotFound { .. })
    }
}

/// The result of loading rule files.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The EQL rules, in path order.
    pub rules: Vec<RuleSpec>,
    /// The rule files that were not loaded, and why, in path order.
    pub skipped: Vec<Skipped>,
}

/// Why a rule file was not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its `type` is not `eql` (`query`, `esql`, `machine_learning`, ...; empty when missing).
    RuleType(String),
    /// A `sample` query: valid EQL, but it ignores event order and cannot be streamed. The
    /// loader never sets it (no EQL logic here); the caller does after parsing the query.
    Sample,
    /// A deprecated rule met while walking a directory (see the module docs).
    Deprecated,
}

/// A rule file that was not loaded.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
    /// The file's text and the byte range that shows why (the `type` value, the `sample`
    /// keyword), when the file was read.
    pub at: Option<(Arc<str>, std::ops::Range<usize>)>,
}

impl Skipped {
    /// What is wrong, lower-case, without the file (`rule type `query` is not `eql``).
    pub fn message(&self) -> String {
        match &self.reason {
            SkipReason::RuleType(t) => {
                format!("rule type `{}` is not `eql`", if t.is_empty() { "(none)" } else { t })
            }
            SkipReason::Sample => "sample queries are not supported in streaming".to_string(),
            SkipReason::Deprecated => "deprecated rule (load it by naming its file)".to_string(),
        }
    }

    /// `FILE:LINE:COL` (or `FILE` when no position is known).
    pub fn location(&self) -> String {
        match &self.at {
            Some((text, span)) => {
                let (line, col) = crate::eql::diag::line_col(text, span.start);
                format!("{}:{line}:{col}", self.path.display())
            }
            None => self.path.display().to_string(),
        }
    }

    /// The one-line warning printed for an unsupported rule (`FILE:LINE:COL: warning: MESSAGE,
    /// rule skipped`); `None` for a deprecated one, which is only counted.
    pub fn warning(&self) -> Option<String> {
        match self.reason {
            SkipReason::Deprecated => None,
            _ => Some(format!("{}: warning: {}, rule skipped", self.location(), self.message())),
        }
    }
}

/// How a rule file was reached: named on the command line, or found in a directory walk (where
/// deprecated rules are skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The file itself was given.
    Named,
    /// Found under a directory that was given.
    Walked,
}

/// The name of the directories that hold deprecated rules in elastic/detection-rules.
pub const DEPRECATED_DIR: &str = "_deprecated";

#[derive(Deserialize)]
struct FileToml {
    metadata: Option<MetadataToml>,
    rule: Option<toml::Spanned<RuleToml>>,
}

#[derive(Deserialize)]
struct MetadataToml {
    maturity: Option<String>,
}

#[derive(Deserialize)]
struct RuleToml {
    rule_id: Option<toml::Spanned<String>>,
    name: Option<String>,
    description: Option<String>,
    severity: Option<String>,
    risk_score: Option<f64>,
    version: Option<i64>,
    references: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    threat: Option<toml::Value>,
    index: Option<Vec<String>>,
    timestamp_override: Option<String>,
    event_category_override: Option<String>,
    tiebreaker_field: Option<String>,
    #[serde(rename = "type")]
    rule_type: Option<toml::Spanned<String>>,
    language: Option<String>,
    query: Option<toml::Spanned<String>>,
}

/// Loads rules from files or directories (recursive, sorted); stops at the first error.
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, RulesError> {
    let (loaded, mut errors) = load_paths_all(paths);
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors.remove(0))
    }
}

/// Loads rules from files or directories, collecting every error instead of stopping.
/// Rules with errors are left out of the result.
pub fn load_paths_all(paths: &[PathBuf]) -> (Loaded, Vec<RulesError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut loaded = Loaded::default();
    for p in paths {
        match std::fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => errors.push(RulesError::NotFound { path: p.clone() }),
            Err(e) => errors.push(RulesError::Io { path: p.clone(), source: e }),
            Ok(m) if m.is_dir() => {
                let mut visited = hashbrown::HashSet::new();
                let mut walk = Walk { files: &mut files, errors: &mut errors, visited: &mut visited };
                walk.dir(p, p.file_name().is_some_and(|n| n == DEPRECATED_DIR));
            }
            Ok(_) => files.push((p.clone(), Found::File(Origin::Named))),
        }
    }
    for (f, found) in files {
        let origin = match found {
            Found::File(origin) => origin,
            Found::InDeprecatedDir => {
                loaded.skipped.push(Skipped { path: f, reason: SkipReason::Deprecated, at: None });
                continue;
            }
        };
        match std::fs::read_to_string(&f) {
            Ok(text) => load_text_from(&f, text.into(), origin, &mut loaded, &mut errors),
            Err(e) => errors.push(RulesError::Io { path: f, source: e }),
        }
    }
    check_duplicates(&mut loaded, &mut errors);
    (loaded, errors)
}

/// How the walk found a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// To be read.
    File(Origin),
    /// Under a `_deprecated` directory: counted as skipped, never read.
    InDeprecatedDir,
}

fn check_duplicates(loaded: &mut Loaded, errors: &mut Vec<RulesError>) {
    let mut seen: hashbrown::HashMap<String, PathBuf> = hashbrown::HashMap::new();
    let mut keep = Vec::with_capacity(loaded.rules.len());
    for r in loaded.rules.drain(..) {
        match seen.get(&r.rule_id) {
            Some(first) => errors.push(RulesError::DuplicateRuleId {
                rule_id: r.rule_id.clone(),
                first: first.clone(),
                path: r.path.clone(),
                text: r.source.clone(),
                span: r.rule_id_span.clone(),
            }),
            None => {
                seen.insert(r.rule_id.clone(), r.path.clone());
                keep.push(r);
            }
        }
    }
    loaded.rules = keep;
}

/// A directory walk: `*.toml` files, sorted, following symbolic links but visiting each real
/// directory once (a link loop ends there).
struct Walk<'a> {
    files: &'a mut Vec<(PathBuf, Found)>,
    errors: &'a mut Vec<RulesError>,
    visited: &'a mut hashbrown::HashSet<PathBuf>,
}

impl Walk<'_> {
    /// Collects the files under `dir`; `deprecated` once inside a `_deprecated` directory.
    fn dir(&mut self, dir: &Path, deprecated: bool) {
        if let Ok(real) = std::fs::canonicalize(dir) {
            if !self.visited.insert(real) {
                return;
            }
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.errors.push(RulesError::Io { path: dir.to_path_buf(), source: e });
                return;
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let deprecated = deprecated || p.file_name().is_some_and(|n| n == DEPRECATED_DIR);
                    self.dir(&p, deprecated)
                }
                Ok(_) if p.extension().is_some_and(|e| e == "toml") => {
                    let found = if deprecated { Found::InDeprecatedDir } else { Found::File(Origin::Walked) };
                    self.files.push((p, found))
                }
                Ok(_) => {}
                // Not even a look at what lies in a `_deprecated` directory.
                Err(_) if deprecated => {}
                Err(e) => self.errors.push(RulesError::Io { path: p, source: e }),
            }
        }
    }
}

/// Parses one rule file's text (already read) into `loaded`, as a file named explicitly (a
/// deprecated rule is loaded).
pub fn load_text(path: &Path, text: Arc<str>, loaded: &mut Loaded, errors: &mut Vec<RulesError>) {
    load_text_from(path, text, Origin::Named, loaded, errors)
}

/// Parses one rule file's text (already read) into `loaded`; a deprecated rule reached by a
/// directory walk is skipped.
pub fn load_text_from(path: &Path, text: Arc<str>, origin: Origin, loaded: &mut Loaded, errors: &mut Vec<RulesError>) {
    let invalid = |span: Option<std::ops::Range<usize>>, message: String| RulesError::Invalid {
        path: path.to_path_buf(),
        text: text.clone(),
        span,
        message,
    };
    let file: FileToml = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let msg = e.message().trim().replace('\n', " ");
            errors.push(invalid(e.span(), format!("invalid TOML: {msg}")));
            return;
        }
    };
    let Some(rule) = file.rule else {
        errors.push(invalid(Some(0..0), "expected a `[rule]` table, found none".to_string()));
        return;
    };
    let rule_span = rule.span();
    let rule = rule.into_inner();
    let head = rule_span.start..rule_span.start;
    let deprecated = file.metadata.and_then(|m| m.maturity).is_some_and(|m| m == "deprecated");
    if deprecated && origin == Origin::Walked {
        loaded.skipped.push(Skipped { path: path.to_path_buf(), reason: SkipReason::Deprecated, at: None });
        return;
    }
    let (rule_type, type_span) = match &rule.rule_type {
        Some(t) => (t.get_ref().clone(), t.span()),
        None => (String::new(), head.clone()),
    };
    if rule_type != "eql" {
        loaded.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason: SkipReason::RuleType(rule_type),
            at: Some((text.clone(), type_span)),
        });
        return;
    }
    let Some(rule_id) = rule.rule_id else {
        errors.push(invalid(Some(head), "missing `rule_id` in `[rule]`".to_string()));
        return;
    };
    let Some(query) = rule.query else {
        errors.push(invalid(Some(head), "missing `query` in `[rule]`".to_string()));
        return;
    };
    let qspan = query.span();
    let query = query.into_inner();
    let raw = text.get(qspan.clone()).unwrap_or("");
    let query_map = match decode_toml_string(raw) {
        Some((decoded, offsets)) if decoded == query => {
            QueryMap { offsets: offsets.into_iter().map(|o| o + qspan.start).collect() }
        }
        // Not a string literal we can map: point everything at the start of the value.
        _ => QueryMap { offsets: vec![qspan.start; query.len() + 1] },
    };
    let threat = rule
        .threat
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
    let rule_id_span = rule_id.span();
    loaded.rules.push(RuleSpec {
        path: path.to_path_buf(),
        rule_id: rule_id.into_inner(),
        name: rule.name.unwrap_or_default(),
        description: rule.description.unwrap_or_default(),
        severity: rule.severity.unwrap_or_default(),
        risk_score: rule.risk_score.unwrap_or(0.0),
        version: rule.version,
        references: rule.references.unwrap_or_default(),
        tags: rule.tags.unwrap_or_default(),
        threat,
        index: rule.index.unwrap_or_default(),
        timestamp_override: rule.timestamp_override,
        event_category_override: rule.event_category_override,
        tiebreaker_field: rule.tiebreaker_field,
        query,
        rule_type,
        language: rule.language,
        source: text.clone(),
        query_map,
        rule_id_span,
    });
}

mod embedded_files {
    include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));
}

/// The rules of `config/rules/` embedded at build time (paths `<embedded>/NAME.toml`), loaded
/// as `--rules config/rules` would load them (deprecated rules skipped).
pub fn embedded() -> Result<Loaded, RulesError> {
    let mut loaded = Loaded::default();
    let mut errors = Vec::new();
    for (name, text) in embedded_files::FILES {
        let path = PathBuf::from(format!("<embedded>/{name}"));
        if Path::new(name).components().any(|c| c.as_os_str() == DEPRECATED_DIR) {
            loaded.skipped.push(Skipped { path, reason: SkipReason::Deprecated, at: None });
            continue;
        }
        load_text_from(&path, Arc::from(*text), Origin::Walked, &mut loaded, &mut errors);
    }
    check_duplicates(&mut loaded, &mut errors);
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_literal_and_basic_strings_with_offsets() {
        let (s, m) = decode_toml_string("'''\nab'''").expect("literal");
        assert_eq!(s, "ab");
        assert_eq!(m, vec![4, 5, 6]);
        let (s, m) = decode_toml_string(r#""a\"b\u0041""#).expect("basic");
        assert_eq!(s, "a\"bA");
        assert_eq!(m, vec![1, 2, 4, 5, 11]);
        let (s, _) = decode_toml_string("\"\"\"\na \\\n   b\"\"\"").expect("multi");
        assert_eq!(s, "a b");
    }

    #[test]
    fn embedded_rules_load() {
        let l = embedded().expect("embedded rules are valid");
        assert!(!l.rules.is_empty());
        assert!(l.rules.iter().all(|r| r.path.starts_with("<embedded>")));
    }
}
