//! docs/system-requirements.md has one row per Lync Server 2013 requirement
//! identifier kept in `confab_prereq::lync::REQUIREMENTS`: each exactly once, in
//! the same order, with the same pages and kind of answer, and no extra row.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use confab_prereq::lync::{Answer, REQUIREMENTS};

const DOC: &str = include_str!("../../../docs/system-requirements.md");
const SECTION: &str = "## Lync Server 2013 requirements, one by one";

/// The table rows of the section: (id, pages, confab column).
fn rows() -> Vec<(String, String, String)> {
    let start = DOC.find(SECTION).expect("the section exists");
    let rest = &DOC[start + SECTION.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 4, "a row has 4 cells: {l}");
            (
                cells[0].trim().trim_matches('`').to_string(),
                cells[1].trim().to_string(),
                cells[3].trim().to_string(),
            )
        })
        .collect()
}

fn answer_word(a: Answer) -> &'static str {
    match a {
        Answer::Check => "**check**",
        Answer::Rule => "**rule**",
        Answer::Bootstrap => "**bootstrap**",
        Answer::BuiltIn => "**built-in**",
        Answer::NotApplicable => "**not applicable**",
    }
}

#[test]
fn one_row_per_requirement() {
    let rows = rows();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (id, _, _) in &rows {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    for r in REQUIREMENTS {
        assert_eq!(
            seen.get(r.id).copied().unwrap_or(0),
            1,
            "{} must have exactly one row",
            r.id
        );
    }
    for (id, _, _) in &rows {
        assert!(
            REQUIREMENTS.iter().any(|r| r.id == id),
            "row {id} is not a known requirement identifier"
        );
    }
    assert_eq!(rows.len(), REQUIREMENTS.len());
    for (row, req) in rows.iter().zip(REQUIREMENTS) {
        assert_eq!(row.0, req.id, "same order");
        let pages: Vec<&str> = req.pages.iter().map(|p| p.as_str()).collect();
        assert_eq!(row.1, pages.join(", "), "pages of {}", req.id);
        assert!(
            row.2.starts_with(answer_word(req.answer)),
            "{}: the confab column starts with {}: {}",
            req.id,
            answer_word(req.answer),
            row.2
        );
        // A named check or rule appears in the sentence.
        for c in req.checks.iter().chain(req.rules) {
            let c = c.trim_end_matches(':');
            assert!(
                row.2.contains(c),
                "{}: {c} is not mentioned: {}",
                req.id,
                row.2
            );
        }
        assert!(
            row.2.len() > answer_word(req.answer).len() + 10,
            "{}: a sentence",
            req.id
        );
    }
}

#[test]
fn identifiers_are_stable_names() {
    for r in REQUIREMENTS {
        assert!(
            r.id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}",
            r.id
        );
        assert!(!r.pages.is_empty(), "{}", r.id);
        if r.answer == Answer::Check {
            assert!(!r.checks.is_empty(), "{} is a check: name it", r.id);
        }
        if r.answer == Answer::Rule {
            assert!(!r.rules.is_empty(), "{} is a rule: name it", r.id);
        }
    }
}
