//! Precompiled `like` / `like~` / `:` patterns (eql-semantics.md section 6.2).
//!
//! `*` matches any run of characters (including `/` and the empty string), `?` exactly one
//! character, everything else is literal, and the pattern must match the whole value. EQL has
//! no escape for a literal `*` or `?` (ES `StringUtils.toLikePattern`). Case-insensitive
//! patterns are folded once at compile time; values are compared with a per-character fold,
//! so matching never allocates.
//!
//! Fast paths: exact, prefix (`p*`), suffix (`*s`), contains (`*c*`) and `*`-only patterns
//! (segments searched left to right with `memchr::memmem`). Patterns with `?`, or
//! case-insensitive patterns with non-ASCII letters, use a character-wise matcher.
//!
//! Case folding: one character at a time with `char::to_lowercase` when that gives a single
//! character (Lucene's `case_insensitive` compares code point by code point as well). ASCII
//! patterns compare bytes with `eq_ignore_ascii_case`, which differs from full Unicode folding
//! only for the few non-ASCII characters that lowercase to ASCII (e.g. the Kelvin sign).

use hashbrown::HashSet;
use memchr::memmem;

/// One compiled pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    kind: Kind,
    ci: bool,
    source: Box<str>,
}

#[derive(Clone, Debug)]
enum Kind {
    /// No wildcard: whole value equals.
    Exact(Box<str>),
    /// `*` alone.
    Any,
    /// `p*`
    Prefix(Box<str>),
    /// `*s`
    Suffix(Box<str>),
    /// `*c*`
    Contains(Box<str>, Box<memmem::Finder<'static>>),
    /// `a*b*c` (only `*`): first segment anchored at the start unless empty, last at the end.
    Segments(Vec<Box<str>>),
    /// Anything with `?`, or non-ASCII case-insensitive.
    Chars(Vec<PTok>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PTok {
    Star,
    One,
    Char(char),
}

/// Lower-cases one character when that gives exactly one character (else keeps it).
#[inline]
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Folds a whole string the way [`fold_char`] does (for literals, at compile time).
pub fn fold_str(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

/// Case-insensitive equality without allocating.
#[inline]
pub fn eq_ci(a: &str, folded: &str) -> bool {
    if a.is_ascii() && folded.is_ascii() {
        return a.eq_ignore_ascii_case(folded);
    }
    let mut x = a.chars().map(fold_char);
    let mut y = folded.chars();
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if p == q => {}
            _ => return false,
        }
    }
}

fn starts_with_ci(v: &str, p: &str) -> bool {
    v.len() >= p.len() && v.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
}

fn ends_with_ci(v: &str, p: &str) -> bool {
    v.len() >= p.len() && v.as_bytes()[v.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes())
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

impl Pattern {
    /// Compiles `pattern`; `ci` for `like~` and `:`.
    pub fn new(pattern: &str, ci: bool) -> Pattern {
        let source: Box<str> = pattern.into();
        let p: String = if ci { fold_str(pattern) } else { pattern.to_string() };
        let has_q = p.contains('?');
        let unicode_ci = ci && !p.is_ascii();
        let kind = if has_q || unicode_ci {
            if !p.contains(['*', '?']) {
                Kind::Exact(p.into())
            } else {
                Kind::Chars(
                    p.chars()
                        .map(|c| match c {
                            '*' => PTok::Star,
                            '?' => PTok::One,
                            c => PTok::Char(c),
                        })
                        .collect(),
                )
            }
        } else {
            let stars = p.matches('*').count();
            let inner = p.trim_matches('*');
            if stars == 0 {
                Kind::Exact(p.into())
            } else if inner.is_empty() {
                Kind::Any
            } else if !inner.contains('*') && stars == 1 && p.ends_with('*') {
                Kind::Prefix(inner.into())
            } else if !inner.contains('*') && stars == 1 && p.starts_with('*') {
                Kind::Suffix(inner.into())
            } else if !inner.contains('*') && stars == 2 && p.starts_with('*') && p.ends_with('*') {
                Kind::Contains(inner.into(), Box::new(memmem::Finder::new(inner.as_bytes()).into_owned()))
            } else {
                Kind::Segments(p.split('*').map(Box::from).collect())
            }
        };
        Pattern { kind, ci, source }
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `v` matches.
    pub fn matches(&self, v: &str) -> bool {
        let ci = self.ci;
        match &self.kind {
            Kind::Exact(p) => {
                if ci {
                    eq_ci(v, p)
                } else {
                    v == &**p
                }
            }
            Kind::Any => true,
            Kind::Prefix(p) => {
                if ci {
                    starts_with_ci(v, p)
                } else {
                    v.starts_with(&**p)
                }
            }
            Kind::Suffix(p) => {
                if ci {
                    ends_with_ci(v, p)
                } else {
                    v.ends_with(&**p)
                }
            }
            Kind::Contains(p, finder) => {
                if ci {
                    find_ci(v.as_bytes(), p.as_bytes()).is_some()
                } else {
                    finder.find(v.as_bytes()).is_some()
                }
            }
            Kind::Segments(segs) => segments_match(segs, v.as_bytes(), ci),
            Kind::Chars(toks) => chars_match(toks, v, ci),
        }
    }
}

fn segments_match(segs: &[Box<str>], v: &[u8], ci: bool) -> bool {
    // segs has at least 2 entries (there is at least one `*`).
    let (first, rest) = match segs.split_first() {
        Some(x) => x,
        None => return v.is_empty(),
    };
    let (last, middle) = match rest.split_last() {
        Some(x) => x,
        None => return false,
    };
    let (first, last) = (first.as_bytes(), last.as_bytes());
    if v.len() < first.len() + last.len() {
        return false;
    }
    let eq = |a: &[u8], b: &[u8]| {
        if ci {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    if !eq(&v[..first.len()], first) || !eq(&v[v.len() - last.len()..], last) {
        return false;
    }
    let mut hay = &v[first.len()..v.len() - last.len()];
    for m in middle {
        let m = m.as_bytes();
        let found = if ci { find_ci(hay, m) } else { memmem::find(hay, m) };
        match found {
            Some(i) => hay = &hay[i + m.len()..],
            None => return false,
        }
    }
    true
}

fn chars_match(p: &[PTok], v: &str, ci: bool) -> bool {
    let vb = v.as_bytes();
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    let next_char = |i: usize| v[i..].chars().next().map(|c| (c, c.len_utf8()));
    loop {
        if pi < p.len() {
            match p[pi] {
                PTok::Star => {
                    star = Some((pi + 1, vi));
                    pi += 1;
                    continue;
                }
                PTok::One => {
                    if let Some((_, l)) = next_char(vi) {
                        vi += l;
                        pi += 1;
                        continue;
                    }
                }
                PTok::Char(c) => {
                    if let Some((vc, l)) = next_char(vi) {
                        let vc = if ci { fold_char(vc) } else { vc };
                        if vc == c {
                            vi += l;
                            pi += 1;
                            continue;
                        }
                    }
                }
            }
        } else if vi == vb.len() {
            return true;
        }
        match star {
            Some((sp, sv)) => match next_char(sv) {
                Some((_, l)) => {
                    star = Some((sp, sv + l));
                    pi = sp;
                    vi = sv + l;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// Values longer than this are folded and looked up one comparison at a time instead of
/// through the hash set (they would not fit the stack buffer).
const FOLD_BUF: usize = 256;

/// A set of case-folded literals with case-insensitive lookup that does not allocate: ASCII
/// values are folded into a stack buffer and hashed; others compare one by one.
#[derive(Clone, Debug, Default)]
pub struct CiSet {
    ascii: HashSet<Box<str>>,
    other: Vec<Box<str>>,
}

impl CiSet {
    /// Adds a literal (folded here).
    pub fn insert(&mut self, literal: &str) {
        let f = fold_str(literal);
        if f.is_ascii() {
            self.ascii.insert(f.into());
        } else if !self.other.iter().any(|o| **o == *f) {
            self.other.push(f.into());
        }
    }

    /// Number of literals.
    pub fn len(&self) -> usize {
        self.ascii.len() + self.other.len()
    }

    /// The folded literals, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ascii.iter().chain(self.other.iter()).map(|s| &**s)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `v` equals a literal, ignoring case.
    pub fn contains(&self, v: &str) -> bool {
        if v.is_ascii() {
            if self.ascii.is_empty() {
                return false;
            }
            if v.len() <= FOLD_BUF {
                let mut buf = [0u8; FOLD_BUF];
                let b = &mut buf[..v.len()];
                b.copy_from_slice(v.as_bytes());
                b.make_ascii_lowercase();
                // ASCII in, ASCII out: always valid UTF-8.
                return std::str::from_utf8(b).is_ok_and(|k| self.ascii.contains(k));
            }
            return self.ascii.iter().any(|l| v.eq_ignore_ascii_case(l));
        }
        // A non-ASCII value can only equal a non-ASCII folded literal.
        self.other.iter().any(|l| eq_ci(v, l))
    }
}

/// The patterns of one `like` / `like~` / `:` predicate: literal patterns (no `*`/`?`) in a
/// hash set, the others matched one by one.
#[derive(Clone, Debug)]
pub struct PatternSet {
    exact: HashSet<Box<str>>,
    exact_ci: CiSet,
    patterns: Vec<Pattern>,
    ci: bool,
}

impl PatternSet {
    /// Compiles `patterns`; `ci` for `like~` and `:`.
    pub fn new<'p>(patterns: impl IntoIterator<Item = &'p str>, ci: bool) -> PatternSet {
        let mut set = PatternSet { exact: HashSet::new(), exact_ci: CiSet::default(), patterns: Vec::new(), ci };
        for p in patterns {
            if p.contains(['*', '?']) {
                set.patterns.push(Pattern::new(p, ci));
            } else if ci {
                set.exact_ci.insert(p);
            } else {
                set.exact.insert(p.into());
            }
        }
        set
    }

    /// True for `like~` and `:` (case-insensitive) patterns.
    pub fn is_ci(&self) -> bool {
        self.ci
    }

    /// The literal text every matching string value equals or starts with, one entry per
    /// pattern: `(text, whole)` where `whole` means the value is exactly `text` (a pattern
    /// without wildcards) and otherwise `text` is a prefix of it; folded when
    /// [`PatternSet::is_ci`]. `None` when some pattern gives no such literal (it starts with a
    /// wildcard). Used by dispatch and the raw-byte prefilter (`eql::require`).
    pub fn literals(&self) -> Option<Vec<(String, bool)>> {
        let mut out: Vec<(String, bool)> = self.exact.iter().map(|s| (s.to_string(), true)).collect();
        out.extend(self.exact_ci.iter().map(|s| (s.to_string(), true)));
        for p in &self.patterns {
            match &p.kind {
                Kind::Exact(s) => out.push((s.to_string(), true)),
                Kind::Prefix(s) => out.push((s.to_string(), false)),
                Kind::Segments(segs) if segs.first().is_some_and(|s| !s.is_empty()) => {
                    out.push((segs[0].to_string(), false))
                }
                Kind::Chars(toks) => {
                    // The literal head, as matched (folded when case-insensitive).
                    let head: String = toks
                        .iter()
                        .map_while(|t| match t {
                            PTok::Char(c) => Some(*c),
                            _ => None,
                        })
                        .collect();
                    if head.is_empty() {
                        return None;
                    }
                    out.push((head, false));
                }
                _ => return None,
            }
        }
        Some(out)
    }

    /// Whether the whole of `v` matches one of the patterns.
    pub fn matches(&self, v: &str) -> bool {
        (!self.exact.is_empty() && self.exact.contains(v))
            || (!self.exact_ci.is_empty() && self.exact_ci.contains(v))
            || self.patterns.iter().any(|p| p.matches(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_sets_mix_literals_and_wildcards() {
        let s = PatternSet::new(["a.exe", "B.EXE", "*.dll", "Ä.exe"], true);
        assert!(s.matches("A.EXE"));
        assert!(s.matches("b.exe"));
        assert!(s.matches("x.DLL"));
        assert!(s.matches("ä.EXE"));
        assert!(!s.matches("c.exe"));
        let s = PatternSet::new(["a.exe", "/tmp/*"], false);
        assert!(s.matches("a.exe"));
        assert!(!s.matches("A.exe"));
        assert!(s.matches("/tmp/x"));
        let long = "A".repeat(300);
        let s = PatternSet::new([long.to_lowercase().as_str()], true);
        assert!(s.matches(&long));
    }

    fn m(p: &str, v: &str) -> bool {
        Pattern::new(p, false).matches(v)
    }

    fn mi(p: &str, v: &str) -> bool {
        Pattern::new(p, true).matches(v)
    }

    // eql-semantics.md 6.2: `*` any run incl. `/` and empty; `?` exactly one char; whole value.
    #[test]
    fn star_crosses_slashes_and_matches_empty() {
        assert!(m("/home/*/*", "/home/u/a/b/c"));
        assert!(m("/tmp/*", "/tmp/"));
        assert!(!m("/tmp/*", "/tmp"));
        assert!(m("*", ""));
        assert!(m("/proc/*/fd/*", "/proc/1/fd/3"));
        assert!(!m("/proc/*/fd/*", "/proc/1/fe/3"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("*a*a*", "aa"));
        assert!(!m("*a*a*", "a"));
    }

    #[test]
    fn question_mark_is_exactly_one_character() {
        assert!(m("cur?", "curl"));
        assert!(!m("cur?", "cur"));
        assert!(!m("cur?", "curls"));
        assert!(m("?:\\Users\\*.exe", "C:\\Users\\x\\a.exe"));
        assert!(m("caf?", "café"));
        assert!(m("*?", "é"));
    }

    #[test]
    fn like_is_case_sensitive_and_like_i_is_not() {
        assert!(!m("/tmp/*", "/TMP/x"));
        assert!(mi("/tmp/*", "/TMP/x"));
        assert!(mi("*CURL*", "xcurly"));
        assert!(mi("É*", "école"));
        assert!(mi("?URL", "curl"));
        assert!(!mi("curl", "curls"));
    }

    #[test]
    fn literal_characters_are_literal() {
        assert!(m("%_\\", "%_\\"));
        assert!(!m("a_c", "abc"));
    }
}
