//! Lucene regular expressions (the syntax of ES `regexp` queries, used by EQL `regex` and
//! `regex~`) translated to the `regex` crate, once at compile time. Never matches anything
//! itself.

/// Translates a Lucene regular expression (ES `regexp` query, eql-semantics.md 6.2) to the
/// `regex` crate's syntax, anchored to the whole value.
///
/// * `\d \D \w \W \s \S` are Lucene's ASCII classes (`[0-9]`, `[0-9A-Za-z_]`,
///   `[ \t\n\r\f\v]` and complements); any other escaped character is literal (`\n` is `n`).
/// * `^` and `$` are ordinary characters outside brackets (Lucene has no anchors: the whole
///   value must match).
/// * `.` matches any character including newlines.
/// * `@` (any string), `#` (empty language) and `"..."` (quoted literal) are translated.
///
/// Known differences: Lucene's optional operators `~` (complement), `&` (intersection) and
/// `<n-m>` (numeric interval) are taken literally; `regex~` folds case with Unicode rules where
/// Lucene's `case_insensitive` folds ASCII only.
pub fn lucene_to_regex(p: &str, ci: bool) -> String {
    const D: &str = "0-9";
    const W: &str = "0-9A-Za-z_";
    const S: &str = "\\t\\n\\x0B\\x0C\\r ";
    let mut out = String::with_capacity(p.len() + 16);
    out.push_str(if ci { "^(?si:" } else { "^(?s:" });
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('d' | 'w' | 's')) => {
                    let set = match e {
                        'd' => D,
                        'w' => W,
                        _ => S,
                    };
                    if in_class {
                        out.push_str(set);
                    } else {
                        out.push('[');
                        out.push_str(set);
                        out.push(']');
                    }
                }
                Some(e @ ('D' | 'W' | 'S')) => {
                    if in_class {
                        out.push_str(match e {
                            'D' => "[:^digit:]",
                            'W' => "[:^word:]",
                            _ => "[:^space:]",
                        });
                    } else {
                        let set = match e {
                            'D' => D,
                            'W' => W,
                            _ => S,
                        };
                        out.push_str("[^");
                        out.push_str(set);
                        out.push(']');
                    }
                }
                Some(e) => out.push_str(&regex::escape(&e.to_string())),
                None => out.push_str("\\\\"),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '[' | '&' | '~' | '<' | '>' if in_class => out.push_str(&regex::escape(&c.to_string())),
            _ if in_class => out.push(c),
            '@' => out.push_str(".*"),
            '#' => out.push_str("[^\\s\\S]"),
            '"' => {
                let mut lit = String::new();
                for d in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                    lit.push(d);
                }
                out.push_str(&regex::escape(&lit));
            }
            '&' | '~' | '<' | '>' | '^' | '$' => out.push_str(&regex::escape(&c.to_string())),
            _ => out.push(c),
        }
    }
    out.push_str(")$");
    out
}

#[cfg(test)]
mod tests {
    use super::lucene_to_regex;

    fn m(p: &str, v: &str) -> bool {
        regex::Regex::new(&lucene_to_regex(p, false)).expect("valid translation").is_match(v)
    }

    #[test]
    fn lucene_regexes_are_anchored_and_ascii_classed() {
        assert!(m("cur.", "curl"));
        assert!(!m("ur", "curl"));
        assert!(m("[0-9]{1,3}\\.[0-9]+", "10.5"));
        assert!(m("\\d+", "42"));
        assert!(!m("\\d+", "٤٢"), "Arabic-Indic digits are not \\d in Lucene");
        assert!(m("[\\w.-]+", "a_b.c-d"));
        assert!(m("[\\W]+", "!?"));
        assert!(m("\\S+\\s\\S+", "a b"));
        assert!(m("a^b$", "a^b$"), "^ and $ are literal");
        assert!(m("\\n", "n"), "escaped letters are literal");
        assert!(m("a.b", "a\nb"), ". matches newlines");
        assert!(m("a@", "anything"));
        assert!(m("\"a.b\"", "a.b"));
        assert!(!m("\"a.b\"", "axb"));
        assert!(m("a\\/b", "a/b"));
    }
}
