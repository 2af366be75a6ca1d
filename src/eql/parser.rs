//! Tokens -> syntax tree, for Elasticsearch's EQL grammar (`EqlBase.g4`).
//!
//! Precedence, loosest first (the one place it is defined):
//!
//! | level | syntax | associativity |
//! |---|---|---|
//! | 1 | `a or b` | left |
//! | 2 | `a and b` | left |
//! | 3 | `not a` | prefix (so `not a and b` = `(not a) and b`) |
//! | 4 | `a == b`, `!=`, `<`, `<=`, `>`, `>=` | none (`a == b == c` is an error) |
//! | 5 | `a + b`, `a - b` | left |
//! | 6 | `a * b`, `a / b`, `a % b` | left |
//! | 7 | `-a`, `+a` | prefix |
//! | 8 | `a in (..)`, `a not in (..)`, `a in~ (..)`, `a : p`, `a like p`, `like~`, `regex`, `regex~` | postfix on a primary |
//!
//! The parser stops at the first syntax error and returns it as a [`Diagnostic`] saying what
//! was expected and what was found, with a hint for the usual mistakes. Never panics.

use super::ast::*;
use super::diag::{Diagnostic, Span};
use super::lexer::{Tok, Token};

/// Words that cannot be used as bare field names or categories.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "like", "regex", "where", "by", "with", "until", "sequence", "sample", "join", "of",
    "true", "false", "null", "any",
];

/// Maximum nesting depth of expressions, so that hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 100;

/// Maximum `with runs=N` (ES: "A query cannot be repeated more than 100 times").
pub const MAX_RUNS: u64 = 100;

type PResult<T> = Result<T, Diagnostic>;

/// Parses a whole query from its tokens (which end with `Eof`).
pub fn parse(tokens: &[Token]) -> PResult<Statement> {
    let mut p = Parser { toks: tokens, pos: 0, depth: 0 };
    p.statement()
}

struct Parser<'t> {
    toks: &'t [Token],
    pos: usize,
    depth: usize,
}

fn time_unit_ns(unit: &str) -> Option<u64> {
    Some(match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    })
}

impl Parser<'_> {
    fn tok(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn tok_at(&self, n: usize) -> &Tok {
        self.toks.get(self.pos + n).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn span(&self) -> Span {
        self.toks.get(self.pos).or(self.toks.last()).map_or(Span::default(), |t| t.span)
    }

    fn prev_span(&self) -> Span {
        if self.pos == 0 {
            return self.span();
        }
        self.toks.get(self.pos - 1).map_or(Span::default(), |t| t.span)
    }

    fn bump(&mut self) -> Span {
        let s = self.span();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        s
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.tok(), Tok::Ident(s) if s == kw)
    }

    fn is_tilde(&self, kw: &str) -> bool {
        matches!(self.tok(), Tok::TildeIdent(s) if s == kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.tok() == t {
            self.bump();
            true
        } else {
            false
        }
    }

    fn unexpected(&self, expected: &str) -> Diagnostic {
        let found = self.tok().describe();
        let mut d = Diagnostic::error(self.span(), format!("expected {expected}, found {found}"));
        match self.tok() {
            Tok::Assign => d = d.with_hint("use `==` to compare values"),
            Tok::Pipe if self.tok_at(1) == &Tok::Pipe => d = d.with_hint("use `or`"),
            Tok::RParen | Tok::RBracket => {
                d = d.with_hint(format!("unbalanced brackets: this {} has no matching opener", self.tok().describe()))
            }
            _ => {}
        }
        d
    }

    /// Expects the closer of a bracket opened at `open`.
    fn close(&mut self, closer: Tok, opener: &str, open: Span, also: &str) -> PResult<Span> {
        if self.tok() == &closer {
            return Ok(self.bump());
        }
        if self.tok() == &Tok::Eof {
            return Err(Diagnostic::error(
                open,
                format!("unclosed `{opener}`: expected {}, found end of query", closer.describe()),
            )
            .with_hint(format!("unbalanced brackets: add {}", closer.describe())));
        }
        let mut d = self.unexpected(&format!("{also}{}", closer.describe()));
        if d.hint.is_none() && closer == Tok::RBracket && matches!(self.tok(), Tok::LBracket | Tok::MissingOpen)
            || matches!(self.tok(), Tok::Ident(s) if s == "until")
        {
            d = d.with_hint(format!("unbalanced brackets: the previous `{opener}` is not closed"));
        } else if d.hint.is_none() && closer == Tok::RParen && matches!(self.tok(), Tok::RBracket) {
            d = d.with_hint("unbalanced brackets: a `(` is not closed before this `]`");
        } else if d.hint.is_none() && matches!(self.tok(), Tok::RParen | Tok::RBracket) {
            d = d.with_hint(format!(
                "unbalanced brackets: the `{opener}` opened at byte {} is closed by {}",
                open.start,
                self.tok().describe()
            ));
        }
        Err(d)
    }

    fn statement(&mut self) -> PResult<Statement> {
        let head_span = self.span();
        let kind = if self.is_kw("sequence") {
            self.bump();
            self.sequence()?
        } else if self.is_kw("sample") {
            self.bump();
            self.sample()?
        } else if self.is_kw("join") {
            return Err(Diagnostic::error(
                self.span(),
                "`join` queries are not supported by Elasticsearch's EQL: expected an event query, `sequence` or `sample`",
            ));
        } else {
            QueryKind::Event(self.event_filter()?)
        };
        let mut pipes = Vec::new();
        while self.tok() == &Tok::Pipe {
            let start = self.bump();
            if self.tok() == &Tok::Pipe {
                return Err(Diagnostic::error(
                    start.to(self.span()),
                    "expected a pipe name such as `head` or `tail`, found `||`",
                )
                .with_hint("use `or`"));
            }
            let name = match self.tok() {
                Tok::Ident(s) if !s.contains('.') => s.clone(),
                _ => return Err(self.unexpected("a pipe name such as `head` or `tail`")),
            };
            self.bump();
            let mut args = Vec::new();
            if !matches!(self.tok(), Tok::Pipe | Tok::Eof) {
                args.push(self.expr()?);
                while self.eat(&Tok::Comma) {
                    args.push(self.expr()?);
                }
            }
            pipes.push(Pipe { name, args, span: start.to(self.prev_span()) });
        }
        if self.tok() != &Tok::Eof {
            let what = if pipes.is_empty() {
                match &kind {
                    QueryKind::Event(_) => "`and`, `or`, a comparison or `|`",
                    _ => "`[`, `until` or `|`",
                }
            } else {
                "`|` or end of query"
            };
            return Err(self.unexpected(what));
        }
        Ok(Statement { kind, head_span, pipes })
    }

    fn sequence(&mut self) -> PResult<QueryKind> {
        let mut by = Vec::new();
        let mut maxspan = None;
        if self.eat_kw("by") {
            by = self.key_fields()?;
        }
        if self.is_kw("with") {
            self.bump();
            maxspan = Some(self.maxspan()?);
            if self.is_kw("by") {
                return Err(Diagnostic::error(
                    self.span(),
                    "expected `[`, found `by`: `sequence by` must come before `with maxspan`",
                )
                .with_hint("write `sequence by KEYS with maxspan=N`"));
            }
        }
        let mut terms = Vec::new();
        while matches!(self.tok(), Tok::LBracket | Tok::MissingOpen) {
            terms.push(self.term(true)?);
        }
        if terms.is_empty() {
            return Err(self.unexpected(if maxspan.is_some() || !by.is_empty() {
                "`[` starting a sequence stage"
            } else {
                "`by`, `with` or `[` starting a sequence stage"
            }));
        }
        let mut until = None;
        if self.is_kw("until") {
            self.bump();
            if self.tok() != &Tok::LBracket {
                return Err(self.unexpected("`[` after `until`"));
            }
            until = Some(self.term(false)?);
        }
        Ok(QueryKind::Sequence { by, maxspan, terms, until })
    }

    fn sample(&mut self) -> PResult<QueryKind> {
        let mut by = Vec::new();
        if self.eat_kw("by") {
            by = self.key_fields()?;
        }
        let mut terms = Vec::new();
        while self.tok() == &Tok::LBracket {
            terms.push(self.term(false)?);
        }
        if terms.is_empty() {
            return Err(self.unexpected("`[` starting a sample stage"));
        }
        Ok(QueryKind::Sample { by, terms })
    }

    fn maxspan(&mut self) -> PResult<(u64, Span)> {
        match self.tok() {
            Tok::Ident(s) if s == "maxspan" => {
                self.bump();
            }
            Tok::Ident(s) if s == "runs" => {
                return Err(Diagnostic::error(
                    self.span(),
                    "expected `maxspan`, found `runs`: `with runs=N` belongs after a stage",
                ))
            }
            _ => return Err(self.unexpected("`maxspan`")),
        }
        if !self.eat(&Tok::Assign) {
            let mut d = self.unexpected("`=` after `maxspan`");
            if self.tok() == &Tok::EqEq {
                d = d.with_hint("write `maxspan=10s`");
            }
            return Err(d);
        }
        let num_span = self.span();
        let n = match self.tok() {
            Tok::Int(n) if *n > 0 => *n as u64,
            Tok::Int(_) => return Err(Diagnostic::error(num_span, "expected a positive maxspan, found `0`")),
            Tok::Float(f) => {
                return Err(Diagnostic::error(
                    num_span,
                    format!("decimal time interval `{f}` is not supported: expected an integer"),
                )
                .with_hint("use a smaller unit, e.g. `1500ms` instead of `1.5s`"))
            }
            _ => return Err(self.unexpected("a time interval such as `10s`")),
        };
        self.bump();
        let unit_span = self.span();
        // The unit must follow the number directly (`10s`); `10 s` is accepted like ES does.
        let unit = match self.tok() {
            Tok::Ident(u) if !KEYWORDS.contains(&u.as_str()) => u.clone(),
            _ => {
                return Err(Diagnostic::error(
                    num_span,
                    format!(
                        "missing time unit in maxspan: expected one of `ms`, `s`, `m`, `h`, `d` after `{n}`, found {}",
                        self.tok().describe()
                    ),
                )
                .with_hint(format!("write `maxspan={n}s` (or ms, m, h, d)")))
            }
        };
        let Some(mult) = time_unit_ns(&unit) else {
            return Err(Diagnostic::error(
                unit_span,
                format!("unknown time unit `{unit}`: expected one of `ms`, `s`, `m`, `h`, `d`"),
            ));
        };
        self.bump();
        let Some(ns) = n.checked_mul(mult) else {
            return Err(Diagnostic::error(
                num_span.to(unit_span),
                "maxspan is too large: expected at most about 292 years",
            ));
        };
        Ok((ns, num_span.to(unit_span)))
    }

    fn term(&mut self, allow_missing: bool) -> PResult<Term> {
        let open = self.span();
        let missing = self.tok() == &Tok::MissingOpen;
        if missing && !allow_missing {
            return Err(Diagnostic::error(
                open,
                "missing-event stages `![ ... ]` are only allowed in sequences: expected `[`",
            ));
        }
        self.bump();
        let filter = self.event_filter()?;
        self.close(Tok::RBracket, if missing { "![" } else { "[" }, open, "`and`, `or` or ")?;
        let mut by = Vec::new();
        let mut by_span = None;
        if self.is_kw("by") {
            let s = self.bump();
            by = self.key_fields()?;
            by_span = Some(s.to(self.prev_span()));
        }
        let mut runs = None;
        if self.is_kw("with") {
            let with = self.bump();
            match self.tok() {
                Tok::Ident(s) if s == "runs" => {
                    self.bump();
                }
                Tok::Ident(s) if s == "maxspan" => {
                    return Err(Diagnostic::error(
                        self.span(),
                        "expected `runs`, found `maxspan`: `with maxspan` belongs right after `sequence [by ...]`",
                    ))
                }
                _ => return Err(self.unexpected("`runs`")),
            }
            if !self.eat(&Tok::Assign) {
                return Err(self.unexpected("`=` after `runs`"));
            }
            let n_span = self.span();
            let n = match self.tok() {
                Tok::Int(n) if *n >= 1 && (*n as u64) <= MAX_RUNS => *n as u64,
                Tok::Int(n) => {
                    return Err(Diagnostic::error(
                        n_span,
                        format!("expected a number of runs between 1 and {MAX_RUNS}, found `{n}`"),
                    ))
                }
                _ => return Err(self.unexpected("a number of runs")),
            };
            self.bump();
            runs = Some((n, with.to(n_span)));
        }
        Ok(Term { missing, filter, by, by_span, runs, span: open.to(self.prev_span()) })
    }

    fn key_fields(&mut self) -> PResult<Vec<KeyField>> {
        let mut keys = vec![self.key_field()?];
        while self.eat(&Tok::Comma) {
            keys.push(self.key_field()?);
        }
        Ok(keys)
    }

    fn key_field(&mut self) -> PResult<KeyField> {
        let start = self.span();
        let optional = self.eat(&Tok::Question);
        match self.field_path()? {
            Some(path) => Ok(KeyField { path, optional, span: start.to(self.prev_span()) }),
            None => Err(self.unexpected("a field name as join key")),
        }
    }

    /// A (possibly dotted, possibly backquoted) field path, or `None` if the next token does not
    /// start one.
    fn field_path(&mut self) -> PResult<Option<String>> {
        let mut path = match self.tok() {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => s.clone(),
            Tok::QuotedIdent(s) => s.clone(),
            _ => return Ok(None),
        };
        self.bump();
        while self.tok() == &Tok::Dot {
            self.bump();
            match self.tok() {
                Tok::Ident(s) => path.push_str(&format!(".{s}")),
                Tok::QuotedIdent(s) => path.push_str(&format!(".{s}")),
                _ => return Err(self.unexpected("a field name after `.`")),
            }
            self.bump();
        }
        // Ident immediately followed by a backquoted part without a dot: a.`b` is written with a dot.
        if let Tok::QuotedIdent(_) = self.tok() {
            return Err(self.unexpected("`.` between field name parts"));
        }
        Ok(Some(path))
    }

    fn event_filter(&mut self) -> PResult<EventFilter> {
        let start = self.span();
        let category = match self.tok() {
            Tok::Ident(s) if s == "any" => None,
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) && !s.contains('.') => Some((s.clone(), start)),
            Tok::Str(s) => Some((s.clone(), start)),
            _ => return Err(self.unexpected("an event category (e.g. `process`, `any`)")),
        };
        self.bump();
        if !self.eat_kw("where") {
            return Err(self.unexpected("`where`"));
        }
        let cond = self.expr()?;
        Ok(EventFilter { category, cond, span: start.to(self.prev_span()) })
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Diagnostic::error(
                self.span(),
                format!("expression nested too deeply: expected at most {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// expr := and (`or` and)*
    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let first = self.and()?;
        if !self.is_kw("or") {
            self.depth -= 1;
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_kw("or") {
            parts.push(self.and()?);
        }
        self.depth -= 1;
        let span = parts[0].span().to(self.prev_span());
        Ok(Expr::Or(parts, span))
    }

    fn and(&mut self) -> PResult<Expr> {
        let first = self.not()?;
        if !self.is_kw("and") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_kw("and") {
            parts.push(self.not()?);
        }
        let span = parts[0].span().to(self.prev_span());
        Ok(Expr::And(parts, span))
    }

    fn not(&mut self) -> PResult<Expr> {
        if self.is_kw("not") {
            let start = self.bump();
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            let span = start.to(inner.span());
            return Ok(Expr::Not(Box::new(inner), span));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> PResult<Expr> {
        let lhs = self.additive()?;
        let op = match self.tok() {
            Tok::EqEq => CmpOp::Eq,
            Tok::NotEq => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Assign => {
                return Err(Diagnostic::error(self.span(), "expected a comparison operator, found `=`")
                    .with_hint("use `==` to compare values"))
            }
            _ => return Ok(lhs),
        };
        self.bump();
        let rhs = self.additive()?;
        if matches!(self.tok(), Tok::EqEq | Tok::NotEq | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge) {
            return Err(Diagnostic::error(
                self.span(),
                format!("expected `and`, `or` or `)`, found {}: comparisons cannot be chained", self.tok().describe()),
            )
            .with_hint("combine comparisons with `and`"));
        }
        let span = lhs.span().to(rhs.span());
        Ok(Expr::Cmp(op, Box::new(lhs), Box::new(rhs), span))
    }

    fn additive(&mut self) -> PResult<Expr> {
        let mut lhs = self.multiplicative()?;
        let depth = self.depth;
        loop {
            let op = match self.tok() {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => {
                    self.depth = depth;
                    return Ok(lhs);
                }
            };
            // Each operator nests the tree one level deeper.
            self.enter()?;
            self.bump();
            let rhs = self.multiplicative()?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Arith(op, Box::new(lhs), Box::new(rhs), span);
        }
    }

    fn multiplicative(&mut self) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        let depth = self.depth;
        loop {
            let op = match self.tok() {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                Tok::Percent => ArithOp::Mod,
                _ => {
                    self.depth = depth;
                    return Ok(lhs);
                }
            };
            self.enter()?;
            self.bump();
            let rhs = self.unary()?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Arith(op, Box::new(lhs), Box::new(rhs), span);
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        match self.tok() {
            Tok::Minus => {
                let start = self.bump();
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                let span = start.to(inner.span());
                Ok(match inner {
                    Expr::Lit(Lit::Int(i), _) => Expr::Lit(Lit::Int(-i), span),
                    Expr::Lit(Lit::Float(f), _) => Expr::Lit(Lit::Float(-f), span),
                    other => Expr::Neg(Box::new(other), span),
                })
            }
            Tok::Plus => {
                self.bump();
                self.enter()?;
                let e = self.unary();
                self.depth -= 1;
                e
            }
            _ => {
                let prim = self.primary()?;
                self.predicate(prim)
            }
        }
    }

    fn predicate(&mut self, lhs: Expr) -> PResult<Expr> {
        let start = lhs.span();
        let negated_in = self.is_kw("not") && matches!(self.tok_at(1), Tok::Ident(s) if s == "in")
            || self.is_kw("not") && matches!(self.tok_at(1), Tok::TildeIdent(s) if s == "in");
        if negated_in {
            self.bump();
        }
        if self.is_kw("in") || self.is_tilde("in") {
            let insensitive = self.is_tilde("in");
            self.bump();
            let open = self.span();
            if !self.eat(&Tok::LParen) {
                return Err(self.unexpected("`(` starting the list after `in`"));
            }
            let mut list = vec![self.expr()?];
            while self.eat(&Tok::Comma) {
                list.push(self.expr()?);
            }
            let close = self.close(Tok::RParen, "(", open, "`,` or ")?;
            return Ok(Expr::In { lhs: Box::new(lhs), list, negated: negated_in, insensitive, span: start.to(close) });
        }
        let op = match self.tok() {
            Tok::Colon => MatchOp::Seq,
            Tok::Ident(s) if s == "like" => MatchOp::Like,
            Tok::TildeIdent(s) if s == "like" => MatchOp::LikeI,
            Tok::Ident(s) if s == "regex" => MatchOp::Regex,
            Tok::TildeIdent(s) if s == "regex" => MatchOp::RegexI,
            Tok::Ident(s) if s == "not" => {
                if let Tok::Ident(w) | Tok::TildeIdent(w) = self.tok_at(1) {
                    if w == "like" || w == "regex" {
                        return Err(Diagnostic::error(
                            self.span(),
                            format!("expected `and`, `or` or a comparison, found `not {w}`"),
                        )
                        .with_hint(format!("write `not FIELD {w} PATTERN`")));
                    }
                }
                return Ok(lhs);
            }
            _ => return Ok(lhs),
        };
        let op_name = self.tok().describe();
        self.bump();
        let mut patterns = Vec::new();
        let end;
        if self.tok() == &Tok::LParen {
            let open = self.bump();
            patterns.push(self.pattern(&op_name)?);
            while self.eat(&Tok::Comma) {
                patterns.push(self.pattern(&op_name)?);
            }
            end = self.close(Tok::RParen, "(", open, "`,` or ")?;
        } else {
            let p = self.pattern(&op_name)?;
            end = p.1;
            patterns.push(p);
        }
        Ok(Expr::Match { lhs: Box::new(lhs), op, patterns, span: start.to(end) })
    }

    /// A constant pattern (ES: `kind=(SEQ | LIKE | ...) constant`); numbers and booleans are
    /// matched as their text.
    fn pattern(&mut self, op: &str) -> PResult<(String, Span)> {
        let text = match self.tok() {
            Tok::Str(s) => s.clone(),
            Tok::Int(i) => i.to_string(),
            Tok::Float(f) => f.to_string(),
            Tok::Ident(w) if w == "true" || w == "false" => w.clone(),
            _ => return Err(self.unexpected(&format!("a string pattern after {op}"))),
        };
        Ok((text, self.bump()))
    }

    fn primary(&mut self) -> PResult<Expr> {
        let start = self.span();
        match self.tok().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Lit(Lit::Str(s), start))
            }
            Tok::Int(i) => {
                self.bump();
                Ok(Expr::Lit(Lit::Int(i), start))
            }
            Tok::Float(f) => {
                self.bump();
                Ok(Expr::Lit(Lit::Float(f), start))
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.close(Tok::RParen, "(", start, "`and`, `or`, a comparison or ")?;
                Ok(e)
            }
            Tok::Question => {
                self.bump();
                match self.field_path()? {
                    Some(path) => Ok(Expr::Field { path, optional: true, span: start.to(self.prev_span()) }),
                    None => Err(self.unexpected("a field name after `?`")),
                }
            }
            Tok::TildeIdent(name) if self.tok_at(1) == &Tok::LParen => self.call(name, true),
            Tok::Ident(name) if self.tok_at(1) == &Tok::LParen && !name.contains('.') => {
                if KEYWORDS.contains(&name.as_str()) {
                    return Err(self.unexpected("an expression"));
                }
                self.call(name, false)
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                self.bump();
                Ok(Expr::Lit(Lit::Bool(w == "true"), start))
            }
            Tok::Ident(w) if w == "null" => {
                self.bump();
                Ok(Expr::Lit(Lit::Null, start))
            }
            Tok::Ident(w) if w == "of" => Err(Diagnostic::error(
                start,
                "lineage queries (`descendant of`, `child of`, `event of`) are not supported by Elasticsearch's EQL",
            )),
            _ => match self.field_path()? {
                Some(path) => {
                    if self.tok() == &Tok::LBracket {
                        return Err(Diagnostic::error(
                            self.span(),
                            "array indexing `field[N]` is not supported: expected an operator",
                        ));
                    }
                    Ok(Expr::Field { path, optional: false, span: start.to(self.prev_span()) })
                }
                None => Err(self.unexpected("an expression")),
            },
        }
    }

    fn call(&mut self, name: String, insensitive: bool) -> PResult<Expr> {
        let name_span = self.bump();
        let open = self.bump();
        let mut args = Vec::new();
        if self.tok() != &Tok::RParen {
            self.enter()?;
            args.push(self.expr()?);
            while self.eat(&Tok::Comma) {
                args.push(self.expr()?);
            }
            self.depth -= 1;
        }
        let close = self.close(Tok::RParen, "(", open, "`,` or ")?;
        Ok(Expr::Call { name, insensitive, args, name_span, span: name_span.to(close) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn parse_str(s: &str) -> PResult<Statement> {
        let (t, d) = lex(s);
        assert!(d.is_empty(), "{d:?}");
        parse(&t)
    }

    #[test]
    fn not_binds_tighter_than_and() {
        let st = parse_str("any where not a == 1 and b == 2").unwrap();
        let QueryKind::Event(f) = st.kind else { panic!("event query expected") };
        assert!(matches!(f.cond, Expr::And(ref l, _) if matches!(l[0], Expr::Not(..))));
    }

    #[test]
    fn sequence_with_keys_maxspan_runs_missing_and_until() {
        let st = parse_str(
            "sequence by a, ?b with maxspan=10s [any where true] by c with runs=2 ![file where x : \"y*\"] by d until [any where true] by e | head 3",
        )
        .unwrap();
        let QueryKind::Sequence { by, maxspan, terms, until } = st.kind else { panic!("sequence expected") };
        assert_eq!(by.len(), 2);
        assert!(by[1].optional);
        assert_eq!(maxspan.map(|m| m.0), Some(10_000_000_000));
        assert_eq!(terms.len(), 2);
        assert_eq!(terms[0].runs.map(|r| r.0), Some(2));
        assert!(terms[1].missing);
        assert!(until.is_some());
        assert_eq!(st.pipes.len(), 1);
    }

    #[test]
    fn assign_instead_of_equals_has_hint() {
        let e = parse_str("process where name = \"x\"").unwrap_err();
        assert_eq!(e.span, Span::new(19, 20));
        assert_eq!(e.hint.as_deref(), Some("use `==` to compare values"));
    }

    #[test]
    fn maxspan_without_unit_is_an_error() {
        let e = parse_str("sequence with maxspan=10 [any where true] [any where true]").unwrap_err();
        assert!(e.message.starts_with("missing time unit"), "{}", e.message);
    }

    #[test]
    fn unclosed_paren_points_at_opener() {
        let e = parse_str("any where (a == 1").unwrap_err();
        assert_eq!(e.span, Span::new(10, 11));
        assert!(e.message.starts_with("unclosed `(`"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let q = format!("any where {}a{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse_str(&q).is_err());
        let q = format!("any where {}a", "not ".repeat(5000));
        assert!(parse_str(&q).is_err());
        let q = format!("any where a{}", " + a".repeat(5000));
        assert!(parse_str(&q).is_err());
        let q = format!("any where a == 1{}", " and a == 1 or a == 2".repeat(5000));
        assert!(parse_str(&q).is_ok());
    }
}
