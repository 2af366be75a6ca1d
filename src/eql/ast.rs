//! The EQL syntax tree: plain data, a [`Span`] on every node. No evaluation, no field ids.

use super::diag::Span;

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// A string (already unescaped).
    Str(String),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
}

/// String predicates that take constant patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `:` (case-insensitive wildcard, = `like~`; eql-semantics.md 6.2)
    Seq,
    /// `like`
    Like,
    /// `like~`
    LikeI,
    /// `regex`
    Regex,
    /// `regex~`
    RegexI,
}

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A field reference; `optional` for `?field`.
    Field {
        /// Dotted path, segments joined with `.`.
        path: String,
        /// Written as `?path`.
        optional: bool,
        /// Where.
        span: Span,
    },
    /// A literal.
    Lit(Lit, Span),
    /// `not e`
    Not(Box<Expr>, Span),
    /// `a and b and ...` (n-ary, at least two operands, so long chains are not deep trees)
    And(Vec<Expr>, Span),
    /// `a or b or ...` (n-ary, at least two operands)
    Or(Vec<Expr>, Span),
    /// `a OP b`
    Cmp(CmpOp, Box<Expr>, Box<Expr>, Span),
    /// `e [not] in[~] (list)`
    In {
        /// The tested expression.
        lhs: Box<Expr>,
        /// The candidates.
        list: Vec<Expr>,
        /// `not in`
        negated: bool,
        /// `in~`
        insensitive: bool,
        /// Whole predicate.
        span: Span,
    },
    /// `e : p`, `e like (p, ...)`, `e regex p`, ...
    Match {
        /// The tested expression.
        lhs: Box<Expr>,
        /// The operator.
        op: MatchOp,
        /// Constant patterns with their spans.
        patterns: Vec<(String, Span)>,
        /// Whole predicate.
        span: Span,
    },
    /// `a + b` etc.
    Arith(ArithOp, Box<Expr>, Box<Expr>, Span),
    /// `-e`
    Neg(Box<Expr>, Span),
    /// `name(args)` / `name~(args)`
    Call {
        /// Function name as written (without `~`).
        name: String,
        /// Written with `~`.
        insensitive: bool,
        /// Arguments.
        args: Vec<Expr>,
        /// The name's span.
        name_span: Span,
        /// Whole call.
        span: Span,
    },
}

impl Expr {
    /// The span of the whole expression.
    pub fn span(&self) -> Span {
        match self {
            Expr::Field { span, .. }
            | Expr::Lit(_, span)
            | Expr::Not(_, span)
            | Expr::Cmp(_, _, _, span)
            | Expr::In { span, .. }
            | Expr::Match { span, .. }
            | Expr::Arith(_, _, _, span)
            | Expr::Neg(_, span)
            | Expr::Call { span, .. }
            | Expr::And(_, span)
            | Expr::Or(_, span) => *span,
        }
    }
}

/// `CATEGORY where COND` or `any where COND`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventFilter {
    /// The category and its span; `None` for `any`.
    pub category: Option<(String, Span)>,
    /// The condition.
    pub cond: Expr,
    /// Whole filter.
    pub span: Span,
}

/// A join key: a field reference.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyField {
    /// Dotted path.
    pub path: String,
    /// `?field`: may be null (eql-semantics.md 4.2).
    pub optional: bool,
    /// Where.
    pub span: Span,
}

/// One `[ ... ] by k with runs=N` (or `![ ... ]`) of a sequence, sample or until.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// Written `![ ... ]`.
    pub missing: bool,
    /// The filter inside the brackets.
    pub filter: EventFilter,
    /// Stage `by` keys.
    pub by: Vec<KeyField>,
    /// Where the `by` clause is (for arity errors).
    pub by_span: Option<Span>,
    /// `with runs=N`.
    pub runs: Option<(u64, Span)>,
    /// From `[` to the end of the term.
    pub span: Span,
}

/// What kind of query.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryKind {
    /// A single-event query.
    Event(EventFilter),
    /// `sequence ...`
    Sequence {
        /// `sequence by` keys.
        by: Vec<KeyField>,
        /// `with maxspan=...` in nanoseconds.
        maxspan: Option<(u64, Span)>,
        /// The stages.
        terms: Vec<Term>,
        /// `until [...]`.
        until: Option<Term>,
    },
    /// `sample by ...` (parsed, but not supported in streaming).
    Sample {
        /// `sample by` keys.
        by: Vec<KeyField>,
        /// The stages.
        terms: Vec<Term>,
    },
}

/// A `| name args` pipe.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipe {
    /// `head`, `tail`, ...
    pub name: String,
    /// Arguments.
    pub args: Vec<Expr>,
    /// Whole pipe.
    pub span: Span,
}

/// A whole query.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// The query.
    pub kind: QueryKind,
    /// Where the query keyword / category starts (for sample errors).
    pub head_span: Span,
    /// Trailing pipes.
    pub pipes: Vec<Pipe>,
}
