//! `eqlstream validate PATH...` minus argv: load every rule file, compile every EQL rule, and
//! print each problem as `FILE:LINE:COL: error: MESSAGE` with the source line and a caret
//! (positions are in the TOML file, not just the query string), then a one-line summary.
//!
//! At most `diag::MAX_PER_FILE` diagnostics are printed per rule file, each bounded in size (see
//! `eql::diag`); the summary line counts them all.
//!
//! Rules that are skipped at start-up (other rule types, `sample` queries, deprecated rules in
//! a directory; see [`crate::catalog`]) are skipped here too, with the same one-line warning;
//! with `--strict` the unsupported ones are errors, as they are for `eqlstream --strict`.
//!
//! Exit codes (sysexits): 0 every rule can run (warnings allowed), 65 some rule cannot,
//! 66 a path does not exist.

use std::io::Write;
use std::path::PathBuf;

use crate::catalog::{self, LoadOptions};
use crate::eql::diag;
use crate::rules::{self, SkipReason};
use crate::ruleset::{map_to_file, options_for};

/// Every rule can run.
pub const EXIT_OK: u8 = 0;
/// Some rule cannot run (EX_DATAERR).
pub const EXIT_DATAERR: u8 = 65;
/// A path does not exist (EX_NOINPUT).
pub const EXIT_NOINPUT: u8 = 66;

/// The whole `eqlstream validate PATH...` command minus argv: writes diagnostics and warnings
/// to `err`, a one-line summary, and returns the exit code (0 / 65 / 66).
pub fn run(paths: &[PathBuf], err: &mut dyn Write) -> u8 {
    run_with(paths, LoadOptions::default(), err)
}

/// [`run`] under `opts` (`--strict`).
pub fn run_with(paths: &[PathBuf], opts: LoadOptions, err: &mut dyn Write) -> u8 {
    let (mut loaded, load_errors) = rules::load_paths_all(paths);
    let mut missing = 0usize;
    let mut errors = 0usize;
    let mut warnings = 0usize;
    // Output failures on stderr cannot be reported anywhere else; ignore them.
    for e in &load_errors {
        if e.is_not_found() {
            missing += 1;
        } else {
            errors += 1;
        }
        let _ = err.write_all(e.render().as_bytes());
    }
    let (specs, samples) = catalog::split_samples(std::mem::take(&mut loaded.rules), opts);
    loaded.rules = specs;
    loaded.skipped.extend(samples);
    let mut deprecated = 0usize;
    for s in &loaded.skipped {
        if let Some(e) = catalog::strict_error(s, opts) {
            errors += 1;
            let _ = err.write_all(e.render().as_bytes());
        } else if let Some(w) = s.warning() {
            warnings += 1;
            let _ = writeln!(err, "{w}");
        } else if s.reason == SkipReason::Deprecated {
            deprecated += 1;
        }
    }
    let mut fields = crate::event::FieldTable::new();
    let mut bad_rules = 0usize;
    for spec in &loaded.rules {
        let origin = spec.path.display().to_string();
        match crate::eql::compile_with(&spec.query, &mut fields, &options_for(spec)) {
            Ok(c) => {
                warnings += c.warnings.len();
                let ws: Vec<_> = c.warnings.iter().take(diag::MAX_PER_FILE).map(|w| map_to_file(spec, w)).collect();
                let mut text = diag::render_file(&origin, &spec.source, &ws);
                text.push_str(&diag::more_line(&origin, 0, c.warnings.len().saturating_sub(ws.len())));
                let _ = err.write_all(text.as_bytes());
            }
            Err(ds) => {
                bad_rules += 1;
                errors += ds.iter().filter(|d| d.is_error()).count();
                warnings += ds.iter().filter(|d| !d.is_error()).count();
                let shown: Vec<_> = ds.iter().take(diag::MAX_PER_FILE).map(|d| map_to_file(spec, d)).collect();
                let mut text = diag::render_file(&origin, &spec.source, &shown);
                let rest = &ds[shown.len()..];
                let rest_errors = rest.iter().filter(|d| d.is_error()).count();
                text.push_str(&diag::more_line(&origin, rest_errors, rest.len() - rest_errors));
                let _ = err.write_all(text.as_bytes());
            }
        }
    }
    let rules_total = loaded.rules.len();
    let _ = writeln!(
        err,
        "validate: {} rule{} checked, {} ok, {} with errors; {} error{}, {} warning{}{}{}",
        rules_total,
        if rules_total == 1 { "" } else { "s" },
        rules_total - bad_rules,
        bad_rules,
        errors,
        if errors == 1 { "" } else { "s" },
        warnings,
        if warnings == 1 { "" } else { "s" },
        if deprecated > 0 {
            format!("; {deprecated} deprecated rule{} skipped", if deprecated == 1 { "" } else { "s" })
        } else {
            String::new()
        },
        if missing > 0 {
            format!("; {missing} path{} not found", if missing == 1 { "" } else { "s" })
        } else {
            String::new()
        }
    );
    if missing > 0 {
        EXIT_NOINPUT
    } else if errors > 0 {
        EXIT_DATAERR
    } else {
        EXIT_OK
    }
}
