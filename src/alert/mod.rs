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
//!
//! Rendering never fails for a detection with a present event. Each event is parsed again with
//! serde_json, without its recursion limit (128 levels, which lost the alerts of events nested
//! deeper: issue 13) but only up to [`MAX_EVENT_DEPTH`], the depth simd-json accepted at decode.
//! Parsing, copying, comparing and serialising JSON values all recurse once per level, so a
//! detection with an event nested deeper than [`SHALLOW_DEPTH`] is rendered on a short-lived
//! thread with a stack sized for its depth (about 3 KiB per level in a debug build: more than a
//! worker thread's 2 MiB at 1,000 levels). An event that still cannot be parsed is kept in the
//! alert as a JSON string of its line (ECS `eql.events`), its fields are left out, and the alert
//! says so under `eqlstream.render_errors` (see [`Rendered`]).

pub(crate) mod common;
pub(crate) mod ids;
pub(crate) mod kibana;
pub(crate) mod record;
pub(crate) mod time;

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

/// The Kibana space alerts belong to unless `kibana_space_id` says otherwise (Kibana's own
/// default space).
pub const DEFAULT_KIBANA_SPACE: &str = "default";

/// Whether `id` can be a Kibana space id: lower-case ASCII letters, digits, `_` and `-`, not empty
/// (Kibana's spaces API refuses anything else).
pub fn valid_space_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One event that matched a stage of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedEvent {
    /// The original input line, verbatim (without its line terminator); it parsed as a JSON object.
    pub raw: Box<str>,
    /// The event's timestamp (the rule's timestamp field) in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
}

/// The deepest nesting (objects and arrays, the event itself included) of an event whose fields
/// are parsed into the alert: simd-json's limit, so every event that was decoded, and could
/// therefore match, fits.
pub const MAX_EVENT_DEPTH: usize = simd_json::DEFAULT_MAX_DEPTH;

/// Detections whose events nest at most this deep are rendered on the caller's thread (serde_json's
/// own default limit; real events nest a few levels).
pub const SHALLOW_DEPTH: usize = 128;

/// Stack of the thread that renders a deeper detection: this much per level of its deepest event,
/// plus [`DEEP_STACK_BASE`]. Generous (about 5 times a debug build's use); the pages are
/// only committed as the recursion touches them.
const DEEP_STACK_PER_LEVEL: usize = 16 << 10;
/// See [`DEEP_STACK_PER_LEVEL`].
const DEEP_STACK_BASE: usize = 2 << 20;

/// What [`render`] wrote besides the alert line(s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The parts of the alert that could not be rendered, each saying what is missing and why
    /// (also written into the alert, under `eqlstream.render_errors`); empty for a whole alert.
    pub missing: Vec<String>,
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
/// An event that cannot be parsed (see the module comment) leaves its fields out of the alert
/// and is listed in [`Rendered::missing`]. The only error is a detection without any present
/// event; on error nothing is appended to `out`.
///
/// Kibana-format alerts go to the [`DEFAULT_KIBANA_SPACE`]; see [`render_in_space`].
pub fn render(
    d: &Detection<'_>,
    format: AlertFormat,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Result<Rendered, AlertError> {
    render_in_space(d, format, DEFAULT_KIBANA_SPACE, now, out)
}

/// [`render`], with Kibana-format alerts in the Kibana space `space` (`kibana.space_ids`; ECS
/// alerts do not name a space).
pub fn render_in_space(
    d: &Detection<'_>,
    format: AlertFormat,
    space: &str,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Result<Rendered, AlertError> {
    let depth = d.events.iter().flatten().map(|e| nesting_depth(e.raw.as_bytes())).max().unwrap_or(0);
    if depth <= SHALLOW_DEPTH {
        return render_with(d, (format, space), now, out, SHALLOW_DEPTH);
    }
    let stack = DEEP_STACK_BASE + depth.min(MAX_EVENT_DEPTH) * DEEP_STACK_PER_LEVEL;
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new().name("alert-render".into()).stack_size(stack);
        let deep = thread.spawn_scoped(scope, || {
            let mut lines = Vec::new();
            let r = render_with(d, (format, space), now, &mut lines, MAX_EVENT_DEPTH);
            (r, lines)
        });
        match deep {
            Ok(handle) => {
                let (r, lines) = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                out.extend_from_slice(&lines);
                r
            }
            // No thread (resource limits): the deep events are left unparsed.
            Err(_) => render_with(d, (format, space), now, out, SHALLOW_DEPTH),
        }
    })
}

/// [`render`] with the events nested at most `max_depth` deep parsed.
fn render_with(
    d: &Detection<'_>,
    (format, space): (AlertFormat, &str),
    now: SystemTime,
    out: &mut Vec<u8>,
    max_depth: usize,
) -> Result<Rendered, AlertError> {
    let parsed = Parsed::new(d, max_depth)?;
    let start = out.len();
    let result = match format {
        AlertFormat::Ecs => record::write(d, &parsed, now, out),
        AlertFormat::Kibana => kibana::write(d, &parsed, space, now, out),
    };
    match result {
        Ok(()) => Ok(Rendered { missing: parsed.problems }),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The detection's present events, parsed once with serde_json, and their identities.
pub(crate) struct Parsed<'a> {
    /// `(stage, event, parsed source)` for each present event, in stage order; the source is
    /// empty for an event that could not be parsed (its stage is in `unparsed`).
    pub events: Vec<(usize, &'a MatchedEvent, Map<String, Value>)>,
    /// The identity of each stage's event (`None` for missing-event stages), see [`ids`].
    pub identities: Vec<Option<String>>,
    /// The stages whose event could not be parsed.
    pub unparsed: Vec<usize>,
    /// What is missing from the alert, and why (see [`Rendered::missing`]).
    pub problems: Vec<String>,
}

impl<'a> Parsed<'a> {
    fn new(d: &Detection<'a>, max_depth: usize) -> Result<Self, AlertError> {
        let mut events = Vec::with_capacity(d.events.len());
        let mut identities = Vec::with_capacity(d.events.len());
        let mut unparsed = Vec::new();
        let mut problems = Vec::new();
        for (stage, ev) in d.events.iter().enumerate() {
            let Some(ev) = ev else {
                identities.push(None);
                continue;
            };
            let source = match parse_source(&ev.raw, max_depth) {
                Ok(m) => m,
                Err(reason) => {
                    unparsed.push(stage);
                    problems.push(format!(
                        "the event of stage {stage} cannot be parsed ({reason}): its fields are missing from this \
                         alert, its identity is the hash of its line (ECS: eql.events holds the line as a string)"
                    ));
                    Map::new()
                }
            };
            identities.push(Some(ids::event_identity(&source, ev.raw.as_bytes())));
            events.push((stage, *ev, source));
        }
        if events.is_empty() {
            return Err(AlertError::NoEvents { rule_id: d.rule.rule_id.clone() });
        }
        Ok(Parsed { events, identities, unparsed, problems })
    }

    /// The `eqlstream` object of an alert with missing parts: `{"render_errors": [...]}`.
    pub fn render_errors(&self) -> Option<Value> {
        (!self.problems.is_empty()).then(|| serde_json::json!({ "render_errors": self.problems }))
    }
}

/// Parses a matched event's line into its fields: serde_json without its recursion limit, for
/// lines nested at most `max_depth` deep (the caller's stack must have room for them).
fn parse_source(raw: &str, max_depth: usize) -> Result<Map<String, Value>, String> {
    use serde::Deserialize;
    let depth = nesting_depth(raw.as_bytes());
    if depth > max_depth {
        return Err(format!("it nests {depth} levels deep, more than {max_depth}"));
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    de.disable_recursion_limit();
    match Value::deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// The deepest nesting of objects and arrays in `json` (brackets inside strings do not count);
/// meaningful for valid JSON, bounded by the input length for anything else.
pub fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
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

    /// `{"@timestamp":..,"deep":{"d":{"d":...[1]...}}}` nested `depth` levels in all.
    fn deep_event(depth: usize, ts: i64) -> MatchedEvent {
        let inner = depth - 1;
        let mut raw = format!("{{\"@timestamp\":{ts},\"x\":\"same\",\"deep\":");
        for i in 0..inner {
            raw.push_str(if i % 2 == 0 { "{\"d\":" } else { "[" });
        }
        raw.push('1');
        for i in (0..inner).rev() {
            raw.push(if i % 2 == 0 { '}' } else { ']' });
        }
        raw.push('}');
        assert_eq!(nesting_depth(raw.as_bytes()), depth);
        MatchedEvent { raw: raw.into(), timestamp_ns: ts }
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut de = serde_json::Deserializer::from_slice(l);
                de.disable_recursion_limit();
                serde::Deserialize::deserialize(&mut de).expect("each alert line is JSON")
            })
            .collect()
    }

    /// See: issue 13, row 2. serde_json's recursion limit (128) made every event nested 127 to
    /// 1,023 levels deep (simd-json accepts 1,024) fail to render: the alert was lost. Both
    /// formats now render such events whole, up to simd-json's limit.
    #[test]
    fn issue_13_events_nested_up_to_the_decode_limit_render_whole() {
        // The checks parse and drop the deep alerts recursively: room for them.
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(deep_events_render_whole)
            .expect("a test thread")
            .join()
            .expect("no panic");
    }

    fn deep_events_render_whole() {
        let rule = rule();
        for depth in [130, 1000, MAX_EVENT_DEPTH] {
            let (a, b) = (deep_event(depth, 5), deep_event(depth, 6));
            let slots = [Some(&a), Some(&b)];
            let keys = [KeyValue::Str("k".into())];
            let d = Detection { rule: &rule, join_keys: &keys, events: &slots };
            for format in [AlertFormat::Ecs, AlertFormat::Kibana] {
                let mut out = Vec::new();
                // On a thread with a small stack: the deep work must not happen on the caller's.
                let rendered = std::thread::scope(|s| {
                    std::thread::Builder::new()
                        .stack_size(512 << 10)
                        .spawn_scoped(s, || render(&d, format, SystemTime::UNIX_EPOCH, &mut out))
                        .expect("a test thread")
                        .join()
                        .expect("no panic")
                })
                .expect("renders");
                assert_eq!(rendered, Rendered::default(), "depth {depth} {format:?}");
                let alerts = lines(&out);
                assert_eq!(alerts.len(), if format == AlertFormat::Ecs { 1 } else { 3 });
                if format == AlertFormat::Ecs {
                    assert_eq!(alerts[0]["x"], "same", "common fields are there");
                    assert_eq!(alerts[0]["eql"]["events"][1]["@timestamp"], 6);
                }
            }
        }
    }

    #[test]
    fn an_event_that_cannot_be_parsed_is_reported_in_the_alert_and_its_line_kept() {
        let rule = rule();
        let good = MatchedEvent { raw: r#"{"@timestamp":1,"x":"same","event":{"id":"e1"}}"#.into(), timestamp_ns: 1 };
        let too_deep = deep_event(MAX_EVENT_DEPTH + 1, 2);
        let not_json = MatchedEvent { raw: r#"{"x":"same","y":1e400}"#.into(), timestamp_ns: 3 };
        for bad in [&too_deep, &not_json] {
            let slots = [Some(&good), None, Some(bad)];
            let d = Detection { rule: &rule, join_keys: &[], events: &slots };
            for format in [AlertFormat::Ecs, AlertFormat::Kibana] {
                let mut out = Vec::new();
                let r = render(&d, format, SystemTime::UNIX_EPOCH, &mut out).expect("an alert is written");
                assert_eq!(r.missing.len(), 1, "{format:?}");
                assert!(r.missing[0].starts_with("the event of stage 2 cannot be parsed"), "{}", r.missing[0]);
                let alerts = lines(&out);
                let errors = |v: &Value| {
                    v.pointer("/eqlstream/render_errors").or_else(|| v.get("eqlstream.render_errors")).cloned()
                };
                assert_eq!(errors(&alerts[0]), Some(serde_json::json!(r.missing)), "{format:?}");
                if format == AlertFormat::Ecs {
                    let v = &alerts[0];
                    assert!(v.get("x").is_none(), "common fields are unknown: none copied");
                    assert_eq!(v["eql"]["events"][0]["event"]["id"], "e1");
                    assert_eq!(v["eql"]["events"][1], serde_json::json!({"missing": true}));
                    assert_eq!(v["eql"]["events"][2], Value::String(bad.raw.to_string()), "the line, as a string");
                } else {
                    assert_eq!(alerts.len(), 3, "shell and two building blocks");
                    assert_eq!(errors(&alerts[1]), None, "the good event's block is whole");
                    assert_eq!(alerts[1]["x"], "same");
                    assert!(errors(&alerts[2]).is_some() && alerts[2].get("x").is_none());
                }
            }
        }
    }

    #[test]
    fn nesting_depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[{{","b":[{"c":"\"]"}]}"#), 3);
        assert_eq!(nesting_depth(b"1"), 0);
        assert_eq!(nesting_depth(b"]]]["), 1);
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
