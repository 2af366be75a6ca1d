//! Property tests: the EQL lexer, parser and compiler never panic, whatever the input
//! (jaq's `load_and_compile` fuzz target, as a proptest), and compiled queries evaluate on
//! events without panicking. Also: the wildcard matcher agrees with a regex reference.

use eqlstream::eql::{self, wildcard::Pattern};
use eqlstream::event::{Decoder, FieldTable};
use proptest::prelude::*;

/// Fragments that make generated text look like EQL, so that the parser gets deep.
const FRAGMENTS: &[&str] = &[
    "sequence",
    "by",
    "with",
    "maxspan",
    "=",
    "10s",
    "5",
    "1.5",
    "[",
    "]",
    "![",
    "(",
    ")",
    "any",
    "process",
    "file",
    "where",
    "and",
    "or",
    "not",
    "in",
    "in~",
    "like",
    "like~",
    ":",
    "regex",
    "regex~",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    ",",
    "?",
    "`a.b/c`",
    "process.name",
    "process.args",
    "\"curl\"",
    "\"/tmp/*\"",
    "\"\"\"raw\\\"\"\"",
    "'x'",
    "true",
    "false",
    "null",
    "runs",
    "until",
    "sample",
    "|",
    "head",
    "tail",
    "startsWith(",
    "cidrMatch(",
    "length(",
    "concat(",
    "substring(",
    "between~(",
    "number(",
    "\"10.0.0.0/8\"",
    "/*",
    "*/",
    "//",
    "\n",
    ".",
    "\\",
    "\"",
    "\"\"\"",
    "`",
    "join",
    "of",
    "@timestamp",
    "0x",
    "1e5",
    "~",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.join(" "))
}

fn corpus() -> &'static [String] {
    static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/eql_production_queries.jsonl"))
            .map(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["query"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    })
}

const EVENTS: &[&str] = &[
    r#"{"event":{"category":["process"],"type":["start"]},"process":{"name":"curl","args":["curl","-o","/tmp/x"],"pid":7}}"#,
    r#"{"event.category":"file","file.path":"/tmp/a","process.name":null,"destination":{"ip":"10.1.2.3"}}"#,
    r#"{}"#,
];

fn compile_and_eval(q: &str) {
    let mut fields = FieldTable::new();
    let compiled = eql::compile(q, &mut fields);
    if let Err(diags) = &compiled {
        assert!(!diags.is_empty(), "an error always says why");
        for d in diags {
            assert!(d.span.start <= d.span.end && d.span.end <= q.len(), "span inside the query");
            let _ = eql::diag::render("q", q, d);
        }
    }
    if let Ok(c) = compiled {
        let mut dec = Decoder::new(&fields);
        let mut keys = Vec::new();
        for e in EVENTS {
            let ev = dec.decode(e.as_bytes()).expect("test events are valid");
            for s in c.query.stages.iter().chain(c.query.until.iter()) {
                if s.matches(&ev) {
                    s.keys(&ev, &mut keys);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        compile_and_eval(&s);
    }

    #[test]
    fn eql_like_text_never_panics(s in fragments()) {
        compile_and_eval(&s);
    }

    /// eql-semantics.md 6.2: `*` any run (incl. empty and `/`), `?` one character, whole value,
    /// everything else literal; `like~` folds case.
    #[test]
    fn wildcard_agrees_with_regex_reference(
        p in "[ab*?/A]{0,8}",
        v in "[abAB/é]{0,10}",
        ci in any::<bool>(),
    ) {
        let mut re = String::from(if ci { "(?is)^" } else { "(?s)^" });
        for c in p.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let reference = regex::Regex::new(&re).expect("valid reference regex").is_match(&v);
        prop_assert_eq!(Pattern::new(&p, ci).matches(&v), reference, "pattern {:?} value {:?}", p, v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_queries_never_panic(
        i in 0usize..1024,
        cuts in prop::collection::vec((0usize..4000, prop::sample::select(FRAGMENTS)), 1..4),
    ) {
        let corpus = corpus();
        prop_assume!(!corpus.is_empty());
        let mut q = corpus[i % corpus.len()].clone();
        for (at, frag) in cuts {
            let mut at = at % (q.len() + 1);
            while !q.is_char_boundary(at) {
                at -= 1;
            }
            if at % 2 == 0 {
                q.insert_str(at, frag);
            } else {
                let mut end = (at + frag.len()).min(q.len());
                while !q.is_char_boundary(end) {
                    end -= 1;
                }
                q.replace_range(at..end, "");
            }
        }
        compile_and_eval(&q);
    }
}
