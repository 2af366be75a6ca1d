//! Parser corpus: all 1024 production EQL queries of Elastic's prebuilt rules
//! (`/work/shared/data/rules/eql_production_queries.jsonl`). Every query parses and compiles
//! except the 3 `sample` queries, which are rejected with "sample queries are not supported in
//! streaming".

use eqlstream::eql;
use eqlstream::event::FieldTable;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rules/eql_production_queries.jsonl");

#[test]
fn all_production_queries_compile_except_sample() {
    let text = std::fs::read_to_string(CORPUS).expect("corpus present");
    let mut fields = FieldTable::new();
    let (mut ok, mut sample, mut sequences) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut total = 0;
    for line in text.lines() {
        total += 1;
        let v: serde_json::Value = serde_json::from_str(line).expect("valid json line");
        let q = v["query"].as_str().expect("query string");
        match eql::compile(q, &mut fields) {
            Ok(c) => {
                ok += 1;
                if c.query.sequence.is_some() {
                    sequences += 1;
                }
            }
            Err(d) if d.len() == 1 && d[0].message == "sample queries are not supported in streaming" => sample += 1,
            Err(d) => failures.push(format!("{}: {:?}", v["path"], d)),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(total, 1024);
    assert_eq!(ok, 1021);
    assert_eq!(sample, 3);
    assert_eq!(sequences, 198);
}
