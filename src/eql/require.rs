//! What every event a stage matches must contain, read off its compiled condition: the terms
//! that rule dispatch files stages under ([`Stage::required_terms`]) and the literals the raw-byte
//! prefilter scans for ([`Stage::required_literals`]). Built once per rule set; nothing here runs
//! per event.
//!
//! Both are a conjunction of clauses, each a disjunction of atoms "some string value of field `f`
//! is `v`" (or, for the prefilter, starts with `v`), compared exactly or ignoring case. They are
//! **implied** by the stage (every event the stage matches satisfies every clause), which is what
//! makes dispatch and prefilter sound. Proof by construction, one rule per node of the condition
//! (eql-semantics.md 5 and 6):
//!
//! * the category term `CATEGORY where` is a case-sensitive test of string values (5): one atom;
//! * a positive leaf on a field (`==`, `in`, `in~`, `:` and `like`/`like~` without wildcards;
//!   with a wildcard, for the prefilter, the pattern's literal head as a prefix) holds only when
//!   some value of the field passes it (6.4): one clause, its literals. A literal that a number or
//!   boolean could equal through the coercions of `value.rs` (`"7"`, `"true"`, `" 1e3"`, a prefix
//!   such as `"1"` or `"tr"`) gives no clause, since such a value is not a JSON string;
//! * `a and b` implies the clauses of both;
//! * `a or b` implies the union of one clause of each branch (when every branch has one);
//! * `false` implies the empty clause (the stage never matches);
//! * everything else (`not`, `!=`, functions, comparisons, `regex`, patterns with a leading
//!   wildcard, `true`) implies nothing and gives no clause.
//!
//! Case-insensitive atoms hold the literal folded as the evaluator folds it
//! ([`super::wildcard::fold_str`]); a value `v` can then only pass if its per-character fold
//! equals the literal (`eq_ci`, `CiSet::contains` and the `:`/`like~` patterns never accept
//! more).

use super::compile::{Pred, Stage, Test};
use super::value::Val;
use crate::event::FieldId;

/// An atom of [`Stage::required_terms`]: some string value of `field` is `value` (`whole`) or
/// starts with it, compared exactly or, when `ci`, after folding the value per character
/// (`value` is then already folded).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    /// The field.
    pub field: FieldId,
    /// The value or prefix (folded when `ci`).
    pub value: Box<str>,
    /// The whole value; otherwise a prefix of it.
    pub whole: bool,
    /// Case-insensitive (`in~`, `:`, `like~`).
    pub ci: bool,
}

/// A literal of [`Stage::required_literals`]: some string value of the event is `text`
/// (`whole`) or starts with it, compared exactly or, when `ci`, ignoring case (`text` is then
/// folded).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawLiteral {
    /// The literal (unescaped; folded when `ci`).
    pub text: String,
    /// The value equals `text`; otherwise it starts with it.
    pub whole: bool,
    /// Case-insensitive.
    pub ci: bool,
}

/// One atom while the clauses are built.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Atom {
    field: FieldId,
    text: String,
    whole: bool,
    ci: bool,
}

impl Stage {
    /// The category term (`event.category` field and value), `None` for `any where`.
    pub fn category(&self) -> Option<(FieldId, &str)> {
        self.category.as_ref().map(|(f, c)| (*f, &**c))
    }

    /// The terms every matching event satisfies, as a conjunction of clauses of [`Term`]s (see
    /// the module comment), category first. An `or` keeps, of each branch, its clause of least
    /// `weight`. Empty: no requirement; an empty clause: the stage never matches.
    pub fn required_terms_weighted(&self, weight: &dyn Fn(&[Term]) -> f64) -> Vec<Vec<Term>> {
        let to_terms = |c: &[Atom]| -> Vec<Term> {
            c.iter().map(|a| Term { field: a.field, value: a.text.as_str().into(), whole: a.whole, ci: a.ci }).collect()
        };
        let keep = |_: &Atom| true;
        let w = |c: &[Atom]| weight(&to_terms(c));
        let mut out = Vec::new();
        self.atoms(&keep, &w, &mut out);
        out.iter().map(|c| to_terms(c)).collect()
    }

    /// [`Stage::required_terms_weighted`], keeping the `or` branch clauses with fewest terms.
    pub fn required_terms(&self) -> Vec<Vec<Term>> {
        self.required_terms_weighted(&|c| c.len() as f64)
    }

    /// The literals a line must contain for this stage to match it, for the raw-byte
    /// prefilter: a conjunction of clauses of [`RawLiteral`]s (see the module comment),
    /// category first; case-insensitive literals only when ASCII. An `or` keeps, of each branch,
    /// its clause with fewest literals. Empty: no literal is required.
    pub fn required_literals(&self) -> Vec<Vec<RawLiteral>> {
        let keep = |a: &Atom| !a.ci || a.text.is_ascii();
        let w = |c: &[Atom]| c.len() as f64;
        let mut out = Vec::new();
        self.atoms(&keep, &w, &mut out);
        out.into_iter()
            .map(|c| {
                let mut lits: Vec<RawLiteral> = Vec::with_capacity(c.len());
                for a in c {
                    let l = RawLiteral { text: a.text, whole: a.whole, ci: a.ci };
                    if !lits.contains(&l) {
                        lits.push(l);
                    }
                }
                lits
            })
            .collect()
    }

    fn atoms(&self, keep: &dyn Fn(&Atom) -> bool, weight: &dyn Fn(&[Atom]) -> f64, out: &mut Vec<Vec<Atom>>) {
        if let Some((f, c)) = &self.category {
            // eql-semantics.md 5: a term query on string values only; no coercion.
            let a = Atom { field: *f, text: c.to_string(), whole: true, ci: false };
            if keep(&a) {
                out.push(vec![a]);
            }
        }
        clauses(&self.cond, keep, weight, out);
    }
}

/// True when the text of a JSON number or boolean could equal `lit` (`whole`) or start with it,
/// ignoring ASCII case: as `value.rs` coerces (`parse_num` trims and reads integers and floats;
/// `TextBuf` writes `7`, `-1.5`, `1e300`, `inf`, `NaN`, `true`). Conservative.
fn may_be_scalar_text(lit: &str, whole: bool) -> bool {
    const WORDS: [&str; 6] = ["true", "false", "null", "nan", "inf", "infinity"];
    if whole {
        let t = lit.trim();
        return t.parse::<f64>().is_ok() || WORDS.iter().any(|w| t.eq_ignore_ascii_case(w));
    }
    let Some(first) = lit.chars().next() else { return true };
    first.is_ascii_digit()
        || first.is_whitespace()
        || matches!(first.to_ascii_lowercase(), '-' | '+' | '.' | 'n' | 'i')
        || WORDS.iter().any(|w| w.len() >= lit.len() && w.as_bytes()[..lit.len()].eq_ignore_ascii_case(lit.as_bytes()))
}

/// The atoms of a positive test on field `f`, `None` when it implies no clause.
fn leaf(f: FieldId, t: &Test) -> Option<Vec<Atom>> {
    let atom = |text: &str, whole: bool, ci: bool| Atom { field: f, text: text.to_string(), whole, ci };
    let atoms: Vec<Atom> = match t {
        Test::Eq(Val::Owned(s)) => vec![atom(s, true, false)],
        // Numeric and boolean literals also match numbers, booleans and numeric strings.
        Test::In(set) if !set.has_num_lit && set.bools == [false, false] => {
            set.strs.iter().map(|s| atom(s, true, false)).collect()
        }
        Test::EqCi(l) => vec![atom(l, true, true)],
        Test::InCi(set) => set.iter().map(|s| atom(s, true, true)).collect(),
        Test::Like(ps) => {
            let ci = ps.is_ci();
            ps.literals()?.into_iter().map(|(text, whole)| atom(&text, whole, ci)).collect()
        }
        _ => return None,
    };
    if atoms.is_empty() || atoms.iter().any(|a| may_be_scalar_text(&a.text, a.whole)) {
        return None;
    }
    Some(atoms)
}

/// Appends the clauses `p` implies (see the module comment); atoms that `keep` refuses make
/// their leaf imply nothing.
fn clauses(p: &Pred, keep: &dyn Fn(&Atom) -> bool, weight: &dyn Fn(&[Atom]) -> f64, out: &mut Vec<Vec<Atom>>) {
    match p {
        Pred::And(ps) => ps.iter().for_each(|p| clauses(p, keep, weight, out)),
        Pred::Or(ps) => {
            let mut union: Vec<Atom> = Vec::new();
            for b in ps.iter() {
                let mut sub = Vec::new();
                clauses(b, keep, weight, &mut sub);
                let Some(best) = sub.into_iter().min_by(|x, y| weight(x).total_cmp(&weight(y))) else { return };
                for a in best {
                    if !union.contains(&a) {
                        union.push(a);
                    }
                }
            }
            out.push(union);
        }
        Pred::Const(false) => out.push(Vec::new()),
        Pred::Field(f, t) => {
            if let Some(atoms) = leaf(*f, t) {
                if atoms.iter().all(keep) {
                    out.push(atoms);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::event::FieldTable;

    fn compile(query: &str) -> (crate::eql::Query, FieldTable) {
        let mut fields = FieldTable::default();
        let c = crate::eql::compile(query, &mut fields).expect("compiles");
        (c.query, fields)
    }

    fn literals(query: &str) -> Vec<Vec<(String, bool, bool)>> {
        let (q, _) = compile(query);
        let mut out: Vec<Vec<(String, bool, bool)>> = q.stages[0]
            .required_literals()
            .into_iter()
            .map(|c| c.into_iter().map(|l| (l.text, l.whole, l.ci)).collect())
            .collect();
        out.iter_mut().for_each(|c| c.sort());
        out
    }

    fn terms(query: &str) -> Vec<Vec<(String, String, bool)>> {
        let (q, fields) = compile(query);
        let mut out: Vec<Vec<(String, String, bool)>> = q.stages[0]
            .required_terms()
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|t| {
                        let v = if t.whole { t.value.to_string() } else { format!("{}*", t.value) };
                        (fields.path(t.field).to_string(), v, t.ci)
                    })
                    .collect()
            })
            .collect();
        out.iter_mut().for_each(|c| c.sort());
        out
    }

    fn lit(t: &str, whole: bool, ci: bool) -> (String, bool, bool) {
        (t.to_string(), whole, ci)
    }

    fn term(f: &str, v: &str, ci: bool) -> (String, String, bool) {
        (f.to_string(), v.to_string(), ci)
    }

    #[test]
    fn literals_come_from_category_equality_in_like_and_or() {
        let l = literals(
            r#"file where event.action == "creation" and file.path like ("/tmp/*", "/home/*/x") and (process.name == "curl" or process.args in ("wget", "/bin/wget"))"#,
        );
        assert_eq!(l[0], vec![lit("file", true, false)]);
        assert_eq!(l[1], vec![lit("creation", true, false)]);
        assert_eq!(l[2], vec![lit("/home/", false, false), lit("/tmp/", false, false)]);
        assert_eq!(l[3], vec![lit("/bin/wget", true, false), lit("curl", true, false), lit("wget", true, false)]);
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn case_insensitive_operators_give_folded_literals_when_ascii() {
        let l = literals(
            r#"process where process.name : ("CURL", "Wget*") and process.args like~ "-O*" and process.title in~ ("ÉTÉ", "x")"#,
        );
        assert_eq!(l[1], vec![lit("curl", true, true), lit("wget", false, true)]);
        assert_eq!(l.len(), 2, "`-O*` may be a number's text, `ÉTÉ` is not ASCII: {l:?}");
    }

    #[test]
    fn no_literal_where_a_non_string_could_match_or_nothing_is_required() {
        // `not`, leading wildcards, number-like literals and an `or` with a branch without
        // literals give no clause (only the category is required).
        for q in [
            r#"process where not process.name == "curl""#,
            r#"process where process.name like "*curl""#,
            r#"process where process.pid == "42""#,
            r#"process where process.pid : " 42 ""#,
            r#"process where process.name in ("true", "x")"#,
            r#"process where process.name in~ ("TRUE", "x")"#,
            r#"process where process.name like "1*""#,
            r#"process where process.name like~ "In*""#,
            r#"process where process.name like~ "NaN""#,
            r#"process where process.name == "curl" or process.pid > 3"#,
            r#"process where process.name regex "curl""#,
            r#"process where process.name in ("a", 7)"#,
        ] {
            assert_eq!(literals(q), vec![vec![lit("process", true, false)]], "{q}");
        }
    }

    #[test]
    fn false_requires_the_impossible_and_or_unions_its_branches() {
        assert_eq!(literals("any where false"), vec![vec![]]);
        assert_eq!(literals(r#"any where false or a == "x""#), vec![vec![lit("x", true, false)]]);
    }

    #[test]
    fn terms_are_values_or_prefixes_per_field() {
        let t = terms(
            r#"process where host.os.type == "linux" and process.name : ("Curl", "wget*") and (process.args == "-o" or process.parent.name in~ ("Sh", "bash")) and process.title like "*x""#,
        );
        assert_eq!(t[0], vec![term("event.category", "process", false)]);
        assert_eq!(t[1], vec![term("host.os.type", "linux", false)]);
        assert_eq!(t[2], vec![term("process.name", "curl", true), term("process.name", "wget*", true)]);
        assert_eq!(
            t[3],
            vec![
                term("process.args", "-o", false),
                term("process.parent.name", "bash", true),
                term("process.parent.name", "sh", true)
            ]
        );
        assert_eq!(t.len(), 4, "a leading wildcard gives no term: {t:?}");
        let t = terms(r#"any where process.name : ("Curl", "Ünïcode")"#);
        assert_eq!(t, vec![vec![term("process.name", "curl", true), term("process.name", "ünïcode", true)]]);
    }

    #[test]
    fn or_keeps_the_lightest_clause_of_each_branch() {
        let (q, fields) = compile(r#"any where (a == "x" and b == "y") or c == "z""#);
        let b = fields.get("b").expect("interned");
        let w = |c: &[super::Term]| if c.iter().any(|t| t.field == b) { 0.1 } else { 1.0 };
        let t = q.stages[0].required_terms_weighted(&w);
        let values: Vec<&str> = t[0].iter().map(|t| &*t.value).collect();
        assert_eq!(values, ["y", "z"]);
    }
}
