//! Alert records: one detection (a completed sequence, or one event matching a non-sequence rule)
//! rendered as NDJSON alert line(s), in eqlstream's ECS shape or in Kibana's own shape.
//!
//! Layout:
//! - [`record`]: the ECS alert (`--alert-format ecs`, the default): one line per detection.
//! - [`kibana`]: Kibana's alert group (`--alert-format kibana`): a shell alert plus one
//!   building-block alert per event (eql-semantics.md section 8.3).
//! - [`ids`]: deterministic ids (event identity, ECS `event.id`, Kibana ids).
//! - [`common`]: the "fields equal in every matched event" intersection.
//! - [`time`]: RFC 3339 timestamps from nanoseconds, without a date library.
//!
//! Alerts are rare, so this module may allocate and re-parse the matched events freely; it must
//! never be called per input event, and it never writes a newline inside an alert line.

pub mod common;
pub mod ids;
pub mod kibana;
pub mod record;
pub mod time;

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::rules::RuleSpec;
use crate::sequence::key::KeyValue;

/// Which alert shape to write (`--alert-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// One ECS-style JSON line per detection, with the matched events under `eql.events`.
    #[default]
    Ecs,
    /// Kibana's own documents: a shell alert plus one building-block alert per event.
    Kibana,
}

/// One event that matched a stage of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedEvent {
    /// The original input line, verbatim (without its line terminator); it parsed as a JSON object.
    pub raw: Box<str>,
    /// The event's timestamp (the rule's timestamp field) in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
}

/// One detection to render.
#[derive(Clone, Copy, Debug)]
pub struct Detection<'a> {
    /// The rule that fired.
    pub rule: &'a RuleSpec,
    /// The join-key values, positionally (`sequence by` keys, then the stage `by` keys, as
    /// Elasticsearch's EQL API returns them); empty for event (non-sequence) rules.
    pub join_keys: &'a [KeyValue],
    /// The matched events in stage order; `None` marks a missing-event stage (`![...]`).
    pub events: &'a [Option<&'a MatchedEvent>],
}

/// Why a detection could not be rendered. Never caused by the rule metadata alone.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The detection holds no present event at all.
    #[error("detection of rule {rule_id} has no matched event")]
    NoEvents {
        /// The rule's `rule_id`.
        rule_id: String,
    },
    /// A matched event did not parse as a JSON object with serde_json.
    #[error("matched event {stage} of rule {rule_id} is not a JSON object: {reason}")]
    EventNotObject {
        /// The rule's `rule_id`.
        rule_id: String,
        /// The stage position of the event (0-based).
        stage: usize,
        /// The parser's message.
        reason: String,
    },
    /// Serialising the alert failed (only possible for non-finite numbers).
    #[error("cannot serialise alert of rule {rule_id}: {source}")]
    Serialize {
        /// The rule's `rule_id`.
        rule_id: String,
        /// The serde_json error.
        source: serde_json::Error,
    },
}

/// Appends the alert line(s) for one detection to `out`, each terminated by `'\n'` and containing
/// no other newline. ECS: one line. Kibana: the shell alert, then one building block per present
/// event (a non-sequence rule gives one plain alert).
///
/// On error nothing is appended to `out`.
pub fn render(d: &Detection<'_>, format: AlertFormat, now: SystemTime, out: &mut Vec<u8>) -> Result<(), AlertError> {
    let parsed = Parsed::new(d)?;
    let start = out.len();
    let result = match format {
        AlertFormat::Ecs => record::write(d, &parsed, now, out),
        AlertFormat::Kibana => kibana::write(d, &parsed, now, out),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The detection's present events, parsed once with serde_json, and their identities.
pub(crate) struct Parsed<'a> {
    /// `(stage, event, parsed source)` for each present event, in stage order.
    pub events: Vec<(usize, &'a MatchedEvent, Map<String, Value>)>,
    /// The identity of each stage's event (`None` for missing-event stages), see [`ids`].
    pub identities: Vec<Option<String>>,
}

impl<'a> Parsed<'a> {
    fn new(d: &Detection<'a>) -> Result<Self, AlertError> {
        let mut events = Vec::with_capacity(d.events.len());
        let mut identities = Vec::with_capacity(d.events.len());
        for (stage, ev) in d.events.iter().enumerate() {
            let Some(ev) = ev else {
                identities.push(None);
                continue;
            };
            let source = match serde_json::from_str::<Value>(&ev.raw) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(AlertError::EventNotObject {
                        rule_id: d.rule.rule_id.clone(),
                        stage,
                        reason: "not an object".to_owned(),
                    })
                }
                Err(e) => {
                    return Err(AlertError::EventNotObject {
                        rule_id: d.rule.rule_id.clone(),
                        stage,
                        reason: e.to_string(),
                    })
                }
            };
            identities.push(Some(ids::event_identity(&source, ev.raw.as_bytes())));
            events.push((stage, *ev, source));
        }
        if events.is_empty() {
            return Err(AlertError::NoEvents { rule_id: d.rule.rule_id.clone() });
        }
        Ok(Parsed { events, identities })
    }
}

/// The rule's "uuid": we have no Kibana saved-object id, so the `rule_id` stands in for it.
pub(crate) fn rule_uuid(rule: &RuleSpec) -> &str {
    &rule.rule_id
}

/// `risk_score` as JSON: an integer when it is whole (73, not 73.0).
pub(crate) fn risk_score_json(score: f64) -> Value {
    if score.fract() == 0.0 && score.abs() < 1e15 {
        Value::from(score as i64)
    } else {
        Value::from(score)
    }
}

/// The one-line reason naming the rule and the join-key values (`message`, `kibana.alert.reason`).
pub(crate) fn reason(d: &Detection<'_>) -> String {
    let present = d.events.iter().filter(|e| e.is_some()).count();
    if d.events.len() <= 1 {
        return format!("Event matched rule \"{}\" ({}).", one_line(&d.rule.name), d.rule.rule_id);
    }
    let keys: Vec<Value> = d.join_keys.iter().map(KeyValue::to_json).collect();
    let keys = Value::Array(keys).to_string();
    format!(
        "Sequence of {present} events matched rule \"{}\" ({}) with join keys {keys}.",
        one_line(&d.rule.name),
        d.rule.rule_id
    )
}

/// `s` with every control character (newlines included) replaced by a space.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Writes `value` followed by `'\n'`; `serde_json` never writes a raw newline (it escapes them).
pub(crate) fn write_line(rule: &RuleSpec, value: &Value, out: &mut Vec<u8>) -> Result<(), AlertError> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|source| AlertError::Serialize { rule_id: rule.rule_id.clone(), source })?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule() -> RuleSpec {
        RuleSpec {
            rule_id: "r1".into(),
            name: "Two\nline name".into(),
            description: "d\n".into(),
            severity: "medium".into(),
            risk_score: 47.5,
            threat: json!([]),
            ..RuleSpec::default()
        }
    }

    #[test]
    fn alert_lines_never_contain_inner_newlines() {
        let rule = rule();
        let a = MatchedEvent { raw: "{\"a\":\r1,\"b\":\"x\\ny\"}".into(), timestamp_ns: 5 };
        let b = MatchedEvent { raw: "  {\"a\":1}\r".into(), timestamp_ns: 6 };
        let keys = [KeyValue::Str("k\nv".into())];
        let slots = [Some(&a), Some(&b)];
        let d = Detection { rule: &rule, join_keys: &keys, events: &slots };
        for format in [AlertFormat::Ecs, AlertFormat::Kibana] {
            let mut out = Vec::new();
            render(&d, format, SystemTime::UNIX_EPOCH, &mut out).unwrap();
            for line in out.split_inclusive(|b| *b == b'\n') {
                assert_eq!(line.last(), Some(&b'\n'));
                let body = &line[..line.len() - 1];
                assert!(!body.contains(&b'\n') && !body.contains(&b'\r'), "{format:?}");
                let v: Value = serde_json::from_slice(body).unwrap();
                assert!(v.is_object());
            }
        }
        let mut out = Vec::new();
        render(&d, AlertFormat::Ecs, SystemTime::UNIX_EPOCH, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["eql"]["events"], json!([{"a": 1, "b": "x\ny"}, {"a": 1}]));
        assert_eq!(v["a"], 1, "a common field");
        assert_eq!(v["event"]["risk_score"], 47.5);
        assert_eq!(v["event"]["severity"], 47);
    }

    #[test]
    fn alert_format_parses_from_config_and_cli_spellings() {
        #[derive(serde::Deserialize)]
        struct C {
            f: AlertFormat,
        }
        let c: C = toml::from_str("f = \"kibana\"").unwrap();
        assert_eq!(c.f, AlertFormat::Kibana);
        use clap::ValueEnum;
        assert_eq!(AlertFormat::from_str("ecs", false), Ok(AlertFormat::Ecs));
        assert_eq!(AlertFormat::default(), AlertFormat::Ecs);
    }
}
