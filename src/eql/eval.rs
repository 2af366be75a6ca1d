//! Evaluation of compiled stages on one event, with Elasticsearch's semantics
//! (eql-semantics.md section 6):
//!
//! * a positive leaf holds when **some** value of the field passes (6.4);
//! * a missing or null field has no values, so positive leaves are false and `not` of them
//!   true (6.3): `not` is the document-level complement, never three-valued;
//! * `f == null` / `f != null` test absence / presence (6.2);
//! * functions and field-vs-field comparisons hold when some combination of values of their
//!   fields passes ("any value" scripts, 6.3/6.4); a field without values is fed as `null`.
//!
//! Field-vs-literal tests allocate nothing; only functions that build strings (`concat`,
//! `string`, `between`) allocate, and `Stage::keys` (its key values are owned, they outlive
//! the event). Every loop over a field's values is linear in their number: function and
//! comparison scripts stop at [`MAX_COMBINATIONS`], join keys at the stage's `KeyLimit`.

use std::cell::Cell;

use hashbrown::HashSet;
use smallvec::SmallVec;

use super::compile::{cmp_vals, LitSet, Pred, Stage, Test, VExpr};
use super::func;
use super::value::{TextBuf, Val};
use super::wildcard::eq_ci;
use crate::event::{Event, Scalar};
use crate::sequence::key::{Key, KeyLimit, KeyValue};
use crate::sequence::spec::StageKind;

impl Stage {
    /// Whether this is a normal or a missing-event stage.
    pub fn kind(&self) -> StageKind {
        self.kind
    }

    /// The cap on the key tuples of one event, and its counter.
    pub fn key_limit(&self) -> &KeyLimit {
        &self.key_limit
    }

    /// Sets the cap on the key tuples of one event, and its counter.
    pub fn set_key_limit(&mut self, limit: KeyLimit) {
        self.key_limit = limit;
    }

    /// Full stage predicate: category term + condition + IsNotNull of every mandatory
    /// (non-`?`) join key field (eql-semantics.md 4.2, 5).
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        if let Some((field, cat)) = &self.category {
            // 5: a case-sensitive term query; any element of an array.
            if !ev.any(*field, |s| matches!(s, Scalar::Str(v) if v == &**cat)) {
                return false;
            }
        }
        eval(&self.cond, ev) && self.mandatory.iter().all(|f| ev.exists(*f))
    }

    /// Clears `out`, then pushes the join-key tuples of `ev` (sequence-by keys then stage-by
    /// keys): the cartesian product of multi-valued keys (4.3), deduplicated, cut at the stage's
    /// [`KeyLimit`] (a cut is counted in its `truncated` counter); optional keys that are missing
    /// give `KeyValue::Null`. Only meaningful when `matches` is true.
    pub fn keys(&self, ev: &Event<'_>, out: &mut Vec<Key>) {
        if self.expand_keys(ev, out) {
            self.key_limit.truncated.inc();
        }
    }

    /// [`Stage::keys`] without counting: returns true when the product was cut at the cap (for
    /// callers that recompute tuples already counted, such as alert rendering).
    ///
    /// Which tuples are kept: each key's distinct values are taken in document order, and the
    /// product is enumerated with the first key varying slowest (`(a1,b1), (a1,b2), .., (a2,b1)`);
    /// the first `max` tuples of that order are kept. The work is linear in the number of values:
    /// each key keeps at most `max` distinct values (the product of the others is at least 1),
    /// duplicates are found by a hash set once a key has more than a few, and tuples are
    /// generated one by one up to the cap, so they are distinct without being compared.
    pub fn expand_keys(&self, ev: &Event<'_>, out: &mut Vec<Key>) -> bool {
        out.clear();
        let max = self.key_limit.max.max(1);
        let mut truncated = false;
        let mut columns: SmallVec<[Distinct; 4]> = SmallVec::new();
        for k in &self.keys {
            let mut col = Distinct::default();
            ev.any(k.field, |s| match col.insert(s, max) {
                Insert::Added | Insert::Seen => false,
                Insert::Full => {
                    // A distinct value past the cap: no tuple can hold it.
                    truncated = true;
                    true
                }
            });
            if col.vals.is_empty() {
                if k.optional {
                    col.vals.push(KeyValue::Null);
                } else {
                    // A mandatory key without value: the stage does not match (4.2).
                    return false;
                }
            }
            columns.push(col);
        }
        // The size of the product, if it does not exceed the cap.
        let total = columns.iter().try_fold(1usize, |n, c| n.checked_mul(c.vals.len()).filter(|n| *n <= max));
        let n = match total {
            Some(n) => n,
            None => {
                truncated = true;
                max
            }
        };
        out.reserve(n);
        for i in 0..n {
            // Tuple `i` in mixed radix, the last key's digit varying fastest.
            let mut key = Key::new();
            key.resize(columns.len(), KeyValue::Null);
            let mut rest = i;
            for (slot, col) in key.iter_mut().zip(&columns).rev() {
                let len = col.vals.len();
                *slot = col.vals[rest % len].clone();
                rest /= len;
            }
            out.push(key);
        }
        truncated
    }
}

/// The distinct values of one key field in document order, at most a cap of them.
#[derive(Default)]
struct Distinct {
    vals: SmallVec<[KeyValue; 1]>,
    /// The same values, once there are more than [`Distinct::LINEAR`] (hash lookups instead of
    /// scans, so a field with many values costs linear time).
    index: Option<HashSet<KeyValue>>,
}

/// What [`Distinct::insert`] did.
enum Insert {
    Added,
    Seen,
    /// A new value, but the cap is reached: not added.
    Full,
}

impl Distinct {
    /// Up to this many values, duplicates are found by scanning.
    const LINEAR: usize = 8;

    fn insert(&mut self, s: Scalar<'_>, max: usize) -> Insert {
        match &mut self.index {
            None => {
                if self.vals.iter().any(|v| v.is(s)) {
                    return Insert::Seen;
                }
                if self.vals.len() >= max {
                    return Insert::Full;
                }
                self.vals.push(KeyValue::from_scalar(s));
                if self.vals.len() > Self::LINEAR {
                    self.index = Some(self.vals.iter().cloned().collect());
                }
                Insert::Added
            }
            Some(index) => {
                let v = KeyValue::from_scalar(s);
                if index.contains(&v) {
                    return Insert::Seen;
                }
                if self.vals.len() >= max {
                    return Insert::Full;
                }
                index.insert(v.clone());
                self.vals.push(v);
                Insert::Added
            }
        }
    }
}

/// The most field values one script predicate tries (over all combinations of its fields'
/// values) before giving up with "no match", so that an event with huge arrays cannot stall
/// evaluation (e.g. `a == b` with two 10,000-element arrays). Prebuilt rules never come close.
pub const MAX_COMBINATIONS: u32 = 100_000;

/// Evaluates a condition.
pub(crate) fn eval(p: &Pred, ev: &Event<'_>) -> bool {
    match p {
        Pred::Const(b) => *b,
        Pred::And(ps) => ps.iter().all(|p| eval(p, ev)),
        Pred::Or(ps) => ps.iter().any(|p| eval(p, ev)),
        Pred::Not(p) => !eval(p, ev),
        Pred::Exists(f) => ev.exists(*f),
        Pred::Field(f, t) => ev.any(*f, |s| test_scalar(t, s)),
        Pred::Script(e, t) => {
            let budget = Cell::new(MAX_COMBINATIONS);
            each(e, ev, &budget, &mut |v| test_val(t, &v))
        }
        Pred::Compare(op, a, b) => {
            let budget = Cell::new(MAX_COMBINATIONS);
            each(a, ev, &budget, &mut |x| each(b, ev, &budget, &mut |y| cmp_vals(*op, &x, &y)))
        }
    }
}

#[inline]
fn test_scalar(t: &Test, s: Scalar<'_>) -> bool {
    // Fast paths for the common string cases, then the general value test.
    match (t, s) {
        (Test::In(set), Scalar::Str(v)) => in_str(set, v),
        (Test::Like(ps), Scalar::Str(v)) => ps.matches(v),
        (Test::InCi(set), Scalar::Str(v)) => set.contains(v),
        (Test::Eq(Val::Owned(l)), Scalar::Str(v)) => l == v,
        _ => test_val(t, &Val::from(s)),
    }
}

fn in_str(set: &LitSet, v: &str) -> bool {
    if set.strs.contains(v) {
        return true;
    }
    if set.has_num_lit {
        if let Some(n) = super::value::parse_num(v) {
            return set.nums.iter().any(|m| m.num_eq(n));
        }
    }
    false
}

pub(crate) fn test_val(t: &Test, v: &Val<'_>) -> bool {
    if v.is_null() {
        return false;
    }
    match t {
        Test::Eq(l) => v.loose_eq(l),
        Test::EqCi(l) => {
            let mut b = TextBuf::new();
            b.text(v).is_some_and(|s| eq_ci(s, l))
        }
        Test::In(set) => match v {
            Val::Str(s) => in_str(set, s),
            Val::Owned(s) => in_str(set, s),
            Val::Bool(b) => set.bools[usize::from(*b)],
            other => match other.as_num() {
                Some(n) => set.nums.iter().any(|m| m.num_eq(n)),
                None => false,
            },
        },
        Test::InCi(set) => {
            let mut b = TextBuf::new();
            b.text(v).is_some_and(|s| set.contains(s))
        }
        Test::Like(ps) => {
            let mut b = TextBuf::new();
            b.text(v).is_some_and(|s| ps.matches(s))
        }
        Test::Regex(re) => {
            let mut b = TextBuf::new();
            b.text(v).is_some_and(|s| re.is_match(s))
        }
        Test::Cmp(op, l) => cmp_vals(*op, v, l),
        Test::IsTrue => match v {
            Val::Bool(b) => *b,
            Val::Str(s) => *s == "true",
            Val::Owned(s) => s == "true",
            _ => false,
        },
    }
}

/// Calls `k` with every value of `e` (every combination of the values of the fields inside
/// it); stops and returns true as soon as `k` does.
fn each<'s>(e: &'s VExpr, ev: &'s Event<'_>, budget: &Cell<u32>, k: &mut dyn FnMut(Val<'s>) -> bool) -> bool {
    match e {
        VExpr::Lit(v) => k(match v {
            Val::Owned(s) => Val::Str(s),
            other => other.clone(),
        }),
        VExpr::Field(f) => {
            let mut any = false;
            let mut exhausted = false;
            let hit = ev.any(*f, |s| {
                any = true;
                // Stop trying further values once the budget is spent (see MAX_COMBINATIONS).
                match budget.get().checked_sub(1) {
                    Some(left) => budget.set(left),
                    None => {
                        exhausted = true;
                        return true;
                    }
                }
                k(Val::from(s))
            }) && !exhausted;
            if any {
                hit
            } else {
                k(Val::Null)
            }
        }
        VExpr::Pred(p) => k(Val::Bool(eval(p, ev))),
        VExpr::Neg(a) => each(a, ev, budget, &mut |v| {
            k(match v.as_num() {
                Some(super::value::Num::I(i)) => i.checked_neg().map_or(Val::Null, Val::I64),
                Some(n) => Val::F64(-n.as_f64()),
                None => Val::Null,
            })
        }),
        VExpr::Arith(op, a, b) => {
            each(a, ev, budget, &mut |x| each(b, ev, budget, &mut |y| k(func::arith(*op, &x, &y))))
        }
        VExpr::Call(f, ci, args, cidrs) => {
            let mut vals: SmallVec<[Val<'s>; 4]> = SmallVec::new();
            each_args(args, ev, budget, &mut vals, &mut |vs| k(func::call(*f, *ci, vs, cidrs)))
        }
    }
}

fn each_args<'s>(
    args: &'s [VExpr],
    ev: &'s Event<'_>,
    budget: &Cell<u32>,
    vals: &mut SmallVec<[Val<'s>; 4]>,
    k: &mut dyn FnMut(&[Val<'s>]) -> bool,
) -> bool {
    let i = vals.len();
    let Some(arg) = args.get(i) else {
        return k(vals);
    };
    each(arg, ev, budget, &mut |v| {
        vals.push(v);
        let r = each_args(args, ev, budget, vals, k);
        vals.truncate(i);
        r
    })
}

#[cfg(test)]
mod tests {
    use crate::event::{Decoder, FieldTable};
    use crate::metrics::RareCounter;
    use crate::sequence::key::{Key, KeyLimit, KeyValue, DEFAULT_MAX_KEY_COMBINATIONS};

    fn keys_of(query: &str, line: &str, limit: Option<KeyLimit>) -> (Vec<Key>, bool) {
        let mut fields = FieldTable::default();
        let mut c = crate::eql::compile(query, &mut fields).expect("compiles");
        let stage = &mut c.query.stages[0];
        if let Some(l) = limit {
            stage.set_key_limit(l);
        }
        let mut dec = Decoder::new(&fields);
        let ev = dec.decode(line.as_bytes()).expect("valid JSON object");
        assert!(stage.matches(&ev), "{line}");
        let mut out = Vec::new();
        let truncated = stage.expand_keys(&ev, &mut out);
        (out, truncated)
    }

    fn strs(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:03}")).collect()
    }

    fn s(v: &str) -> KeyValue {
        KeyValue::Str(v.into())
    }

    /// See: issue 13, row 1. Two join keys with 300 distinct values each gave 90,000 tuples,
    /// deduplicated by a linear scan each (108 s of CPU for one line); the expansion now stops at
    /// `max_key_combinations` (64 by default), keeping the first tuples of the product in
    /// document order. The same holds at 40 x 40 (1,600 tuples before the fix).
    #[test]
    fn issue_13_key_expansion_stops_at_the_cap_in_document_order() {
        for n in [40, 300] {
            let line = serde_json::json!({"c": strs("c", n), "u": strs("u", n)}).to_string();
            let (keys, truncated) = keys_of("sequence by c, u [any where true] [any where true]", &line, None);
            assert_eq!(keys.len(), DEFAULT_MAX_KEY_COMBINATIONS, "{n} x {n}");
            assert!(truncated);
            let want: Vec<Key> = (0..64)
                .map(|i| [s(&format!("c{:03}", i / n)), s(&format!("u{:03}", i % n))].into_iter().collect())
                .collect();
            assert_eq!(keys, want, "the first key varies slowest");
        }
    }

    #[test]
    fn a_key_with_more_distinct_values_than_the_cap_is_cut_and_counted_once() {
        let counter = RareCounter::detached();
        let limit = KeyLimit { max: 3, truncated: counter.clone() };
        let mut fields = FieldTable::default();
        let mut c = crate::eql::compile("sequence by h, p [any where true] [any where true]", &mut fields).unwrap();
        c.query.stages[0].set_key_limit(limit);
        let mut dec = Decoder::new(&fields);
        let ev = dec.decode(br#"{"h":"x","p":[1,1,2,1,3,4,5,2]}"#).unwrap();
        let mut out = Vec::new();
        c.query.stages[0].keys(&ev, &mut out);
        let got: Vec<Vec<KeyValue>> = out.iter().map(|k| k.to_vec()).collect();
        let want: Vec<Vec<KeyValue>> = (1..=3).map(|i| vec![s("x"), KeyValue::I64(i)]).collect();
        assert_eq!(got, want, "duplicates are skipped, the first 3 distinct values kept");
        assert_eq!(counter.get(), 1, "keys() counts the cut");
        assert!(c.query.stages[0].expand_keys(&ev, &mut out));
        assert_eq!(counter.get(), 1, "expand_keys() does not count");
        drop(ev);
        let ev = dec.decode(br#"{"h":"x","p":[1,2,2,3]}"#).unwrap();
        c.query.stages[0].keys(&ev, &mut out);
        assert_eq!((out.len(), counter.get()), (3, 1), "exactly at the cap: nothing is cut");
    }

    proptest::proptest! {
        /// Below the cap the tuples are the whole cartesian product of each key's distinct values
        /// (eql-semantics.md 4.3); past it, the first `max` of the same enumeration.
        #[test]
        fn keys_are_the_first_tuples_of_the_cartesian_product(
            a in proptest::collection::vec(0u8..6, 1..8),
            b in proptest::collection::vec(0u8..6, 0..8),
            c in proptest::collection::vec(0u8..6, 1..8),
            max in 1usize..80,
        ) {
            let line = serde_json::json!({"a": a, "b": b, "c": c}).to_string();
            let limit = KeyLimit { max, truncated: RareCounter::detached() };
            let (keys, truncated) =
                keys_of("sequence by a, ?b, c [any where true] [any where true]", &line, Some(limit));
            let distinct = |v: &[u8]| -> Vec<KeyValue> {
                let mut d: Vec<KeyValue> = Vec::new();
                for x in v {
                    let k = KeyValue::I64(i64::from(*x));
                    if !d.contains(&k) {
                        d.push(k);
                    }
                }
                if d.is_empty() {
                    d.push(KeyValue::Null);
                }
                d
            };
            let mut product: Vec<Key> = Vec::new();
            for x in distinct(&a) {
                for y in distinct(&b) {
                    for z in distinct(&c) {
                        product.push([x.clone(), y.clone(), z].into_iter().collect());
                    }
                }
            }
            proptest::prop_assert_eq!(truncated, product.len() > max);
            product.truncate(max);
            proptest::prop_assert_eq!(keys, product);
        }
    }
}
