//! Diagnostics of the EQL front end: a byte [`Span`] into the query text, a message saying what
//! was expected and what was found, and an optional hint for the usual mistakes.
//!
//! The front end only returns data; rendering as `FILE:LINE:COL: error: MESSAGE` plus the source
//! line and a caret happens in [`render`], which callers (the rule set, `validate`) use with
//! whatever text the span maps into. Never prints anything itself.

use std::fmt;

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

    /// The same span shifted by `offset` bytes.
    pub fn shift(self, offset: usize) -> Span {
        Span { start: self.start + offset, end: self.end + offset }
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

/// Renders `diag` whose span points into `text` (the whole file):
///
/// ```text
/// FILE:LINE:COL: error: MESSAGE
///    |   SOURCE LINE
///    |   ^^^^ hint: HINT
/// ```
pub fn render(origin: &str, text: &str, diag: &Diagnostic) -> String {
    let (line, col) = line_col(text, diag.span.start);
    let start = floor_char_boundary(text, diag.span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let src = text[line_start..line_end].trim_end_matches('\r');
    let end = diag.span.end.clamp(start, line_end);
    let end = floor_char_boundary(text, end);
    let width = text[start..end].chars().count().max(1);
    let pad: String = text[line_start..start].chars().map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
    let gutter = " ".repeat(line.to_string().len());
    let mut out = format!(
        "{origin}:{line}:{col}: {}: {}\n{gutter} |\n{line} | {src}\n{gutter} | {pad}{}",
        diag.severity,
        diag.message,
        "^".repeat(width)
    );
    if let Some(h) = &diag.hint {
        out.push_str(" hint: ");
        out.push_str(h);
    }
    out.push('\n');
    out
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
}
