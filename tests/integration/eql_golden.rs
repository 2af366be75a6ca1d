//! Golden tests of `eqlstream validate` (through `validate::run`): every case under
//! `tests/golden/parse/` (a `.toml` file or a directory of them) is validated and its stderr
//! compared byte for byte with `<case>.stderr`. `BLESS=1 cargo test --test integration eql_golden::` rewrites
//! the expected files (review the diff before committing).
//!
//! Exit codes: cases named `ok_*` must exit 0, all others 65; a missing path exits 66.

use std::path::{Path, PathBuf};

use eqlstream::validate;

const DIR: &str = "tests/golden/parse";

fn run(paths: &[PathBuf]) -> (u8, String) {
    let mut err = Vec::new();
    let code = validate::run(paths, &mut err);
    (code, String::from_utf8(err).expect("diagnostics are UTF-8"))
}

fn cases() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(DIR).expect("golden dir present") {
        let p = e.expect("readable dir entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).expect("UTF-8 file names").to_string();
        if p.is_dir() {
            out.push((name, p));
        } else if let Some(stem) = name.strip_suffix(".toml") {
            out.push((stem.to_string(), p));
        }
    }
    out.sort();
    out
}

#[test]
fn golden_validate_outputs() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 30, "expected the golden cases, found {}", cases.len());
    for (name, path) in &cases {
        let (code, stderr) = run(std::slice::from_ref(path));
        let want_code = if name.starts_with("ok_") { 0 } else { 65 };
        if code != want_code {
            failures.push(format!("{name}: exit {code}, expected {want_code}\n{stderr}"));
        }
        let expected_path = Path::new(DIR).join(format!("{name}.stderr"));
        if bless {
            std::fs::write(&expected_path, &stderr).expect("golden dir writable");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(exp) if exp == stderr => {}
            Ok(exp) => failures.push(format!("{name}: stderr differs\n--- expected\n{exp}--- actual\n{stderr}")),
            Err(_) => failures.push(format!("{name}: missing {}", expected_path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_cases_cover_many_distinct_messages() {
    let mut messages = std::collections::BTreeSet::new();
    for (name, path) in cases() {
        let (_, stderr) = run(&[path]);
        for line in stderr.lines() {
            if let Some((_, msg)) = line.split_once(": error: ") {
                // Distinct by the message up to the first colon or quote (values vary).
                let key: String = msg.split([':', '"']).next().unwrap_or(msg).to_string();
                messages.insert(key);
            } else if line.contains(": error: ") {
                messages.insert(format!("{name}: {line}"));
            }
        }
    }
    assert!(messages.len() >= 15, "only {} distinct: {messages:#?}", messages.len());
}

#[test]
fn missing_path_exits_66() {
    let (code, stderr) = run(&[PathBuf::from("tests/golden/parse/does-not-exist.toml")]);
    assert_eq!(code, 66);
    assert!(stderr.starts_with("tests/golden/parse/does-not-exist.toml: error: no such file or directory\n"));
}

#[test]
fn config_rules_validate_cleanly() {
    let (code, stderr) = run(&[PathBuf::from("config/rules")]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn shared_rule_files_validate_cleanly() {
    let (code, stderr) = run(&[PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules"))]);
    assert_eq!(code, 0, "{stderr}");
}
