//! The ECS alert record (`--alert-format ecs`): one JSON line per detection.
//!
//! Shape, in this key order:
//! `@timestamp` (the last matched event's timestamp), `event` (`kind: "alert"`,
//! `module: "eqlstream"`, `created` = wall clock, `id` = [`ids::ecs_alert_id`], `severity`,
//! `risk_score`), `rule` (`uuid`, `id`, `name`, `description`, `version`, `reference`), `tags`,
//! `threat` (the rule's MITRE mapping, verbatim), `message`, then the fields equal in every
//! matched event, then `kibana.alert.*` compatibility fields, then `eql` (`join_keys`, and
//! `events`: the matched lines verbatim, in stage order, `{"missing":true}` for a missing-event
//! stage, as the EQL search API writes it), and, only when part of the alert could not be
//! rendered, `eqlstream.render_errors` (see [`super::Rendered`]; an event that could not be
//! parsed is written in `eql.events` as a JSON string of its line).
//!
//! Precedence: the alert's own top-level fields (`@timestamp`, `event`, `rule`, `tags`, `threat`,
//! `message`, `kibana`, `eql`) always win. Common source fields under those names are not copied
//! at all, so no source `event.*` value ever sits beside the alert's `event.*` (the originals are
//! still in `eql.events`).
//!
//! `event.severity` is numeric (ECS `long`): Kibana's default severity-to-score ranges give
//! low 21, medium 47, high 73, critical 99; an unknown severity leaves it out.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::{common, ids, reason, risk_score_json, rule_uuid, time, AlertError, Detection, Parsed};
use crate::sequence::key::KeyValue;

/// Top-level names the alert owns; common source fields under them are never copied.
pub const RESERVED_TOP_LEVEL: &[&str] = &["@timestamp", "event", "rule", "tags", "threat", "message", "kibana", "eql"];

/// ECS `event.severity` for a rule severity name (Kibana's default severity-to-risk ranges).
pub fn severity_number(severity: &str) -> Option<i64> {
    match severity {
        "low" => Some(21),
        "medium" => Some(47),
        "high" => Some(73),
        "critical" => Some(99),
        _ => None,
    }
}

/// Appends the ECS alert line for `d` to `out`.
pub(crate) fn write(
    d: &Detection<'_>,
    parsed: &Parsed<'_>,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Result<(), AlertError> {
    let rule = d.rule;
    let (first_ts, last_ts) = match (parsed.events.first(), parsed.events.last()) {
        (Some(f), Some(l)) => (f.1.timestamp_ns, l.1.timestamp_ns),
        _ => return Err(AlertError::NoEvents { rule_id: rule.rule_id.clone() }),
    };
    let alert_id = ids::ecs_alert_id(&rule.rule_id, &parsed.identities);
    let message = reason(d);
    let timestamp = time::format_ns(last_ts);

    let mut doc = Map::new();
    doc.insert("@timestamp".into(), Value::String(timestamp));
    let mut event = Map::new();
    event.insert("kind".into(), json!("alert"));
    event.insert("module".into(), json!("eqlstream"));
    event.insert("created".into(), json!(time::format_system_time(now)));
    event.insert("id".into(), json!(alert_id));
    if let Some(sev) = severity_number(&rule.severity) {
        event.insert("severity".into(), json!(sev));
    }
    event.insert("risk_score".into(), risk_score_json(rule.risk_score));
    doc.insert("event".into(), Value::Object(event));

    let mut r = Map::new();
    r.insert("uuid".into(), json!(rule_uuid(rule)));
    r.insert("id".into(), json!(rule.rule_id));
    r.insert("name".into(), json!(rule.name));
    r.insert("description".into(), json!(rule.description));
    if let Some(v) = rule.version {
        r.insert("version".into(), json!(v.to_string()));
    }
    if !rule.references.is_empty() {
        r.insert("reference".into(), json!(rule.references));
    }
    doc.insert("rule".into(), Value::Object(r));
    doc.insert("tags".into(), json!(rule.tags));
    doc.insert("threat".into(), rule.threat.clone());
    doc.insert("message".into(), json!(message));

    if parsed.unparsed.is_empty() {
        let sources: Vec<&Map<String, Value>> = parsed.events.iter().map(|e| &e.2).collect();
        let shared: Vec<(String, Value)> = common::flat_intersection(&sources, false)
            .into_iter()
            .filter(|(path, _)| {
                let top = path.split('.').next().unwrap_or(path);
                !RESERVED_TOP_LEVEL.contains(&top)
            })
            .collect();
        common::unflatten_into(&mut doc, shared);
    } else if let Some(errors) = parsed.render_errors() {
        // The fields common to every event cannot be known: none are copied (and no source
        // field can clash with `eqlstream`).
        doc.insert("eqlstream".into(), errors);
    }

    doc.insert(
        "kibana".into(),
        json!({"alert": {
            "uuid": alert_id,
            "rule": {"rule_id": rule.rule_id, "name": rule.name, "uuid": rule_uuid(rule)},
            "severity": rule.severity,
            "risk_score": risk_score_json(rule.risk_score),
            "reason": message,
            "original_time": time::format_ns(first_ts),
        }}),
    );

    let start = out.len();
    serde_json::to_writer(&mut *out, &Value::Object(doc))
        .map_err(|source| AlertError::Serialize { rule_id: rule.rule_id.clone(), source })?;
    // Re-open the object (it ends with '}') to append `eql` with the events spliced verbatim.
    debug_assert_eq!(out.last(), Some(&b'}'));
    out.pop();
    if out.len() > start + 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"eql\":{\"join_keys\":");
    let keys: Vec<Value> = d.join_keys.iter().map(KeyValue::to_json).collect();
    serde_json::to_writer(&mut *out, &keys)
        .map_err(|source| AlertError::Serialize { rule_id: rule.rule_id.clone(), source })?;
    out.extend_from_slice(b",\"events\":[");
    let mut present = parsed.events.iter();
    for (stage, slot) in d.events.iter().enumerate() {
        if stage > 0 {
            out.push(b',');
        }
        match slot {
            None => out.extend_from_slice(b"{\"missing\":true}"),
            Some(_) => {
                let (stage, ev, _) =
                    present.next().ok_or_else(|| AlertError::NoEvents { rule_id: rule.rule_id.clone() })?;
                if parsed.unparsed.contains(stage) {
                    // Not known to be JSON: written as a string, so the alert line stays JSON.
                    serde_json::to_writer(&mut *out, &*ev.raw)
                        .map_err(|source| AlertError::Serialize { rule_id: rule.rule_id.clone(), source })?;
                } else {
                    write_verbatim(&ev.raw, out);
                }
            }
        }
    }
    out.extend_from_slice(b"]}}\n");
    Ok(())
}

/// Writes an event's original line, trimmed of surrounding JSON whitespace. A carriage return or
/// newline inside it is written as a space, so the alert line stays one line: in a valid JSON
/// line those bytes can only be whitespace between tokens (inside strings they must be escaped,
/// and no multi-byte UTF-8 character contains them), so the event is unchanged as JSON.
fn write_verbatim(raw: &str, out: &mut Vec<u8>) {
    let trimmed = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let start = out.len();
    out.extend_from_slice(trimmed.as_bytes());
    for b in &mut out[start..] {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
}
