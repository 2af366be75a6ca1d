//! The EQL front end on arbitrary strings: lexer, parser and compiler never panic, every
//! diagnostic renders within the bounds of `eql::diag` (issue 13, row 9), and a query that
//! compiles can be evaluated on real events (conditions, functions, join keys) without panic.

#![no_main]

use std::sync::OnceLock;

use eqlstream::eql::{self, diag};
use eqlstream::event::{Decoder, FieldTable};
use libfuzzer_sys::fuzz_target;

/// Seed-rule events (creation, exec, deletion and near misses) to evaluate compiled queries on.
fn events() -> &'static [String] {
    static EVENTS: OnceLock<Vec<String>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        include_str!("../../tests/data/cloud_defend/seed_rule_cases.ndjson")
            .lines()
            .take(12)
            .map(String::from)
            .collect()
    })
}

/// What one rendered diagnostic may take at most: the bounded message, hint and source excerpt
/// (4 bytes per character at most), the caret line and the position prefix.
const MAX_RENDERED: usize = 64 + 2 * 4 * (diag::MAX_MESSAGE_CHARS + 1) + 3 * 4 * (diag::MAX_SOURCE_CHARS + 2);

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let mut fields = FieldTable::new();
    match eql::compile(query, &mut fields) {
        Err(diags) => {
            assert!(!diags.is_empty(), "an error without a diagnostic");
            let text = diag::render_file("q.eql", query, &diags);
            let shown = diags.len().min(diag::MAX_PER_FILE);
            assert!(text.len() <= shown * MAX_RENDERED + 128, "{} bytes for {shown} diagnostics", text.len());
        }
        Ok(c) => {
            for w in &c.warnings {
                assert!(diag::render("q.eql", query, w).len() <= MAX_RENDERED);
            }
            let mut dec = Decoder::new(&fields);
            let mut keys = Vec::new();
            for line in events() {
                let Ok(ev) = dec.decode(line.as_bytes()) else { continue };
                for stage in c.query.stages.iter().chain(c.query.until.iter()) {
                    if stage.matches(&ev) {
                        stage.keys(&ev, &mut keys);
                        assert!(keys.len() <= stage.key_limit().max);
                    }
                    let _ = stage.required_literals();
                    let _ = stage.required_terms();
                }
            }
        }
    }
});
