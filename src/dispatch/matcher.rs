//! The term index of a set of stages (see the module comment of `dispatch`): terms interned per
//! (field, value or prefix, case), clauses per set of terms, each stage filed under its most
//! selective clause. Per event, [`Matcher::candidates`] reads the fields of the filing clauses,
//! then, for the stages filed under a clause that holds, checks their other clauses, reading
//! their fields on first need. Nothing is allocated per event in a steady state.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use hashbrown::HashMap;

use crate::eql::wildcard::fold_char;
use crate::eql::Term;
use crate::event::{Event, FieldId, FieldTable, Scalar};

/// How common a value of `path` is in events, roughly: a guess used to choose the clause a
/// stage is filed under (the fewer the events that satisfy it, the fewer the stages whose other
/// clauses must be checked). It never affects which stages are candidates.
pub(super) fn value_weight(path: &str) -> f64 {
    match path {
        "event.category"
        | "event.type"
        | "event.kind"
        | "event.outcome"
        | "event.module"
        | "event.dataset"
        | "data_stream.type"
        | "data_stream.dataset"
        | "data_stream.namespace"
        | "host.os.type"
        | "host.os.family"
        | "host.os.name"
        | "host.os.platform"
        | "agent.type"
        | "event.provider"
        | "network.direction"
        | "network.transport"
        | "network.protocol"
        | "process.interactive" => 0.25,
        "event.action" | "event.code" | "winlog.event_id" | "winlog.channel" | "dns.question.type" => 0.05,
        // Many values per event, each looked up: costlier to read, and more often satisfied.
        "process.args" | "process.parent.args" | "process.command_line" | "process.parent.command_line" => 0.02,
        _ => 0.005,
    }
}

/// The estimated share of events that satisfy a clause.
pub(super) fn clause_weight(fields: &FieldTable, c: &[Term]) -> f64 {
    c.iter().map(|t| value_weight(fields.path(t.field))).sum::<f64>().min(1.0)
}

/// The terms of one field and case: whole values by hash, prefixes by an anchored automaton
/// (one walk over the value's first bytes finds every prefix it starts with).
#[derive(Debug, Default)]
struct Table {
    whole: HashMap<Box<str>, u32>,
    /// Bit `n` set when some whole term is `n` bytes long (bit 127: 127 or more): values of
    /// other lengths are not hashed.
    whole_lens: u128,
    /// The prefix terms, in the automaton's pattern order.
    prefixes: Vec<(Box<str>, u32)>,
    dfa: Option<DFA>,
}

impl Table {
    fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.prefixes.is_empty()
    }

    fn insert(&mut self, t: &Term, id: u32) {
        if t.whole {
            self.whole.insert(t.value.clone(), id);
            self.whole_lens |= 1 << t.value.len().min(127);
        } else {
            self.prefixes.push((t.value.clone(), id));
        }
    }

    /// Builds the prefix automaton (after the last [`Table::insert`]).
    fn finish(&mut self) {
        if self.prefixes.is_empty() {
            return;
        }
        self.dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Anchored)
            .build(self.prefixes.iter().map(|(p, _)| p.as_bytes()))
            .ok();
        if self.dfa.is_none() {
            tracing::warn!(
                prefixes = self.prefixes.len(),
                "Dispatch: prefix automaton too large; prefixes always match."
            );
        }
    }

    /// Calls `mark` with every term `v` satisfies.
    #[inline]
    fn lookup(&self, v: &str, mark: &mut impl FnMut(u32)) {
        if self.whole_lens & (1 << v.len().min(127)) != 0 {
            if let Some(&t) = self.whole.get(v) {
                mark(t);
            }
        }
        self.prefixes_of(v.as_bytes().iter().copied(), mark);
    }

    /// [`Table::lookup`] of an ASCII value folded (lowercased), folding on the fly: the value is
    /// copied into `fold` only when some whole term has its length.
    #[inline]
    fn lookup_ascii_folded(&self, v: &str, fold: &mut String, mark: &mut impl FnMut(u32)) {
        if self.whole_lens & (1 << v.len().min(127)) != 0 {
            fold.clear();
            fold.push_str(v);
            fold.make_ascii_lowercase();
            if let Some(&t) = self.whole.get(fold.as_str()) {
                mark(t);
            }
        }
        self.prefixes_of(v.as_bytes().iter().map(u8::to_ascii_lowercase), mark);
    }

    /// Calls `mark` with every prefix term the bytes start with.
    #[inline]
    fn prefixes_of(&self, bytes: impl Iterator<Item = u8>, mark: &mut impl FnMut(u32)) {
        if self.prefixes.is_empty() {
            return;
        }
        let Some(dfa) = &self.dfa else {
            // No automaton (never with real rules): every prefix term holds, which only makes
            // more stages candidates.
            self.prefixes.iter().for_each(|(_, t)| mark(*t));
            return;
        };
        let Ok(mut sid) = dfa.start_state(Anchored::Yes) else { return };
        for b in bytes {
            sid = dfa.next_state(Anchored::Yes, sid, b);
            if dfa.is_special(sid) {
                if dfa.is_dead(sid) {
                    return;
                }
                for i in 0..dfa.match_len(sid) {
                    mark(self.prefixes[dfa.match_pattern(sid, i).as_usize()].1);
                }
            }
        }
    }
}

/// A field that some term names, with its terms.
#[derive(Debug)]
struct KeyField {
    field: FieldId,
    /// Terms on the value as it is, and on the value folded (case-insensitive terms).
    exact: Table,
    folded: Table,
}

/// The term index of a set of stages.
#[derive(Debug)]
pub(super) struct Matcher {
    fields: Box<[KeyField]>,
    /// The fields of the clauses stages are filed under: read for every event. The others are
    /// read only when a candidate needs them.
    eager: Box<[u32]>,
    /// Per clause: the fields its terms name.
    clause_fields: Box<[Box<[u32]>]>,
    /// Per term: the clauses it satisfies.
    term_clauses: Box<[Box<[u32]>]>,
    /// Per clause: the stages filed under it.
    filed: Box<[Box<[u32]>]>,
    /// Per stage number: its clauses other than the one it is filed under.
    needs: Box<[Box<[u32]>]>,
    /// Stages that require nothing.
    always: Box<[u32]>,
}

impl Matcher {
    /// The index of `stages`: each a stage number (what [`Matcher::candidates`] returns) and its
    /// required clauses ([`crate::eql::Stage::required_terms`]); `weight` estimates a clause's
    /// share of events.
    pub(super) fn build<'r>(
        stages: impl IntoIterator<Item = (u32, &'r [Vec<Term>])>,
        weight: &dyn Fn(&[Term]) -> f64,
    ) -> Matcher {
        let mut key_fields: Vec<KeyField> = Vec::new();
        let mut field_pos: HashMap<FieldId, usize> = HashMap::new();
        let mut term_ids: HashMap<&Term, u32> = HashMap::new();
        let mut term_clauses: Vec<Vec<u32>> = Vec::new();
        let mut term_field: Vec<u32> = Vec::new();
        let mut clause_ids: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut clause_weights: Vec<f64> = Vec::new();
        let mut filed: Vec<Vec<u32>> = Vec::new();
        let mut needs: Vec<Box<[u32]>> = Vec::new();
        let mut always = Vec::new();
        for (e, clauses) in stages {
            if clauses.iter().any(Vec::is_empty) {
                // Implies the empty clause: never matches, never a candidate.
                continue;
            }
            let mut ids: Vec<u32> = Vec::with_capacity(clauses.len());
            for c in clauses {
                let mut terms: Vec<u32> = c
                    .iter()
                    .map(|t| {
                        let next = term_ids.len() as u32;
                        *term_ids.entry(t).or_insert_with(|| {
                            let pos = *field_pos.entry(t.field).or_insert_with(|| {
                                key_fields.push(KeyField {
                                    field: t.field,
                                    exact: Table::default(),
                                    folded: Table::default(),
                                });
                                key_fields.len() - 1
                            });
                            let table = if t.ci { &mut key_fields[pos].folded } else { &mut key_fields[pos].exact };
                            table.insert(t, next);
                            term_clauses.push(Vec::new());
                            term_field.push(pos as u32);
                            next
                        })
                    })
                    .collect();
                terms.sort_unstable();
                terms.dedup();
                let next = clause_ids.len() as u32;
                let id = *clause_ids.entry(terms.clone()).or_insert_with(|| {
                    for t in &terms {
                        term_clauses[*t as usize].push(next);
                    }
                    clause_weights.push(weight(c));
                    filed.push(Vec::new());
                    next
                });
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            let best =
                ids.iter().copied().min_by(|a, b| clause_weights[*a as usize].total_cmp(&clause_weights[*b as usize]));
            match best {
                None => always.push(e),
                Some(best) => {
                    filed[best as usize].push(e);
                    if needs.len() <= e as usize {
                        needs.resize(e as usize + 1, Box::default());
                    }
                    needs[e as usize] = ids.into_iter().filter(|c| *c != best).collect();
                }
            }
        }
        for kf in &mut key_fields {
            kf.exact.finish();
            kf.folded.finish();
        }
        let mut clause_fields: Vec<Box<[u32]>> = vec![Box::default(); clause_ids.len()];
        for (terms, &c) in &clause_ids {
            let mut fs: Vec<u32> = terms.iter().filter_map(|t| term_field.get(*t as usize).copied()).collect();
            fs.sort_unstable();
            fs.dedup();
            clause_fields[c as usize] = fs.into();
        }
        let mut eager: Vec<u32> =
            (0..filed.len()).filter(|&c| !filed[c].is_empty()).flat_map(|c| clause_fields[c].iter().copied()).collect();
        eager.sort_unstable();
        eager.dedup();
        Matcher {
            fields: key_fields.into(),
            eager: eager.into(),
            clause_fields: clause_fields.into(),
            term_clauses: term_clauses.into_iter().map(Into::into).collect(),
            filed: filed.into_iter().map(Into::into).collect(),
            needs: needs.into(),
            always: always.into(),
        }
    }

    /// (fields read, terms, clauses, stages that require nothing).
    pub(super) fn shape(&self) -> (usize, usize, usize, usize) {
        (self.fields.len(), self.term_clauses.len(), self.filed.len(), self.always.len())
    }

    /// Appends to `out`, sorted, the stages that require nothing and those whose every clause
    /// `ev` satisfies.
    pub(super) fn candidates(&self, ev: &Event<'_>, scratch: &mut MatchScratch, out: &mut Vec<u32>) {
        if scratch.stamp.len() != self.filed.len() || scratch.field_stamp.len() != self.fields.len() {
            *scratch = MatchScratch {
                stamp: vec![0; self.filed.len()],
                field_stamp: vec![0; self.fields.len()],
                ..MatchScratch::default()
            };
        }
        let MatchScratch { stamp, field_stamp, gen, satisfied, fold } = scratch;
        *gen = gen.wrapping_add(1);
        if *gen == 0 {
            stamp.iter_mut().for_each(|s| *s = 0);
            field_stamp.iter_mut().for_each(|s| *s = 0);
            *gen = 1;
        }
        satisfied.clear();
        let start = out.len();
        let mut pass = Pass { m: self, ev, stamp, field_stamp, satisfied, fold, gen: *gen };
        // 1. The fields of the filing clauses: which of those clauses hold.
        for &k in self.eager.iter() {
            pass.read(k);
        }
        // 2. The stages filed under a clause that holds, whose other clauses hold too (their
        // fields read on first need).
        out.extend_from_slice(&self.always);
        let decided = pass.satisfied.len();
        for i in 0..decided {
            let c = pass.satisfied[i];
            for &e in self.filed[c as usize].iter() {
                if self.needs[e as usize].iter().all(|&n| pass.holds(n)) {
                    out.push(e);
                }
            }
        }
        out[start..].sort_unstable();
    }
}

/// Per-thread working memory of one [`Matcher`].
#[derive(Debug, Default)]
pub(super) struct MatchScratch {
    /// Per clause: `gen` when it holds for the current event.
    stamp: Vec<u32>,
    /// Per field: `gen` when read for the current event.
    field_stamp: Vec<u32>,
    gen: u32,
    satisfied: Vec<u32>,
    fold: String,
}

/// One event's pass over the terms: which fields were read, which clauses hold.
struct Pass<'a, 'e> {
    m: &'a Matcher,
    ev: &'a Event<'e>,
    stamp: &'a mut [u32],
    field_stamp: &'a mut [u32],
    satisfied: &'a mut Vec<u32>,
    fold: &'a mut String,
    gen: u32,
}

impl Pass<'_, '_> {
    /// Reads field `k` (once per event): marks the clauses of every term its values satisfy.
    fn read(&mut self, k: u32) {
        if self.field_stamp[k as usize] == self.gen {
            return;
        }
        self.field_stamp[k as usize] = self.gen;
        let Pass { m, ev, stamp, satisfied, fold, gen, .. } = self;
        let kf = &m.fields[k as usize];
        let g = *gen;
        let mut mark = |t: u32| {
            for &c in m.term_clauses[t as usize].iter() {
                let s = &mut stamp[c as usize];
                if *s != g {
                    *s = g;
                    satisfied.push(c);
                }
            }
        };
        ev.any(kf.field, |s| {
            if let Scalar::Str(v) = s {
                kf.exact.lookup(v, &mut mark);
                if !kf.folded.is_empty() {
                    // As the evaluator folds (`eql::wildcard`): ASCII case, or per character.
                    if v.is_ascii() {
                        kf.folded.lookup_ascii_folded(v, fold, &mut mark);
                    } else {
                        fold.clear();
                        fold.extend(v.chars().map(fold_char));
                        kf.folded.lookup(fold, &mut mark);
                    }
                }
            }
            false
        });
    }

    /// Whether clause `c` holds, reading its fields if needed.
    fn holds(&mut self, c: u32) -> bool {
        if self.stamp[c as usize] == self.gen {
            return true;
        }
        for &k in self.m.clause_fields[c as usize].iter() {
            self.read(k);
        }
        self.stamp[c as usize] == self.gen
    }
}
