//! Kibana's own alert documents (`--alert-format kibana`), eql-semantics.md section 8.3.
//!
//! Per sequence: a shell alert, then one building-block alert per present event, linked by
//! `kibana.alert.group.id` (= the shell's `kibana.alert.uuid`) and `kibana.alert.group.index`
//! (the block's 0-based position). A non-sequence rule gives one plain alert (depth 1, no group).
//!
//! Where each field comes from in elastic/kibana (paths under
//! `x-pack/plugins/security_solution/server/lib/detection_engine/rule_types/` unless given in
//! full); checked field by field against the alert document of
//! `factories/utils/__snapshots__/build_alert.test.ts.snap` and the alert field map
//! `packages/kbn-alerts-as-data-utils/src/field_maps/alert_field_map.ts` (its required fields:
//! `@timestamp`, `kibana.space_ids`, `kibana.alert.uuid`, `.status`, `.rule.category`,
//! `.rule.consumer`, `.rule.name`, `.rule.producer`, `.rule.revision`, `.rule.rule_type_id`,
//! `.rule.uuid`; `kibana.alert.instance.id` is required there too, but Security sets it only on
//! suppressed alerts, so we do not):
//!
//! | field | source |
//! |---|---|
//! | shell = `objectArrayIntersection` of the blocks, blocks first | `eql/build_alert_group_from_sequence.ts` |
//! | block ids, shell id (`generateAlertId`) | `factories/utils/generate_building_block_ids.ts`, `factories/utils/build_alert.ts` |
//! | `@timestamp` (now), `kibana.space_ids` (`[spaceId]`), `kibana.alert.ancestors`, `.status` (`active`), `.workflow_status` (`open`), `.depth`, `.reason`, `.rule.consumer` (`siem`), `.rule.*` from the rule params (`uuid`, `name`, `tags`, `type`, `rule_id`, `description`, `severity`, `risk_score`, `references`, `threat`, `version`, `timestamp_override`), `.rule.parameters` | `factories/utils/build_alert.ts` `buildAlert` |
//! | `kibana.alert.original_time`, `kibana.alert.original_event.*` | `factories/utils/build_alert.ts` `additionalAlertFields` |
//! | `event.kind: "signal"`, `kibana.alert.workflow_tags: []`, `.workflow_assignee_ids: []` | `factories/utils/build_alert.ts` (8.x), see the snapshot |
//! | `kibana.alert.building_block_type: "default"`, `.group.id`, `.group.index` | `eql/build_alert_group_from_sequence.ts` |
//! | `kibana.alert.rule.rule_type_id` (`siem.eqlRule`), `.category` (`Event Correlation Rule`), `.producer` (`siem`), `tags` (the rule's, unless the source has `tags`) | `x-pack/plugins/rule_registry/server/utils/get_common_alert_fields.ts`, `create_persistence_rule_type_wrapper.ts`; the values from `packages/kbn-securitysolution-rules/src/rule_type_constants.ts` `EQL_RULE_TYPE_ID` and `eql/create_eql_alert_type.ts` |
//! | `kibana.alert.rule.revision` (`0`, a rule never edited in Kibana) | `alert_field_map.ts` (required) |
//!
//! Stand-ins where we lack Elasticsearch/Kibana context (see [`super::ids`]):
//! - ancestor `id` = the event identity (`event.id`, else the hash of the line) for the ES `_id`;
//! - ancestor `index` = `<data_stream.type>-<data_stream.dataset>-<data_stream.namespace>` or `""`;
//! - rule uuid = the `rule_id` (no saved-object id);
//! - `kibana.space_ids` = `[kibana_space_id]` (option, default `"default"`: Kibana's default space);
//! - not written: `kibana.alert.url`, `kibana.version`, `kibana.alert.rule.execution.uuid`,
//!   `kibana.alert.start`/`last_detected`, and Kibana-only rule settings (actions, schedule,
//!   `created_*`/`updated_*`, `enabled`, `interval`, `from`/`to`, `author`, `license`, ...);
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

/// `kibana.alert.rule.rule_type_id` of an EQL rule (`EQL_RULE_TYPE_ID`).
pub const EQL_RULE_TYPE_ID: &str = "siem.eqlRule";
/// `kibana.alert.rule.category`: the display name of the EQL rule type.
pub const EQL_RULE_CATEGORY: &str = "Event Correlation Rule";
/// `kibana.alert.rule.consumer` and `.producer` of Security rules (`SERVER_APP_ID`).
pub const SECURITY_APP_ID: &str = "siem";

/// The rule-derived fields of every alert (`buildAlert`'s `kibana.alert.rule.*`, the common
/// alert fields of the rule registry, `kibana.space_ids`). The alert's own `tags` are the rule's
/// unless the source has `tags`, which then wins, as in Kibana (`{...common, ..._source}`).
fn rule_fields(rule: &RuleSpec, space: &str, doc: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        doc.insert(k.to_owned(), v);
    };
    put("kibana.alert.severity", json!(rule.severity));
    put("kibana.alert.risk_score", risk_score_json(rule.risk_score));
    put("kibana.alert.workflow_tags", json!([]));
    put("kibana.alert.workflow_assignee_ids", json!([]));
    put("kibana.alert.rule.category", json!(EQL_RULE_CATEGORY));
    put("kibana.alert.rule.consumer", json!(SECURITY_APP_ID));
    put("kibana.alert.rule.producer", json!(SECURITY_APP_ID));
    put("kibana.alert.rule.rule_type_id", json!(EQL_RULE_TYPE_ID));
    put("kibana.alert.rule.revision", json!(0));
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
    put("kibana.alert.rule.parameters", parameters(rule));
    put("kibana.space_ids", json!([space]));
    if !doc.contains_key("tags") {
        doc.insert("tags".to_owned(), json!(rule.tags));
    }
}

/// `kibana.alert.rule.parameters`: the rule's detection parameters, snake_case as Kibana writes
/// them (only those a rule file gives us).
fn parameters(rule: &RuleSpec) -> Value {
    let mut p = Map::new();
    p.insert("type".into(), json!("eql"));
    p.insert("language".into(), json!(rule.language.as_deref().unwrap_or("eql")));
    p.insert("query".into(), json!(rule.query));
    p.insert("index".into(), json!(rule.index));
    p.insert("rule_id".into(), json!(rule.rule_id));
    p.insert("description".into(), json!(rule.description));
    p.insert("severity".into(), json!(rule.severity));
    p.insert("risk_score".into(), risk_score_json(rule.risk_score));
    if let Some(v) = rule.version {
        p.insert("version".into(), json!(v));
    }
    p.insert("references".into(), json!(rule.references));
    p.insert("threat".into(), rule.threat.clone());
    for (k, v) in [
        ("timestamp_override", &rule.timestamp_override),
        ("event_category_override", &rule.event_category_override),
        ("tiebreaker_field", &rule.tiebreaker_field),
    ] {
        if let Some(v) = v {
            p.insert(k.into(), json!(v));
        }
    }
    Value::Object(p)
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
    (rule, space): (&RuleSpec, &str),
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
    rule_fields(rule, space, &mut doc);
    doc
}

/// Appends the Kibana alert lines for `d` to `out`.
pub(crate) fn write(
    d: &Detection<'_>,
    parsed: &Parsed<'_>,
    space: &str,
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
        let mut doc = event_alert((rule, space), source, ev.timestamp_ns, &ancestors[0], &message, &now);
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
            let mut doc = event_alert((rule, space), source, ev.timestamp_ns, anc, &message, &now);
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
    rule_fields(rule, space, &mut shell);
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
