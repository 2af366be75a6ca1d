//! Index patterns: which rules an event is for, as Elasticsearch decides it by the indices a rule
//! searches (the rule's `index = ["logs-cloud_defend*", ...]`).
//!
//! An event's index is the value of the `index_field` option when set, and otherwise the name
//! Fleet gives the data stream it would be written to: `{data_stream.type}-{data_stream.dataset}-
//! {data_stream.namespace}` (e.g. `logs-cloud_defend.process-default`). A rule applies to an event
//! when its patterns select that name, resolved as Elasticsearch resolves a list of index
//! expressions for one name: in order, a pattern that matches includes it, a later `-pattern`
//! that matches excludes it again; `*` is the only wildcard; a `cluster:` prefix is ignored (the
//! stream has no clusters). Patterns are matched against the data stream name, as a search on
//! `logs-cloud_defend*` resolves to the data stream `logs-cloud_defend.process-default`.
//!
//! Where Elasticsearch would know more than the stream, every rule applies: an event whose
//! index is unknown (a `data_stream` field missing, multi-valued or not a string; the
//! `index_field` missing), and a rule without index patterns (Kibana would search the space's
//! default patterns). `index_field = ""` turns the restriction off.

use crate::event::{Event, FieldId, FieldTable, Scalar};

/// The fields Fleet names a data stream after, in name order.
pub const DATA_STREAM_FIELDS: [&str; 3] = ["data_stream.type", "data_stream.dataset", "data_stream.namespace"];

/// Where an event's index name comes from: the values of some fields, joined with `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexSource {
    /// No restriction: every rule applies to every event.
    Off,
    /// The value of each of these interned fields, joined with `-` (the `index_field`, or the
    /// data stream's three when every event's index is read: the decoder then finds them in its
    /// one walk of the event); unknown unless each has exactly one value, a string.
    Fields(Box<[FieldId]>),
    /// The data stream name, its fields read from the parsed tape only for the events whose
    /// index is needed ([`Event::each_child`]; interned, every decode would walk them, measured
    /// at about 740 instructions per line of the issue-14 stream).
    DataStream,
}

impl IndexSource {
    /// The source `index_field` asks for: `None`, the data stream name (its fields interned in
    /// `fields` when `intern`); `""`, off; else that field (interned).
    pub fn new(index_field: Option<&str>, fields: &mut FieldTable, intern: bool) -> IndexSource {
        match index_field {
            None if intern => IndexSource::Fields(DATA_STREAM_FIELDS.iter().map(|f| fields.intern(f)).collect()),
            None => IndexSource::DataStream,
            Some("") => IndexSource::Off,
            Some(f) => IndexSource::Fields(Box::new([fields.intern(f)])),
        }
    }

    /// Writes the event's index name into `out`; false when it is unknown.
    pub fn name_of(&self, ev: &Event<'_>, out: &mut String) -> bool {
        out.clear();
        let mut values: [Option<&str>; 3] = [None; 3];
        let mut counts = [0u32; 3];
        let n = match self {
            IndexSource::Off => return false,
            IndexSource::Fields(ids) => {
                for (i, f) in ids.iter().enumerate().take(3) {
                    ev.any(*f, |s| {
                        counts[i] += 1;
                        values[i] = if let Scalar::Str(v) = s { Some(v) } else { None };
                        counts[i] > 1
                    });
                }
                ids.len()
            }
            IndexSource::DataStream => {
                ev.each_child("data_stream", &DATA_STREAM_CHILDREN, |i, s| {
                    counts[i] += 1;
                    values[i] = if let Scalar::Str(v) = s { Some(v) } else { None };
                });
                3
            }
        };
        if n > 3 {
            return false;
        }
        for i in 0..n {
            let (Some(v), 1) = (values[i], counts[i]) else { return false };
            if i > 0 {
                out.push('-');
            }
            out.push_str(v);
        }
        true
    }
}

/// The data stream fields under `data_stream`, in name order.
const DATA_STREAM_CHILDREN: [&str; 3] = ["type", "dataset", "namespace"];

/// Whether `patterns` (a rule's `index` list) select the index `name` (see the module comment).
pub fn selects(patterns: &[Box<str>], name: &str) -> bool {
    let mut hit = false;
    for (i, p) in patterns.iter().enumerate() {
        let p = p.trim();
        let p = p.rsplit_once(':').map_or(p, |(_, local)| local);
        match p.strip_prefix('-') {
            Some(excluded) if i > 0 => {
                if glob(excluded, name) {
                    hit = false;
                }
            }
            _ => {
                if glob(p, name) {
                    hit = true;
                }
            }
        }
    }
    hit
}

/// `*`-only wildcard match of the whole of `name`.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else { return rest.is_empty() };
    for mid in parts {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Decoder;

    fn pats(p: &[&str]) -> Vec<Box<str>> {
        p.iter().map(|s| Box::from(*s)).collect()
    }

    #[test]
    fn patterns_select_data_stream_names_as_elasticsearch_resolves_them() {
        let d4c = pats(&["logs-cloud_defend.process*", "logs-cloud_defend.file*"]);
        assert!(selects(&d4c, "logs-cloud_defend.process-default"));
        assert!(selects(&d4c, "logs-cloud_defend.file-prod"));
        assert!(!selects(&d4c, "logs-cloud_defend.alerts-default"));
        assert!(!selects(&d4c, "logs-endpoint.events.process-default"));
        assert!(selects(&pats(&["logs-cloud_defend*"]), "logs-cloud_defend.alerts-default"));
        assert!(selects(&pats(&["logs-*-default"]), "logs-x-default"));
        assert!(!selects(&pats(&["logs-*-default"]), "logs-x-prod"));
        assert!(selects(&pats(&["winlogbeat-*"]), "winlogbeat-8.1"));
        assert!(selects(&pats(&["exact"]), "exact"));
        assert!(!selects(&pats(&["exact"]), "exact2"));
        assert!(!selects(&pats(&["Logs-*"]), "logs-x"), "case-sensitive");
        assert!(!selects(&pats(&[]), "logs-x"));
        // Exclusions apply to what the patterns before them selected; a later pattern can
        // select the name again.
        assert!(!selects(&pats(&["logs-*", "-logs-x*"]), "logs-x-default"));
        assert!(selects(&pats(&["logs-*", "-logs-x*"]), "logs-y-default"));
        assert!(selects(&pats(&["logs-*", "-logs-x*", "logs-x-default"]), "logs-x-default"));
        assert!(selects(&pats(&["remote:logs-*"]), "logs-a-b"));
        assert!(selects(&pats(&["a*b*c"]), "abc"));
        assert!(!selects(&pats(&["a*b*c"]), "acb"));
        assert!(!selects(&pats(&["*a*a*"]), "a"));
    }

    /// The index name, read through the field table and from the tape (they agree).
    fn name(json: &str, index_field: Option<&str>) -> Option<String> {
        let mut t = FieldTable::new();
        let interned = IndexSource::new(index_field, &mut t, true);
        let walked = IndexSource::new(index_field, &mut t, false);
        let mut d = Decoder::new(&t);
        let ev = d.decode(json.as_bytes()).expect("valid test json");
        let (mut a, mut b) = (String::new(), String::new());
        let (x, y) = (interned.name_of(&ev, &mut a).then_some(a), walked.name_of(&ev, &mut b).then_some(b));
        assert_eq!(x, y, "{json}");
        x
    }

    #[test]
    fn the_index_name_is_the_data_stream_name_or_unknown() {
        let ds = r#"{"data_stream":{"type":"logs","dataset":"cloud_defend.file","namespace":"default"}}"#;
        assert_eq!(name(ds, None).as_deref(), Some("logs-cloud_defend.file-default"));
        let arrays = r#"{"data_stream":[{"type":"logs"},{"dataset":["a"],"namespace":"b"}]}"#;
        assert_eq!(name(arrays, None).as_deref(), Some("logs-a-b"), "arrays flattened");
        let dup = r#"{"data_stream":{"type":"logs","dataset":"a","namespace":"b"},"data_stream.type":"logs"}"#;
        assert_eq!(name(dup, None), None, "two types");
        let dotted = r#"{"data_stream.type":"logs","data_stream.dataset":"a","data_stream.namespace":"b"}"#;
        assert_eq!(name(dotted, None).as_deref(), Some("logs-a-b"));
        assert_eq!(name(r#"{"data_stream":{"type":"logs","dataset":"a"}}"#, None), None, "no namespace");
        let arrays = r#"{"data_stream":[{"type":"logs"},{"dataset":["a"],"namespace":"b"}]}"#;
        assert_eq!(name(arrays, None).as_deref(), Some("logs-a-b"), "arrays flattened");
        let dup = r#"{"data_stream":{"type":"logs","dataset":"a","namespace":"b"},"data_stream.type":"logs"}"#;
        assert_eq!(name(dup, None), None, "two types");
        let two = r#"{"data_stream":{"type":"logs","dataset":["a","b"],"namespace":"c"}}"#;
        assert_eq!(name(two, None), None, "two datasets");
        let num = r#"{"data_stream":{"type":"logs","dataset":7,"namespace":"c"}}"#;
        assert_eq!(name(num, None), None, "not a string");
        assert_eq!(name(r#"{"_index":"logs-x"}"#, Some("_index")).as_deref(), Some("logs-x"));
        assert_eq!(name(ds, Some("_index")), None);
        assert_eq!(name(ds, Some("")), None, "off");
    }
}
