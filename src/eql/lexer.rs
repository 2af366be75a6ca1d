//! EQL text -> tokens with byte spans (Elasticsearch's dialect, `EqlBase.g4`).
//!
//! Never panics on any input: problems (unterminated strings, single quotes, stray characters)
//! become diagnostics, and lexing continues so that several errors can be reported at once.
//! Dotted field paths (`process.parent.name`) are one `Ident` token; backquoted segments
//! (`` `a.b/c` ``) are `QuotedIdent` tokens joined by `Dot` tokens.

use super::diag::{Diagnostic, Span};

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// A bare word or dotted path: keyword, category, field or function name.
    Ident(String),
    /// A backquoted identifier, unescaped (``` `` ``` -> `` ` ``).
    QuotedIdent(String),
    /// A word immediately followed by `~` (`in~`, `like~`, `startsWith~`), without the `~`.
    TildeIdent(String),
    /// A string literal, unescaped.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A decimal literal.
    Float(f64),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `![` (a missing-event stage)
    MissingOpen,
    /// `,`
    Comma,
    /// `.` between backquoted segments
    Dot,
    /// `|`
    Pipe,
    /// `?` (optional field)
    Question,
    /// `==`
    EqEq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=` (only valid in `with maxspan=` / `with runs=`)
    Assign,
    /// `:`
    Colon,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// End of input.
    Eof,
}

impl Tok {
    /// How the token is named in "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::QuotedIdent(s) => format!("`` `{s}` ``"),
            Tok::TildeIdent(s) => format!("`{s}~`"),
            Tok::Str(s) => {
                let short: String = s.chars().take(30).collect();
                if short.len() < s.len() {
                    format!("string \"{short}...\"")
                } else {
                    format!("string \"{short}\"")
                }
            }
            Tok::Int(i) => format!("number `{i}`"),
            Tok::Float(f) => format!("number `{f}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::MissingOpen => "`![`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Pipe => "`|`".into(),
            Tok::Question => "`?`".into(),
            Tok::EqEq => "`==`".into(),
            Tok::NotEq => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Assign => "`=`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Percent => "`%`".into(),
            Tok::Eof => "end of query".into(),
        }
    }
}

/// A token and where it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its bytes in the query.
    pub span: Span,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'@'
}

/// ES: `IDENTIFIER : (LETTER | '_' | '@') (LETTER | DIGIT | '_')*`; after a dot, a path
/// segment may also start with a digit (`a.0.b`).
fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Splits `src` into tokens (always ending with `Eof`) plus the lexical errors found.
pub fn lex(src: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut lx = Lexer { src, b: src.as_bytes(), i: 0, toks: Vec::new(), diags: Vec::new() };
    lx.run();
    (lx.toks, lx.diags)
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    toks: Vec<Token>,
    diags: Vec<Diagnostic>,
}

impl Lexer<'_> {
    fn peek(&self, off: usize) -> u8 {
        self.b.get(self.i + off).copied().unwrap_or(0)
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.toks.push(Token { tok, span: Span::new(start, self.i) });
    }

    fn run(&mut self) {
        while self.i < self.b.len() {
            let start = self.i;
            let c = self.b[self.i];
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'/' if self.peek(1) == b'*' => self.block_comment(),
                b'/' if self.peek(1) == b'/' => {
                    while self.i < self.b.len() && self.b[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                b'"' => self.string(),
                b'\'' => self.single_quoted(),
                b'`' => self.quoted_ident(),
                b'0'..=b'9' => self.number(),
                c if is_ident_start(c) => self.ident(),
                _ => {
                    let (tok, len) = match (c, self.peek(1)) {
                        (b'=', b'=') => (Some(Tok::EqEq), 2),
                        (b'!', b'=') => (Some(Tok::NotEq), 2),
                        (b'!', b'[') => (Some(Tok::MissingOpen), 2),
                        (b'<', b'=') => (Some(Tok::Le), 2),
                        (b'>', b'=') => (Some(Tok::Ge), 2),
                        (b'=', _) => (Some(Tok::Assign), 1),
                        (b'<', _) => (Some(Tok::Lt), 1),
                        (b'>', _) => (Some(Tok::Gt), 1),
                        (b'(', _) => (Some(Tok::LParen), 1),
                        (b')', _) => (Some(Tok::RParen), 1),
                        (b'[', _) => (Some(Tok::LBracket), 1),
                        (b']', _) => (Some(Tok::RBracket), 1),
                        (b',', _) => (Some(Tok::Comma), 1),
                        (b'.', _) => (Some(Tok::Dot), 1),
                        (b'|', _) => (Some(Tok::Pipe), 1),
                        (b'?', _) => (Some(Tok::Question), 1),
                        (b':', _) => (Some(Tok::Colon), 1),
                        (b'+', _) => (Some(Tok::Plus), 1),
                        (b'-', _) => (Some(Tok::Minus), 1),
                        (b'*', _) => (Some(Tok::Star), 1),
                        (b'/', _) => (Some(Tok::Slash), 1),
                        (b'%', _) => (Some(Tok::Percent), 1),
                        _ => (None, 1),
                    };
                    match tok {
                        Some(t) => {
                            self.i += len;
                            self.push(t, start);
                        }
                        None if c == b'&' && self.peek(1) == b'&' => {
                            self.i += 2;
                            self.diags.push(
                                Diagnostic::error(
                                    Span::new(start, self.i),
                                    "unexpected `&&`: expected an operator such as `and`",
                                )
                                .with_hint("use `and`"),
                            );
                        }
                        None => {
                            let ch = self.src[start..].chars().next().unwrap_or('?');
                            self.i += ch.len_utf8();
                            let mut d =
                                Diagnostic::error(Span::new(start, self.i), format!("unexpected character `{ch}`"));
                            if ch == '&' {
                                d = d.with_hint("use `and`");
                            } else if ch == '!' {
                                d = d.with_hint("use `not` or `!=`");
                            }
                            self.diags.push(d);
                        }
                    }
                }
            }
        }
        let end = self.b.len();
        self.toks.push(Token { tok: Tok::Eof, span: Span::new(end, end) });
    }

    fn block_comment(&mut self) {
        let start = self.i;
        self.i += 2;
        match self.src[self.i..].find("*/") {
            Some(n) => self.i += n + 2,
            None => {
                self.i = self.b.len();
                self.diags.push(Diagnostic::error(
                    Span::new(start, start + 2),
                    "unterminated comment: expected `*/`, found end of query",
                ));
            }
        }
    }

    fn ident(&mut self) {
        let start = self.i;
        loop {
            if self.peek(0) == b'@' {
                self.i += 1;
            }
            while self.i < self.b.len() && is_ident_char(self.b[self.i]) {
                self.i += 1;
            }
            // A dot continues the path when a segment follows directly.
            if self.peek(0) == b'.' && (is_ident_char(self.peek(1)) || self.peek(1) == b'@') {
                self.i += 1;
                continue;
            }
            break;
        }
        let text = self.src[start..self.i].to_string();
        if self.peek(0) == b'~' && !text.contains('.') {
            self.i += 1;
            self.push(Tok::TildeIdent(text), start);
        } else {
            self.push(Tok::Ident(text), start);
        }
    }

    fn quoted_ident(&mut self) {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.src[self.i..].find('`') {
                Some(n) => {
                    out.push_str(&self.src[self.i..self.i + n]);
                    self.i += n + 1;
                    if self.peek(0) == b'`' {
                        out.push('`');
                        self.i += 1;
                        continue;
                    }
                    self.push(Tok::QuotedIdent(out), start);
                    return;
                }
                None => {
                    self.i = self.b.len();
                    self.diags.push(Diagnostic::error(
                        Span::new(start, start + 1),
                        "unterminated quoted identifier: expected a closing backquote, found end of query",
                    ));
                    return;
                }
            }
        }
    }

    fn number(&mut self) {
        let start = self.i;
        while self.peek(0).is_ascii_digit() {
            self.i += 1;
        }
        let mut float = false;
        if self.peek(0) == b'.' && self.peek(1).is_ascii_digit() {
            float = true;
            self.i += 1;
            while self.peek(0).is_ascii_digit() {
                self.i += 1;
            }
        }
        if matches!(self.peek(0), b'e' | b'E')
            && (self.peek(1).is_ascii_digit() || (matches!(self.peek(1), b'+' | b'-') && self.peek(2).is_ascii_digit()))
        {
            float = true;
            self.i += 2;
            while self.peek(0).is_ascii_digit() {
                self.i += 1;
            }
        }
        let text = &self.src[start..self.i];
        if float {
            match text.parse::<f64>() {
                Ok(f) => self.push(Tok::Float(f), start),
                Err(_) => {
                    self.diags.push(Diagnostic::error(Span::new(start, self.i), format!("invalid number `{text}`")))
                }
            }
        } else {
            match text.parse::<i64>() {
                Ok(n) => self.push(Tok::Int(n), start),
                Err(_) => self.diags.push(Diagnostic::error(
                    Span::new(start, self.i),
                    format!("number `{text}` is too large: expected at most {}", i64::MAX),
                )),
            }
        }
    }

    fn string(&mut self) {
        let start = self.i;
        if self.src[self.i..].starts_with("\"\"\"") {
            // ES: '"""' (~[\r\n])*? '"""' '"'? '"'? : the first `"""` closes, up to two
            // quotes right after it still belong to the string, and no line breaks inside.
            self.i += 3;
            let rest = &self.src[self.i..];
            let line_end = rest.find(['\n', '\r']).unwrap_or(rest.len());
            match rest[..line_end].find("\"\"\"") {
                Some(n) => {
                    let mut end = self.i + n;
                    let mut extra = 0;
                    while extra < 2 && self.b.get(end + 3) == Some(&b'"') {
                        end += 1;
                        extra += 1;
                    }
                    let body = self.src[self.i..end].to_string();
                    self.i = end + 3;
                    self.push(Tok::Str(body), start);
                }
                None => {
                    self.i += line_end;
                    let eol = line_end < rest.len();
                    let found = if eol { "end of line" } else { "end of query" };
                    let mut d = Diagnostic::error(
                        Span::new(start, start + 3),
                        format!("unterminated raw string: expected closing `\"\"\"`, found {found}"),
                    );
                    if eol {
                        d = d.with_hint("`\"\"\"...\"\"\"` strings cannot span lines");
                    }
                    self.diags.push(d);
                }
            }
            return;
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.i..].chars().next() else {
                self.diags.push(Diagnostic::error(
                    Span::new(start, start + 1),
                    "unterminated string: expected closing `\"`, found end of query",
                ));
                return;
            };
            match c {
                '"' => {
                    self.i += 1;
                    self.push(Tok::Str(out), start);
                    return;
                }
                '\n' | '\r' => {
                    self.diags.push(
                        Diagnostic::error(
                            Span::new(start, self.i),
                            "unterminated string: expected closing `\"`, found end of line",
                        )
                        .with_hint("use `\"\"\"...\"\"\"` for strings spanning several lines"),
                    );
                    return;
                }
                '\\' => {
                    let esc_start = self.i;
                    self.i += 1;
                    let e = self.src[self.i..].chars().next();
                    let ch = match e {
                        Some('n') => Some('\n'),
                        Some('t') => Some('\t'),
                        Some('r') => Some('\r'),
                        Some('b') => Some('\u{8}'),
                        Some('f') => Some('\u{c}'),
                        Some('"') => Some('"'),
                        Some('\'') => Some('\''),
                        Some('\\') => Some('\\'),
                        Some('u') => {
                            // ES: '\\u' '{' HEX_DIGIT+ '}' (2-8 hex digits).
                            self.i += 1;
                            let rest = &self.src[self.i..];
                            let hex = rest.strip_prefix('{').and_then(|r| r.find('}').map(|n| &r[..n]));
                            let v = hex
                                .filter(|h| (2..=8).contains(&h.len()))
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32);
                            match (v, hex) {
                                (Some(ch), Some(h)) => {
                                    self.i += h.len() + 2;
                                    out.push(ch);
                                }
                                (_, h) => {
                                    self.i += h.map_or(0, |h| h.len() + 2);
                                    self.diags.push(
                                        Diagnostic::error(
                                            Span::new(esc_start, self.i.max(esc_start + 2)),
                                            "invalid unicode escape: expected `\\u{XXXX}` with 2 to 8 hex digits",
                                        )
                                        .with_hint("write e.g. `\\u{41}`"),
                                    );
                                }
                            }
                            continue;
                        }
                        _ => None,
                    };
                    match ch {
                        Some(ch) => {
                            out.push(ch);
                            self.i += 1;
                        }
                        None => {
                            let found = e.map_or(String::from("end of query"), |c| format!("`{c}`"));
                            self.i += e.map_or(0, char::len_utf8);
                            self.diags.push(
                                Diagnostic::error(
                                    Span::new(esc_start, self.i),
                                    format!(
                                        "invalid escape sequence: expected one of \\n \\t \\r \\b \\f \\\" \\' \\\\ \\u{{..}}, found {found}"
                                    ),
                                )
                                .with_hint("use `\"\"\"...\"\"\"` for strings with literal backslashes, or write `\\\\`"),
                            );
                        }
                    }
                }
                c => {
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    fn single_quoted(&mut self) {
        let start = self.i;
        self.i += 1;
        let body_end = self.src[self.i..].find(['\'', '\n']).map_or(self.b.len(), |n| self.i + n);
        let body = self.src[self.i..body_end].to_string();
        self.i = if self.b.get(body_end) == Some(&b'\'') { body_end + 1 } else { body_end };
        self.diags.push(
            Diagnostic::error(
                Span::new(start, self.i),
                "single-quoted strings are not supported: expected a string in double quotes",
            )
            .with_hint("use double quotes [\"] to define string literals, not single quotes [']"),
        );
        // Keep a string token so that parsing can continue.
        self.push(Tok::Str(body), start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let (t, d) = lex(s);
        assert!(d.is_empty(), "{d:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn dotted_paths_are_one_token_and_tilde_words_are_marked() {
        assert_eq!(
            toks("process.parent.name like~ \"a\""),
            vec![
                Tok::Ident("process.parent.name".into()),
                Tok::TildeIdent("like".into()),
                Tok::Str("a".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn strings_unescape_and_raw_strings_keep_backslashes() {
        assert_eq!(
            toks(r##""a\"b\\c\u{41}" """C:\x"""" """a""""##),
            vec![Tok::Str("a\"b\\cA".into()), Tok::Str("C:\\x\"".into()), Tok::Str("a".into()), Tok::Eof]
        );
    }

    #[test]
    fn maxspan_number_and_unit_are_separate() {
        assert_eq!(
            toks("maxspan=10s"),
            vec![Tok::Ident("maxspan".into()), Tok::Assign, Tok::Int(10), Tok::Ident("s".into()), Tok::Eof]
        );
    }

    #[test]
    fn backquoted_segments_and_comments() {
        assert_eq!(
            toks("a.`0`.b /* c */ // d\n`x``y`"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::QuotedIdent("0".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::QuotedIdent("x`y".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn raw_strings_cannot_span_lines_and_unicode_escapes_need_braces() {
        assert_eq!(lex("\"\"\"a\nb\"\"\"").1.len(), 2);
        assert_eq!(lex(r#""\u0041""#).1.len(), 1);
    }

    #[test]
    fn single_quotes_are_an_error_with_hint() {
        let (_, d) = lex("a == 'x'");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].span, Span::new(5, 8));
        assert!(d[0].hint.as_deref().unwrap_or("").contains("double quotes"));
    }
}
