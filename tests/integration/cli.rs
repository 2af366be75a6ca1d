use crate::util::{cmd, data, repo, run};

#[test]
fn help_explains_every_option_and_exits_0() {
    let o = cmd(&["--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--config",
        "--rules",
        "--input",
        "--workers",
        "--batch-size",
        "--max-out-of-orderness",
        "--metrics-address",
        "--alerts-output",
        "--no-passthrough",
        "--progress",
        "--alert-format",
        "validate",
        "--strict",
        "--watch",
        "rules",
        "test",
        "Exit codes",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn subcommand_help_documents_rules_list_and_test() {
    let o = cmd(&["rules", "list", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for word in ["--json", "--rules", "--strict", "prefilter", "stages"] {
        assert!(help.contains(word), "rules list --help lacks {word}:\n{help}");
    }
    let o = cmd(&["test", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for word in ["events.ndjson", "expected.jsonl", "join_keys", "event_ids", "--rules", "Exits 0"] {
        assert!(help.contains(word), "test --help lacks {word}:\n{help}");
    }
}

#[test]
fn unknown_flag_is_a_usage_error_64() {
    let o = run(&["--no-such-flag"], b"");
    assert_eq!(o.code, 64, "{}", o.stderr);
}

#[test]
fn missing_config_file_is_66_and_bad_config_is_78() {
    let o = run(&["--config", "/nonexistent/eqlstream.toml"], b"");
    assert_eq!(o.code, 66, "{}", o.stderr);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "wokers = 2\n").unwrap();
    let o = run(&["--config", bad.to_str().unwrap()], b"");
    assert_eq!(o.code, 78, "{}", o.stderr);
    assert!(o.stderr.contains("unknown field"), "{}", o.stderr);
    let o = run(&["--max-out-of-orderness", "soon"], b"");
    assert_eq!(o.code, 78, "{}", o.stderr);
    assert!(o.stderr.contains("max_out_of_orderness"), "{}", o.stderr);
}

#[test]
fn documented_config_runs() {
    let cfg = repo("config/eqlstream.toml");
    let o = run(&["--config", cfg.to_str().unwrap(), "--metrics-address", "off"], b"{\"a\":1}\n");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, b"{\"a\":1}\n");
}

#[test]
fn missing_rules_path_is_66_and_bad_rule_is_65() {
    let o = run(&["--rules", "/nonexistent/rules"], b"");
    assert_eq!(o.code, 66, "{}", o.stderr);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let seed =
        std::fs::read_to_string(repo("config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml"))
            .unwrap();
    std::fs::write(&bad, seed.replace("event.action == \"creation\"", "event.action = \"creation\"")).unwrap();
    let o = run(&["--rules", bad.to_str().unwrap()], b"");
    assert_eq!(o.code, 65, "{}", o.stderr);
    assert!(o.stderr.contains("bad.toml:"), "{}", o.stderr);
}

#[test]
fn validate_accepts_the_shipped_rules() {
    let o = cmd(&["validate", repo("config/rules").to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn validate_missing_path_is_66() {
    let o = cmd(&["validate", "/nonexistent/dir"]).output().unwrap();
    assert_eq!(o.status.code(), Some(66));
}

#[test]
fn validate_reports_file_line_column_for_a_bad_rule() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let seed =
        std::fs::read_to_string(repo("config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml"))
            .unwrap();
    let broken = seed.replace("maxspan=10s", "maxspan=10");
    std::fs::write(&bad, &broken).unwrap();
    let o = cmd(&["validate", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(65));
    let err = String::from_utf8_lossy(&o.stderr);
    let line = broken.lines().position(|l| l.contains("maxspan=10")).unwrap() + 1;
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[test]
fn shared_rule_corpus_files_validate() {
    // The D4C rules shipped as test data are all valid EQL.
    let o = cmd(&["validate", data("rules/integrations/cloud_defend").to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}
