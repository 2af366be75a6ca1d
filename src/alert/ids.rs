//! Deterministic alert ids: reprocessing the same input gives the same ids, so downstream stores
//! can deduplicate (eql-semantics.md section 8.4).
//!
//! - **Event identity**: the event's `event.id` when it is a string (nested `{"event":{"id":..}}`
//!   or a dotted `"event.id"` key), else the lowercase hex SHA-256 of its raw line bytes.
//! - **ECS `event.id`**: hex SHA-256 over the rule id and each stage's event identity, every
//!   part length-prefixed (u64 little-endian) so that no two different inputs share a preimage.
//! - **Kibana ids**: the formulas of Kibana's `generate_building_block_ids.ts` and
//!   `build_alert.ts` `generateAlertId` (section 8.3), with our stand-ins for `_id` (the event
//!   identity), `_index` ([`event_index`]) and the rule's saved-object uuid (the `rule_id`).
//!
//! Pure functions; no I/O.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// The id of a rendered alert line: its `kibana.alert.uuid` (Kibana format, whose documents also
/// carry the source event's own `event.id`), else its `event.id` (ECS format); used as the key of
/// the alert's Kafka record.
pub fn event_id_of(alert_line: &[u8]) -> Option<Vec<u8>> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(alert_line) else { return None };
    ["kibana.alert.uuid", "event.id"]
        .iter()
        .find_map(|p| lookup(&obj, p).and_then(Value::as_str))
        .map(|id| id.as_bytes().to_vec())
}

/// Looks up a dotted path in a JSON object whose keys may be nested objects, dotted keys, or a
/// mix of both (`{"event":{"id":..}}`, `{"event.id":..}`).
pub fn lookup<'v>(obj: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    for (dot, _) in path.match_indices('.') {
        if let Some(Value::Object(inner)) = obj.get(&path[..dot]) {
            if let Some(v) = lookup(inner, &path[dot + 1..]) {
                return Some(v);
            }
        }
    }
    None
}

/// The identity of one matched event: its `event.id` string when present and non-empty, else the
/// hex SHA-256 of its raw bytes.
pub fn event_identity(source: &Map<String, Value>, raw: &[u8]) -> String {
    match lookup(source, "event.id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => hex(&Sha256::digest(raw)),
    }
}

/// Our stand-in for an event's Elasticsearch `_index`: the data stream name
/// `<data_stream.type>-<data_stream.dataset>-<data_stream.namespace>` when all three are strings
/// (e.g. `logs-cloud_defend.file-default`), else `""`.
pub fn event_index(source: &Map<String, Value>) -> String {
    let part = |p: &str| match lookup(source, p) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    match (part("data_stream.type"), part("data_stream.dataset"), part("data_stream.namespace")) {
        (Some(t), Some(d), Some(n)) => format!("{t}-{d}-{n}"),
        _ => String::new(),
    }
}

fn update_prefixed(h: &mut Sha256, part: &[u8]) {
    h.update((part.len() as u64).to_le_bytes());
    h.update(part);
}

/// The ECS alert's `event.id`: SHA-256 over `len(rule_id) rule_id`, then per stage either
/// `0x01 len(identity) identity` or `0x00` for a missing-event stage (lengths are u64 LE).
pub fn ecs_alert_id(rule_id: &str, identities: &[Option<String>]) -> String {
    let mut h = Sha256::new();
    update_prefixed(&mut h, rule_id.as_bytes());
    for id in identities {
        match id {
            Some(id) => {
                h.update([1u8]);
                update_prefixed(&mut h, id.as_bytes());
            }
            None => h.update([0u8]),
        }
    }
    hex(&h.finalize())
}

/// One ancestor reference (`kibana.alert.ancestors[]` `id` and `index`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ancestor {
    /// The document id (for an event: its identity).
    pub id: String,
    /// The document index (for an event: [`event_index`]).
    pub index: String,
}

/// Kibana's building-block ids (`generate_building_block_ids.ts`): with
/// `base = concat over blocks(concat over the block's ancestors(id + index) + rule_uuid)`,
/// block `i` gets `sha256(base + String(i))`. Each of our blocks has exactly one ancestor: its event.
pub fn kibana_building_block_ids(rule_uuid: &str, events: &[Ancestor]) -> Vec<String> {
    let mut base = Sha256::new();
    for a in events {
        base.update(a.id.as_bytes());
        base.update(a.index.as_bytes());
        base.update(rule_uuid.as_bytes());
    }
    (0..events.len())
        .map(|i| {
            let mut h = base.clone();
            h.update(i.to_string().as_bytes());
            hex(&h.finalize())
        })
        .collect()
}

/// Kibana's shell id (`build_alert.ts` `generateAlertId` applied to the shell):
/// `sha256(concat over ancestors(id + index) + rule_uuid)`, where the shell's ancestors are, per
/// building block, its event then the block itself (whose `_index` is `""` at that point).
pub fn kibana_shell_id(rule_uuid: &str, events: &[Ancestor], block_ids: &[String]) -> String {
    let mut h = Sha256::new();
    for (a, block) in events.iter().zip(block_ids) {
        h.update(a.id.as_bytes());
        h.update(a.index.as_bytes());
        h.update(block.as_bytes());
    }
    h.update(rule_uuid.as_bytes());
    hex(&h.finalize())
}

/// Kibana's id for a single-event alert (`generateAlertId` with one event ancestor):
/// `sha256(id + index + rule_uuid)`.
pub fn kibana_single_id(rule_uuid: &str, event: &Ancestor) -> String {
    let mut h = Sha256::new();
    h.update(event.id.as_bytes());
    h.update(event.index.as_bytes());
    h.update(rule_uuid.as_bytes());
    hex(&h.finalize())
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
    fn identity_prefers_event_id_nested_or_dotted() {
        let nested = obj(json!({"event": {"id": "abc"}}));
        assert_eq!(event_identity(&nested, b"x"), "abc");
        let dotted = obj(json!({"event.id": "def"}));
        assert_eq!(event_identity(&dotted, b"x"), "def");
    }

    #[test]
    fn identity_falls_back_to_raw_hash() {
        let m = obj(json!({"event": {"id": 7}}));
        // sha256("abc")
        assert_eq!(event_identity(&m, b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn index_is_data_stream_name_or_empty() {
        let m = obj(json!({"data_stream": {"type": "logs", "dataset": "cloud_defend.file", "namespace": "default"}}));
        assert_eq!(event_index(&m), "logs-cloud_defend.file-default");
        let partial = obj(json!({"data_stream": {"type": "logs"}}));
        assert_eq!(event_index(&partial), "");
    }

    #[test]
    fn ecs_id_is_length_prefixed_so_boundaries_matter() {
        let a = ecs_alert_id("r", &[Some("ab".into()), Some("c".into())]);
        let b = ecs_alert_id("r", &[Some("a".into()), Some("bc".into())]);
        assert_ne!(a, b);
        let missing = ecs_alert_id("r", &[Some("ab".into()), None]);
        assert_ne!(a, missing);
        assert_eq!(a, ecs_alert_id("r", &[Some("ab".into()), Some("c".into())]));
    }

    #[test]
    fn building_block_ids_follow_kibana_formula() {
        let evs = [Ancestor { id: "e1".into(), index: "i".into() }, Ancestor { id: "e2".into(), index: "".into() }];
        let ids = kibana_building_block_ids("R", &evs);
        // base = "e1" "i" "R" "e2" "" "R"; block i = sha256(base + i)
        assert_eq!(ids[0], hex(&Sha256::digest(b"e1iRe2R0")));
        assert_eq!(ids[1], hex(&Sha256::digest(b"e1iRe2R1")));
        let shell = kibana_shell_id("R", &evs, &ids);
        let pre = format!("e1i{}e2{}R", ids[0], ids[1]);
        assert_eq!(shell, hex(&Sha256::digest(pre.as_bytes())));
    }
}
