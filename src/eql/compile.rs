//! Syntax tree -> [`Query`]: field paths interned to [`FieldId`]s, `in` lists as hash sets,
//! `like`/`:` patterns as precompiled matchers, regexes compiled, literals case-folded once,
//! `with runs=N` expanded, join keys checked. Evaluation lives in `eval.rs`.
//!
//! Never panics on any syntax tree; every problem is a [`Diagnostic`] with the span of the
//! offending part of the query.

use hashbrown::HashSet;

use super::ast::{self, ArithOp, CmpOp, Expr, KeyField, Lit, MatchOp, QueryKind, Statement};
use super::diag::{Diagnostic, Span};
use super::func::{self, Cidr, Func, Returns};
use super::lucene::lucene_to_regex;
use super::value::{parse_num, Num, Val};
use super::wildcard::{fold_str, CiSet, PatternSet};
use crate::event::{FieldId, FieldTable};
use crate::sequence::key::KeyLimit;
use crate::sequence::spec::{SequenceSpec, StageKind};

/// Options that change how a query compiles.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The field that `CATEGORY where` tests (ES `event_category_field`; rules may set
    /// `event_category_override`). Default `event.category` (eql-semantics.md 5).
    pub event_category_field: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { event_category_field: "event.category".to_string() }
    }
}

/// A compiled query: the stages an event can match, plus the shape of a sequence.
#[derive(Clone, Debug)]
pub struct Query {
    /// Event query: exactly one stage with no keys. Sequence: stages after `with runs=N`
    /// expansion, including missing (`![..]`) stages.
    pub stages: Vec<Stage>,
    /// The `until [...]` stage of a sequence.
    pub until: Option<Stage>,
    /// `None` for an event query.
    pub sequence: Option<SequenceSpec>,
}

/// One join-key component of a stage.
#[derive(Clone, Debug)]
pub struct KeySpec {
    /// The key field.
    pub field: FieldId,
    /// `?field`: may be missing (gives `KeyValue::Null`).
    pub optional: bool,
}

/// One stage (or the whole event query): category term + condition + key fields.
#[derive(Clone, Debug)]
pub struct Stage {
    pub(crate) kind: StageKind,
    /// The category field and value; `None` for `any where`.
    pub(crate) category: Option<(FieldId, Box<str>)>,
    pub(crate) cond: Pred,
    /// Mandatory (non-`?`) key fields: each must have a value (eql-semantics.md 4.2).
    pub(crate) mandatory: Vec<FieldId>,
    /// Sequence-by keys followed by the stage's own `by` keys.
    pub keys: Vec<KeySpec>,
    /// The cap on the key tuples of one event (see [`KeyLimit`]); the default until the rule set
    /// is configured.
    pub(crate) key_limit: KeyLimit,
    /// The stage's text in the query.
    pub span: Span,
}

/// A compiled boolean condition.
#[derive(Clone, Debug)]
pub enum Pred {
    /// Always true / false.
    Const(bool),
    /// All hold.
    And(Box<[Pred]>),
    /// One holds.
    Or(Box<[Pred]>),
    /// Document-level complement (eql-semantics.md 6.3).
    Not(Box<Pred>),
    /// `f != null`: the field has a non-null value.
    Exists(FieldId),
    /// Some value of the field passes the test (eql-semantics.md 6.4).
    Field(FieldId, Test),
    /// Some value of the expression (over all combinations of multi-valued fields) passes.
    Script(Box<VExpr>, Test),
    /// Some combination of values of both sides compares true.
    Compare(CmpOp, Box<VExpr>, Box<VExpr>),
}

/// A test on one value.
#[derive(Clone, Debug)]
pub enum Test {
    /// `== literal` (case-sensitive, with the coercions of `value.rs`).
    Eq(Val<'static>),
    /// Case-insensitive equality with a folded string literal (`in~` with one element).
    EqCi(Box<str>),
    /// `in (...)`.
    In(Box<LitSet>),
    /// `in~ (...)`: folded literals.
    InCi(Box<CiSet>),
    /// `like`, `like~`, `:` with any of the patterns.
    Like(Box<PatternSet>),
    /// `regex`, `regex~` (one anchored alternation of all patterns).
    Regex(Box<regex::Regex>),
    /// `<`, `<=`, `>`, `>=` against a literal.
    Cmp(CmpOp, Val<'static>),
    /// A boolean `true` (bare field or function used as a condition).
    IsTrue,
}

/// The literals of an `in (...)` list, indexed for lookup.
#[derive(Clone, Debug, Default)]
pub struct LitSet {
    /// String literals.
    pub strs: HashSet<Box<str>>,
    /// Numeric literals, and string literals that parse as numbers.
    pub nums: Vec<Num>,
    /// Whether some literal is a number (then string values are parsed too).
    pub has_num_lit: bool,
    /// `[false allowed, true allowed]`.
    pub bools: [bool; 2],
}

/// A value expression (function arguments, arithmetic, field-vs-field comparisons).
#[derive(Clone, Debug)]
pub enum VExpr {
    /// A literal.
    Lit(Val<'static>),
    /// Every value of a field, or `Null` once when it has none.
    Field(FieldId),
    /// A function call with its precompiled CIDR blocks.
    Call(Func, bool, Box<[VExpr]>, Box<[Cidr]>),
    /// Arithmetic.
    Arith(ArithOp, Box<VExpr>, Box<VExpr>),
    /// Negation.
    Neg(Box<VExpr>),
    /// A condition used as a value.
    Pred(Box<Pred>),
}

/// The result of compiling a statement.
pub(crate) struct Output {
    pub query: Query,
    pub warnings: Vec<Diagnostic>,
}

/// Compiles a parsed statement.
pub(crate) fn compile_statement(
    st: &Statement,
    fields: &mut FieldTable,
    opts: &CompileOptions,
) -> Result<Output, Vec<Diagnostic>> {
    let mut c = Compiler { fields, opts, errors: Vec::new(), warnings: Vec::new() };
    let query = c.statement(st);
    for p in &st.pipes {
        c.pipe(p);
    }
    if c.errors.is_empty() {
        if let Some(query) = query {
            return Ok(Output { query, warnings: c.warnings });
        }
    }
    let mut errs = c.errors;
    if errs.is_empty() {
        // Every path that gives up records why; this keeps `Err` non-empty regardless.
        errs.push(Diagnostic::error(st.head_span, "internal error: the query could not be compiled"));
    }
    errs.sort_by_key(|d| d.span.start);
    Err(errs)
}

struct Compiler<'f> {
    fields: &'f mut FieldTable,
    opts: &'f CompileOptions,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

fn describe_lit(l: &Lit) -> String {
    match l {
        Lit::Null => "`null`".into(),
        Lit::Bool(b) => format!("`{b}`"),
        Lit::Int(i) => format!("number `{i}`"),
        Lit::Float(f) => format!("number `{f}`"),
        Lit::Str(s) => format!("string \"{s}\""),
    }
}

fn lit_val(l: &Lit) -> Val<'static> {
    match l {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(i) => Val::I64(*i),
        Lit::Float(f) => Val::F64(*f),
        Lit::Str(s) => Val::Owned(s.clone()),
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        o => o,
    }
}

impl Compiler<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    fn statement(&mut self, st: &Statement) -> Option<Query> {
        match &st.kind {
            QueryKind::Event(f) => {
                let stage = self.stage(f, StageKind::Positive, &[], &[], f.span)?;
                Some(Query { stages: vec![stage], until: None, sequence: None })
            }
            QueryKind::Sample { by, terms } => {
                for t in terms {
                    self.stage(&t.filter, StageKind::Positive, by, &t.by, t.span);
                }
                self.err(
                    Diagnostic::error(st.head_span, "sample queries are not supported in streaming")
                        .with_hint("`sample` ignores event order; rewrite it as a `sequence` if order matters"),
                );
                None
            }
            QueryKind::Sequence { by, maxspan, terms, until } => {
                let arity = by.len() + terms.first().map_or(0, |t| t.by.len());
                let mut stages = Vec::new();
                let mut ok = true;
                for t in terms {
                    let n = by.len() + t.by.len();
                    if n != arity {
                        self.err(self.arity_error(t, arity, n));
                        ok = false;
                    }
                    let kind = if t.missing { StageKind::Missing } else { StageKind::Positive };
                    match self.stage(&t.filter, kind, by, &t.by, t.span) {
                        Some(s) => {
                            let runs = t.runs.map_or(1, |r| r.0);
                            for _ in 1..runs {
                                stages.push(s.clone());
                            }
                            stages.push(s);
                        }
                        None => ok = false,
                    }
                }
                let until_stage = match until {
                    Some(t) => {
                        let n = by.len() + t.by.len();
                        if n != arity {
                            self.err(self.arity_error(t, arity, n));
                            ok = false;
                        }
                        if let Some(r) = t.runs {
                            self.err(Diagnostic::error(r.1, "`with runs` is not allowed on `until`"));
                            ok = false;
                        }
                        let s = self.stage(&t.filter, StageKind::Positive, by, &t.by, t.span);
                        ok &= s.is_some();
                        s
                    }
                    None => None,
                };
                if !ok {
                    return None;
                }
                let positives = stages.iter().filter(|s| s.kind == StageKind::Positive).count();
                let has_missing = positives < stages.len();
                if stages.len() < 2 {
                    self.err(
                        Diagnostic::error(
                            st.head_span,
                            format!("a sequence requires a minimum of 2 stages, found {}", stages.len()),
                        )
                        .with_hint("add a stage or `with runs=N`, or write an event query"),
                    );
                    return None;
                }
                if has_missing && maxspan.is_none() {
                    self.err(Diagnostic::error(
                        st.head_span,
                        "missing-event stages `![ ... ]` require `with maxspan=...`",
                    ));
                    return None;
                }
                if positives == 0 {
                    self.err(Diagnostic::error(
                        st.head_span,
                        "a sequence needs at least one stage that is not a missing-event stage",
                    ));
                    return None;
                }
                let spec = SequenceSpec {
                    stages: stages.iter().map(|s| s.kind).collect(),
                    maxspan_ns: maxspan.map(|m| m.0),
                    has_until: until_stage.is_some(),
                    key_arity: arity,
                };
                Some(Query { stages, until: until_stage, sequence: Some(spec) })
            }
        }
    }

    fn arity_error(&self, t: &ast::Term, expected: usize, found: usize) -> Diagnostic {
        let span = t.by_span.unwrap_or(t.span);
        Diagnostic::error(
            span,
            format!("inconsistent number of join keys: expected {expected} (as in the first stage), found {found}"),
        )
        .with_hint("every stage (and `until`) must have the same number of `by` keys")
    }

    fn pipe(&mut self, p: &ast::Pipe) {
        match p.name.as_str() {
            "head" | "tail" => {
                let ok = matches!(p.args.as_slice(), [Expr::Lit(Lit::Int(n), _)] if *n >= 0);
                if !ok {
                    self.err(Diagnostic::error(p.span, format!("`| {}` expects one non-negative integer", p.name)));
                    return;
                }
                self.warnings.push(Diagnostic::warning(
                    p.span,
                    format!("`| {}` is ignored in streaming: every match is reported as it completes", p.name),
                ));
            }
            "count" | "filter" | "sort" | "unique" | "unique_count" => self
                .err(Diagnostic::error(p.span, format!("pipe `{}` is not supported by Elasticsearch's EQL", p.name))),
            other => self.err(Diagnostic::error(p.span, format!("unknown pipe `{other}`: expected `head` or `tail`"))),
        }
    }

    fn stage(
        &mut self,
        f: &ast::EventFilter,
        kind: StageKind,
        seq_by: &[KeyField],
        by: &[KeyField],
        span: Span,
    ) -> Option<Stage> {
        let before = self.errors.len();
        let category = f.category.as_ref().map(|(c, _)| {
            let id = self.fields.intern(&self.opts.event_category_field);
            (id, Box::from(c.as_str()))
        });
        let cond = self.pred(&f.cond);
        let mut keys = Vec::new();
        let mut mandatory = Vec::new();
        for k in seq_by.iter().chain(by) {
            let id = self.fields.intern(&k.path);
            if !k.optional && !mandatory.contains(&id) {
                mandatory.push(id);
            }
            keys.push(KeySpec { field: id, optional: k.optional });
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Stage { kind, category, cond: cond?, mandatory, keys, key_limit: KeyLimit::default(), span })
    }

    /// Compiles an expression used as a condition.
    fn pred(&mut self, e: &Expr) -> Option<Pred> {
        match e {
            Expr::And(es, _) => Some(Pred::And(self.preds(es)?.into())),
            Expr::Or(es, _) => Some(Pred::Or(self.preds(es)?.into())),
            Expr::Not(inner, _) => Some(Pred::Not(Box::new(self.pred(inner)?))),
            Expr::Lit(Lit::Bool(b), _) => Some(Pred::Const(*b)),
            Expr::Lit(l, span) => {
                self.err(Diagnostic::error(*span, format!("expected a condition, found {}", describe_lit(l))));
                None
            }
            Expr::Field { path, .. } => Some(Pred::Field(self.fields.intern(path), Test::IsTrue)),
            Expr::Cmp(op, l, r, span) => self.cmp(*op, l, r, *span),
            Expr::In { lhs, list, negated, insensitive, .. } => {
                let test = self.in_test(list, *insensitive)?;
                let p = self.apply(lhs, test)?;
                Some(if *negated { Pred::Not(Box::new(p)) } else { p })
            }
            Expr::Match { lhs, op, patterns, .. } => {
                let test = self.match_test(*op, patterns)?;
                self.apply(lhs, test)
            }
            Expr::Call { name, span, .. } => {
                let v = self.vexpr(e)?;
                if let Some(info) = func::lookup(name) {
                    if info.returns != Returns::Bool {
                        self.err(
                            Diagnostic::error(
                                *span,
                                format!(
                                    "expected a condition, found a call of `{}` which returns a {}",
                                    info.name,
                                    match info.returns {
                                        Returns::Number => "number",
                                        _ => "string",
                                    }
                                ),
                            )
                            .with_hint("compare the result, e.g. `length(x) > 0`"),
                        );
                        return None;
                    }
                }
                Some(Pred::Script(Box::new(v), Test::IsTrue))
            }
            Expr::Arith(_, _, _, span) | Expr::Neg(_, span) => {
                self.err(Diagnostic::error(*span, "expected a condition, found an arithmetic expression"));
                None
            }
        }
    }

    /// Compiles every operand of an n-ary `and`/`or`, reporting every error.
    fn preds(&mut self, es: &[Expr]) -> Option<Vec<Pred>> {
        let mut out = Vec::with_capacity(es.len());
        let mut ok = true;
        for e in es {
            match self.pred(e) {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `lhs TEST`: on a field directly, otherwise as a script.
    fn apply(&mut self, lhs: &Expr, test: Test) -> Option<Pred> {
        match lhs {
            Expr::Field { path, .. } => Some(Pred::Field(self.fields.intern(path), test)),
            other => {
                let v = self.vexpr(other)?;
                Some(Pred::Script(Box::new(v), test))
            }
        }
    }

    fn cmp(&mut self, op: CmpOp, l: &Expr, r: &Expr, span: Span) -> Option<Pred> {
        // Normalise `literal OP field` to `field OP' literal`.
        let (l, r, op) = match (l, r) {
            (Expr::Lit(..), Expr::Field { .. }) => (r, l, flip(op)),
            _ => (l, r, op),
        };
        if let Expr::Lit(lit, lspan) = r {
            if let Lit::Null = lit {
                // eql-semantics.md 6.2: `f == null` = field absent, `f != null` = present.
                let exists = match l {
                    Expr::Field { path, .. } => Pred::Exists(self.fields.intern(path)),
                    other => {
                        // A script result compared with null: true when some value is non-null.
                        let v = self.vexpr(other)?;
                        Pred::Compare(CmpOp::Ne, Box::new(v), Box::new(VExpr::Lit(Val::Null)))
                    }
                };
                return match op {
                    CmpOp::Eq => Some(Pred::Not(Box::new(exists))),
                    CmpOp::Ne => Some(exists),
                    _ => {
                        self.err(Diagnostic::error(
                            *lspan,
                            "expected a value to compare with, found `null`: only `==` and `!=` test for null",
                        ));
                        None
                    }
                };
            }
            if matches!(l, Expr::Lit(..)) {
                // Constant comparison: fold.
                let lv = self.vexpr(l)?;
                let rv = lit_val(lit);
                let VExpr::Lit(lv) = lv else {
                    return None;
                };
                return Some(Pred::Const(cmp_vals(op, &lv, &rv)));
            }
            let v = lit_val(lit);
            let test = match op {
                CmpOp::Eq | CmpOp::Ne => Test::Eq(v),
                o => Test::Cmp(o, v),
            };
            let p = self.apply(l, test)?;
            return Some(if op == CmpOp::Ne { Pred::Not(Box::new(p)) } else { p });
        }
        let _ = span;
        let lv = self.vexpr(l)?;
        let rv = self.vexpr(r)?;
        if op == CmpOp::Ne {
            return Some(Pred::Not(Box::new(Pred::Compare(CmpOp::Eq, Box::new(lv), Box::new(rv)))));
        }
        Some(Pred::Compare(op, Box::new(lv), Box::new(rv)))
    }

    fn in_test(&mut self, list: &[Expr], ci: bool) -> Option<Test> {
        let mut lits = Vec::new();
        for e in list {
            match e {
                Expr::Lit(l, _) => lits.push(l.clone()),
                other => {
                    self.err(
                        Diagnostic::error(
                            other.span(),
                            "expected a literal in the `in` list, found an expression: comparisons against fields are not supported",
                        ),
                    );
                    return None;
                }
            }
        }
        // eql-semantics.md 6.2: null entries of the list are dropped.
        lits.retain(|l| !matches!(l, Lit::Null));
        if ci {
            let mut set = CiSet::default();
            for l in &lits {
                match l {
                    Lit::Str(s) => set.insert(s),
                    Lit::Int(i) => set.insert(&i.to_string()),
                    Lit::Float(f) => set.insert(&f.to_string()),
                    Lit::Bool(b) => set.insert(&b.to_string()),
                    Lit::Null => {}
                }
            }
            if let [Lit::Str(only)] = lits.as_slice() {
                return Some(Test::EqCi(fold_str(only).into()));
            }
            return Some(Test::InCi(Box::new(set)));
        }
        let mut set = LitSet::default();
        for l in &lits {
            match l {
                Lit::Str(s) => {
                    if let Some(n) = parse_num(s) {
                        set.nums.push(n);
                    }
                    match s.as_str() {
                        "true" => set.bools[1] = true,
                        "false" => set.bools[0] = true,
                        _ => {}
                    }
                    set.strs.insert(s.as_str().into());
                }
                Lit::Int(i) => {
                    set.nums.push(Num::I(*i));
                    set.has_num_lit = true;
                }
                Lit::Float(f) => {
                    set.nums.push(Num::F(*f));
                    set.has_num_lit = true;
                }
                Lit::Bool(b) => {
                    set.bools[usize::from(*b)] = true;
                    set.strs.insert(b.to_string().into());
                }
                Lit::Null => {}
            }
        }
        Some(Test::In(Box::new(set)))
    }

    fn match_test(&mut self, op: MatchOp, patterns: &[(String, Span)]) -> Option<Test> {
        match op {
            MatchOp::Seq | MatchOp::Like | MatchOp::LikeI => {
                let ci = op != MatchOp::Like;
                Some(Test::Like(Box::new(PatternSet::new(patterns.iter().map(|(p, _)| p.as_str()), ci))))
            }
            MatchOp::Regex | MatchOp::RegexI => {
                let ci = op == MatchOp::RegexI;
                let mut alts = Vec::new();
                for (p, span) in patterns {
                    let r = lucene_to_regex(p, ci);
                    if let Err(e) = regex::Regex::new(&r) {
                        let msg = e.to_string();
                        let last = msg.lines().last().unwrap_or("").trim();
                        let last = last.strip_prefix("error: ").unwrap_or(last).to_string();
                        self.err(Diagnostic::error(*span, format!("invalid regular expression: {last}")));
                        return None;
                    }
                    alts.push(r);
                }
                let joined = alts.join("|");
                match regex::RegexBuilder::new(&joined).size_limit(1 << 24).build() {
                    Ok(re) => Some(Test::Regex(Box::new(re))),
                    Err(e) => {
                        let span = patterns.first().map_or(Span::default(), |p| p.1);
                        self.err(Diagnostic::error(span, format!("invalid regular expression: {e}")));
                        None
                    }
                }
            }
        }
    }

    fn vexpr(&mut self, e: &Expr) -> Option<VExpr> {
        match e {
            Expr::Field { path, .. } => Some(VExpr::Field(self.fields.intern(path))),
            Expr::Lit(l, _) => Some(VExpr::Lit(lit_val(l))),
            Expr::Arith(op, a, b, _) => {
                let a = self.vexpr(a);
                let b = self.vexpr(b);
                Some(VExpr::Arith(*op, Box::new(a?), Box::new(b?)))
            }
            Expr::Neg(a, _) => Some(VExpr::Neg(Box::new(self.vexpr(a)?))),
            Expr::Call { name, insensitive, args, name_span, span } => {
                let Some(info) = func::lookup(name) else {
                    let mut d = Diagnostic::error(*name_span, format!("unknown function `{name}`"));
                    if name.eq_ignore_ascii_case("wildcard") {
                        d = d.with_hint("use `like`, `like~` or `:` with a pattern");
                    } else if let Some(s) = func::suggest(name) {
                        d = d.with_hint(format!("did you mean `{s}`?"));
                    } else {
                        let names: Vec<&str> = func::FUNCTIONS.iter().map(|f| f.name).collect();
                        d = d.with_hint(format!("known functions: {}", names.join(", ")));
                    }
                    self.err(d);
                    return None;
                };
                if *insensitive && !info.has_insensitive {
                    self.err(Diagnostic::error(
                        *name_span,
                        format!("function `{}` has no case-insensitive variant `{}~`", info.name, info.name),
                    ));
                    return None;
                }
                if args.len() < info.min_args || args.len() > info.max_args {
                    let expected = if info.min_args == info.max_args {
                        format!("{}", info.min_args)
                    } else if info.max_args == usize::MAX {
                        format!("at least {}", info.min_args)
                    } else {
                        format!("{} to {}", info.min_args, info.max_args)
                    };
                    self.err(Diagnostic::error(
                        *span,
                        format!(
                            "wrong number of arguments to `{}`: expected {expected}, found {}",
                            info.name,
                            args.len()
                        ),
                    ));
                    return None;
                }
                let mut cidrs = Vec::new();
                if info.func == Func::CidrMatch {
                    for a in &args[1..] {
                        match a {
                            Expr::Lit(Lit::Str(s), sp) => match Cidr::parse(s) {
                                Some(c) => cidrs.push(c),
                                None => {
                                    self.err(Diagnostic::error(
                                        *sp,
                                        format!("invalid CIDR block \"{s}\": expected e.g. \"10.0.0.0/8\""),
                                    ));
                                    return None;
                                }
                            },
                            other => {
                                self.err(Diagnostic::error(
                                    other.span(),
                                    "expected a CIDR string literal as argument of `cidrMatch`",
                                ));
                                return None;
                            }
                        }
                    }
                }
                let mut out = Vec::new();
                let mut ok = true;
                for a in args {
                    match self.vexpr(a) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                Some(VExpr::Call(info.func, *insensitive, out.into(), cidrs.into()))
            }
            other => Some(VExpr::Pred(Box::new(self.pred(other)?))),
        }
    }
}

/// Compares two values with `op` (used for constant folding and scripts).
pub(crate) fn cmp_vals(op: CmpOp, a: &Val<'_>, b: &Val<'_>) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => {
            if a.is_null() || b.is_null() {
                return a.is_null() && b.is_null();
            }
            a.loose_eq(b)
        }
        CmpOp::Ne => {
            if a.is_null() || b.is_null() {
                return a.is_null() != b.is_null();
            }
            !a.loose_eq(b)
        }
        CmpOp::Lt => a.loose_cmp(b) == Some(Less),
        CmpOp::Le => matches!(a.loose_cmp(b), Some(Less | Equal)),
        CmpOp::Gt => a.loose_cmp(b) == Some(Greater),
        CmpOp::Ge => matches!(a.loose_cmp(b), Some(Greater | Equal)),
    }
}
