//! Diagnostics of the EQL front end: a byte [`Span`] into the query text, a message saying what
//! was expected and what was found, and an optional hint for the usual mistakes.
//!
//! The front end only returns data; rendering as `FILE:LINE:COL: error: MESSAGE` plus the source
//! line and a caret happens in [`render`], which callers (the rule set, `validate`) use with
//! whatever text the span maps into. Never prints anything itself.
//!
//! Rendered output is bounded whatever the input (issue 13: a 20 KB rule file gave 602 MB of
//! stderr, as each of thousands of errors repeated its 20 KB source line): a source line wider
//! than [`MAX_SOURCE_CHARS`] is cut around the span with `…`, a message or hint longer than
//! [`MAX_MESSAGE_CHARS`] is cut, and [`render_file`] shows at most [`MAX_PER_FILE`]
//! diagnostics of one file, then how many more there are.

use std::borrow::Cow;
use std::fmt;

/// The most characters of a source line a rendered diagnostic shows; a longer line is cut around
/// the span (about a third of this before its start), with `…` marking each cut.
pub const MAX_SOURCE_CHARS: usize = 120;

/// The most characters of a message, or of a hint, a rendered diagnostic shows.
pub const MAX_MESSAGE_CHARS: usize = 240;

/// The most diagnostics [`render_file`] shows for one file.
pub const MAX_PER_FILE: usize = 20;

/// A half-open byte range into the text that was compiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The query cannot run.
    Error,
    /// The query runs, but something in it is ignored or differs in streaming.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where, as bytes of the compiled text.
    pub span: Span,
    /// What went wrong, lower-case, concrete ("expected `]`, found `by`").
    pub message: String,
    /// A suggestion for a usual mistake, if one applies.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, span, message: message.into(), hint: None }
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, span, message: message.into(), hint: None }
    }

    /// The same diagnostic with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `s` cut to at most `max` characters, with `…` at the end when cut.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
    }
}

/// Renders `diag` whose span points into `text` (the whole file):
///
/// ```text
/// FILE:LINE:COL: error: MESSAGE
///    |   SOURCE LINE
///    |   ^^^^ hint: HINT
/// ```
///
/// At most [`MAX_SOURCE_CHARS`] of the source line are shown (cut around the span, `…` marking
/// each cut, the caret still under the span) and at most [`MAX_MESSAGE_CHARS`] of the message
/// and of the hint, so the output is bounded whatever the input.
pub fn render(origin: &str, text: &str, diag: &Diagnostic) -> String {
    let (line, col) = line_col(text, diag.span.start);
    let start = floor_char_boundary(text, diag.span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let src_end = line_start + text[line_start..line_end].trim_end_matches('\r').len();
    // The shown part of the line: all of it, or MAX_SOURCE_CHARS characters around `start`.
    let (shown_start, shown_end) = if text[line_start..src_end].chars().nth(MAX_SOURCE_CHARS).is_none() {
        (line_start, src_end)
    } else {
        let lead = MAX_SOURCE_CHARS / 3;
        let from = text[line_start..start.min(src_end)]
            .char_indices()
            .rev()
            .nth(lead.saturating_sub(1))
            .map_or(line_start, |(i, _)| line_start + i);
        let to = text[from..src_end].char_indices().nth(MAX_SOURCE_CHARS).map_or(src_end, |(i, _)| from + i);
        (from, to)
    };
    let (left, right) = (shown_start > line_start, shown_end < src_end);
    let src = &text[shown_start..shown_end];
    let end = floor_char_boundary(text, diag.span.end.clamp(start, line_end).min(shown_end.max(start)));
    let width = text[start..end].chars().count().max(1);
    let caret_from = start.clamp(shown_start, shown_end);
    let pad: String = (if left { " " } else { "" })
        .chars()
        .chain(text[shown_start..caret_from].chars().map(|c| if c == '\t' { '\t' } else { ' ' }))
        .collect();
    let gutter = " ".repeat(line.to_string().len());
    let mut out = format!(
        "{origin}:{line}:{col}: {}: {}\n{gutter} |\n{line} | {}{src}{}\n{gutter} | {pad}{}",
        diag.severity,
        clip(&diag.message, MAX_MESSAGE_CHARS),
        if left { "…" } else { "" },
        if right { "…" } else { "" },
        "^".repeat(width)
    );
    if let Some(h) = &diag.hint {
        out.push_str(" hint: ");
        out.push_str(&clip(h, MAX_MESSAGE_CHARS));
    }
    out.push('\n');
    out
}

/// Renders the diagnostics of one file with [`render`]: the first [`MAX_PER_FILE`], then, when
/// there are more, one line `FILE: ... and N more errors (and M more warnings) not shown`.
pub fn render_file<'d>(origin: &str, text: &str, diags: impl IntoIterator<Item = &'d Diagnostic>) -> String {
    let mut out = String::new();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for (i, d) in diags.into_iter().enumerate() {
        if i < MAX_PER_FILE {
            out.push_str(&render(origin, text, d));
        } else if d.is_error() {
            errors += 1;
        } else {
            warnings += 1;
        }
    }
    out.push_str(&more_line(origin, errors, warnings));
    out
}

/// `FILE: ... and N more errors (and M more warnings) not shown\n`, or nothing when both are 0.
pub fn more_line(origin: &str, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, what: &str| format!("{n} more {what}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => String::new(),
        (e, 0) => format!("{origin}: ... and {} not shown\n", plural(e, "error")),
        (0, w) => format!("{origin}: ... and {} not shown\n", plural(w, "warning")),
        (e, w) => format!("{origin}: ... and {} and {} not shown\n", plural(e, "error"), plural(w, "warning")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let t = "ab\ncé d";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 7), (2, 4));
    }

    #[test]
    fn render_puts_caret_under_span() {
        let t = "x\nfoo = 1\n";
        let d = Diagnostic::error(Span::new(6, 7), "expected `==`, found `=`").with_hint("use `==`");
        let r = render("f.toml", t, &d);
        assert_eq!(r, "f.toml:2:5: error: expected `==`, found `=`\n  |\n2 | foo = 1\n  |     ^ hint: use `==`\n");
    }

    #[test]
    fn a_long_line_is_cut_around_the_span_with_the_caret_under_it() {
        let line = format!("{}@{}", "a".repeat(5000), "b".repeat(5000));
        let t = format!("x\n{line}\n");
        let d = Diagnostic::error(Span::new(2 + 5000, 2 + 5001), "unexpected character `@`");
        let r = render("f.toml", &t, &d);
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], "f.toml:2:5001: error: unexpected character `@`");
        let src = lines[2].strip_prefix("2 | ").unwrap();
        assert!(src.starts_with('…') && src.ends_with('…'), "{src}");
        assert_eq!(src.chars().count(), MAX_SOURCE_CHARS + 2);
        let caret = lines[3].strip_prefix("  | ").unwrap();
        let at = caret.chars().position(|c| c == '^').unwrap();
        assert_eq!(src.chars().nth(at), Some('@'), "{src}\n{caret}");
        assert_eq!(caret.trim(), "^");
    }

    #[test]
    fn a_span_at_the_start_or_end_of_a_long_line_and_a_wide_span_stay_bounded() {
        let t = "é".repeat(3000);
        for d in [
            Diagnostic::error(Span::new(0, 2), "m"),
            Diagnostic::error(Span::new(t.len(), t.len()), "m"),
            Diagnostic::error(Span::new(2, t.len()), "m".repeat(10_000)).with_hint("h".repeat(10_000)),
        ] {
            let r = render("f", &t, &d);
            assert!(r.chars().count() < 4 * MAX_SOURCE_CHARS + 2 * MAX_MESSAGE_CHARS + 40, "{r}");
        }
    }

    #[test]
    fn render_file_shows_the_first_diagnostics_then_counts_the_rest() {
        let t = "#".repeat(100);
        let mut ds: Vec<Diagnostic> = (0..100).map(|i| Diagnostic::error(Span::new(i, i + 1), "bad `#`")).collect();
        ds.push(Diagnostic::warning(Span::new(0, 1), "w"));
        let r = render_file("f.toml", &t, &ds);
        assert_eq!(r.matches(": error: bad `#`").count(), MAX_PER_FILE);
        assert!(r.ends_with("f.toml: ... and 80 more errors and 1 more warning not shown\n"), "{r}");
        assert_eq!(render_file("f.toml", &t, &ds[..2]).lines().count(), 8, "no summary line when all are shown");
    }
}
