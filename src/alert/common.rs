//! The fields whose values are equal in every matched event, as Kibana's shell alert copies them
//! (`build_alert_group_from_sequence.ts` `objectArrayIntersection`, eql-semantics.md section 8.3).
//!
//! Two variants:
//! - [`flat_intersection`] (ECS alerts): every event is flattened to dotted paths first, so an
//!   event written with nested objects and one written with dotted keys (`"elastic.agent.id"`)
//!   agree; the kept paths are written back nested by [`unflatten_into`].
//! - [`nested_intersection`] (Kibana alerts): Kibana's `objectPairIntersection`, recursively on
//!   the nested objects, exactly.
//!
//! Value rules (both, from `objectPairIntersection`): scalars are kept when equal (numbers by
//! value: `1 == 1.0`); arrays are intersected as lodash `intersection` does (unique elements of the
//! first, in order, found in the other; objects and arrays inside arrays never compare equal,
//! because JavaScript compares them by reference); a scalar and an array intersect as
//! `[scalar] ∩ array`.

use hashbrown::HashMap;
use serde_json::{Map, Value};

/// JavaScript `===` on JSON scalars (numbers by value); objects and arrays are never equal.
fn js_strict_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => false,
    }
}

/// lodash `intersection(a, b)`: unique elements of `a`, in order, that occur in `b`.
fn array_intersection(a: &[Value], b: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for x in a {
        if b.iter().any(|y| js_strict_eq(x, y)) && !out.iter().any(|o| js_strict_eq(o, x)) {
            out.push(x.clone());
        }
    }
    out
}

/// The intersection of two leaf values (non-objects), or `None` when nothing is common.
/// An empty array result is returned as `Some([])`, as Kibana keeps it.
fn leaf_intersection(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => Some(Value::Array(array_intersection(x, y))),
        (Value::Array(x), y) => Some(Value::Array(array_intersection(x, std::slice::from_ref(y)))),
        (x, Value::Array(y)) => Some(Value::Array(array_intersection(std::slice::from_ref(x), y))),
        (x, y) if js_strict_eq(x, y) => Some(x.clone()),
        _ => None,
    }
}

/// Flattens `obj` to `(dotted path, leaf value)` pairs in document order. Leaves are
/// non-object values (arrays included); empty objects give nothing. When a path occurs twice
/// (nested and dotted spellings), the first one wins.
pub fn flatten(obj: &Map<String, Value>) -> Vec<(String, &Value)> {
    fn walk<'v>(
        obj: &'v Map<String, Value>,
        prefix: &str,
        out: &mut Vec<(String, &'v Value)>,
        seen: &mut HashMap<String, ()>,
    ) {
        for (k, v) in obj {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                Value::Object(inner) => walk(inner, &path, out, seen),
                leaf => {
                    if seen.insert(path.clone(), ()).is_none() {
                        out.push((path, leaf));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    walk(obj, "", &mut out, &mut seen);
    out
}

/// The dotted paths present in every event with their intersected values, in the first event's
/// order. Empty array intersections are dropped when `keep_empty_arrays` is false.
pub fn flat_intersection(events: &[&Map<String, Value>], keep_empty_arrays: bool) -> Vec<(String, Value)> {
    let Some((first, rest)) = events.split_first() else {
        return Vec::new();
    };
    let others: Vec<HashMap<String, &Value>> = rest.iter().map(|e| flatten(e).into_iter().collect()).collect();
    let mut out = Vec::new();
    'paths: for (path, v) in flatten(first) {
        let mut acc = v.clone();
        for other in &others {
            let Some(w) = other.get(&path) else {
                continue 'paths;
            };
            match leaf_intersection(&acc, w) {
                Some(x) => acc = x,
                None => continue 'paths,
            }
        }
        if !keep_empty_arrays && matches!(&acc, Value::Array(a) if a.is_empty()) {
            continue;
        }
        out.push((path, acc));
    }
    out
}

/// Writes dotted `(path, value)` pairs into `target` as nested objects. A pair whose path runs
/// into an existing non-object value (or that would replace an existing key) is skipped, so
/// fields already in `target` always win.
pub fn unflatten_into(target: &mut Map<String, Value>, pairs: Vec<(String, Value)>) {
    'pairs: for (path, value) in pairs {
        let mut node = &mut *target;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                if !node.contains_key(part) {
                    node.insert(part.to_owned(), value);
                }
                continue 'pairs;
            }
            let child = node.entry(part.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            match child {
                Value::Object(m) => node = m,
                _ => continue 'pairs,
            }
        }
    }
}

/// Kibana's `objectArrayIntersection` over nested sources: `None` when nothing is common.
pub fn nested_intersection(events: &[&Map<String, Value>]) -> Option<Map<String, Value>> {
    let (first, rest) = events.split_first()?;
    let mut acc = (*first).clone();
    for other in rest {
        acc = pair_intersection(&acc, other)?;
    }
    Some(acc)
}

/// Kibana's `objectPairIntersection`: `None` when no key has a defined intersection.
fn pair_intersection(a: &Map<String, Value>, b: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (k, av) in a {
        let Some(bv) = b.get(k) else { continue };
        let v = match (av, bv) {
            (Value::Object(x), Value::Object(y)) => pair_intersection(x, y).map(Value::Object),
            (Value::Object(_), _) | (_, Value::Object(_)) => None,
            (x, y) => leaf_intersection(x, y),
        };
        if let Some(v) = v {
            out.insert(k.clone(), v);
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test input is an object"),
        }
    }

    #[test]
    fn flat_keeps_equal_leaves_across_nested_and_dotted_spellings() {
        let a = obj(json!({"host": {"name": "h", "ip": ["1", "2"]}, "user": {"id": "0"}, "x": 1}));
        let b = obj(json!({"host.name": "h", "host": {"ip": ["2", "3"]}, "user": {"id": "1"}, "x": 1.0}));
        let got = flat_intersection(&[&a, &b], false);
        assert_eq!(
            got,
            vec![
                ("host.name".to_owned(), json!("h")),
                ("host.ip".to_owned(), json!(["2"])),
                ("x".to_owned(), json!(1)),
            ]
        );
    }

    #[test]
    fn flat_drops_empty_array_intersections_unless_asked() {
        let a = obj(json!({"tags": ["a"], "k": ["x", "x", {"o": 1}]}));
        let b = obj(json!({"tags": ["b"], "k": ["x", {"o": 1}]}));
        assert_eq!(flat_intersection(&[&a, &b], false), vec![("k".to_owned(), json!(["x"]))]);
        assert_eq!(flat_intersection(&[&a, &b], true).len(), 2);
    }

    #[test]
    fn scalar_and_array_intersect_as_singleton() {
        let a = obj(json!({"c": "file"}));
        let b = obj(json!({"c": ["file", "process"]}));
        assert_eq!(flat_intersection(&[&a, &b], false), vec![("c".to_owned(), json!(["file"]))]);
    }

    #[test]
    fn unflatten_never_overrides_existing_fields() {
        let mut t = obj(json!({"event": {"kind": "alert"}, "message": "m"}));
        unflatten_into(
            &mut t,
            vec![
                ("event.kind".into(), json!("event")),
                ("message.x".into(), json!(1)),
                ("container.id".into(), json!("c")),
                ("container.image.name".into(), json!("n")),
            ],
        );
        assert_eq!(
            Value::Object(t),
            json!({"event": {"kind": "alert"}, "message": "m", "container": {"id": "c", "image": {"name": "n"}}})
        );
    }

    #[test]
    fn nested_intersection_matches_kibana_object_pair_intersection() {
        let a = obj(json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "x", "f": {"g": 1}}));
        let b = obj(json!({"a": {"b": 1, "c": 3}, "d": [3], "e": "y", "f": {"g": 2}}));
        // `f` has no common key: undefined, dropped; `d` intersects to [] and is kept.
        assert_eq!(nested_intersection(&[&a, &b]).map(Value::Object), Some(json!({"a": {"b": 1}, "d": []})));
        let c = obj(json!({"z": 1}));
        assert_eq!(nested_intersection(&[&a, &c]), None);
    }
}
