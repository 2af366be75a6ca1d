//! Rule operations on top of the loader ([`crate::rules`]) and the compiler
//! ([`crate::ruleset`]): the load policy every command shares, and the commands that work on a
//! rule set as a whole.
//!
//! | module | job |
//! |---|---|
//! | this file | [`load`]: rule files -> a runnable [`RuleSet`], what was skipped, the one-line summary |
//! | [`list`] | `eqlstream rules list`: one row per loaded rule, as a table or JSON |
//! | [`fixtures`] | `eqlstream test DIR`: each rule's fixture events against its expected alerts |
//! | [`reload`] | SIGHUP and `--watch`: load again, hand a good set to the pipeline, refuse a bad one |
//!
//! **The load policy.** Elastic's repository mixes rule types and keeps retired rules next to
//! current ones, so pointing `--rules` at `detection-rules/rules` must run what can run and say
//! what it left out, without drowning stderr:
//! - a rule whose `type` is not `eql`, and an EQL `sample` query (valid, but it ignores event
//!   order, so a stream cannot evaluate it), is *skipped*: one warning line each
//!   ([`Skipped::warning`]), then the summary line ([`summary`]). `--strict` makes each of them
//!   an error shown at `FILE:LINE:COL` with its source line, and the set is refused (exit 65);
//! - a deprecated rule met while walking a directory is skipped silently and only counted in
//!   the summary (see [`crate::rules`] for the conventions); `--strict` does not change that;
//! - every other problem is an error, and all of them are shown together, as `validate` shows
//!   them.
//!
//! Nothing here prints: [`load`] returns the rule set with its skips, or the rendered errors,
//! and the caller decides where they go (stderr at start-up and on reload, `validate`'s output).

pub mod fixtures;
pub mod list;
pub mod reload;

use std::path::PathBuf;

use crate::config::RuleSource;
use crate::eql::{self, diag, Span};
use crate::rules::{self, RuleSpec, RulesError, SkipReason, Skipped};
use crate::ruleset::{self, map_to_file, RuleSet};

/// How strictly rules are loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Unsupported rules (other rule types, `sample` queries) are errors instead of skips.
    pub strict: bool,
}

/// A compiled rule set ready to run, and the rule files left out of it.
#[derive(Debug)]
pub struct Catalog {
    /// The rules, compiled, in load order.
    pub rules: RuleSet,
    /// What was skipped, in path order (samples after the other skips).
    pub skipped: Vec<Skipped>,
}

impl Catalog {
    /// The one-line summary: `loaded N rules, skipped M: ...`.
    pub fn summary(&self) -> String {
        summary(self.rules.rules.len(), &self.skipped)
    }
}

/// Why a rule set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Rule files that do not exist or cannot be read, invalid rules, or (with `--strict`)
    /// unsupported ones: every problem, rendered (`FILE:LINE:COL: error: ...` with the source
    /// line and a caret; at most [`diag::MAX_PER_FILE`] per file).
    #[error("{errors} rule error(s) (at most {} shown per rule file)", diag::MAX_PER_FILE)]
    Rules {
        /// The rendered problems, ready for stderr.
        rendered: String,
        /// How many problems there are (shown or not).
        errors: usize,
        /// True when a path given does not exist (exit 66 rather than 65).
        not_found: bool,
    },
    /// Every rule was skipped, or there was none.
    #[error("no EQL rule to run ({})", summary(0, .skipped))]
    Empty {
        /// What was skipped.
        skipped: Vec<Skipped>,
    },
}

impl LoadError {
    /// True when a rule path does not exist (sysexits 66).
    pub fn is_not_found(&self) -> bool {
        matches!(self, LoadError::Rules { not_found: true, .. })
    }

    /// The rendered problems (empty for [`LoadError::Empty`]).
    pub fn rendered(&self) -> &str {
        match self {
            LoadError::Rules { rendered, .. } => rendered,
            LoadError::Empty { .. } => "",
        }
    }
}

/// Loads, filters and compiles the rules of `source` under the load policy (module docs).
pub fn load(source: &RuleSource, opts: LoadOptions) -> Result<Catalog, LoadError> {
    let (loaded, load_errors) = match source {
        RuleSource::Embedded => match rules::embedded() {
            Ok(l) => (l, Vec::new()),
            Err(e) => (rules::Loaded::default(), vec![e]),
        },
        RuleSource::Paths(paths) => rules::load_paths_all(paths),
    };
    let not_found = load_errors.iter().any(RulesError::is_not_found);
    let mut rendered = String::new();
    let mut errors = 0usize;
    for e in &load_errors {
        rendered.push_str(&e.render());
        errors += 1;
    }
    let mut skipped = Vec::with_capacity(loaded.skipped.len());
    for s in loaded.skipped {
        match strict_error(&s, opts) {
            Some(e) => {
                rendered.push_str(&e.render());
                errors += 1;
            }
            None => skipped.push(s),
        }
    }
    let (specs, samples) = split_samples(loaded.rules, opts);
    skipped.extend(samples);
    match RuleSet::compile(specs) {
        Ok(set) if errors == 0 => {
            if set.rules.is_empty() {
                Err(LoadError::Empty { skipped })
            } else {
                Ok(Catalog { rules: set, skipped })
            }
        }
        Ok(_) => Err(LoadError::Rules { rendered, errors, not_found }),
        Err(compile_errors) => {
            errors += compile_errors.len();
            rendered.push_str(&ruleset::render_errors(&compile_errors));
            Err(LoadError::Rules { rendered, errors, not_found })
        }
    }
}

/// The error a skip becomes under `--strict` (`None`: it stays a skip).
pub fn strict_error(s: &Skipped, opts: LoadOptions) -> Option<RulesError> {
    if !opts.strict {
        return None;
    }
    match &s.reason {
        SkipReason::Deprecated => None,
        // A sample is never skipped under --strict (the compiler reports it); say it all the same.
        SkipReason::RuleType(_) | SkipReason::Sample => {
            let (text, span) = s.at.clone().map_or((None, None), |(t, r)| (Some(t), Some(r)));
            Some(RulesError::Invalid {
                path: s.path.clone(),
                text: text.unwrap_or_else(|| "".into()),
                span,
                message: format!("{}: only EQL event and sequence queries can run (--strict)", s.message()),
            })
        }
    }
}

/// Splits off the `sample` queries as skips (unless `--strict`, where the compiler reports them).
pub fn split_samples(specs: Vec<RuleSpec>, opts: LoadOptions) -> (Vec<RuleSpec>, Vec<Skipped>) {
    if opts.strict {
        return (specs, Vec::new());
    }
    let mut keep = Vec::with_capacity(specs.len());
    let mut skipped = Vec::new();
    for spec in specs {
        match sample_span(&spec) {
            Some(span) => skipped.push(Skipped {
                path: spec.path.clone(),
                reason: SkipReason::Sample,
                at: Some((spec.source.clone(), span)),
            }),
            None => keep.push(spec),
        }
    }
    (keep, skipped)
}

/// The file byte range of the `sample` keyword when the rule's query is a `sample` query.
pub fn sample_span(spec: &RuleSpec) -> Option<std::ops::Range<usize>> {
    let st = eql::parse(&spec.query).ok()?;
    if !matches!(st.kind, eql::ast::QueryKind::Sample { .. }) {
        return None;
    }
    let d = map_to_file(spec, &eql::Diagnostic::warning(Span::new(st.head_span.start, st.head_span.end), ""));
    Some(d.span.start..d.span.end)
}

/// `loaded N rules, skipped M: A deprecated, B not EQL (query 3, esql 1), C sample queries`.
pub fn summary(loaded: usize, skipped: &[Skipped]) -> String {
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut out = format!("loaded {}, skipped {}", plural(loaded, "rule", "rules"), skipped.len());
    if skipped.is_empty() {
        return out;
    }
    let deprecated = skipped.iter().filter(|s| s.reason == SkipReason::Deprecated).count();
    let samples = skipped.iter().filter(|s| s.reason == SkipReason::Sample).count();
    let mut types: Vec<(&str, usize)> = Vec::new();
    for s in skipped {
        if let SkipReason::RuleType(t) = &s.reason {
            let t = if t.is_empty() { "(none)" } else { t.as_str() };
            match types.iter_mut().find(|(n, _)| *n == t) {
                Some((_, c)) => *c += 1,
                None => types.push((t, 1)),
            }
        }
    }
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut parts = Vec::new();
    if deprecated > 0 {
        parts.push(format!("{deprecated} deprecated"));
    }
    if !types.is_empty() {
        let n: usize = types.iter().map(|(_, c)| c).sum();
        let each: Vec<String> = types.iter().map(|(t, c)| format!("{t} {c}")).collect();
        parts.push(format!("{n} not EQL ({})", each.join(", ")));
    }
    if samples > 0 {
        parts.push(plural(samples, "sample query", "sample queries"));
    }
    out.push_str(": ");
    out.push_str(&parts.join(", "));
    out
}

/// The paths a rule source reads (empty for the built-in rules).
pub fn paths(source: &RuleSource) -> &[PathBuf] {
    match source {
        RuleSource::Embedded => &[],
        RuleSource::Paths(p) => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn skip(reason: SkipReason) -> Skipped {
        Skipped { path: PathBuf::from("r.toml"), reason, at: None }
    }

    #[test]
    fn the_summary_counts_each_kind_of_skip() {
        assert_eq!(summary(1, &[]), "loaded 1 rule, skipped 0");
        let skipped = [
            skip(SkipReason::Sample),
            skip(SkipReason::RuleType("query".into())),
            skip(SkipReason::Deprecated),
            skip(SkipReason::RuleType("esql".into())),
            skip(SkipReason::RuleType("query".into())),
            skip(SkipReason::RuleType(String::new())),
        ];
        assert_eq!(
            summary(954, &skipped),
            "loaded 954 rules, skipped 6: 1 deprecated, 4 not EQL (query 2, (none) 1, esql 1), 1 sample query"
        );
    }

    #[test]
    fn a_sample_query_is_found_at_its_keyword_in_the_file() {
        let source: Arc<str> = "[rule]\nquery = '''\nsample by a [any where true] [any where true]\n'''\n".into();
        let start = source.find("sample").expect("present");
        let spec = RuleSpec {
            query: "sample by a [any where true] [any where true]\n".into(),
            query_map: rules::QueryMap::linear(start, 46),
            source: source.clone(),
            ..RuleSpec::default()
        };
        assert_eq!(sample_span(&spec), Some(start..start + 6));
        let sequence = RuleSpec { query: "sequence [any where true] [any where true]".into(), ..RuleSpec::default() };
        assert_eq!(sample_span(&sequence), None);
        let broken = RuleSpec { query: "sample by".into(), ..RuleSpec::default() };
        assert_eq!(sample_span(&broken), None, "a query that does not parse is the compiler's to report");
    }

    #[test]
    fn strict_turns_unsupported_skips_into_errors_but_not_deprecated_ones() {
        let strict = LoadOptions { strict: true };
        assert!(strict_error(&skip(SkipReason::RuleType("query".into())), strict).is_some());
        assert!(strict_error(&skip(SkipReason::Sample), strict).is_some());
        assert!(strict_error(&skip(SkipReason::Deprecated), strict).is_none());
        assert!(strict_error(&skip(SkipReason::Sample), LoadOptions::default()).is_none());
    }
}
