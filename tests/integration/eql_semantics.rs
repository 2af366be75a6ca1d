//! Table-driven tests of evaluation semantics: every operator against string, array, missing,
//! null, number, nested and dotted-key values. Each row names the eql-semantics.md section it
//! follows (or `value.rs` for the documented number/string coercion, which ES decides by the
//! field mapping we do not have).

use eqlstream::eql;
use eqlstream::event::{Decoder, FieldTable};

/// (section, query, event, expected match)
type Row = (&'static str, &'static str, &'static str, bool);

const STR: &str = r#"{"f":"Curl"}"#;
const ARR: &str = r#"{"f":["sh","curl","/tmp/x"]}"#;
const MISSING: &str = r#"{"g":"curl"}"#;
const NULL: &str = r#"{"f":null}"#;
const EMPTY_ARR: &str = r#"{"f":[]}"#;
const NUM: &str = r#"{"f":7}"#;
const NUM_STR: &str = r#"{"f":"7"}"#;
const FLOAT: &str = r#"{"f":7.5}"#;
const BOOL: &str = r#"{"f":true}"#;
const NESTED: &str = r#"{"a":{"b":{"c":"curl"}}}"#;
const DOTTED: &str = r#"{"a.b.c":"curl"}"#;
const MIXED: &str = r#"{"a":{"b.c":"curl"}}"#;
const OBJ_ARR: &str = r#"{"a":[{"b":{"c":"x"}},{"b":{"c":"curl"}}]}"#;

const ROWS: &[Row] = &[
    // == : case-sensitive exact, no wildcards (6.2)
    ("6.2 ==", r#"f == "Curl""#, STR, true),
    ("6.2 == case-sensitive", r#"f == "curl""#, STR, false),
    ("6.2 == no wildcards", r#"f == "C*""#, STR, false),
    ("6.2 == literal *", r#"f == "C*""#, r#"{"f":"C*"}"#, true),
    ("6.4 == any element", r#"f == "curl""#, ARR, true),
    ("6.3 == missing", r#"f == "curl""#, MISSING, false),
    ("6.3 == null", r#"f == "curl""#, NULL, false),
    ("6.3 == empty array", r#"f == "curl""#, EMPTY_ARR, false),
    ("6.5/value.rs == number", "f == 7", NUM, true),
    ("value.rs == number vs float literal", "f == 7.0", NUM, true),
    ("value.rs == number vs string literal", r#"f == "7""#, NUM, true),
    ("value.rs == numeric string vs number literal", "f == 7", NUM_STR, true),
    ("value.rs == non-numeric string vs number", "f == 7", STR, false),
    ("value.rs == bool", "f == true", BOOL, true),
    ("value.rs == bool vs string", r#"f == "true""#, BOOL, true),
    ("6.4 == nested object", r#"a.b.c == "curl""#, NESTED, true),
    ("6.4 == dotted key", r#"a.b.c == "curl""#, DOTTED, true),
    ("6.4 == mixed nesting", r#"a.b.c == "curl""#, MIXED, true),
    ("6.4 == array of objects", r#"a.b.c == "curl""#, OBJ_ARR, true),
    // != : must_not term, true when missing (6.2, 6.3)
    ("6.2 !=", r#"f != "curl""#, STR, true),
    ("6.2 != equal", r#"f != "Curl""#, STR, false),
    ("6.4 != some element equal", r#"f != "curl""#, ARR, false),
    ("6.3 != missing", r#"f != "curl""#, MISSING, true),
    ("6.3 != null", r#"f != "curl""#, NULL, true),
    ("6.2 != number", "f != 7", NUM, false),
    ("6.2 != nested", r#"a.b.c != "curl""#, NESTED, false),
    ("6.2 != dotted", r#"a.b.c != "curl""#, DOTTED, false),
    // == null / != null (6.2)
    ("6.2 == null on missing", "f == null", MISSING, true),
    ("6.2 == null on null", "f == null", NULL, true),
    ("6.2 == null on empty array", "f == null", EMPTY_ARR, true),
    ("6.2 == null on value", "f == null", STR, false),
    ("6.2 != null on value", "f != null", STR, true),
    ("6.2 != null on array", "f != null", ARR, true),
    ("6.2 != null on missing", "f != null", MISSING, false),
    ("6.2 != null on null", "f != null", NULL, false),
    ("6.2 != null on number", "f != null", NUM, true),
    ("6.2 != null nested", "a.b.c != null", NESTED, true),
    ("6.2 != null dotted", "a.b.c != null", DOTTED, true),
    ("6.2 null == f", "null == f", MISSING, true),
    // < <= > >= : range, any element, numeric or lexicographic (6.2)
    ("6.2 < number", "f < 8", NUM, true),
    ("6.2 <= number", "f <= 7", NUM, true),
    ("6.2 > number", "f > 7", NUM, false),
    ("6.2 >= number", "f >= 7", NUM, true),
    ("6.2 > float", "f > 7", FLOAT, true),
    ("6.2 literal on left", "8 > f", NUM, true),
    ("value.rs < numeric string", "f < 8", NUM_STR, true),
    ("6.2 < string lexicographic", r#"f < "D""#, STR, true),
    ("6.2 < string case-sensitive", r#"f < "a""#, STR, true),
    ("6.4 > any element", r#"f > "s""#, ARR, true),
    ("6.3 > missing", "f > 1", MISSING, false),
    ("6.3 not > missing", "not f > 1", MISSING, true),
    ("6.3 > null", "f > 1", NULL, false),
    ("value.rs > non-numeric string vs number", "f > 1", STR, false),
    ("6.2 > nested", r#"a.b.c > "b""#, NESTED, true),
    ("6.2 > dotted", r#"a.b.c > "b""#, DOTTED, true),
    // in : terms, case-sensitive (6.2)
    ("6.2 in", r#"f in ("wget", "Curl")"#, STR, true),
    ("6.2 in case-sensitive", r#"f in ("wget", "curl")"#, STR, false),
    ("6.2 in no wildcards", r#"f in ("C*")"#, STR, false),
    ("6.4 in any element", r#"f in ("curl")"#, ARR, true),
    ("6.3 in missing", r#"f in ("curl")"#, MISSING, false),
    ("6.3 in null", r#"f in ("curl")"#, NULL, false),
    ("6.2 in null entries dropped", r#"f in ("x", null)"#, NULL, false),
    ("value.rs in number", "f in (1, 7)", NUM, true),
    ("value.rs in number vs string list", r#"f in ("7")"#, NUM, true),
    ("value.rs in numeric string vs number list", "f in (7)", NUM_STR, true),
    ("value.rs in bool", "f in (true)", BOOL, true),
    ("6.2 in nested", r#"a.b.c in ("curl")"#, NESTED, true),
    ("6.2 in dotted", r#"a.b.c in ("curl")"#, DOTTED, true),
    // not in / not f in (...) : must_not terms, true when missing (6.2, 6.3, 6.4)
    ("6.2 not in", r#"f not in ("wget")"#, STR, true),
    ("6.4 not in any element excludes", r#"f not in ("curl")"#, ARR, false),
    ("6.3 not in missing", r#"f not in ("curl")"#, MISSING, true),
    ("6.3 not in null", r#"f not in ("curl")"#, NULL, true),
    ("6.3 not f in missing", r#"not f in ("curl")"#, MISSING, true),
    ("6.2 not in number", "f not in (7)", NUM, false),
    ("6.2 not in nested", r#"a.b.c not in ("curl")"#, NESTED, false),
    ("6.2 not in dotted", r#"a.b.c not in ("curl")"#, DOTTED, false),
    // in~ : case-insensitive exact, no wildcards (6.2)
    ("6.2 in~", r#"f in~ ("CURL")"#, STR, true),
    ("6.2 in~ several", r#"f in~ ("x", "cURL")"#, STR, true),
    ("6.2 in~ no wildcards", r#"f in~ ("c*")"#, STR, false),
    ("6.2 in~ literal *", r#"f in~ ("c*")"#, r#"{"f":"C*"}"#, true),
    ("6.4 in~ array", r#"f in~ ("SH")"#, ARR, true),
    ("6.3 in~ missing", r#"f in~ ("curl")"#, MISSING, false),
    ("6.3 not in~ missing", r#"f not in~ ("curl")"#, MISSING, true),
    ("value.rs in~ number", r#"f in~ ("7")"#, NUM, true),
    ("6.2 in~ nested", r#"a.b.c in~ ("CURL")"#, NESTED, true),
    ("6.2 in~ dotted", r#"a.b.c in~ ("CURL")"#, DOTTED, true),
    // like : case-sensitive wildcard, whole value (6.2)
    ("6.2 like *", r#"f like "C*""#, STR, true),
    ("6.2 like case-sensitive", r#"f like "c*""#, STR, false),
    ("6.2 like ?", r#"f like "Cur?""#, STR, true),
    ("6.2 like ? exactly one", r#"f like "Cu?""#, STR, false),
    ("6.2 like whole value", r#"f like "ur""#, STR, false),
    ("6.2 like * crosses /", r#"f like "/*""#, ARR, true),
    ("6.2 like list", r#"f like ("x*", "*rl")"#, STR, true),
    ("6.4 like any element", r#"f like "cu*""#, ARR, true),
    ("6.3 like missing", r#"f like "*""#, MISSING, false),
    ("6.3 like null", r#"f like "*""#, NULL, false),
    ("6.3 not like missing", r#"not f like "x""#, MISSING, true),
    ("value.rs like number text", r#"f like "7""#, NUM, true),
    ("6.2 like nested", r#"a.b.c like "c*""#, NESTED, true),
    ("6.2 like dotted", r#"a.b.c like "c*""#, DOTTED, true),
    // like~ and : : case-insensitive wildcard (6.2)
    ("6.2 like~", r#"f like~ "c*""#, STR, true),
    ("6.2 like~ ?", r#"f like~ "?URL""#, STR, true),
    ("6.2 :", r#"f : "cURL""#, STR, true),
    ("6.2 : wildcard", r#"f : "*RL""#, STR, true),
    ("6.2 : list", r#"f : ("x", "c*")"#, STR, true),
    ("6.4 : any element", r#"f : "SH""#, ARR, true),
    ("6.3 : missing", r#"f : "*""#, MISSING, false),
    ("6.3 not : missing", r#"not f : "x""#, MISSING, true),
    ("6.3 : null", r#"f : "*""#, NULL, false),
    ("value.rs : number", r#"f : "7""#, NUM, true),
    ("6.2 : nested", r#"a.b.c : "CURL""#, NESTED, true),
    ("6.2 : dotted", r#"a.b.c : "CURL""#, DOTTED, true),
    // regex / regex~ : anchored (6.2)
    ("6.2 regex", r#"f regex "C[a-z]+""#, STR, true),
    ("6.2 regex anchored", r#"f regex "ur""#, STR, false),
    ("6.2 regex case-sensitive", r#"f regex "c.*""#, STR, false),
    ("6.2 regex~", r#"f regex~ "c.*""#, STR, true),
    ("6.4 regex any element", r#"f regex "/tmp/.*""#, ARR, true),
    ("6.3 regex missing", r#"f regex ".*""#, MISSING, false),
    ("6.3 not regex missing", r#"not f regex "x""#, MISSING, true),
    ("value.rs regex number", r#"f regex "[0-9]""#, NUM, true),
    ("6.2 regex nested", r#"a.b.c regex "cu.l""#, NESTED, true),
    ("6.2 regex dotted", r#"a.b.c regex "cu.l""#, DOTTED, true),
    // not / and / or : document-level boolean logic (6.3)
    ("6.3 not", r#"not f == "Curl""#, STR, false),
    ("6.3 not missing", r#"not f == "Curl""#, MISSING, true),
    ("6.4 and on one array, different elements", r#"f == "sh" and f == "curl""#, ARR, true),
    ("6.4 and with exclusion", r#"f in ("curl") and not f in ("sh")"#, ARR, false),
    ("6.3 or", r#"f == "x" or g == "curl""#, MISSING, true),
    ("6.3 parenthesised", r#"not (f == "x" or f == "y")"#, MISSING, true),
    // ?field outside keys behaves like the field (7.6)
    ("7.6 ?field", r#"?f == "Curl""#, STR, true),
    ("7.6 ?field missing", r#"?f == "Curl""#, MISSING, false),
    ("7.6 ?field == null", "?f == null", MISSING, true),
    // functions: scripts over every value; null in, null out (6.3, 6.4)
    ("6.4 startsWith any element", r#"startsWith(f, "/tm")"#, ARR, true),
    ("6.2 startsWith case-sensitive", r#"startsWith(f, "cu")"#, STR, false),
    ("6.2 startsWith~", r#"startsWith~(f, "cU")"#, STR, true),
    ("6.3 startsWith missing", r#"startsWith(f, "c")"#, MISSING, false),
    ("6.3 not startsWith missing", r#"not startsWith(f, "c")"#, MISSING, true),
    ("6.3 function on null", r#"endsWith(f, "l")"#, NULL, false),
    ("6.4 endsWith~", r#"endsWith~(f, "RL")"#, STR, true),
    ("6.4 stringContains", r#"stringContains(f, "mp/")"#, ARR, true),
    ("6.4 length", "length(f) == 4", STR, true),
    ("6.4 length any element", "length(f) == 2", ARR, true),
    ("6.4 length missing", "length(f) >= 0", MISSING, false),
    ("6.4 cidrMatch", r#"cidrMatch(ip, "10.0.0.0/8")"#, r#"{"ip":["192.168.1.1","10.2.3.4"]}"#, true),
    ("6.4 cidrMatch no match", r#"cidrMatch(ip, "10.0.0.0/8")"#, r#"{"ip":"11.0.0.1"}"#, false),
    ("6.4 substring", r#"substring(f, 0, 2) == "Cu""#, STR, true),
    ("6.4 concat", r#"concat(f, "-", n) == "Curl-7""#, r#"{"f":"Curl","n":7}"#, true),
    ("6.4 concat null", r#"concat(f, "x") == "x""#, MISSING, false),
    ("6.4 indexOf", r#"indexOf(f, "r") == 2"#, STR, true),
    ("6.4 between", r#"between(f, "C", "l") == "ur""#, STR, true),
    ("6.4 number", r#"number(f) == 7"#, NUM_STR, true),
    ("6.4 string", r#"string(f) == "7""#, NUM, true),
    ("6.4 arithmetic", "f + 1 == 8", NUM, true),
    ("6.4 add/subtract", "add(f, 1) == subtract(9, 1)", NUM, true),
    ("6.4 multiply/divide/modulo", "multiply(f, 2) == 14 and divide(f, 2) == 3 and modulo(f, 4) == 3", NUM, true),
    ("6.4 field vs field", "f == g", r#"{"f":["a","b"],"g":"b"}"#, true),
    ("6.4 field vs field differ", "f == g", r#"{"f":"a","g":"b"}"#, false),
    ("6.3 field != field missing", "f != g", r#"{"f":"a"}"#, true),
    ("6.4 function on nested", r#"startsWith(a.b.c, "cu")"#, NESTED, true),
    ("6.4 function on dotted", r#"startsWith(a.b.c, "cu")"#, DOTTED, true),
    // constants
    ("6.1 true", "true", MISSING, true),
    ("6.1 false", "false", MISSING, false),
    ("6.1 constant comparison", "1 < 2", MISSING, true),
    // bare boolean field
    ("6.1 boolean field", "f", BOOL, true),
    ("6.1 boolean field missing", "f", MISSING, false),
    // backquoted field names (paths with dots and slashes)
    ("6.4 backquoted path", r#"`a.b/c` == "x""#, r#"{"a":{"b/c":"x"}}"#, true),
    ("6.4 backquoted path dotted key", r#"`a.b/c` == "x""#, r#"{"a.b/c":"x"}"#, true),
    ("6.4 backquoted segment", r#"a.`0`.b == "x""#, r#"{"a":{"0":{"b":"x"}}}"#, true),
];

fn eval(query: &str, event: &str) -> bool {
    let mut fields = FieldTable::new();
    let c = eql::compile(query, &mut fields).unwrap_or_else(|d| panic!("{query}: {d:?}"));
    let mut dec = Decoder::new(&fields);
    let ev = dec.decode(event.as_bytes()).expect("valid test event");
    c.query.stages[0].matches(&ev)
}

#[test]
fn operator_semantics_table() {
    let mut failures = Vec::new();
    for (section, cond, event, expected) in ROWS {
        let q = format!("any where {cond}");
        let got = eval(&q, event);
        if got != *expected {
            failures.push(format!("[{section}] `{cond}` on {event}: got {got}, expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
}

/// Section 5: the category is a case-sensitive term on `event.category`, any element.
#[test]
fn category_is_a_case_sensitive_term_on_any_element() {
    let rows: &[(&str, &str, bool)] = &[
        ("file where true", r#"{"event":{"category":["process","file"]}}"#, true),
        ("file where true", r#"{"event":{"category":"file"}}"#, true),
        ("file where true", r#"{"event.category":"file"}"#, true),
        ("file where true", r#"{"event":{"category":"File"}}"#, false),
        ("file where true", r#"{"event":{"category":"files"}}"#, false),
        ("file where true", r#"{"event":{}}"#, false),
        ("any where true", r#"{}"#, true),
        (r#""file" where true"#, r#"{"event":{"category":"file"}}"#, true),
    ];
    for (q, e, want) in rows {
        assert_eq!(eval(q, e), *want, "{q} on {e}");
    }
}

/// Section 5 + rules' `event_category_override`.
#[test]
fn category_field_can_be_overridden() {
    let mut fields = FieldTable::new();
    let opts = eql::CompileOptions { event_category_field: "kind".into() };
    let c = eql::compile_with("file where true", &mut fields, &opts).expect("compiles");
    let mut dec = Decoder::new(&fields);
    let ev = dec.decode(br#"{"kind":"file"}"#).expect("valid");
    assert!(c.query.stages[0].matches(&ev));
}

/// Section 4.2: mandatory keys must have a value; `?` keys may be null. Section 4.3: multi-valued
/// keys give the cartesian product, deduplicated.
#[test]
fn keys_follow_sections_4_2_and_4_3() {
    use eqlstream::sequence::key::KeyValue;
    let q = "sequence by h [any where true] by ?u, p [any where true] by ?u, p";
    let mut fields = FieldTable::new();
    let c = eql::compile(q, &mut fields).expect("compiles");
    let s = &c.query.stages[0];
    let mut dec = Decoder::new(&fields);
    let mut keys = Vec::new();

    let ev = dec.decode(br#"{"h":"x","p":[1,2,1]}"#).expect("valid");
    assert!(s.matches(&ev));
    s.keys(&ev, &mut keys);
    let got: Vec<Vec<KeyValue>> = keys.iter().map(|k| k.to_vec()).collect();
    assert_eq!(
        got,
        vec![
            vec![KeyValue::Str("x".into()), KeyValue::Null, KeyValue::I64(1)],
            vec![KeyValue::Str("x".into()), KeyValue::Null, KeyValue::I64(2)],
        ]
    );

    drop(ev);
    let ev = dec.decode(br#"{"p":1}"#).expect("valid");
    assert!(!s.matches(&ev), "missing mandatory sequence-by key");
    drop(ev);
    let ev = dec.decode(br#"{"h":null,"p":1}"#).expect("valid");
    assert!(!s.matches(&ev), "null mandatory key");
    drop(ev);
    let ev = dec.decode(br#"{"h":[],"p":1}"#).expect("valid");
    assert!(!s.matches(&ev), "empty-array mandatory key");

    drop(ev);
    let ev = dec.decode(br#"{"h":["a","b"],"u":["c","d"],"p":"z"}"#).expect("valid");
    s.keys(&ev, &mut keys);
    assert_eq!(keys.len(), 4, "2 x 2 x 1 cartesian product");
}

/// Section 7.2: `with runs=N` repeats the stage; 7.3 missing stages; 7.1 until.
#[test]
fn sequence_shapes() {
    use eqlstream::sequence::spec::StageKind;
    let mut fields = FieldTable::new();
    let c = eql::compile(
        "sequence by h with maxspan=5m [any where true] with runs=3 ![file where true] until [any where x == 1]",
        &mut fields,
    )
    .expect("compiles");
    let spec = c.query.sequence.expect("sequence");
    assert_eq!(spec.stages, vec![StageKind::Positive, StageKind::Positive, StageKind::Positive, StageKind::Missing]);
    assert_eq!(spec.maxspan_ns, Some(300_000_000_000));
    assert!(spec.has_until);
    assert_eq!(spec.key_arity, 1);
    assert_eq!(c.query.stages.len(), 4);
    assert_eq!(c.query.stages[3].kind(), StageKind::Missing);
    assert!(c.query.until.is_some());
}

/// Section 6.2 / 7.5: head and tail parse and are reported as ignored in streaming.
#[test]
fn head_and_tail_are_warnings() {
    let mut fields = FieldTable::new();
    let c = eql::compile("process where true | head 5 | tail 2", &mut fields).expect("compiles");
    assert_eq!(c.warnings.len(), 2);
    assert!(c.warnings[0].message.contains("ignored in streaming"));
}

/// The pipeline shares compiled rules across threads and moves decoders into workers.
#[test]
fn compiled_rules_are_shareable_and_decoders_movable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<eql::Query>();
    send_sync::<eqlstream::ruleset::RuleSet>();
    send::<Decoder>();
}

/// A hostile event with two huge arrays compared field against field finishes quickly (the
/// script budget stops it) instead of trying 10^8 combinations.
#[test]
fn huge_arrays_in_scripts_are_bounded() {
    let a: Vec<String> = (0..10_000).map(|i| format!("\"a{i}\"")).collect();
    let b: Vec<String> = (0..10_000).map(|i| format!("\"b{i}\"")).collect();
    let ev = format!("{{\"f\":[{}],\"g\":[{}]}}", a.join(","), b.join(","));
    let t = std::time::Instant::now();
    assert!(!eval("any where f == g", &ev));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // Within the budget the answer is exact.
    assert!(eval("any where f == g", r#"{"f":["x","y","z"],"g":["q","z"]}"#));
}
