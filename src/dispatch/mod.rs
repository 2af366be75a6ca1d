//! Rule dispatch: from one parsed event, the stages (and `until` clauses) of every loaded rule
//! that can match it, without looking at the others. Built once per rule set; per event it
//! reads each needed field once, allocates nothing in a steady state, and its cost grows with
//! the terms present in the event and the rules its index selects, not with the number of rules.
//!
//! How: every stage's condition implies a conjunction of clauses, each "one of these fields has
//! one of these string values (or a value starting with one of these prefixes)"
//! ([`crate::eql::Stage::required_terms`], proved in `eql::require`). A [`matcher`] interns the
//! terms and clauses of a set of stages and files each stage under its most selective clause.
//! Per event:
//!
//! 1. the fields of the filing clauses are read once: each string value is looked up in the
//!    field's table of whole values, and in an anchored automaton of its prefixes, as it is and
//!    (for case-insensitive terms) folded as the evaluator folds; each term found marks the
//!    clauses it belongs to;
//! 2. the stages filed under a clause that holds, whose other clauses hold too (their fields
//!    read on first need), are the candidates, plus the stages that require nothing;
//! 3. a rule applies only to events whose index its index patterns select ([`index`]). With
//!    many rules the event's index is read first, and the candidates come from a matcher of the
//!    stages of the selected rules only (built on first sight of each set of selected rules,
//!    per worker); with few, the index is read only when a candidate of a rule with index
//!    patterns has matched ([`Dispatch::selects`]). With very few stages, all are candidates;
//! 4. the caller evaluates the candidates in rule order (stage order, `until` last), as
//!    brute-force evaluation would, so hits and stage counters are the same.
//!
//! Soundness: a stage that is not a candidate has a clause that no value of the event satisfies,
//! or its rule's index patterns do not select the event's index; since the stage implies that
//! clause, it cannot match. A stage with an empty clause (`where false`) never matches and is
//! never a candidate. `tests/integration/dispatch_props.rs` checks it against brute force over Elastic's
//! 1,021 production rules. [`Dispatch::brute_force`] (`--no-dispatch`) evaluates every stage of
//! every rule the event's index selects, for comparisons.

pub mod index;
mod matcher;

use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;

use crate::eql::Term;
use crate::event::{Event, FieldTable};
use crate::ruleset::{Rule, StageRef};
pub use index::IndexSource;
use matcher::{clause_weight, value_weight, MatchScratch, Matcher};

/// No index patterns: the rule applies to every event.
const ANY_INDEX: u32 = u32::MAX;

/// With at least this many stages of rules with index patterns, the event's index is read first
/// and the candidates come from a matcher of the selected rules' stages only.
const INDEX_FIRST_STAGES: usize = 64;

/// Up to this many entries, every entry is a candidate: evaluating them costs less than the
/// matcher.
const DIRECT_MAX_ENTRIES: usize = 4;

/// Most per-index matchers a worker builds; events of other sets of selected rules use the
/// matcher of all rules, filtered.
const MAX_INDEX_MATCHERS: usize = 32;

/// Most distinct index names remembered per worker; past it the memory starts afresh.
const MAX_CACHED_INDICES: usize = 1024;

/// One stage (or `until`) of one rule, in evaluation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The rule and stage.
    pub at: StageRef,
    /// For a stage, its position in the flat `[rule][stage]` stage-match counters; `u32::MAX`
    /// for an `until`.
    pub slot: u32,
    /// The rule's index pattern group, or [`ANY_INDEX`].
    group: u32,
}

/// The compiled dispatch of one rule set (see the module comment).
#[derive(Debug)]
pub struct Dispatch {
    /// Unique per build, so that a [`Scratch`] moved to another dispatch starts afresh.
    id: u64,
    entries: Box<[Entry]>,
    /// Per entry: the clauses it requires (to build per-index matchers).
    requirements: Box<[Vec<Vec<Term>>]>,
    /// Per field id: the estimated share of events with a given value of it.
    field_weights: Box<[f64]>,
    /// The matcher of every entry.
    all: Matcher,
    index: IndexSource,
    /// Distinct index pattern lists of the rules.
    groups: Box<[Box<[Box<str>]>]>,
    /// Read the event's index first (many stages of rules with index patterns).
    index_first: bool,
    brute_force: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Dispatch {
    /// The index source for `index_field` (see [`IndexSource::new`]) when some rule has index
    /// patterns, else [`IndexSource::Off`]: nothing to read. The data stream fields are interned
    /// in `fields` when the index will be read for every event ([`INDEX_FIRST_STAGES`]).
    pub fn index_source_for(rules: &[Rule], index_field: Option<&str>, fields: &mut FieldTable) -> IndexSource {
        let restricted: usize = rules
            .iter()
            .filter(|r| !r.spec.index.is_empty())
            .map(|r| r.query.stages.len() + usize::from(r.query.until.is_some()))
            .sum();
        if restricted == 0 {
            return IndexSource::Off;
        }
        IndexSource::new(index_field, fields, restricted >= INDEX_FIRST_STAGES)
    }

    /// Builds the dispatch of `rules` (their fields interned in `fields`), with event indices
    /// read from `index`; `brute_force` makes every stage of every selected rule a candidate.
    pub fn build(rules: &[Rule], fields: &FieldTable, index: IndexSource, brute_force: bool) -> Dispatch {
        let mut entries = Vec::new();
        let mut group_ids: HashMap<Vec<Box<str>>, u32> = HashMap::new();
        let mut groups: Vec<Box<[Box<str>]>> = Vec::new();
        let mut slot = 0u32;
        let mut requirements = Vec::new();
        let weight = |c: &[Term]| clause_weight(fields, c);
        for (r, rule) in rules.iter().enumerate() {
            let group = if rule.spec.index.is_empty() || index == IndexSource::Off {
                ANY_INDEX
            } else {
                let key: Vec<Box<str>> = rule.spec.index.iter().map(|p| Box::from(p.as_str())).collect();
                let next = groups.len() as u32;
                *group_ids.entry(key.clone()).or_insert_with(|| {
                    groups.push(key.into_boxed_slice());
                    next
                })
            };
            let q = &rule.query;
            for (s, stage) in q.stages.iter().enumerate() {
                entries.push(Entry { at: StageRef { rule: r as u32, stage: s as u32 }, slot, group });
                requirements.push(stage.required_terms_weighted(&weight));
                slot += 1;
            }
            if let Some(until) = &q.until {
                entries.push(Entry { at: StageRef { rule: r as u32, stage: StageRef::UNTIL }, slot: u32::MAX, group });
                requirements.push(until.required_terms_weighted(&weight));
            }
        }
        let field_weights = fields.iter().map(|(_, path)| value_weight(path)).collect();
        let all = Matcher::build(requirements.iter().enumerate().map(|(e, cs)| (e as u32, &cs[..])), &weight);
        let restricted = entries.iter().filter(|e| e.group != ANY_INDEX).count();
        Dispatch {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            entries: entries.into(),
            requirements: requirements.into(),
            field_weights,
            all,
            index,
            groups: groups.into(),
            index_first: restricted >= INDEX_FIRST_STAGES,
            brute_force,
        }
    }

    /// Every stage and `until` of every rule, in evaluation order; [`Dispatch::candidates`]
    /// returns positions in it.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether every stage of every rule the event's index selects is a candidate.
    pub fn brute_force(&self) -> bool {
        self.brute_force
    }

    /// Where event indices come from.
    pub fn index_source(&self) -> &IndexSource {
        &self.index
    }

    /// Statistics for logs and docs: (entries, fields read, terms, clauses, entries that require
    /// nothing) of the matcher of all rules.
    pub fn shape(&self) -> (usize, usize, usize, usize, usize) {
        let (fields, terms, clauses, always) = self.all.shape();
        (self.entries.len(), fields, terms, clauses, always)
    }

    /// The entries (positions in [`Dispatch::entries`]) that may match `ev`, in evaluation
    /// order, without duplicates; some may be of rules whose index patterns do not select the
    /// event: [`Dispatch::selects`] tells, and is only worth asking for a candidate that matched.
    /// `scratch` is reused between calls.
    pub fn candidates<'s>(&self, ev: &Event<'_>, scratch: &'s mut Scratch) -> &'s [u32] {
        scratch.prepare(self);
        scratch.out.clear();
        scratch.event_set = None;
        if self.brute_force || self.entries.len() <= DIRECT_MAX_ENTRIES {
            scratch.out.extend(0..self.entries.len() as u32);
        } else if self.index_first {
            let set = scratch.allowed(self, ev);
            scratch.event_set = Some(set);
            if let Some(sub) = set.and_then(|set| scratch.matcher_for(self, set)) {
                let Scratch { out, matchers, .. } = scratch;
                if let Some((m, ms)) = matchers.get_mut(sub) {
                    m.candidates(ev, ms, out);
                }
            } else {
                let Scratch { out, all, .. } = scratch;
                self.all.candidates(ev, all, out);
            }
        } else {
            let Scratch { out, all, .. } = scratch;
            self.all.candidates(ev, all, out);
        }
        &scratch.out
    }

    /// Whether the index patterns of entry `e`'s rule select the index of `ev` (the event of the
    /// last [`Dispatch::candidates`] call): read once per event, on first need.
    pub fn selects(&self, e: u32, ev: &Event<'_>, scratch: &mut Scratch) -> bool {
        let Some(entry) = self.entries.get(e as usize) else { return false };
        if entry.group == ANY_INDEX {
            return true;
        }
        let set = match scratch.event_set {
            Some(set) => set,
            None => {
                let set = scratch.allowed(self, ev);
                scratch.event_set = Some(set);
                set
            }
        };
        set.is_none_or(|set| selected(&scratch.sets[set as usize].0, entry.group))
    }
}

/// Whether pattern group `g` is in the set `bits`.
fn selected(bits: &[u64], g: u32) -> bool {
    g == ANY_INDEX || bits[(g / 64) as usize] & (1 << (g % 64)) != 0
}

/// Per-thread working memory of [`Dispatch::candidates`].
#[derive(Debug, Default)]
pub struct Scratch {
    owner: u64,
    out: Vec<u32>,
    /// The current event's set of selected pattern groups, once read (`Some(None)`: every rule
    /// applies).
    event_set: Option<Option<u32>>,
    all: MatchScratch,
    name: String,
    /// Index name -> its set in `sets`.
    names: HashMap<Box<str>, u32>,
    /// Distinct sets of selected pattern groups (bit sets), with their matcher in `matchers`
    /// once built (`usize::MAX`: none, too many).
    sets: Vec<(Box<[u64]>, Option<usize>)>,
    set_ids: HashMap<Box<[u64]>, u32>,
    matchers: Vec<(Matcher, MatchScratch)>,
}

impl Scratch {
    /// Candidate `i` of the last [`Dispatch::candidates`] call.
    pub fn candidate(&self, i: usize) -> Option<&u32> {
        self.out.get(i)
    }

    fn prepare(&mut self, d: &Dispatch) {
        if self.owner != d.id {
            *self = Scratch { owner: d.id, ..Scratch::default() };
        }
    }

    /// The set of pattern groups that select the event's index, `None` when every rule applies.
    fn allowed(&mut self, d: &Dispatch, ev: &Event<'_>) -> Option<u32> {
        if d.groups.is_empty() || !d.index.name_of(ev, &mut self.name) {
            return None;
        }
        if let Some(&i) = self.names.get(self.name.as_str()) {
            return Some(i);
        }
        if self.names.len() >= MAX_CACHED_INDICES {
            self.names.clear();
        }
        let mut bits = vec![0u64; d.groups.len().div_ceil(64)].into_boxed_slice();
        for (g, patterns) in d.groups.iter().enumerate() {
            if index::selects(patterns, &self.name) {
                bits[g / 64] |= 1 << (g % 64);
            }
        }
        let next = self.sets.len() as u32;
        let id = *self.set_ids.entry(bits.clone()).or_insert_with(|| {
            self.sets.push((bits, None));
            next
        });
        self.names.insert(self.name.as_str().into(), id);
        Some(id)
    }

    /// The position in `matchers` of the matcher of the stages whose rules `set` selects,
    /// built on first need; `None` past [`MAX_INDEX_MATCHERS`].
    fn matcher_for(&mut self, d: &Dispatch, set: u32) -> Option<usize> {
        let (bits, built) = self.sets.get(set as usize)?;
        if let Some(m) = built {
            return (*m != usize::MAX).then_some(*m);
        }
        let m = if self.matchers.len() < MAX_INDEX_MATCHERS {
            let stages = (0..d.entries.len()).filter(|&e| selected(bits, d.entries[e].group));
            let weight = |c: &[Term]| {
                c.iter().map(|t| d.field_weights.get(t.field.0 as usize).copied().unwrap_or(1.0)).sum::<f64>().min(1.0)
            };
            let m = Matcher::build(stages.map(|e| (e as u32, &d.requirements[e][..])), &weight);
            self.matchers.push((m, MatchScratch::default()));
            self.matchers.len() - 1
        } else {
            usize::MAX
        };
        self.sets[set as usize].1 = Some(m);
        (m != usize::MAX).then_some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Decoder;
    use crate::rules::RuleSpec;
    use crate::ruleset::RuleSet;

    /// The rules, then a few that never match (so that the matcher is used: with very few
    /// stages every stage is a candidate).
    fn set(rules: &[(&str, &[&str])]) -> RuleSet {
        let padding: [(&str, &[&str]); DIRECT_MAX_ENTRIES] = [(r#"any where a == "never""#, &[]); DIRECT_MAX_ENTRIES];
        let specs = rules
            .iter()
            .chain(padding.iter())
            .enumerate()
            .map(|(i, (q, index))| RuleSpec {
                rule_id: format!("r{i}"),
                query: q.to_string(),
                index: index.iter().map(|s| s.to_string()).collect(),
                ..RuleSpec::default()
            })
            .collect();
        RuleSet::compile(specs).expect("test rules compile")
    }

    /// The candidates whose rule's index patterns select the event.
    fn candidates(set: &RuleSet, json: &str) -> Vec<(u32, u32)> {
        let mut dec = Decoder::new(&set.fields);
        let ev = dec.decode(json.as_bytes()).expect("valid test json");
        let mut scratch = Scratch::default();
        let d = &set.dispatch;
        let cands = d.candidates(&ev, &mut scratch).to_vec();
        cands
            .into_iter()
            .filter(|&e| d.selects(e, &ev, &mut scratch))
            .map(|e| (d.entries()[e as usize].at.rule, d.entries()[e as usize].at.stage))
            .collect()
    }

    #[test]
    fn only_stages_whose_every_clause_holds_are_candidates() {
        let s = set(&[
            (r#"process where event.action == "exec" and process.name in ("curl", "wget")"#, &[]),
            (r#"process where process.name : "CURL""#, &[]),
            (r#"file where file.name == "x" or file.path == "/x""#, &[]),
            (r#"any where true"#, &[]),
            (r#"any where false"#, &[]),
            (
                r#"sequence [process where process.name == "a"] [process where process.name == "b"] until [file where true]"#,
                &[],
            ),
        ]);
        let exec_curl = r#"{"event":{"category":"process","action":"exec"},"process":{"name":"curl"}}"#;
        assert_eq!(candidates(&s, exec_curl), [(0, 0), (1, 0), (3, 0)]);
        let fork_curl = r#"{"event":{"category":["process"],"action":"fork"},"process":{"name":"Curl"}}"#;
        assert_eq!(candidates(&s, fork_curl), [(1, 0), (3, 0)], "exec is required; `:` ignores case");
        let file = r#"{"event":{"category":"file"},"file":{"path":"/x"},"process":{"name":["b","a"]}}"#;
        assert_eq!(candidates(&s, file), [(2, 0), (3, 0), (5, StageRef::UNTIL)]);
        let proc_b = r#"{"event":{"category":"process"},"process":{"name":["b","a"]}}"#;
        assert_eq!(candidates(&s, proc_b), [(3, 0), (5, 0), (5, 1)]);
    }

    #[test]
    fn prefixes_are_found_by_one_walk_over_the_value() {
        let s = set(&[
            (r#"any where file.path like ("/etc/cron.d/*", "/etc/*", "/tmp/x*")"#, &[]),
            (r#"any where file.path like~ "/ETC/CRON*""#, &[]),
            (r#"any where file.path like "/etc/cron.d/*" and file.name == "a""#, &[]),
        ]);
        assert_eq!(candidates(&s, r#"{"file":{"path":"/etc/cron.d/x"}}"#), [(0, 0), (1, 0)]);
        assert_eq!(candidates(&s, r#"{"file":{"path":"/etc/cron.d/x","name":"a"}}"#), [(0, 0), (1, 0), (2, 0)]);
        assert_eq!(candidates(&s, r#"{"file":{"path":"/Etc/Cron"}}"#), [(1, 0)]);
        assert_eq!(candidates(&s, r#"{"file":{"path":["/tmp/y","/etc"]}}"#), [] as [(u32, u32); 0]);
        assert_eq!(candidates(&s, r#"{"file":{"path":["/tmp/y","/etc/"]}}"#), [(0, 0)]);
    }

    #[test]
    fn index_patterns_restrict_rules_to_their_data_streams() {
        let s = set(&[
            (r#"any where true"#, &["logs-cloud_defend.process*"]),
            (r#"any where true"#, &["logs-endpoint.events.*", "winlogbeat-*"]),
            (r#"any where true"#, &[]),
        ]);
        let d4c = r#"{"data_stream":{"type":"logs","dataset":"cloud_defend.process","namespace":"default"}}"#;
        assert_eq!(candidates(&s, d4c), [(0, 0), (2, 0)]);
        let ep = r#"{"data_stream":{"type":"logs","dataset":"endpoint.events.file","namespace":"x"}}"#;
        assert_eq!(candidates(&s, ep), [(1, 0), (2, 0)]);
        assert_eq!(candidates(&s, r#"{"a":1}"#), [(0, 0), (1, 0), (2, 0)], "unknown index: every rule");
        // The cache gives the same answers the second time.
        let mut dec = Decoder::new(&s.fields);
        let mut scratch = Scratch::default();
        for _ in 0..3 {
            let ev = dec.decode(d4c.as_bytes()).expect("valid");
            let cands = s.dispatch.candidates(&ev, &mut scratch).to_vec();
            let selected: Vec<u32> = cands.into_iter().filter(|&e| s.dispatch.selects(e, &ev, &mut scratch)).collect();
            assert_eq!(selected, [0, 2]);
        }
    }

    #[test]
    fn brute_force_evaluates_every_selected_stage() {
        let mut s = set(&[(r#"process where process.name == "a""#, &["x-*"]), (r#"any where false"#, &[])]);
        s.configure_dispatch(None, false);
        let first_two = |c: Vec<(u32, u32)>| -> Vec<(u32, u32)> { c.into_iter().filter(|(r, _)| *r < 2).collect() };
        assert_eq!(first_two(candidates(&s, r#"{"a":1}"#)), [(0, 0), (1, 0)]);
        let other = r#"{"data_stream":{"type":"logs","dataset":"y","namespace":"z"}}"#;
        assert_eq!(first_two(candidates(&s, other)), [(1, 0)]);
        s.configure_dispatch(Some(""), false);
        assert_eq!(first_two(candidates(&s, other)), [(0, 0), (1, 0)], "index_field = \"\": no restriction");
    }

    /// Stage-match counters: an entry's slot is the stage's place in the flat counters of
    /// `metrics::Stats` (rules in order, their stages in order, `until` not counted).
    #[test]
    fn entry_slots_are_the_stage_counters() {
        let s = set(&[
            (r#"sequence [any where a == "1"] [any where a == "2"] until [any where a == "3"]"#, &[]),
            (r#"any where a == "4""#, &[]),
            (r#"sequence [any where a == "5"] with runs=2 [any where a == "6"]"#, &[]),
        ]);
        let labels: Vec<crate::metrics::RuleLabels> = s
            .rules
            .iter()
            .map(|r| crate::metrics::RuleLabels {
                rule_id: r.spec.rule_id.clone(),
                rule_name: String::new(),
                stages: r.query.stages.len(),
            })
            .collect();
        let metrics = crate::metrics::Metrics::new(&labels).expect("metrics");
        let stats = crate::metrics::Stats::new(&metrics.handles());
        let mut stages = 0;
        for e in s.dispatch.entries() {
            if e.at.stage == StageRef::UNTIL {
                assert_eq!(e.slot, u32::MAX);
            } else {
                assert_eq!(Some(e.slot as usize), stats.stage_slot(e.at.rule as usize, e.at.stage as usize), "{e:?}");
                stages += 1;
            }
        }
        assert_eq!(stages, stats.stage_matches.len());
    }
}
