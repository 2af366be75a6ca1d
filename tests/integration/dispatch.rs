//! Rule dispatch and the prefilter change no output (issue 14): for the seed rule, the 16
//! prebuilt rules, the 66 Defend for Containers production rules and all 1,021 production rules,
//! the output (every line and every alert) is the same with dispatch and the prefilter on and off,
//! over a load-generator stream and the seed cases. Index patterns apply in every mode.

use std::process::Command;

use crate::util::{data, masked, repo, run};

/// The rule sets of the benchmark, as `--rules` arguments (none: the built-in seed rule).
fn rule_sets() -> Vec<(&'static str, Vec<String>)> {
    let path = |p: &str| repo(p).to_string_lossy().into_owned();
    let d4c = path("tests/data/production/cloud_defend");
    let other = path("tests/data/production/other");
    vec![
        ("seed", vec![]),
        ("prebuilt16", vec!["--rules".into(), path("tests/data/rules")]),
        ("d4c66", vec!["--rules".into(), d4c.clone()]),
        ("prod1021", vec!["--rules".into(), d4c, "--rules".into(), other]),
    ]
}

/// Runs every rule set over `input` in the four modes; returns each set's number of alerts.
fn same_output_in_every_mode(input: &[u8]) -> Vec<(&'static str, usize)> {
    let mut counts = Vec::new();
    for (name, rules) in rule_sets() {
        let mut outputs = Vec::new();
        for mode in [&[][..], &["--no-prefilter"][..], &["--no-dispatch"][..], &["--no-prefilter", "--no-dispatch"][..]]
        {
            let mut args: Vec<&str> = rules.iter().map(String::as_str).collect();
            args.extend_from_slice(mode);
            let out = run(&args, input);
            assert_eq!(out.code, 0, "{name} {mode:?}: {}", out.stderr);
            outputs.push((mode, masked(&out.stdout), out.alerts().len()));
        }
        let (_, first, alerts) = &outputs[0];
        for (mode, out, _) in &outputs[1..] {
            assert!(out == first, "{name}: {mode:?} differs from the default");
        }
        counts.push((name, *alerts));
    }
    counts
}

#[test]
fn dispatch_and_prefilter_change_no_output_on_a_loadgen_stream() {
    let out = Command::new(env!("CARGO_BIN_EXE_eqlstream-loadgen"))
        .args(["--events", "20000", "--attack-rate", "0.005", "--seed", "42"])
        .output()
        .expect("loadgen runs");
    assert!(out.status.success());
    let counts = same_output_in_every_mode(&out.stdout);
    let get = |n: &str| counts.iter().find(|(name, _)| *name == n).map_or(0, |c| c.1);
    assert!(get("seed") > 10, "{counts:?}");
    // Index patterns: the other 955 production rules do not search Defend for Containers
    // indices, so they add no alert on this stream of cloud_defend events.
    assert_eq!(get("prod1021"), get("d4c66"), "{counts:?}");
}

#[test]
fn dispatch_and_prefilter_change_no_output_on_the_seed_cases() {
    let input = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let counts = same_output_in_every_mode(&input);
    assert_eq!(counts[0], ("seed", 6));
}

/// Without data stream fields an event's index is unknown and every rule applies; with
/// `--index-field ""` no rule is restricted.
#[test]
fn index_patterns_follow_the_data_stream_name_or_the_index_field() {
    let seed = std::fs::read_to_string(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let retagged = |ds: &str| -> Vec<u8> {
        seed.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                let obj = v.as_object_mut().unwrap();
                match ds {
                    "" => {
                        obj.remove("data_stream");
                    }
                    ds => {
                        obj.insert(
                            "data_stream".into(),
                            serde_json::json!({"type": "logs", "dataset": ds, "namespace": "default"}),
                        );
                    }
                }
                format!("{}\n", serde_json::to_string(&v).unwrap())
            })
            .collect::<String>()
            .into_bytes()
    };
    let alerts = |args: &[&str], input: &[u8]| run(args, input).alerts().len();
    assert_eq!(alerts(&[], &retagged("cloud_defend.process")), 6);
    assert_eq!(alerts(&[], &retagged("")), 6, "no data stream: every rule applies");
    assert_eq!(alerts(&[], &retagged("endpoint.events.process")), 0, "not a Defend for Containers index");
    assert_eq!(alerts(&["--index-field", ""], &retagged("endpoint.events.process")), 6, "restriction off");
    assert_eq!(alerts(&["--index-field", "x"], &retagged("endpoint.events.process")), 6, "no field x: unknown");
}

/// With the 16 prebuilt rules every line of this stream can match some stage (a rule takes any
/// file or process event), so the prefilter skips nothing: after its first decision window it
/// turns itself off and says so.
#[test]
fn the_prefilter_turns_itself_off_when_it_skips_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_eqlstream-loadgen"))
        .args(["--events", "40000", "--attack-rate", "0.001", "--seed", "3"])
        .output()
        .expect("loadgen runs");
    let rules = repo("tests/data/rules").to_string_lossy().into_owned();
    let run = run(&["--rules", &rules], &out.stdout);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Prefilter off: it skips too few lines"), "{}", run.stderr);
    assert!(run.stderr.contains("skipped_percent=0"), "{}", run.stderr);
}
