//! Arbitrary bytes as a rule file, through `eqlstream validate`'s own function
//! (`eqlstream::validate::run`): never panics, its output stays small (at most 20 bounded
//! diagnostics per file: issue 13, row 9), and a file it accepts also loads and compiles the way
//! the pipeline loads rules at start-up.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use eqlstream::catalog::{self, LoadError, LoadOptions};
use eqlstream::config::RuleSource;
use eqlstream::validate;
use libfuzzer_sys::fuzz_target;

/// A private directory for the rule file, rewritten for every input.
fn rule_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("eqlstream-fuzz-rule-toml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir for the rule file");
        dir.join("rule.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = rule_path();
    std::fs::write(path, data).expect("write the rule file");
    let mut out = Vec::new();
    let code = validate::run(std::slice::from_ref(path), &mut out);
    assert!(matches!(code, validate::EXIT_OK | validate::EXIT_DATAERR), "exit {code}");
    assert!(out.len() < 64 << 10, "{} bytes of diagnostics", out.len());
    if code == validate::EXIT_OK {
        // validate said every rule can run (or is skipped): the start-up path must agree.
        match catalog::load(&RuleSource::Paths(vec![path.clone()]), LoadOptions::default()) {
            Ok(_) | Err(LoadError::Empty { .. }) => {}
            Err(e) => panic!("validate accepted a rule that start-up refuses: {}", e.rendered()),
        }
    }
});
