//! Rule loading: fields of a real rule file, directory walking (recursive, sorted), skipping of
//! non-EQL and deprecated rules, duplicate ids, missing paths, and the TOML position of query
//! diagnostics.

use std::path::PathBuf;

use eqlstream::rules::{self, RulesError, SkipReason};
use eqlstream::ruleset::RuleSet;

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("temp dir writable");
    }
    std::fs::write(&p, text).expect("temp dir writable");
    p
}

fn rule(id: &str, typ: &str, query_toml: &str) -> String {
    format!(
        "[metadata]\nmaturity = \"production\"\n\n[rule]\nname = \"r {id}\"\nrule_id = \"{id}\"\nrisk_score = 21\nseverity = \"low\"\ndescription = \"d\"\ntype = \"{typ}\"\n{query_toml}\n"
    )
}

#[test]
fn seed_rule_fields_are_loaded() {
    let l = rules::load_paths(&[PathBuf::from(
        "config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml",
    )])
    .expect("seed rule loads");
    assert_eq!(l.rules.len(), 1);
    let r = &l.rules[0];
    assert_eq!(r.rule_id, "1dc56174-5d02-4ca4-af92-e391f096fb21");
    assert_eq!(r.severity, "high");
    assert_eq!(r.risk_score, 73.0);
    assert_eq!(r.index.len(), 2);
    assert_eq!(r.tags.len(), 7);
    assert_eq!(r.references.len(), 1);
    assert_eq!(r.timestamp_override.as_deref(), Some("event.ingested"));
    assert_eq!(r.rule_type, "eql");
    assert_eq!(r.language.as_deref(), Some("eql"));
    assert_eq!(r.threat.as_array().map(Vec::len), Some(3));
    assert_eq!(r.threat[0]["tactic"]["id"], "TA0005");
    assert!(r.query.starts_with("sequence by container.id"));
    // The first query byte maps to the line after `query = '''`.
    let off = r.query_map.file_offset(0);
    assert!(r.source[off..].starts_with("sequence by container.id"));
}

#[test]
fn directories_are_walked_recursively_in_sorted_order_and_non_eql_rules_skipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "b/z.toml", &rule("z", "eql", "query = \"any where true\""));
    write(dir.path(), "a.toml", &rule("a", "eql", "query = \"any where true\""));
    write(dir.path(), "b/c.toml", &rule("c", "query", "query = \"x : y\""));
    write(dir.path(), "b/notes.md", "not a rule");
    let l = rules::load_paths(&[dir.path().to_path_buf()]).expect("loads");
    let ids: Vec<&str> = l.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, ["a", "z"]);
    assert_eq!(l.skipped.len(), 1);
    assert_eq!(l.skipped[0].reason, SkipReason::RuleType("query".into()));
    let w = l.skipped[0].warning().expect("a skipped query rule is warned about");
    // At the `type` value: line 10 of the file, after `type = `.
    assert!(w.contains("c.toml:10:8: warning:"), "{w}");
    assert!(w.contains("`query` is not `eql`"), "{w}");
}

fn deprecated(id: &str) -> String {
    rule(id, "eql", "query = \"any where true\"").replace("maturity = \"production\"", "maturity = \"deprecated\"")
}

/// elastic/detection-rules keeps retired rules in `rules/_deprecated/` with
/// `maturity = "deprecated"`: a directory walk leaves them out, naming the file loads it.
#[test]
fn deprecated_rules_load_only_when_their_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "rules/a.toml", &rule("a", "eql", "query = \"any where true\""));
    let in_dir = write(dir.path(), "rules/_deprecated/old.toml", &rule("old", "eql", "query = \"any where true\""));
    // Never read: not even invalid TOML in there is an error.
    write(dir.path(), "rules/_deprecated/broken.toml", "[rule\n");
    write(dir.path(), "rules/_deprecated/sub/older.toml", &deprecated("older"));
    let marked = write(dir.path(), "rules/linux/retired.toml", &deprecated("retired"));
    let l = rules::load_paths(&[dir.path().join("rules")]).expect("loads");
    let ids: Vec<&str> = l.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, ["a"]);
    assert_eq!(l.skipped.len(), 4, "{:?}", l.skipped);
    assert!(l.skipped.iter().all(|s| s.reason == SkipReason::Deprecated && s.warning().is_none()));
    // Named explicitly, each loads (the marked one and the one in `_deprecated`).
    let l = rules::load_paths(&[marked, in_dir]).expect("loads");
    let ids: Vec<&str> = l.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, ["retired", "old"]);
    assert!(l.skipped.is_empty());
    // The `_deprecated` directory itself, given as a directory: still a walk.
    let l = rules::load_paths(&[dir.path().join("rules/_deprecated")]).expect("loads");
    assert!(l.rules.is_empty());
}

#[test]
fn duplicate_rule_ids_are_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "a.toml", &rule("same", "eql", "query = \"any where true\""));
    write(dir.path(), "b.toml", &rule("same", "eql", "query = \"any where false\""));
    match rules::load_paths(&[dir.path().to_path_buf()]) {
        Err(RulesError::DuplicateRuleId { rule_id, first, path, .. }) => {
            assert_eq!(rule_id, "same");
            assert!(first.ends_with("a.toml"));
            assert!(path.ends_with("b.toml"));
        }
        other => panic!("expected a duplicate error, got {other:?}"),
    }
}

#[test]
fn missing_path_is_its_own_error() {
    let e = rules::load_paths(&[PathBuf::from("/nonexistent/rules")]).expect_err("missing");
    assert!(e.is_not_found());
}

#[test]
fn shared_rules_all_load_and_compile() {
    let l =
        rules::load_paths(&[PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules"))]).expect("loads");
    assert_eq!(l.rules.len(), 16);
    assert!(l.skipped.is_empty());
    let set = RuleSet::compile(l.rules).expect("all shared rules compile");
    assert_eq!(set.rules.len(), 16);
    assert!(set
        .rules
        .iter()
        .all(|r| set.fields.path(r.timestamp_field) == r.spec.timestamp_override.as_deref().unwrap_or("@timestamp")));
}

#[test]
fn embedded_rules_match_config_dir() {
    let e = rules::embedded().expect("embedded rules load");
    let d = rules::load_paths(&[PathBuf::from("config/rules")]).expect("config rules load");
    let ids = |l: &rules::Loaded| l.rules.iter().map(|r| r.rule_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&e), ids(&d));
}

/// Query diagnostics point into the TOML file for every string form.
#[test]
fn rule_errors_point_into_the_toml_file() {
    let cases = [
        ("literal", "query = '''\nany where\n  a = 1\n'''", 13, 5),
        ("basic", "query = \"\"\"\nany where \\\"x\\\" == a and\n  a = 1\n\"\"\"", 13, 5),
        ("single", "query = \"any where a = 1\"", 11, 22),
        ("single-literal", "query = 'any where a = 1'", 11, 22),
        ("escape", "query = \"any where b == \\\"\\\\\\\\\\\" and a = 1\"", 11, 40),
    ];
    for (name, q, line, col) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = write(dir.path(), "r.toml", &rule(name, "eql", q));
        let l = rules::load_paths(&[p]).expect("loads");
        let errs = RuleSet::compile(l.rules).expect_err("invalid query");
        let text = errs[0].to_string();
        let want = format!("r.toml:{line}:{col}: error: expected a comparison operator, found `=`");
        assert!(text.contains(&want), "{name}: {text}");
        assert!(text.lines().nth(2).is_some_and(|l| l.contains("a = 1")), "{name}: {text}");
    }
}

#[cfg(unix)]
#[test]
fn symlink_loops_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "a/r.toml", &rule("r", "eql", "query = \"any where true\""));
    std::os::unix::fs::symlink(dir.path(), dir.path().join("a/loop")).expect("symlink");
    let l = rules::load_paths(&[dir.path().to_path_buf()]).expect("loads");
    assert_eq!(l.rules.len(), 1);
}
