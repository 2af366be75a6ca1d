//! The EQL front end, Elasticsearch's dialect: text -> tokens -> syntax tree -> compiled
//! [`Query`] that evaluates on an [`Event`](crate::event::Event) without allocating.
//!
//! Stage map:
//!
//! | module | job |
//! |---|---|
//! | `lexer` | `&str` -> tokens with byte spans; never panics |
//! | `parser` | tokens -> `ast`; precedence table in one place |
//! | `ast` | plain data, a span on every node |
//! | `compile` | ast -> `Query`: fields interned, sets, precompiled patterns, runs expanded |
//! | `eval` | `Stage::matches` / `Stage::keys` on an event (eql-semantics.md 4, 5, 6) |
//! | `require` | what every matching event must contain: dispatch terms, prefilter literals |
//! | `func` | built-in functions |
//! | `lucene` | `regex` patterns: Lucene syntax -> `regex` crate |
//! | `wildcard` | `like` / `:` pattern matcher |
//! | `value` | runtime values and the number/string/bool coercion table |
//! | `diag` | spans, diagnostics and their `FILE:LINE:COL` rendering |
//!
//! Everything returns data; nothing here prints.
//!
//! Where a stream cannot do exactly what Elasticsearch does, the choice is documented where it
//! is made:
//!
//! * number/string/bool coercion without a mapping: `value.rs` (table test in
//!   `tests/integration/eql_semantics.rs`);
//! * `regex` (Lucene syntax on the `regex` crate): [`lucene::lucene_to_regex`];
//! * case folding of `~` and `:`: `wildcard.rs`; function indices count Unicode scalar values:
//!   `func.rs`;
//! * duplicate JSON keys and dotted/nested merging: `event.rs`;
//! * limits: expression depth [`parser::MAX_DEPTH`], script combinations
//!   [`eval::MAX_COMBINATIONS`];
//! * not modelled: keyword `ignore_above` (eql-semantics.md 6.5) and the mapped type of join
//!   keys (a JSON `"0"` and `0` are different keys here; ES would compare mapped values).

pub(crate) mod ast;
pub mod compile;
pub mod diag;
pub(crate) mod eval;
pub(crate) mod func;
pub(crate) mod lexer;
pub(crate) mod lucene;
pub(crate) mod parser;
pub mod require;
pub(crate) mod value;
pub mod wildcard;

pub use compile::{CompileOptions, KeySpec, Query, Stage};
pub use diag::{Diagnostic, Severity, Span};
pub use require::{RawLiteral, Term};

use crate::event::FieldTable;

/// A compiled query plus its warnings (`| head` ignored in streaming, ...).
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The query.
    pub query: Query,
    /// Non-fatal diagnostics.
    pub warnings: Vec<Diagnostic>,
}

/// Parses `query` into a syntax tree; spans are byte ranges into `query`.
pub fn parse(query: &str) -> Result<ast::Statement, Vec<Diagnostic>> {
    let (tokens, lex_errors) = lexer::lex(query);
    if !lex_errors.is_empty() {
        return Err(lex_errors);
    }
    parser::parse(&tokens).map_err(|d| vec![d])
}

/// Compiles `query` with the default options; spans are byte ranges into `query`.
pub fn compile(query: &str, fields: &mut FieldTable) -> Result<Compiled, Vec<Diagnostic>> {
    compile_with(query, fields, &CompileOptions::default())
}

/// Compiles `query` with `opts`; spans are byte ranges into `query`.
///
/// Every field the query references is interned into `fields` (a query that fails to compile
/// may leave some interned too; unused ids are harmless).
pub fn compile_with(query: &str, fields: &mut FieldTable, opts: &CompileOptions) -> Result<Compiled, Vec<Diagnostic>> {
    let st = parse(query)?;
    let out = compile::compile_statement(&st, fields, opts)?;
    Ok(Compiled { query: out.query, warnings: out.warnings })
}
