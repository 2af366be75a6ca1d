//! Every relative link in README.md and docs/*.md resolves inside the repository: the file
//! exists, and a `#fragment` names a heading of the target Markdown file (GitHub's anchors).

use std::path::{Path, PathBuf};

use crate::util::repo;

/// The Markdown files checked.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![repo("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The targets of the inline links `[text](target)` of `text`, outside code blocks and spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans can hold `](` that is not a link.
        let outside: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = outside.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

fn check(doc: &Path, target: &str, problems: &mut Vec<String>) {
    if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
        return;
    }
    let (path, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    };
    let file =
        if path.is_empty() { doc.to_path_buf() } else { doc.parent().expect("a document has a directory").join(path) };
    if !file.exists() {
        problems.push(format!("{}: link to {target}: {} does not exist", doc.display(), file.display()));
        return;
    }
    if let Some(fragment) = fragment {
        if file.extension().is_some_and(|x| x == "md") {
            let text = std::fs::read_to_string(&file).expect("readable Markdown");
            if !anchors(&text).iter().any(|a| a == fragment) {
                problems.push(format!("{}: link to {target}: no heading #{fragment}", doc.display()));
            }
        }
    }
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("readable document");
        for target in links(&text) {
            checked += 1;
            check(&doc, &target, &mut problems);
        }
    }
    assert!(checked > 20, "links were found ({checked})");
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn the_link_checker_catches_a_missing_file_and_a_missing_heading() {
    let doc = repo("README.md");
    let mut problems = Vec::new();
    check(&doc, "docs/no-such-file.md", &mut problems);
    check(&doc, "docs/rules.md#no-such-heading", &mut problems);
    check(&doc, "#failure-modes", &mut problems);
    check(&doc, "https://example.com/x", &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(links("see [a](b.md) and `[c](d)` ```"), ["b.md"]);
    assert_eq!(slug(" Event time and latency"), "event-time-and-latency");
    assert_eq!(slug("Many rules (issue 14)"), "many-rules-issue-14");
}
