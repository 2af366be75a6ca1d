//! Faults an operator meets (issue 13): a crashed thread, a signal in the middle of a line, a
//! socket path in use, idle connections, endless lines, a reorder buffer that would grow without
//! bound. Each test fails on the code before its fix.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{cmd, data, wait_output};

/// Runs with `EQLSTREAM_DEBUG_PANIC=stage` (debug builds: that stage panics on its second batch).
fn run_with_panic(stage: &str) -> crate::util::Output {
    let input = std::fs::read(data("cloud_defend/seed_rule_cases.ndjson")).unwrap();
    let mut c = cmd(&["--batch-size", "4", "--workers", "2"]);
    c.env("EQLSTREAM_DEBUG_PANIC", stage).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let w = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let o = wait_output(child, Duration::from_secs(60));
    let _ = w.join();
    o
}

#[test]
fn a_panicking_thread_makes_the_run_exit_70_with_the_cause() {
    for stage in ["sequencer", "decode", "partition", "writer"] {
        let o = run_with_panic(stage);
        assert_eq!(o.code, 70, "{stage}: {}", o.stderr);
        assert!(
            o.stderr.contains("panicked") && o.stderr.contains(&format!("EQLSTREAM_DEBUG_PANIC={stage}")),
            "{stage}: {}",
            o.stderr
        );
        assert!(o.stderr.contains("eqlstream: error: internal error: the "), "{stage}: {}", o.stderr);
        // What was written is whole lines only.
        assert!(o.stdout.is_empty() || o.stdout.ends_with(b"\n"), "{stage}");
    }
}
