//! EQL built-in functions (Elasticsearch's `EqlFunctionRegistry`), one fn each.
//!
//! Names are matched case-insensitively (the prebuilt rules write both `cidrMatch` and
//! `cidrmatch`); `name~(...)` selects the case-insensitive variant where ES has one.
//! Functions run as scripts in ES, over every value of multi-valued fields ("any value",
//! eql-semantics.md 6.3/6.4); the evaluator feeds them one combination of argument values at
//! a time. A null argument gives a null result (and a null result never satisfies a predicate).
//!
//! Indices (`substring`, `indexOf`, `length`) count Unicode scalar values; Java counts UTF-16
//! units, so results differ only for characters outside the Basic Multilingual Plane.
//! Only `concat`, `string`, `between` and case-insensitive `between`/`substring` results
//! allocate; everything else borrows.

use std::net::IpAddr;

use super::value::{Num, TextBuf, Val};
use super::wildcard::{eq_ci, fold_char};

/// A built-in function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// `add(a, b)`
    Add,
    /// `between(source, left, right[, greedy])`
    Between,
    /// `cidrMatch(ip, cidr, ...)`
    CidrMatch,
    /// `concat(a, ...)`
    Concat,
    /// `divide(a, b)`
    Divide,
    /// `endsWith(source, suffix)`
    EndsWith,
    /// `indexOf(source, sub[, start])`
    IndexOf,
    /// `length(source)`
    Length,
    /// `modulo(a, b)`
    Modulo,
    /// `multiply(a, b)`
    Multiply,
    /// `number(source[, base])`
    Number,
    /// `startsWith(source, prefix)`
    StartsWith,
    /// `string(value)`
    String,
    /// `stringContains(source, sub)`
    StringContains,
    /// `substring(source, start[, end])`
    Substring,
    /// `subtract(a, b)`
    Subtract,
}

/// What a function returns (for "expected a condition" checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    /// A boolean.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
}

/// Static description of a function.
#[derive(Clone, Copy, Debug)]
pub struct FuncInfo {
    /// The function.
    pub func: Func,
    /// Canonical name, as documented.
    pub name: &'static str,
    /// Minimum number of arguments.
    pub min_args: usize,
    /// Maximum number of arguments (`usize::MAX` = variadic).
    pub max_args: usize,
    /// Whether `name~` exists.
    pub has_insensitive: bool,
    /// Result type.
    pub returns: Returns,
}

const fn info(
    func: Func,
    name: &'static str,
    min_args: usize,
    max_args: usize,
    has_insensitive: bool,
    returns: Returns,
) -> FuncInfo {
    FuncInfo { func, name, min_args, max_args, has_insensitive, returns }
}

/// Every function, sorted by name.
pub const FUNCTIONS: &[FuncInfo] = &[
    info(Func::Add, "add", 2, 2, false, Returns::Number),
    info(Func::Between, "between", 3, 4, true, Returns::String),
    info(Func::CidrMatch, "cidrMatch", 2, usize::MAX, false, Returns::Bool),
    info(Func::Concat, "concat", 1, usize::MAX, false, Returns::String),
    info(Func::Divide, "divide", 2, 2, false, Returns::Number),
    info(Func::EndsWith, "endsWith", 2, 2, true, Returns::Bool),
    info(Func::IndexOf, "indexOf", 2, 3, true, Returns::Number),
    info(Func::Length, "length", 1, 1, false, Returns::Number),
    info(Func::Modulo, "modulo", 2, 2, false, Returns::Number),
    info(Func::Multiply, "multiply", 2, 2, false, Returns::Number),
    info(Func::Number, "number", 1, 2, false, Returns::Number),
    info(Func::StartsWith, "startsWith", 2, 2, true, Returns::Bool),
    info(Func::String, "string", 1, 1, false, Returns::String),
    info(Func::StringContains, "stringContains", 2, 2, true, Returns::Bool),
    info(Func::Substring, "substring", 2, 3, false, Returns::String),
    info(Func::Subtract, "subtract", 2, 2, false, Returns::Number),
];

/// Looks a function up by name, case-insensitively.
pub fn lookup(name: &str) -> Option<&'static FuncInfo> {
    FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// The closest known function name, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    FUNCTIONS
        .iter()
        .map(|f| (edit_distance(&lower, &f.name.to_ascii_lowercase()), f.name))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A CIDR block, parsed at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `v6::/n`, or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses match IPv4 blocks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.addr.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn num_val(n: Num) -> Val<'static> {
    match n {
        Num::I(i) => Val::I64(i),
        Num::U(u) => Val::U64(u),
        Num::F(f) => Val::F64(f),
    }
}

/// Integer or float arithmetic as Java does it (integer division truncates; overflow and
/// division by zero give null).
pub fn arith(op: super::ast::ArithOp, a: &Val<'_>, b: &Val<'_>) -> Val<'static> {
    use super::ast::ArithOp::*;
    let (Some(x), Some(y)) = (a.as_num(), b.as_num()) else {
        return Val::Null;
    };
    if let (Num::I(x), Num::I(y)) = (x, y) {
        let r = match op {
            Add => x.checked_add(y),
            Sub => x.checked_sub(y),
            Mul => x.checked_mul(y),
            Div => x.checked_div(y),
            Mod => x.checked_rem(y),
        };
        return r.map_or(Val::Null, Val::I64);
    }
    let (x, y) = (x.as_f64(), y.as_f64());
    let r = match op {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => x / y,
        Mod => x % y,
    };
    if r.is_finite() {
        Val::F64(r)
    } else {
        Val::Null
    }
}

fn char_index_to_byte(s: &str, ci: usize) -> usize {
    s.char_indices().nth(ci).map_or(s.len(), |(b, _)| b)
}

fn find_ci_chars(hay: &str, needle: &str) -> Option<usize> {
    // Returns the byte offset of the first case-insensitive occurrence.
    if needle.is_empty() {
        return Some(0);
    }
    for (i, _) in hay.char_indices() {
        let mut h = hay[i..].chars().map(fold_char);
        let mut ok = true;
        for c in needle.chars().map(fold_char) {
            if h.next() != Some(c) {
                ok = false;
                break;
            }
        }
        if ok {
            return Some(i);
        }
    }
    None
}

fn find(hay: &str, needle: &str, ci: bool) -> Option<usize> {
    if ci {
        find_ci_chars(hay, needle)
    } else {
        hay.find(needle)
    }
}

fn rfind(hay: &str, needle: &str, ci: bool) -> Option<usize> {
    if !ci {
        return hay.rfind(needle);
    }
    let mut last = None;
    let mut from = 0;
    while from <= hay.len() {
        match find_ci_chars(&hay[from..], needle) {
            Some(i) => {
                last = Some(from + i);
                let step = hay[from + i..].chars().next().map_or(1, char::len_utf8);
                from += i + step;
            }
            None => break,
        }
    }
    last
}

/// Calls `f` on one combination of argument values.
///
/// `cidrs` are the precompiled blocks for `cidrMatch` (its arguments after the first).
pub fn call<'a>(f: Func, ci: bool, args: &[Val<'a>], cidrs: &[Cidr]) -> Val<'a> {
    let mut b0 = TextBuf::new();
    let mut b1 = TextBuf::new();
    let text =
        |buf: &mut TextBuf, i: usize| -> Option<String> { args.get(i).and_then(|v| buf.text(v).map(str::to_string)) };
    match f {
        Func::Add => arith2(super::ast::ArithOp::Add, args),
        Func::Subtract => arith2(super::ast::ArithOp::Sub, args),
        Func::Multiply => arith2(super::ast::ArithOp::Mul, args),
        Func::Divide => arith2(super::ast::ArithOp::Div, args),
        Func::Modulo => arith2(super::ast::ArithOp::Mod, args),
        Func::StartsWith | Func::EndsWith | Func::StringContains => {
            let (Some(v0), Some(v1)) = (args.first(), args.get(1)) else {
                return Val::Null;
            };
            let (Some(s), Some(p)) = (b0.text(v0), b1.text(v1)) else {
                return Val::Null;
            };
            let r = match (f, ci) {
                (Func::StartsWith, false) => s.starts_with(p),
                (Func::EndsWith, false) => s.ends_with(p),
                // ES docs: `stringContains(x, "")` is false.
                (Func::StringContains, _) if p.is_empty() => false,
                (Func::StringContains, false) => s.contains(p),
                (Func::StartsWith, true) => {
                    let n = p.chars().count();
                    let end = char_index_to_byte(s, n);
                    s.chars().count() >= n && eq_ci(&s[..end], &super::wildcard::fold_str(p))
                }
                (Func::EndsWith, true) => {
                    let n = p.chars().count();
                    let total = s.chars().count();
                    total >= n && eq_ci(&s[char_index_to_byte(s, total - n)..], &super::wildcard::fold_str(p))
                }
                _ => find_ci_chars(s, p).is_some(),
            };
            Val::Bool(r)
        }
        Func::Length => match args.first().and_then(|v| b0.text(v)) {
            Some(s) => Val::I64(s.chars().count() as i64),
            None => Val::Null,
        },
        Func::String => match text(&mut b0, 0) {
            Some(s) => Val::Owned(s),
            None => Val::Null,
        },
        Func::Concat => {
            let mut out = String::new();
            for v in args {
                let mut b = TextBuf::new();
                match b.text(v) {
                    Some(s) => out.push_str(s),
                    None => return Val::Null,
                }
            }
            Val::Owned(out)
        }
        Func::Number => {
            let Some(s) = args.first().and_then(|v| b0.text(v)) else {
                return Val::Null;
            };
            let base = match args.get(1) {
                None | Some(Val::Null) => 10,
                Some(v) => match v.as_num() {
                    Some(Num::I(b)) if (2..=36).contains(&b) => b as u32,
                    _ => return Val::Null,
                },
            };
            let t = s.trim();
            let (neg, unsigned) = match t.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, t.strip_prefix('+').unwrap_or(t)),
            };
            // ES docs: strings beginning with "0x" are hexadecimal even when base is null.
            let base = if base == 10 && (unsigned.starts_with("0x") || unsigned.starts_with("0X")) { 16 } else { base };
            if base == 10 {
                return super::value::parse_num(t).map_or(Val::Null, num_val);
            }
            let t = unsigned;
            let t = if base == 16 { t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t) } else { t };
            match i64::from_str_radix(t, base) {
                Ok(i) => Val::I64(if neg { -i } else { i }),
                Err(_) => Val::Null,
            }
        }
        Func::CidrMatch => {
            let Some(s) = args.first().and_then(|v| b0.text(v)) else {
                return Val::Null;
            };
            match s.trim().parse::<IpAddr>() {
                Ok(ip) => Val::Bool(cidrs.iter().any(|c| c.contains(ip))),
                Err(_) => Val::Bool(false),
            }
        }
        Func::Substring => {
            let Some(s) = args.first() else {
                return Val::Null;
            };
            let (Some(st), end) = (args.get(1).and_then(Val::as_num), args.get(2)) else {
                return Val::Null;
            };
            let end = match end {
                None | Some(Val::Null) => None,
                Some(v) => match v.as_num() {
                    Some(n) => Some(n),
                    None => return Val::Null,
                },
            };
            let idx = |n: Num, len: i64| -> i64 {
                let n = n.as_f64() as i64;
                if n < 0 {
                    (len + n).max(0)
                } else {
                    n.min(len)
                }
            };
            match s {
                Val::Str(s) => {
                    let s: &'a str = s;
                    let len = s.chars().count() as i64;
                    let a = idx(st, len);
                    let b = end.map_or(len, |e| idx(e, len));
                    if a >= b {
                        return Val::Str("");
                    }
                    let (ab, bb) = (char_index_to_byte(s, a as usize), char_index_to_byte(s, b as usize));
                    Val::Str(&s[ab..bb])
                }
                other => {
                    let Some(s) = b0.text(other) else {
                        return Val::Null;
                    };
                    let len = s.chars().count() as i64;
                    let a = idx(st, len);
                    let b = end.map_or(len, |e| idx(e, len));
                    if a >= b {
                        return Val::Str("");
                    }
                    Val::Owned(s.chars().skip(a as usize).take((b - a) as usize).collect())
                }
            }
        }
        Func::IndexOf => {
            let (Some(v0), Some(v1)) = (args.first(), args.get(1)) else {
                return Val::Null;
            };
            let (Some(s), Some(sub)) = (b0.text(v0), b1.text(v1)) else {
                return Val::Null;
            };
            let start = match args.get(2) {
                None => 0,
                Some(Val::Null) => return Val::Null,
                Some(v) => match v.as_num() {
                    Some(n) => n.as_f64().max(0.0) as usize,
                    None => return Val::Null,
                },
            };
            let from = char_index_to_byte(s, start);
            if from > s.len() || (from == s.len() && start > s.chars().count()) {
                return Val::Null;
            }
            match find(&s[from..], sub, ci) {
                Some(b) => Val::I64((start + s[from..from + b].chars().count()) as i64),
                None => Val::Null,
            }
        }
        Func::Between => {
            let (Some(v0), Some(v1), Some(v2)) = (args.first(), args.get(1), args.get(2)) else {
                return Val::Null;
            };
            let mut b2 = TextBuf::new();
            let (Some(s), Some(l), Some(r)) = (b0.text(v0), b1.text(v1), b2.text(v2)) else {
                return Val::Null;
            };
            let greedy = matches!(args.get(3), Some(Val::Bool(true)));
            let Some(li) = find(s, l, ci) else {
                return Val::Str("");
            };
            let after = li + l.len();
            let rest = &s[after..];
            let ri = if greedy { rfind(rest, r, ci) } else { find(rest, r, ci) };
            match ri {
                Some(ri) => Val::Owned(rest[..ri].to_string()),
                None => Val::Str(""),
            }
        }
    }
}

fn arith2<'a>(op: super::ast::ArithOp, args: &[Val<'a>]) -> Val<'a> {
    match (args.first(), args.get(1)) {
        (Some(a), Some(b)) => arith(op, a, b),
        _ => Val::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(f: Func, ci: bool, args: &[Val<'a>]) -> Val<'a> {
        call(f, ci, args, &[])
    }

    #[test]
    fn lookup_is_case_insensitive_and_suggests() {
        assert_eq!(lookup("cidrmatch").map(|f| f.func), Some(Func::CidrMatch));
        assert_eq!(lookup("STARTSWITH").map(|f| f.func), Some(Func::StartsWith));
        assert_eq!(suggest("startWith"), Some("startsWith"));
        assert_eq!(suggest("frobnicate"), None);
    }

    #[test]
    fn string_predicates_and_their_insensitive_variants() {
        assert_eq!(c(Func::StartsWith, false, &[Val::Str("Curl"), Val::Str("cu")]), Val::Bool(false));
        assert_eq!(c(Func::StartsWith, true, &[Val::Str("Curl"), Val::Str("cU")]), Val::Bool(true));
        assert_eq!(c(Func::EndsWith, true, &[Val::Str("A.EXE"), Val::Str(".exe")]), Val::Bool(true));
        assert_eq!(c(Func::StringContains, false, &[Val::Str("abc"), Val::Str("b")]), Val::Bool(true));
        assert_eq!(c(Func::StringContains, true, &[Val::Str("aBc"), Val::Str("bC")]), Val::Bool(true));
        assert_eq!(c(Func::StartsWith, false, &[Val::Null, Val::Str("a")]), Val::Null);
    }

    #[test]
    fn substring_uses_python_slice_semantics() {
        assert_eq!(c(Func::Substring, false, &[Val::Str("hello"), Val::I64(1), Val::I64(3)]), Val::Str("el"));
        assert_eq!(c(Func::Substring, false, &[Val::Str("hello"), Val::I64(-3)]), Val::Str("llo"));
        assert_eq!(c(Func::Substring, false, &[Val::Str("hello"), Val::I64(4), Val::I64(2)]), Val::Str(""));
        assert_eq!(c(Func::Substring, false, &[Val::Str("host$"), Val::I64(-1)]), Val::Str("$"));
    }

    #[test]
    fn index_of_between_concat_length_number() {
        assert_eq!(c(Func::IndexOf, false, &[Val::Str("abcabc"), Val::Str("c"), Val::I64(3)]), Val::I64(5));
        assert_eq!(c(Func::IndexOf, false, &[Val::Str("abc"), Val::Str("x")]), Val::Null);
        assert_eq!(
            c(Func::Between, false, &[Val::Str("a[b]c]"), Val::Str("["), Val::Str("]")]),
            Val::Owned("b".into())
        );
        assert_eq!(
            c(Func::Between, false, &[Val::Str("a[b]c]"), Val::Str("["), Val::Str("]"), Val::Bool(true)]),
            Val::Owned("b]c".into())
        );
        assert_eq!(c(Func::Concat, false, &[Val::Str("a"), Val::I64(1)]), Val::Owned("a1".into()));
        assert_eq!(c(Func::Concat, false, &[Val::Str("a"), Val::Null]), Val::Null);
        assert_eq!(c(Func::Length, false, &[Val::Str("héllo")]), Val::I64(5));
        assert_eq!(c(Func::Number, false, &[Val::Str("0x1F"), Val::I64(16)]), Val::I64(31));
        assert_eq!(c(Func::Number, false, &[Val::Str("2.5")]), Val::F64(2.5));
        assert_eq!(c(Func::Number, false, &[Val::Str("0xdeadbeef"), Val::Null]), Val::I64(3735928559));
        assert_eq!(c(Func::Number, false, &[Val::Str("  +1337 ")]), Val::I64(1337));
        assert_eq!(c(Func::StringContains, false, &[Val::Str("abc"), Val::Str("")]), Val::Bool(false));
        assert_eq!(c(Func::IndexOf, false, &[Val::Str("a.b"), Val::Str("."), Val::Null]), Val::Null);
        assert_eq!(
            c(Func::IndexOf, false, &[Val::Str("subdomain.example.com"), Val::Str(""), Val::I64(10)]),
            Val::I64(10)
        );
        assert_eq!(c(Func::IndexOf, true, &[Val::Str("subdomain.example.com"), Val::Str("D")]), Val::I64(3));
        assert_eq!(c(Func::Modulo, false, &[Val::I64(-10), Val::I64(-6)]), Val::I64(-4));
        assert_eq!(c(Func::Divide, false, &[Val::I64(7), Val::I64(2)]), Val::I64(3));
        assert_eq!(c(Func::Divide, false, &[Val::I64(7), Val::I64(0)]), Val::Null);
    }

    #[test]
    fn cidr_match_v4_v6_and_mapped() {
        let nets = [Cidr::parse("10.0.0.0/8").expect("valid"), Cidr::parse("fe80::/10").expect("valid")];
        let t = |ip: &'static str| call(Func::CidrMatch, false, &[Val::Str(ip)], &nets);
        assert_eq!(t("10.1.2.3"), Val::Bool(true));
        assert_eq!(t("11.1.2.3"), Val::Bool(false));
        assert_eq!(t("fe80::1"), Val::Bool(true));
        assert_eq!(t("::ffff:10.0.0.1"), Val::Bool(true));
        assert_eq!(t("not an ip"), Val::Bool(false));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("::1").is_some());
    }
}
