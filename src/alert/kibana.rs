//! Kibana's own alert documents (`--alert-format kibana`), eql-semantics.md section 8.3.
//!
//! Per sequence: a shell alert, then one building-block alert per present event, linked by
//! `kibana.alert.group.id` (= the shell's `kibana.alert.uuid`) and `kibana.alert.group.index`
//! (the block's 0-based position). Source: elastic/kibana
//! `rule_types/eql/build_alert_group_from_sequence.ts` (blocks are built first, their ids from
//! `factories/utils/generate_building_block_ids.ts`; the shell is `objectArrayIntersection` of the
//! blocks overlaid with `buildAlertFields`, its id from `factories/utils/build_alert.ts`
//! `generateAlertId`). A non-sequence rule gives one plain alert (depth 1, no group).
//!
//! Stand-ins where we lack Elasticsearch/Kibana context (see [`super::ids`]):
//! - ancestor `id` = the event identity (`event.id`, else the hash of the line) for the ES `_id`;
//! - ancestor `index` = `<data_stream.type>-<data_stream.dataset>-<data_stream.namespace>` or `""`;
//! - rule uuid = the `rule_id` (no saved-object id); `kibana.space_ids` = `[]` (no space);
//! - `kibana.alert.url` and Kibana-only rule settings (actions, schedule, ...) are not written;
//! - a missing-event stage (`![...]`) gets no building block; blocks are numbered consecutively;
//! - the shell's `kibana.alert.original_time` is the first event's time (Kibana reads it from the
//!   first building block, whose `@timestamp` is the alert's creation time).
//!
//! Keys are written dotted (`"kibana.alert.uuid"`) beside the nested source fields, as Kibana's
//! alert `_source` holds them. When an event cannot be parsed (see [`super::Rendered`]), its
//! building block has no source fields, and it and the shell carry `eqlstream.render_errors`.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::{common, ids, reason, risk_score_json, rule_uuid, time, write_line, AlertError};
use super::{Detection, Parsed};
use crate::rules::RuleSpec;

/// The `kibana.alert.rule.*` fields (and the other rule-derived fields) of every alert.
fn rule_fields(rule: &RuleSpec, doc: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        doc.insert(k.to_owned(), v);
    };
    put("kibana.alert.severity", json!(rule.severity));
    put("kibana.alert.risk_score", risk_score_json(rule.risk_score));
    put("kibana.alert.rule.consumer", json!("siem"));
    put("kibana.alert.rule.uuid", json!(rule_uuid(rule)));
    put("kibana.alert.rule.rule_id", json!(rule.rule_id));
    put("kibana.alert.rule.name", json!(rule.name));
    put("kibana.alert.rule.description", json!(rule.description));
    put("kibana.alert.rule.type", json!("eql"));
    if let Some(v) = rule.version {
        put("kibana.alert.rule.version", json!(v));
    }
    put("kibana.alert.rule.references", json!(rule.references));
    put("kibana.alert.rule.tags", json!(rule.tags));
    put("kibana.alert.rule.threat", rule.threat.clone());
    put("kibana.alert.rule.indices", json!(rule.index));
    if let Some(t) = &rule.timestamp_override {
        put("kibana.alert.rule.timestamp_override", json!(t));
    }
    put("kibana.alert.rule.severity", json!(rule.severity));
    put("kibana.alert.rule.risk_score", risk_score_json(rule.risk_score));
    put("kibana.space_ids", json!([]));
}

/// The event's own `@timestamp` string when it has one, else its rule timestamp.
fn original_time(source: &Map<String, Value>, timestamp_ns: i64) -> Value {
    match source.get("@timestamp") {
        Some(Value::String(s)) => json!(s),
        _ => json!(time::format_ns(timestamp_ns)),
    }
}

/// A building block (or single-event alert) before its uuid and group fields: the event's source
/// with `event.kind` removed, overlaid with `buildAlertFields` for one event ancestor.
fn event_alert(
    rule: &RuleSpec,
    source: &Map<String, Value>,
    timestamp_ns: i64,
    ancestor: &ids::Ancestor,
    reason: &str,
    now: &str,
) -> Map<String, Value> {
    let mut doc = source.clone();
    doc.shift_remove("event.kind");
    if let Some(Value::Object(ev)) = doc.get_mut("event") {
        ev.shift_remove("kind");
    }
    let original_event: Vec<(String, Value)> = common::flatten(source)
        .into_iter()
        .filter_map(|(path, v)| {
            path.strip_prefix("event.").map(|rest| (format!("kibana.alert.original_event.{rest}"), v.clone()))
        })
        .collect();
    doc.insert("@timestamp".into(), json!(now));
    doc.insert("event.kind".into(), json!("signal"));
    doc.insert("kibana.alert.original_time".into(), original_time(source, timestamp_ns));
    for (k, v) in original_event {
        doc.insert(k, v);
    }
    doc.insert(
        "kibana.alert.ancestors".into(),
        json!([{"id": ancestor.id, "type": "event", "index": ancestor.index, "depth": 0}]),
    );
    doc.insert("kibana.alert.status".into(), json!("active"));
    doc.insert("kibana.alert.workflow_status".into(), json!("open"));
    doc.insert("kibana.alert.depth".into(), json!(1));
    doc.insert("kibana.alert.reason".into(), json!(reason));
    rule_fields(rule, &mut doc);
    doc
}

/// Appends the Kibana alert lines for `d` to `out`.
pub(crate) fn write(
    d: &Detection<'_>,
    parsed: &Parsed<'_>,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Result<(), AlertError> {
    let rule = d.rule;
    let uuid = rule_uuid(rule);
    let now = time::format_system_time(now);
    let message = reason(d);
    let ancestors: Vec<ids::Ancestor> = parsed
        .events
        .iter()
        .map(|(stage, _, source)| ids::Ancestor {
            id: parsed.identities[*stage].clone().unwrap_or_default(),
            index: ids::event_index(source),
        })
        .collect();

    if d.events.len() <= 1 {
        let [(_, ev, source)] = parsed.events.as_slice() else {
            return Err(AlertError::NoEvents { rule_id: rule.rule_id.clone() });
        };
        let mut doc = event_alert(rule, source, ev.timestamp_ns, &ancestors[0], &message, &now);
        doc.insert("kibana.alert.uuid".into(), json!(ids::kibana_single_id(uuid, &ancestors[0])));
        if let Some(errors) = parsed.render_errors() {
            doc.insert("eqlstream.render_errors".into(), errors["render_errors"].clone());
        }
        return write_line(rule, &Value::Object(doc), out);
    }

    let block_ids = ids::kibana_building_block_ids(uuid, &ancestors);
    let mut blocks: Vec<Map<String, Value>> = parsed
        .events
        .iter()
        .zip(&ancestors)
        .zip(&block_ids)
        .map(|(((stage, ev, source), anc), id)| {
            let mut doc = event_alert(rule, source, ev.timestamp_ns, anc, &message, &now);
            doc.insert("kibana.alert.uuid".into(), json!(id));
            if parsed.unparsed.contains(stage) {
                if let Some(errors) = parsed.render_errors() {
                    doc.insert("eqlstream.render_errors".into(), errors["render_errors"].clone());
                }
            }
            doc
        })
        .collect();

    let shell_id = ids::kibana_shell_id(uuid, &ancestors, &block_ids);
    let block_refs: Vec<&Map<String, Value>> = blocks.iter().collect();
    let mut shell = common::nested_intersection(&block_refs).unwrap_or_default();
    let mut shell_ancestors = Vec::with_capacity(ancestors.len() * 2);
    for (anc, id) in ancestors.iter().zip(&block_ids) {
        shell_ancestors.push(json!({"id": anc.id, "type": "event", "index": anc.index, "depth": 0}));
        shell_ancestors.push(json!({"id": id, "type": "signal", "index": "", "depth": 1, "rule": uuid}));
    }
    let first_time = match parsed.events.first() {
        Some((_, ev, source)) => original_time(source, ev.timestamp_ns),
        None => Value::Null,
    };
    shell.insert("@timestamp".into(), json!(now));
    shell.insert("event.kind".into(), json!("signal"));
    shell.insert("kibana.alert.original_time".into(), first_time);
    shell.insert("kibana.alert.ancestors".into(), Value::Array(shell_ancestors));
    shell.insert("kibana.alert.status".into(), json!("active"));
    shell.insert("kibana.alert.workflow_status".into(), json!("open"));
    shell.insert("kibana.alert.depth".into(), json!(2));
    shell.insert("kibana.alert.reason".into(), json!(message));
    rule_fields(rule, &mut shell);
    shell.insert("kibana.alert.uuid".into(), json!(shell_id));
    shell.insert("kibana.alert.group.id".into(), json!(shell_id));
    if let Some(errors) = parsed.render_errors() {
        shell.insert("eqlstream.render_errors".into(), errors["render_errors"].clone());
    }
    write_line(rule, &Value::Object(shell), out)?;

    for (i, block) in blocks.iter_mut().enumerate() {
        block.insert("kibana.alert.building_block_type".into(), json!("default"));
        block.insert("kibana.alert.group.id".into(), json!(shell_id));
        block.insert("kibana.alert.group.index".into(), json!(i));
        write_line(rule, &Value::Object(std::mem::take(block)), out)?;
    }
    Ok(())
}
