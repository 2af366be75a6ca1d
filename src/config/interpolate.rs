//! Environment-variable interpolation in the config file's text, before it is parsed as TOML,
//! with Vector's syntax: `${VAR}` (VAR must be set), `${VAR:-default}` (the default when VAR is
//! unset or empty), `${VAR-default}` (the default only when VAR is unset), and `$$` for a
//! literal `$`. A `$` followed by anything else is kept as written.
//!
//! The value is inserted as is, so a string option is written `"${VAR}"` and a number
//! `${VAR:-4}`. One difference from Vector: lines that are only a comment (first non-blank
//! character `#`) are left alone, so the commented examples of `config/eqlstream.toml` never
//! need the variables they mention. Never touches the process environment: the caller passes
//! the lookup.

/// Why the text could not be interpolated; `line` is 1-based, in the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${VAR}` without a default, and VAR is not set.
    #[error("line {line}: environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)")]
    Unset {
        /// 1-based line of the reference.
        line: usize,
        /// The variable.
        name: String,
    },
    /// A `${` without its `}`, or a name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("line {line}: {message} (write `$$` for a literal `$`)")]
    Syntax {
        /// 1-based line of the reference.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Replaces every `${...}` reference of `text` with the value `lookup` gives, and `$$` with `$`.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            interpolate_line(line, i + 1, &lookup, &mut out)?;
        }
    }
    Ok(out)
}

fn interpolate_line(
    line: &str,
    number: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), InterpolateError> {
    let syntax = |message: String| InterpolateError::Syntax { line: number, message };
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(syntax("`${` without a closing `}`".into()));
            };
            let inner = &body[..end];
            let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
            let name = &inner[..name_len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(syntax(format!("`${{{inner}}}` does not start with a variable name")));
            }
            let value = lookup(name);
            let spec = &inner[name_len..];
            if spec.is_empty() {
                match value {
                    Some(v) => out.push_str(&v),
                    None => return Err(InterpolateError::Unset { line: number, name: name.to_string() }),
                }
            } else if let Some(default) = spec.strip_prefix(":-") {
                out.push_str(value.as_deref().filter(|v| !v.is_empty()).unwrap_or(default));
            } else if let Some(default) = spec.strip_prefix('-') {
                out.push_str(value.as_deref().unwrap_or(default));
            } else {
                return Err(syntax(format!("`${{{inner}}}`: expected `}}`, `:-default` or `-default` after `{name}`")));
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "WORKERS" => Some("3".into()),
            "EMPTY" => Some(String::new()),
            "DIR" => Some("/srv/rules".into()),
            _ => None,
        }
    }

    #[test]
    fn references_are_replaced_by_values_and_defaults() {
        let text = "workers = ${WORKERS}\nrules = [\"${DIR}\", \"${NOPE:-x}\"]\nbatch_size = ${NOPE:-16}\n";
        assert_eq!(interpolate(text, env).unwrap(), "workers = 3\nrules = [\"/srv/rules\", \"x\"]\nbatch_size = 16\n");
    }

    #[test]
    fn colon_dash_defaults_an_empty_value_and_dash_only_an_unset_one() {
        assert_eq!(interpolate("a = \"${EMPTY:-d}\"", env).unwrap(), "a = \"d\"");
        assert_eq!(interpolate("a = \"${EMPTY-d}\"", env).unwrap(), "a = \"\"");
        assert_eq!(interpolate("a = \"${NOPE-d}\"", env).unwrap(), "a = \"d\"");
        assert_eq!(interpolate("a = \"${EMPTY}\"", env).unwrap(), "a = \"\"");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar_and_a_lone_dollar_stays() {
        assert_eq!(interpolate("a = \"$${WORKERS} $$ $x 5$\"", env).unwrap(), "a = \"${WORKERS} $ $x 5$\"");
    }

    #[test]
    fn unset_variable_without_default_names_it_and_its_line() {
        let e = interpolate("input = \"stdin\"\n\nrules = [\"${RULES_DIR}\"]\n", env).unwrap_err();
        assert_eq!(e, InterpolateError::Unset { line: 3, name: "RULES_DIR".into() });
        let shown = e.to_string();
        assert!(shown.contains("line 3") && shown.contains("RULES_DIR"), "{shown}");
    }

    #[test]
    fn bad_references_are_errors_with_their_line() {
        for (text, line) in
            [("a = 1\nb = \"${OPEN\"\n", 2), ("x = \"${}\"", 1), ("x = \"${9A}\"", 1), ("x = \"${A:?e}\"", 1)]
        {
            match interpolate(text, env) {
                Err(InterpolateError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn comment_lines_are_not_interpolated() {
        let text = "# use ${UNSET} here\n  # and ${ALSO}\nworkers = ${WORKERS} # ${WORKERS}\n";
        assert_eq!(interpolate(text, env).unwrap(), "# use ${UNSET} here\n  # and ${ALSO}\nworkers = 3 # 3\n");
    }
}
