//! Runtime values of EQL expressions and the coercions between JSON values and literals.
//!
//! Elasticsearch coerces a literal to the mapped type of the field it is compared with; a
//! stream has no mapping, so eqlstream applies this documented rule instead (tested in
//! `tests/integration/eql_semantics.rs`, table "coercion"):
//!
//! | JSON value | literal | comparison |
//! |---|---|---|
//! | string `"x"` | string `"x"` | byte-exact (or case-folded for `~`/`:`) |
//! | number `7` | number `7` / `7.0` | numeric |
//! | number `7` | string `"7"` | numeric if the literal parses as a number, else no match |
//! | string `"7"` | number `7` | numeric if the value parses as a number, else no match |
//! | bool `true` | `true` or string `"true"` | equal |
//! | string `"true"` | `true` | equal |
//! | number / bool | `like`, `:`, `regex`, string functions | on the JSON text of the value (`7`, `true`) |
//!
//! (A keyword field indexes JSON numbers and booleans as their text, a numeric field parses
//! numeric strings, so these are the outcomes ES gives under the matching mapping.)

use std::cmp::Ordering;
use std::io::Write;

use crate::event::Scalar;

/// A value during evaluation: a JSON scalar, a literal, or a function result.
#[derive(Clone, Debug, PartialEq)]
pub enum Val<'a> {
    /// Missing field or null result.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    I64(i64),
    /// Large unsigned integer.
    U64(u64),
    /// Float.
    F64(f64),
    /// Borrowed string (from the event or the query).
    Str(&'a str),
    /// String made by a function (`concat`, `string`, ...).
    Owned(String),
}

impl<'a> From<Scalar<'a>> for Val<'a> {
    fn from(s: Scalar<'a>) -> Self {
        match s {
            Scalar::Str(s) => Val::Str(s),
            Scalar::I64(i) => Val::I64(i),
            Scalar::U64(u) => Val::U64(u),
            Scalar::F64(f) => Val::F64(f),
            Scalar::Bool(b) => Val::Bool(b),
        }
    }
}

/// A number for comparisons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// Exact integer.
    I(i64),
    /// Exact large unsigned.
    U(u64),
    /// Float.
    F(f64),
}

impl Num {
    /// As a float (lossy for large integers).
    pub fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::U(u) => u as f64,
            Num::F(f) => f,
        }
    }

    /// Numeric order; `None` for NaN.
    pub fn num_cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::I(a), Num::I(b)) => Some(a.cmp(&b)),
            (Num::U(a), Num::U(b)) => Some(a.cmp(&b)),
            (Num::I(a), Num::U(b)) => Some(if a < 0 { Ordering::Less } else { (a as u64).cmp(&b) }),
            (Num::U(a), Num::I(b)) => Some(if b < 0 { Ordering::Greater } else { a.cmp(&(b as u64)) }),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    /// Numeric equality.
    pub fn num_eq(self, other: Num) -> bool {
        self.num_cmp(other) == Some(Ordering::Equal)
    }
}

/// Parses a string as a number the way a numeric mapping would (integer, then float).
pub fn parse_num(s: &str) -> Option<Num> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Num::I(i));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(Num::U(u));
    }
    match t.parse::<f64>() {
        // Reject "inf"/"nan" spellings that Rust accepts but JSON and ES do not.
        Ok(f) if f.is_finite() => Some(Num::F(f)),
        _ => None,
    }
}

/// A small stack buffer to render a number or boolean as text without allocating.
pub struct TextBuf {
    buf: [u8; 40],
    len: usize,
}

impl TextBuf {
    /// Empty buffer.
    pub fn new() -> Self {
        TextBuf { buf: [0; 40], len: 0 }
    }

    /// The text of a non-string value (`7`, `1.5`, `true`); `None` for `Null`.
    pub fn text<'b>(&'b mut self, v: &'b Val<'_>) -> Option<&'b str> {
        let mut cur = std::io::Cursor::new(&mut self.buf[..]);
        let ok = match v {
            Val::Str(s) => return Some(s),
            Val::Owned(s) => return Some(s),
            Val::Null => return None,
            Val::Bool(b) => write!(cur, "{b}").is_ok(),
            Val::I64(i) => write!(cur, "{i}").is_ok(),
            Val::U64(u) => write!(cur, "{u}").is_ok(),
            Val::F64(f) => write!(cur, "{f:?}").is_ok(),
        };
        if !ok {
            return None;
        }
        self.len = cur.position() as usize;
        std::str::from_utf8(&self.buf[..self.len]).ok()
    }
}

impl Default for TextBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Val<'a> {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Owned(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one or a string that parses as one.
    pub fn as_num(&self) -> Option<Num> {
        match self {
            Val::I64(i) => Some(Num::I(*i)),
            Val::U64(u) => Some(Num::U(*u)),
            Val::F64(f) => Some(Num::F(*f)),
            Val::Str(s) => parse_num(s),
            Val::Owned(s) => parse_num(s),
            _ => None,
        }
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// Equality with the coercions of the module table (both sides may be any kind).
    pub fn loose_eq(&self, other: &Val<'_>) -> bool {
        match (self, other) {
            (Val::Null, _) | (_, Val::Null) => false,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Bool(b), o) | (o, Val::Bool(b)) => o.as_str().is_some_and(|s| s == if *b { "true" } else { "false" }),
            (a, b) => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => x == y,
                _ => match (a.as_num(), b.as_num()) {
                    (Some(x), Some(y)) => x.num_eq(y),
                    _ => false,
                },
            },
        }
    }

    /// Order with the coercions of the module table; `None` when not comparable.
    pub fn loose_cmp(&self, other: &Val<'_>) -> Option<Ordering> {
        match (self, other) {
            (Val::Null, _) | (_, Val::Null) => None,
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Bool(_), _) | (_, Val::Bool(_)) => None,
            (a, b) => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => Some(x.cmp(y)),
                _ => a.as_num()?.num_cmp(b.as_num()?),
            },
        }
    }
}
