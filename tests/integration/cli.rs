use crate::util::{cmd, data, repo, run, wait_output, Output};

#[test]
fn help_explains_every_option_and_exits_0() {
    let o = cmd(&["--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    // Words only: the wrapping depends on the terminal width (COLUMNS).
    let help = String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    for flag in [
        "--config",
        "--rules",
        "--input",
        "--workers",
        "--batch-size",
        "--max-out-of-orderness",
        "--metrics-address",
        "--alerts-output",
        "--alerts-output-mode",
        "--log-level",
        "--log-format",
        "--verbose",
        "--quiet",
        "1/0, true/false, yes/no or on/off",
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

// Issue 15, item 3: config and CLI habits.

/// The seed rule's own events (6 alerts with the built-in rules).
fn seed_events() -> Vec<u8> {
    std::fs::read(repo(
        "config/rules/tests/defense_evasion_file_creation_execution_deletion_cradle/seed_cases/events.ndjson",
    ))
    .unwrap()
}

/// Runs the binary with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = cmd(args);
    c.envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn eqlstream");
    let mut input = child.stdin.take().expect("stdin piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = wait_output(child, std::time::Duration::from_secs(120));
    writer.join().expect("stdin writer");
    out
}

fn line_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn issue_15_alerts_output_appends_unless_mode_is_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.ndjson");
    let f = file.to_str().unwrap();
    let events = seed_events();
    for _ in 0..2 {
        let o = run(&["--alerts-output", f], &events);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    assert_eq!(line_count(&file), 12, "a second start appends its 6 alerts");
    let o = run(&["--alerts-output", f, "--alerts-output-mode", "truncate"], &events);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(line_count(&file), 6, "truncate starts the file afresh");
    let o = run_env(&["--alerts-output", f], &[("EQLSTREAM_ALERTS_OUTPUT_MODE", "truncate")], &events);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(line_count(&file), 6, "EQLSTREAM_ALERTS_OUTPUT_MODE=truncate");
    let o = run(&["--alerts-output", f, "--alerts-output-mode", "overwrite"], b"");
    assert_eq!(o.code, 78, "{}", o.stderr);
    assert!(o.stderr.contains("alerts_output_mode"), "{}", o.stderr);
}

#[test]
fn issue_15_boolean_env_vars_take_1_0_yes_no_on_off_and_errors_name_the_variable() {
    let line = b"{\"a\":1}\n";
    for v in ["1", "yes", "ON", "True"] {
        let o = run_env(&[], &[("EQLSTREAM_NO_PASSTHROUGH", v)], line);
        assert_eq!(o.code, 0, "{v}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "EQLSTREAM_NO_PASSTHROUGH={v} writes only alerts");
    }
    for v in ["0", "no", "off", "FALSE", ""] {
        let o = run_env(&[], &[("EQLSTREAM_NO_PASSTHROUGH", v)], line);
        assert_eq!(o.code, 0, "{v:?}: {}", o.stderr);
        assert_eq!(o.stdout, line, "EQLSTREAM_NO_PASSTHROUGH={v:?} passes lines through");
    }
    let o = run_env(&[], &[("EQLSTREAM_PROGRESS", "sometimes")], line);
    assert_eq!(o.code, 64, "{}", o.stderr);
    assert!(o.stderr.contains("EQLSTREAM_PROGRESS") && o.stderr.contains("sometimes"), "{}", o.stderr);
}

#[test]
fn issue_15_config_file_interpolates_env_vars_and_names_an_unset_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("e.toml");
    std::fs::write(&cfg, "# ${NOT_SET_ANYWHERE} in a comment is fine\nno_passthrough = ${EQLS_T_NP}\nbatch_size = ${EQLS_T_BATCH:-7}\nlog_level = \"$${x}\"\n").unwrap();
    let c = cfg.to_str().unwrap();
    // `$${x}` is the literal `${x}`: an invalid log level, which shows the escape worked.
    let o = run_env(&["--config", c, "--log-level", "warn"], &[("EQLS_T_NP", "true")], b"{\"a\":1}\n");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.is_empty(), "no_passthrough came from EQLS_T_NP");
    let o = run_env(&["--config", c], &[("EQLS_T_NP", "true")], b"");
    assert_eq!(o.code, 78, "{}", o.stderr);
    assert!(o.stderr.contains("log_level") && o.stderr.contains("${x}"), "{}", o.stderr);
    let o = run_env(&["--config", c, "--log-level", "warn"], &[], b"");
    assert_eq!(o.code, 78, "{}", o.stderr);
    assert!(o.stderr.contains("`EQLS_T_NP`") && o.stderr.contains("line 2"), "{}", o.stderr);
}

#[test]
fn issue_15_log_level_in_config_and_v_q_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("e.toml");
    std::fs::write(&cfg, "log_level = \"warn\"\n").unwrap();
    let c = cfg.to_str().unwrap();
    let line = b"{\"a\":1}\n";
    let o = run(&["--config", c], line);
    assert_eq!(o.code, 0, "log_level is accepted in the config file: {}", o.stderr);
    assert!(!o.stderr.contains("Pipeline started."), "{}", o.stderr);
    let o = run(&["--config", c, "-v"], line);
    assert!(o.stderr.contains("Pipeline started.") && o.stderr.contains("DEBUG"), "{}", o.stderr);
    let o = run(&["-vv"], line);
    assert!(o.stderr.contains("DEBUG"), "{}", o.stderr);
    let o = run(&["-q"], line);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.trim().is_empty(), "-q: warnings and errors only, no summary: {}", o.stderr);
    assert_eq!(o.stdout, line);
}

#[test]
fn issue_15_log_format_json_writes_one_json_object_per_stderr_line() {
    let o = run(&["--log-format", "json"], b"{\"a\":1}\n");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let records: Vec<serde_json::Value> =
        o.stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let message = |m: &str| records.iter().any(|r| r["fields"]["message"].as_str().is_some_and(|s| s.contains(m)));
    assert!(message("Pipeline started."), "{}", o.stderr);
    assert!(message("lines=1"), "the summary is a record too: {}", o.stderr);
    let o = run(&["--log-format", "xml"], b"");
    assert_eq!(o.code, 78, "{}", o.stderr);
    assert!(o.stderr.contains("log_format"), "{}", o.stderr);
}

#[test]
fn issue_15_validate_checks_a_config_file_and_its_rules() {
    let documented = repo("config/eqlstream.toml");
    let o = cmd(&["validate", "--config", documented.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("e.toml");
    let c = cfg.to_str().unwrap();
    let validate = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        let o = cmd(&["validate", "--config", c]).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, err) = validate("wokers = 2\n");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("unknown field"), "{err}");
    let (code, err) = validate("batch_size = 0\n");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("batch_size"), "{err}");
    let (code, err) = validate("rules = [\"${EQLS_T_UNSET_RULES}\"]\n");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("EQLS_T_UNSET_RULES") && err.contains("line 1"), "{err}");
    // The rules the config names are validated: a broken one is 65 with FILE:LINE.
    let seed =
        std::fs::read_to_string(repo("config/rules/defense_evasion_file_creation_execution_deletion_cradle.toml"))
            .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/bad.toml"), seed.replace("maxspan=10s", "maxspan=10")).unwrap();
    let (code, err) = validate("rules = [\"rules\"]\n");
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("bad.toml:"), "{err}");
    let o = cmd(&["validate", "--config", "/nonexistent/e.toml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(66));
}

#[test]
fn issue_15_busy_metrics_port_exits_78_and_says_how_to_pick_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(&["--metrics-address", &addr], b"{\"a\":1}\n");
    assert_eq!(o.code, 78, "{}", o.stderr);
    for word in
        [addr.as_str(), "another eqlstream", "--metrics-address", "EQLSTREAM_METRICS_ADDRESS", "metrics_address", "off"]
    {
        assert!(o.stderr.contains(word), "lacks {word}: {}", o.stderr);
    }
    assert!(o.stdout.is_empty());
}
