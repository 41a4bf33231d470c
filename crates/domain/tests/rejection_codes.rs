//! The README's list of rejection codes is the list in code: `RejectionCode::ALL`.

use std::collections::BTreeSet;

use gongji_domain::RejectionCode;

/// The backquoted words of the README paragraph that begins "Rejection codes:".
fn readme_codes() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("the workspace README is readable");
    let start = readme
        .find("Rejection codes:")
        .expect("the README has a paragraph listing the rejection codes");
    let paragraph = readme[start..].split("\n\n").next().unwrap_or_default();
    paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_lists_exactly_the_rejection_codes_in_code() {
    let in_code: BTreeSet<String> = RejectionCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    let in_readme = readme_codes();
    let missing: Vec<_> = in_code.difference(&in_readme).collect();
    let unknown: Vec<_> = in_readme.difference(&in_code).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's rejection codes differ from RejectionCode::ALL: missing from the README {missing:?}, unknown to the code {unknown:?}"
    );
    assert_eq!(in_readme.len(), RejectionCode::ALL.len());
}
